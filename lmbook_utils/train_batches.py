"""How `train` and `evaluate` read a batch: its device, its targets, how many tokens and
targets it holds, and its loss.

Part of the training loop introduced in chapter 03_attention (see `train`). The book's
models name their targets `targets` (per token) or `labels` (per sequence), as `modeling`
says; a tuple batch is matched to the model's forward signature by those names.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from .modeling import IGNORE_INDEX

def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


TARGET_NAMES = ("targets", "labels")  # what the book's models call them (modeling.py)


def _find(model: nn.Module, attribute: str) -> Any:
    """The first non-None `attribute` of the model, its config, or a submodule's (wrappers)."""
    for module in model.modules():
        for owner in (module, getattr(module, "config", None)):
            value = getattr(owner, attribute, None) if owner is not None else None
            if value is not None and not isinstance(value, nn.Module):
                return value
    return None


def _input_ids(batch: Any) -> torch.Tensor | None:
    if isinstance(batch, Mapping):
        first = next((batch[k] for k in ("input_ids",) if k in batch), None)
    elif isinstance(batch, (tuple, list)):
        first = batch[0] if batch else None
    else:
        first = batch
    if isinstance(first, torch.Tensor) and not first.is_floating_point() and first.dtype != torch.bool:
        return first
    return None


def _count_tokens(batch: Any, pad_id: int | None = None) -> int | None:
    """Number of real input token ids in a batch (not `pad_id`), or None when the input is not
    token ids."""
    ids = _input_ids(batch)
    if ids is None:
        return None
    return ids.numel() if pad_id is None else int((ids != pad_id).sum())


def _targets(model: nn.Module, batch: Any) -> torch.Tensor | None:
    """The batch's targets: the entry named as in TARGET_NAMES, by key (a dict batch) or by the
    position of that name in the model's forward signature (a tuple batch); None if absent."""
    if isinstance(batch, Mapping):
        return next((batch[k] for k in TARGET_NAMES if isinstance(batch.get(k), torch.Tensor)), None)
    if not isinstance(batch, (tuple, list)):
        return None
    try:
        names = list(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        return None
    for name in TARGET_NAMES:
        if name in names and names.index(name) < len(batch):
            value = batch[names.index(name)]
            return value if isinstance(value, torch.Tensor) else None
    return None


def count_targets(model: nn.Module, batch: Any) -> int | None:
    """How many targets the batch asks the model to predict, or None when it has none we can find.

    Integer targets equal to the ignore index (-100, or the model's `ignore_index`, e.g. the
    Transformer's padding id) do not count; float targets (a regression) all count."""
    target = _targets(model, batch)
    if target is None:
        return None
    if target.is_floating_point():
        return target.numel()
    ignore = _find(model, "ignore_index")
    return int((target != (IGNORE_INDEX if ignore is None else ignore)).sum())


def _weight(model: nn.Module, batch: Any, count: int | None) -> int:
    """How much a batch's mean loss weighs in a mean over several batches (held-out batches,
    micro-batches, processes): its targets as the loss function counted them (`count`), else
    as `count_targets` finds them, else its rows."""
    if count is None:
        count = count_targets(model, batch)
    return _rows(batch) if count is None else count


def _rows(batch: Any) -> int:
    first = _input_ids(batch)
    if first is None:
        tensors = list(batch.values()) if isinstance(batch, Mapping) else (
            list(batch) if isinstance(batch, (tuple, list)) else [batch])
        first = next((t for t in tensors if isinstance(t, torch.Tensor) and t.dim() > 0), None)
    if first is None:
        raise ValueError("cannot weigh a batch without tensors: return (loss, n_targets) from loss_fn")
    return first.shape[0]


def _default_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    if isinstance(batch, Mapping):
        out = model(**batch)
    elif isinstance(batch, (tuple, list)):
        out = model(*batch)
    else:
        out = model(batch)
    loss = out.get("loss") if isinstance(out, Mapping) else getattr(out, "loss", None)
    if loss is None:
        raise ValueError(f"the model returned {type(out).__name__} without a .loss; pass targets "
                         "in each batch (e.g. (ids, targets)) or give train(..., loss_fn=...) "
                         "a function (model, batch) -> scalar loss")
    return loss


def _compute_loss(loss_fn: Callable, model: nn.Module, batch: Any, step: int,
                  module: nn.Module | None = None) -> tuple[torch.Tensor, int | None]:
    """(scalar loss, number of targets if the loss function said it, else None). `module`:
    the model whose forward names the batch's entries when `model` wraps it (DDP)."""
    loss, count = loss_fn(model, batch), None
    if isinstance(loss, tuple) and len(loss) == 2:
        loss, count = loss
        if isinstance(count, torch.Tensor):
            count = int(count)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"loss_fn returned (loss, n_targets) with n_targets={count!r}; "
                             "expected an int >= 0")
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError(f"the loss must be a scalar tensor, got {type(loss).__name__}"
                         f"{' of shape ' + str(tuple(loss.shape)) if isinstance(loss, torch.Tensor) else ''}")
    if not torch.isfinite(loss.detach()).all():
        n = count if count is not None else count_targets(module or model, batch)
        where = f"at step {step}" if step > 0 else "in evaluation"
        if n == 0:
            raise ValueError(f"a batch {where} has no target to predict (every target equals the "
                             "ignore index), so its mean loss is 0/0: drop such batches or "
                             "check how the targets are built")
        raise FloatingPointError(f"the loss is {loss.item()} {where}; try a lower "
                                 "TrainConfig.lr or grad_clip")
    return loss.reshape(()), count
