"""Exercise checks of chapter 04_transformer: sinusoidal positional encodings and label smoothing.

Introduced in chapter 04_transformer.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from ..transformer import sinusoidal_positions
from ._common import _as_cpu, _call, _report

__all__ = ["check_positional_encoding", "check_label_smoothing"]


def check_positional_encoding(fn: Callable[[int, int], Any]) -> bool:
    """Check ``fn(max_len, d_model) -> (max_len, d_model)`` sinusoidal positional encodings.

    Introduced in chapter 04_transformer (exercise 1): PE[p, 2i] = sin(p / 10000^(2i/d)),
    PE[p, 2i+1] = cos(p / 10000^(2i/d)).
    """
    for max_len, d in ((4, 2), (50, 16)):
        got, error = _call(fn, max_len, d)
        if error:
            return _report(False, error)
        got, error = _as_cpu(got, torch.float64)
        if error:
            return _report(False, error)
        want = sinusoidal_positions(max_len, d).double()
        if got.shape != want.shape:
            return _report(False, f"for max_len={max_len}, d_model={d} the answer needs shape "
                                  f"{tuple(want.shape)}, yours has {tuple(got.shape)}")
        if not torch.allclose(got[1, 0], torch.tensor(math.sin(1.0), dtype=torch.float64), atol=1e-5):
            return _report(False, f"PE[1, 0] should be sin(1) = {math.sin(1.0):.4f}, you have "
                                  f"{float(got[1, 0]):.4f}: even dimensions use sin, odd ones cos")
        if not torch.allclose(got, want, atol=1e-5):
            p, j = (int(x) for x in torch.nonzero((got - want).abs() > 1e-5)[0])
            return _report(False, f"PE[{p}, {j}] should be {float(want[p, j]):.5f}, you have "
                                  f"{float(got[p, j]):.5f}; the angle is p / 10000^(2i/d) with 2i = "
                                  f"{j - j % 2}, the same for dimensions {j - j % 2} and {j - j % 2 + 1}")
    return _report(True, "sinusoidal positional encodings are right")


def check_label_smoothing(fn: Callable[[Any, int, float], Any]) -> bool:
    """Check ``fn(target, n_classes, eps) -> (N, n_classes)`` smoothed target distributions.

    Introduced in chapter 04_transformer (exercise 2): every class gets eps / n_classes and the
    true class additionally 1 - eps (what torch.nn.functional.cross_entropy's
    label_smoothing uses).
    """
    target, n, eps = torch.tensor([0, 3, 1]), 5, 0.1
    want = torch.full((3, n), eps / n)
    want[torch.arange(3), target] += 1 - eps
    got, error = _call(fn, target.clone(), n, eps)
    if error:
        return _report(False, error)
    got, error = _as_cpu(got, torch.float32)
    if error:
        return _report(False, error)
    if got.shape != want.shape:
        return _report(False, f"the answer needs shape {tuple(want.shape)}, yours has {tuple(got.shape)}")
    sums = got.sum(-1)
    if not torch.allclose(sums, torch.ones(3), atol=1e-5):
        return _report(False, f"each row is a distribution and must sum to 1; row 0 sums to {float(sums[0]):.4f}")
    if not torch.allclose(got, want, atol=1e-6):
        return _report(False, f"for target {int(target[0])} with eps={eps} and {n} classes row 0 should be "
                              f"{want[0].numpy().round(3)}, yours is {got[0].numpy().round(3)}: every class, the "
                              "true one included, gets eps / n_classes, and the true class 1 - eps more")
    logits = torch.randn(3, n, generator=torch.Generator().manual_seed(0))
    by_hand = -(got * logits.log_softmax(-1)).sum(-1).mean()
    torch_value = torch.nn.functional.cross_entropy(logits, target, label_smoothing=eps)
    assert torch.allclose(by_hand, torch_value, atol=1e-6)  # the check's own consistency
    return _report(True, "label smoothing is right, and matches cross_entropy(label_smoothing=eps)")
