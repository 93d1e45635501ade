"""Checkpoints: everything a training run needs to go on as if it had never stopped.

Part of the training loop introduced in chapter 03_attention (see `train`, which writes them
with `TrainConfig.checkpoint_dir` and reads them with ``train(..., resume_from=...)``). A
checkpoint is a folder ``step-000300`` with three files, none of which unpickles objects:

- ``model.safetensors``: the weights (safetensors: tensors and names, nothing executable);
- ``state.pt``: the optimizer state (AdamW's moments and step counts, keyed by parameter
  name), the GradScaler's and the random number generators' states (torch's CPU and CUDA
  generators, Python's `random`, numpy's), one per process; only tensors, numbers and
  strings, read with ``torch.load(..., weights_only=True)``;
- ``trainer.json``: the step, the data position (how many batches of the cycled training data
  were consumed), the History so far and the TrainConfig, readable without torch.

The learning rate is a function of the step (`lr_at`), so the step is all it needs. The data
position is replayed, not stored: resuming iterates that many batches of `train_data` and
drops them, so the data must come out in the same order again (a list, or `data.batches(...)`
with the same seed). The generators are restored after that replay, so a DataLoader that
drew from them while being replayed leaves no trace.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "read_checkpoint", "write_checkpoint",
           "latest_checkpoint", "checkpoint_name", "rng_state", "set_rng_state", "named_optimizer_state",
           "load_named_optimizer_state", "load_weights"]

WEIGHTS, STATE, TRAINER = "model.safetensors", "state.pt", "trainer.json"
FORMAT = 1  # trainer.json's "format": raised when the layout changes
_STEP_FOLDER = re.compile(r"step-(\d+)")


def checkpoint_name(step: int) -> str:
    """The folder name of the checkpoint after `step` updates: step-000300."""
    return f"step-{step:06d}"


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The checkpoint with the most steps in `folder` (its step-NNNNNN folders), or None."""
    found = [(int(m.group(1)), p) for p in Path(folder).iterdir()
             if p.is_dir() and (m := _STEP_FOLDER.fullmatch(p.name)) and (p / TRAINER).is_file()]
    return max(found)[1] if found else None


# ---- random number generators -------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """The states of torch's (CPU and every CUDA device's), Python's and numpy's generators,
    as tensors and plain numbers."""
    _, key, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": random.getstate(),
            "numpy": {"key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "gauss": float(gauss)}}


def set_rng_state(state: dict[str, Any]) -> None:
    """Put every generator back where `rng_state` found it."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        for device, cuda in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda, device)
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))


# ---- weights and optimizer state by parameter name ----------------------------------------
def _shared_with_earlier(state: dict[str, torch.Tensor]) -> dict[str, str]:
    """name -> the earlier name whose tensor it is (tied weights appear under two names)."""
    seen, alias = {}, {}
    for name, t in state.items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride())
        if key in seen:
            alias[name] = seen[key]
        else:
            seen[key] = name
    return alias


def _to_save(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    alias = _shared_with_earlier(state)
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items() if k not in alias}


def load_weights(model: nn.Module, weights: dict[str, torch.Tensor], name: str = "weights") -> None:
    """Copy `weights` into the model, after checking that names and shapes are the model's;
    errors name the argument `name` (resume_from, --resume)."""
    expected = model.state_dict()
    alias = _shared_with_earlier(expected)
    missing = [k for k in expected if k not in weights and alias.get(k) not in weights]
    unexpected = [k for k in weights if k not in expected]
    if missing or unexpected:
        raise ValueError(f"{name}: the checkpoint's parameter names differ from the model's (a checkpoint "
                         f"of another model?): missing from the checkpoint {missing[:6]}"
                         f"{'...' if len(missing) > 6 else ''}; not in the model {unexpected[:6]}"
                         f"{'...' if len(unexpected) > 6 else ''}")
    wrong = [f"{k}: {tuple(weights[k].shape)} in the checkpoint, {tuple(expected[k].shape)} in the model"
             for k in expected if k in weights and tuple(weights[k].shape) != tuple(expected[k].shape)]
    if wrong:
        raise ValueError(f"{name}: the checkpoint's shapes differ from the model's (a model of another "
                         f"size?): {'; '.join(wrong[:4])}")
    model.load_state_dict(weights, strict=False)


def _names(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[list[str]]:
    names = {id(p): n for n, p in model.named_parameters()}
    try:
        return [[names[id(p)] for p in group["params"]] for group in optimizer.param_groups]
    except KeyError:
        raise ValueError("the optimizer holds a parameter that is not the model's") from None


def named_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """optimizer.state_dict() with parameter names instead of positions (as torch's
    distributed checkpoints write it), so a checkpoint says which moments belong to which
    weight and loads under another parallelism."""
    names = [n for group in _names(model, optimizer) for n in group]
    sd = optimizer.state_dict()
    return {"state": {names[i]: v for i, v in sd["state"].items()},
            "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in sd["param_groups"]]}


IMPLEMENTATION_KEYS = ("fused", "foreach", "capturable", "differentiable")  # this run's, not the saved run's


def load_named_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict,
                               name: str = "state") -> None:
    """Load what `named_optimizer_state` wrote into an optimizer of the same parameter groups."""
    groups = _names(model, optimizer)
    saved = [list(g["params"]) for g in state["param_groups"]]
    if saved != groups:
        raise ValueError(f"{name}: the optimizer's parameter groups differ from the checkpoint's "
                         f"(checkpoint {[len(g) for g in saved]} parameters per group, this run "
                         f"{[len(g) for g in groups]})")
    index = {n: i for i, n in enumerate(n for group in groups for n in group)}
    current = optimizer.param_groups
    optimizer.load_state_dict({
        "state": {index[n]: v for n, v in state["state"].items()},
        "param_groups": [{**g, **{k: now[k] for k in IMPLEMENTATION_KEYS if k in now},
                          "params": [index[n] for n in g["params"]]}
                         for g, now in zip(state["param_groups"], current)]})


# ---- folders -------------------------------------------------------------------------------
@dataclass
class Checkpoint:
    """What `read_checkpoint` found in a checkpoint folder."""

    path: Path
    step: int  # updates done
    data_position: int  # batches of the cycled training data consumed
    history: dict  # History.to_dict() of the steps done
    config: dict  # the TrainConfig of the run that wrote it
    world_size: int  # processes of that run
    weights: dict[str, torch.Tensor]
    optimizer: dict  # named_optimizer_state
    scaler: dict | None  # GradScaler.state_dict(), when fp16 used one
    rng: list[dict]  # rng_state() of each process, by rank


def write_checkpoint(folder: str | os.PathLike, *, step: int, weights: dict[str, torch.Tensor], optimizer: dict,
                     data_position: int = 0, history: dict | None = None, config: dict | None = None,
                     scaler: dict | None = None, rng: list[dict] | None = None, world_size: int = 1) -> Path:
    """Write a checkpoint into `folder` (created; replaced if it exists) and return it. The
    files go to a temporary folder first, renamed at the end, so a run killed while writing
    never leaves a half checkpoint where `latest_checkpoint` would find it."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(_to_save(weights), str(tmp / WEIGHTS), metadata={"format": "pt"})
    torch.save({"optimizer": optimizer, "scaler": scaler, "rng": rng if rng is not None else [rng_state()]},
               tmp / STATE)
    trainer = {"format": FORMAT, "step": step, "data_position": data_position, "world_size": world_size,
               "config": config or {}, "history": history or {}}
    (tmp / TRAINER).write_text(json.dumps(trainer, indent=1, default=str) + "\n", encoding="utf-8")
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def read_checkpoint(path: str | os.PathLike, name: str = "path") -> Checkpoint:
    """Read a checkpoint folder, or the latest one in a folder of checkpoints (a
    TrainConfig.checkpoint_dir). Errors name the argument `name`."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or Path), got {type(path).__name__}")
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{name}: no such folder {str(path)!r}")
    if not (folder / TRAINER).is_file():
        latest = latest_checkpoint(folder)
        if latest is None:
            raise FileNotFoundError(f"{name}: {str(path)!r} holds no checkpoint: expected {TRAINER} in it, "
                                    "or step-NNNNNN folders that hold one")
        folder = latest
    for file in (WEIGHTS, STATE):
        if not (folder / file).is_file():
            raise FileNotFoundError(f"{name}: {str(folder)!r} is not a complete checkpoint ({file} is missing)")
    trainer = json.loads((folder / TRAINER).read_text(encoding="utf-8"))
    if trainer.get("format") != FORMAT:
        raise ValueError(f"{name}: {str(folder)!r} has checkpoint format {trainer.get('format')!r}, this "
                         f"version reads format {FORMAT}")
    state = torch.load(folder / STATE, map_location="cpu", weights_only=True)
    return Checkpoint(folder, int(trainer["step"]), int(trainer["data_position"]), trainer["history"],
                      trainer["config"], int(trainer["world_size"]), load_file(str(folder / WEIGHTS)),
                      state["optimizer"], state["scaler"], state["rng"])


def save_checkpoint(folder: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer, step: int,
                    *, data_position: int = 0, history: Any = None, config: Any = None,
                    scaler: torch.amp.GradScaler | None = None) -> Path:
    """One process's checkpoint by hand (`train` writes its own): the weights, the optimizer,
    this process's generators, `step` and `data_position`; `history` a History or its dict,
    `config` a TrainConfig or a dict."""
    from dataclasses import asdict, is_dataclass

    for label, value in (("step", step), ("data_position", data_position)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{label} must be an int >= 0, got {value!r}")
    return write_checkpoint(
        folder, step=step, weights=model.state_dict(), optimizer=named_optimizer_state(model, optimizer),
        data_position=data_position, history=history.to_dict() if hasattr(history, "to_dict") else history,
        config=asdict(config) if is_dataclass(config) else config,
        scaler=scaler.state_dict() if scaler is not None and scaler.is_enabled() else None)


def load_checkpoint(folder: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    *, scaler: torch.amp.GradScaler | None = None, restore_rng: bool = False) -> Checkpoint:
    """Load a checkpoint's weights into `model` (and its state into `optimizer`, `scaler`,
    and, with restore_rng, rank 0's generators) and return what it holds."""
    ckpt = read_checkpoint(folder, "folder")
    load_weights(model, ckpt.weights, "folder")
    if optimizer is not None:
        load_named_optimizer_state(model, optimizer, ckpt.optimizer, "folder")
    if scaler is not None and ckpt.scaler is not None:
        scaler.load_state_dict(ckpt.scaler)
    if restore_rng:
        set_rng_state(ckpt.rng[0])
    return ckpt
