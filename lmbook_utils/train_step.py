"""How `train` computes one update: AdamW and its parameter groups, mixed precision, the
gradient of one batch or of k micro-batches over N processes, its norm and clipping.

Part of the training loop introduced in chapter 03_attention (see `train`). One batch on
one process is the book's path (its stored outputs depend on that arithmetic, which `train`
keeps inline); `accumulate` is the path of gradient accumulation and of several processes,
with every micro-batch's mean loss weighted by its number of targets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import torch
from torch import nn

from . import distributed
from .distributed import Ranks
from .train_batches import _compute_loss, _count_tokens, _to_device, _weight

if TYPE_CHECKING:
    from .train import TrainConfig


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters (requires_grad=True)")
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def _adamw(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with decoupled weight decay on >= 2-D weights; PyTorch's fused kernel where it has
    one (CPU, CUDA): one pass over the parameters instead of several, same algorithm."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(_param_groups(model, config.weight_decay), lr=config.lr,
                             betas=config.betas, fused=fused or None)


def _grad_norm(params: list[torch.Tensor], max_norm: float | None) -> torch.Tensor:
    """Global L2 norm of the gradients before clipping; clips in place when max_norm is set.

    Without clipping only the norm is computed (clip_grad_norm_ with an infinite max_norm
    would still multiply every gradient by 1)."""
    if max_norm is not None:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    return torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])


def _autocast(config: TrainConfig, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, use GradScaler)."""
    if config.amp == "off" or (config.amp == "auto" and device.type != "cuda"):
        return None, False
    if config.amp == "fp16" and device.type != "cuda":
        raise ValueError(f"TrainConfig.amp='fp16' needs a CUDA device, got {device.type}")
    if config.amp == "bf16" or (config.amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16, False
    return torch.float16, True


def accumulate(net: nn.Module, model: nn.Module, batches: Iterator, loss_fn: Callable, step: int,
               config: TrainConfig, ranks: Ranks, device: torch.device, amp_dtype: torch.dtype | None,
               optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, params: list[torch.Tensor],
               pad_id: int | None) -> tuple[float, int | None]:
    """The gradient of one update from k micro-batches (and N processes), each mean loss
    weighted by its targets n_i: backward of n_i * loss_i, then a division by N = sum n_i
    over micro-batches and processes (times N processes, as DDP and FSDP2 average the
    gradients). Returns (the step's mean loss over its N targets, input tokens or None)."""
    optimizer.zero_grad(set_to_none=True)
    k = config.grad_accum_steps
    loss_sum, targets, tokens = 0.0, 0, 0
    for i in range(k):
        whole = next(batches)
        n_tokens = _count_tokens(whole, pad_id)  # every process's rows, not this one's
        tokens = None if n_tokens is None or tokens is None else tokens + n_tokens
        batch = _to_device(ranks.share(whole), device)
        with distributed.gradient_sync(net, sync=i == k - 1):
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss, count = _compute_loss(loss_fn, net, batch, step + 1, module=model)
            count = _weight(model, batch, count)
            scaler.scale(loss * count).backward()
        loss_sum += float(loss.detach()) * count
        targets += count
    loss_sum, targets = ranks.sum([loss_sum, targets])
    scaler.unscale_(optimizer)
    for p in params:
        if p.grad is not None:
            p.grad.mul_(ranks.world / targets)
    return loss_sum / targets, tokens
