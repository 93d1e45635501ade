"""Exercise checks of chapter 03_attention: scaled dot-product attention and the causal mask.

Introduced in chapter 03_attention.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from ._common import _as_cpu, _call, _report

__all__ = ["check_attention", "check_causal_mask"]


def _reference_attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def check_attention(fn: Callable) -> bool:
    """Check ``fn(q, k, v, mask=None) -> (output, weights)``: scaled dot-product attention.

    Introduced in chapter 03_attention (exercise 1). q: (n_q, d_k), k: (n_k, d_k), v: (n_k, d_v);
    mask: bool (n_q, n_k), True where a query may look. weights = softmax(q k^T / sqrt(d_k)).
    """
    gen = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(4, 16, generator=gen), torch.randn(5, 16, generator=gen),
               torch.randn(5, 3, generator=gen))
    mask = torch.ones(4, 5, dtype=torch.bool).tril()
    for case_mask, label in ((None, "without a mask"), (mask, "with a causal mask")):
        (ref_out, ref_w) = _reference_attention(q, k, v, case_mask)
        got, error = _call(fn, q.clone(), k.clone(), v.clone(), None if case_mask is None else case_mask.clone())
        if error:
            return _report(False, error)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            return _report(False, f"return (output, weights), got {type(got).__name__}")
        (out, error), (w, error_w) = (_as_cpu(x, torch.float32) for x in got)
        if error or error_w:
            return _report(False, error or error_w)
        if w.shape != ref_w.shape or out.shape != ref_out.shape:
            return _report(False, f"{label}: weights should have shape {tuple(ref_w.shape)} and output "
                                  f"{tuple(ref_out.shape)}, yours have {tuple(w.shape)} and {tuple(out.shape)}")
        sums = w.sum(dim=-1)
        bad = torch.nonzero((sums - 1).abs() > 1e-4).flatten()
        if len(bad):
            r = int(bad[0])
            return _report(False, f"{label}: your attention rows do not sum to 1: row {r} sums to "
                                  f"{float(sums[r]):.4g}. Normalize with a softmax over the keys (last dim).")
        if case_mask is not None and (w[~case_mask].abs() > 1e-6).any():
            r, c = (int(x) for x in torch.nonzero(w * ~case_mask)[0])
            return _report(False, f"{label}: query {r} gives weight {float(w[r, c]):.3g} to key {c}, which "
                                  "the mask forbids; set masked scores to -inf before the softmax")
        if not torch.allclose(w, ref_w, atol=1e-5):
            unscaled = torch.softmax((q @ k.T).masked_fill(~case_mask, float("-inf"))
                                     if case_mask is not None else q @ k.T, dim=-1)
            if torch.allclose(w, unscaled, atol=1e-5):
                return _report(False, f"{label}: your weights are softmax(q k^T) without the scaling; "
                                      "divide the scores by sqrt(d_k) = 4 before the softmax")
            r = int(((w - ref_w).abs().amax(dim=-1)).argmax())
            return _report(False, f"{label}: row {r} of your weights is {w[r].numpy().round(3)}, "
                                  f"expected {ref_w[r].numpy().round(3)}")
        if not torch.allclose(out, ref_out, atol=1e-5):
            return _report(False, f"{label}: the weights are right but the output is not weights @ v")
    return _report(True, "scaled dot-product attention is right, with and without a mask")


def check_causal_mask(fn: Callable[[int], Any]) -> bool:
    """Check ``fn(n) -> bool tensor (n, n)``, True where query i may attend to key j (j <= i).

    Introduced in chapter 03_attention (exercise 2).
    """
    for n in (1, 4, 7):
        got, error = _call(fn, n)
        if error:
            return _report(False, error)
        got, error = _as_cpu(got)
        if error:
            return _report(False, error)
        want = torch.ones(n, n, dtype=torch.bool).tril()
        if got.shape != (n, n):
            return _report(False, f"for n={n} the mask needs shape ({n}, {n}), yours has {tuple(got.shape)}")
        got = got.bool()
        if not torch.equal(got, want):
            i, j = (int(x) for x in torch.nonzero(got != want)[0])
            what = "may see the future" if j > i else "cannot see itself or the past"
            return _report(False, f"for n={n}, entry ({i}, {j}) is {bool(got[i, j])}: query {i} {what}; "
                                  "a causal mask is True on and below the diagonal (j <= i)")
    return _report(True, "the causal mask is right for n = 1, 4 and 7")
