"""Exercise checks of chapter 06_gpt: top-k and top-p (nucleus) sampling, and the ideal
reader's accuracy in the few-shot game.

Introduced in chapter 06_gpt.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..fewshot import optimal_accuracy
from ._common import _as_cpu, _call, _report

__all__ = ["check_top_k", "check_top_p", "check_few_shot_optimum"]


_SAMPLING_LOGITS = [[2.0, -1.0, 0.5, 3.0, 0.0, 1.0], [0.1, 0.2, 0.3, 0.4, 5.0, -2.0]]


def _kept(logits) -> list[int]:
    return [i for i, x in enumerate(logits.tolist()) if x != float("-inf")]


def check_top_k(fn: Callable) -> bool:
    """Check ``fn(logits, k) -> logits`` with every entry outside the k largest set to -inf.

    Introduced in chapter 06_gpt (exercise 1).
    """
    for row in _SAMPLING_LOGITS:
        logits = torch.tensor(row)
        for k in (1, 2, 4, 6):
            got, error = _call(fn, logits.clone(), k)
            if error:
                return _report(False, error)
            got, error = _as_cpu(got)
            if error:
                return _report(False, error)
            want = sorted(torch.topk(logits, k).indices.tolist())
            if got.shape != logits.shape:
                return _report(False, f"return logits of the same shape {tuple(logits.shape)}, got {tuple(got.shape)}")
            if _kept(got) != want:
                return _report(False, f"for logits {row} and k={k} you keep positions {_kept(got)}, "
                                      f"the {k} largest are {want}")
            if not torch.equal(got[want], logits[want]):
                return _report(False, f"for k={k} the kept logits changed value: keep them as they are")
    return _report(True, "top-k keeps the k largest logits and sets the rest to -inf")


def check_top_p(fn: Callable) -> bool:
    """Check ``fn(logits, p) -> logits`` keeping the smallest set of most likely tokens whose
    probability reaches p (Holtzman et al. 2020). Introduced in chapter 06_gpt (exercise 2).
    """
    for row in _SAMPLING_LOGITS:
        logits = torch.tensor(row)
        probs = logits.softmax(-1)
        order = torch.argsort(probs, descending=True).tolist()
        for p in (0.1, 0.5, 0.8, 0.95, 1.0):
            cum, want = 0.0, []
            for i in order:  # add tokens, most likely first, until their mass reaches p
                want.append(i)
                cum += float(probs[i])
                if cum >= p:
                    break
            got, error = _call(fn, logits.clone(), p)
            if error:
                return _report(False, error)
            got, error = _as_cpu(got)
            if error:
                return _report(False, error)
            if got.shape != logits.shape:
                return _report(False, f"return logits of the same shape {tuple(logits.shape)}, got {tuple(got.shape)}")
            kept = _kept(got)
            if kept != sorted(want):
                mass = float(probs[kept].sum()) if kept else 0.0
                hint = ("that set is too small: its probability is below p" if mass < p - 1e-9
                        else "a smaller set of the most likely tokens already reaches p")
                return _report(False, f"for probabilities {[round(x, 3) for x in probs.tolist()]} and p={p} "
                                      f"you keep {kept} (mass {mass:.3f}); {hint}. The nucleus is {sorted(want)}")
    return _report(True, "top-p keeps the smallest set of most likely tokens reaching p")


def check_few_shot_optimum(fn: Callable[[int], float]) -> bool:
    """Check ``fn(k) -> best accuracy`` for the arbitrary-label game of `fewshot`.

    Introduced in chapter 06_gpt (exercise 3).
    """
    for k in range(0, 10):
        got, error = _call(fn, k)
        if error:
            return _report(False, error)
        want = optimal_accuracy("arbitrary_labels", k)
        if not isinstance(got, (int, float)) or not math.isclose(float(got), want, abs_tol=1e-9):
            hint = (" With no example, nothing says which of the 4 labels is wanted." if k == 0 else
                    " Ask: when is the query's label not among the examples, and what is the best guess then?")
            return _report(False, f"for k={k} the best accuracy is {want:.4f}, yours is {got!r}.{hint}")
    return _report(True, "the ideal reader's accuracy, right for k = 0..9")
