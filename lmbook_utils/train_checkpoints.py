"""How `train` writes checkpoints and resumes from one, on one process or on N.

Part of the training loop introduced in chapter 03_attention (see `train`; the files are
`checkpoint`'s). Rank 0 writes; the other processes hand it their FSDP2 shards and their
generators' states, then wait at a barrier until the folder is there. Every process reads a
checkpoint it resumes from, and takes back its own generators (rank r the state rank r
saved; a run resumed on more processes than wrote it gives the extra ones rank 0's state,
which continues correctly but no longer bit for bit).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from . import checkpoint as ckpt_io
from . import distributed
from .distributed import Ranks

if TYPE_CHECKING:
    from .train import TrainConfig


def _config_dict(config: TrainConfig) -> dict:
    return {k: (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in asdict(config).items()}


def read_for_resume(resume_from: Any, config: TrainConfig) -> ckpt_io.Checkpoint:
    """The checkpoint `resume_from` names, checked to leave steps to train."""
    ckpt = ckpt_io.read_checkpoint(resume_from, "resume_from")
    if ckpt.step >= config.max_steps:
        raise ValueError(f"resume_from={str(ckpt.path)!r}: the checkpoint is at step {ckpt.step}, but "
                         f"TrainConfig.max_steps={config.max_steps}: nothing is left to train "
                         "(raise max_steps to train on)")
    return ckpt


def save(config: TrainConfig, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
         scaler: torch.amp.GradScaler, history: Any, consumed: int, ranks: Ranks) -> None:
    """Rank 0 writes the checkpoint of `step` into config.checkpoint_dir."""
    weights, optimizer_state = distributed.full_state(model, optimizer)  # FSDP2: every rank gathers
    rng = ranks.gather(ckpt_io.rng_state())
    if ranks.is_main:
        ckpt_io.write_checkpoint(
            os.path.join(config.checkpoint_dir, ckpt_io.checkpoint_name(step)), step=step, weights=weights,
            optimizer=optimizer_state, data_position=consumed, history=history.to_dict(),
            config=_config_dict(config), scaler=scaler.state_dict() if scaler.is_enabled() else None,
            rng=rng, world_size=ranks.world)
    ranks.barrier()


def resume(ckpt: ckpt_io.Checkpoint, model: nn.Module, optimizer: torch.optim.Optimizer,
           scaler: torch.amp.GradScaler, batches: Iterator, ranks: Ranks) -> None:
    """Put the run where the checkpoint left it (its weights are loaded before the model is
    wrapped): the optimizer, the scaler, the data position and, last, the generators."""
    distributed.load_optimizer_state(model, optimizer, ckpt.optimizer, "resume_from")
    if scaler.is_enabled() and ckpt.scaler is not None:
        scaler.load_state_dict(ckpt.scaler)
    for _ in range(ckpt.data_position):  # replay the data, so that the next batch is the one due
        next(batches)
    ckpt_io.set_rng_state(ckpt.rng[ranks.rank] if ranks.rank < len(ckpt.rng) else ckpt.rng[0])
