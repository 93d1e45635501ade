"""Dropout (Srivastava et al. 2014, JMLR 15): zero each activation with probability p during
training and scale the others by 1/(1-p), so that the expected value is unchanged.

Introduced in chapter 04_transformer. Same function as `torch.nn.functional.dropout`, drawn
differently on the CPU: PyTorch's CPU kernel draws one Bernoulli variable per entry
(`bernoulli_`), which costs about three times as much as one uniform number per entry
compared with p (`torch.rand(...) >= p`), and with dropout after every sublayer it took a
quarter of a BERT training step at the book's sizes. Each entry is kept with probability
1 - p either way (to float32's 2^-24 resolution). Elsewhere (CUDA, MPS) PyTorch's own fused
kernel is used. The random numbers come from torch's global generator, which
`repro.set_seed` seeds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["dropout", "Dropout"]


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """x with each entry zeroed with probability p and the rest scaled by 1/(1-p) (training);
    x unchanged when not training or p == 0."""
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0.0 <= p < 1.0:
        raise ValueError(f"p must be a number in [0, 1), got {p!r}")
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, training=True)
    keep = torch.rand(x.shape, dtype=torch.float32, device=x.device) >= p
    return x * (keep.to(x.dtype) * (1.0 / (1.0 - p)))


class Dropout(nn.Dropout):
    """`nn.Dropout` with the faster CPU draw of `dropout` (same p, same train/eval behavior)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)
