"""Exercise checks of chapter 01_ngram: bigram probabilities, add-k smoothing, perplexity.

Introduced in chapter 01_ngram.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Callable, Sequence

import numpy as np

from ._common import _call, _report

__all__ = ["check_bigram_mle", "check_add_k", "check_perplexity"]


_BIGRAM_CORPUS = [
    ["the", "cat", "sat"],
    ["the", "dog", "sat"],
    ["a", "cat", "ran"],
    ["the", "cat", "ran"],
    ["the", "dog"],
]
_BIGRAM_CASES = [("cat", "the"), ("dog", "the"), ("sat", "cat"), ("sat", "dog"), ("cat", "a")]


def check_bigram_mle(fn: Callable[[Sequence[Sequence[str]], str, str], float]) -> bool:
    """Check ``fn(sentences, word, previous) -> P_MLE(word | previous)``.

    Introduced in chapter 01_ngram (exercise 1). Sentence boundaries are not
    padded: only bigrams inside a sentence count.
    """
    pairs = Counter((s[i], s[i + 1]) for s in _BIGRAM_CORPUS for i in range(len(s) - 1))
    firsts = Counter(s[i] for s in _BIGRAM_CORPUS for i in range(len(s) - 1))
    for word, prev in _BIGRAM_CASES:
        expected = pairs[(prev, word)] / firsts[prev]
        got, error = _call(fn, _BIGRAM_CORPUS, word, prev)
        if error:
            return _report(False, error)
        if not isinstance(got, (int, float, np.floating)):
            return _report(False, f"P({word!r} | {prev!r}) should be a number, got {type(got).__name__}")
        if not math.isclose(float(got), expected, abs_tol=1e-9):
            hint = (
                f"count({prev!r} {word!r}) = {pairs[(prev, word)]} and "
                f"count({prev!r} followed by anything) = {firsts[prev]}"
            )
            return _report(False, f"P({word!r} | {prev!r}) should be {expected:.4f}, you gave {float(got):.4f}; hint: {hint}")
    return _report(True, f"all {len(_BIGRAM_CASES)} bigram probabilities are right")


def check_add_k(fn: Callable[[np.ndarray, float], np.ndarray]) -> bool:
    """Check ``fn(counts, k) -> probabilities`` for add-k smoothing of one context.

    Introduced in chapter 01_ngram (exercise 2): ``counts[w]`` is how often word
    ``w`` followed the context; the answer is ``(counts + k) / (N + k V)``.
    """
    rng = np.random.default_rng(1)
    cases = [(np.array([3, 0, 1]), 1.0), (np.array([3, 0, 1]), 0.5), (np.zeros(4, dtype=int), 1.0)]
    cases += [(rng.integers(0, 6, size=7), float(k)) for k in (0.1, 2.0)]
    for counts, k in cases:
        expected = (counts + k) / (counts.sum() + k * len(counts))
        got, error = _call(fn, counts.copy(), k)
        if error:
            return _report(False, error)
        try:
            got = np.asarray(got, dtype=float)
        except (TypeError, ValueError):
            return _report(False, f"for counts {counts} and k={k} you returned {got!r}, not an array of numbers")
        if got.shape != counts.shape:
            return _report(False, f"for counts {counts} the answer needs shape {counts.shape}, yours has shape {got.shape}")
        if not math.isclose(got.sum(), 1.0, abs_tol=1e-9):
            return _report(False, f"your probabilities for counts {counts} with k={k} sum to {got.sum():.4g}, not 1")
        if not np.allclose(got, expected, atol=1e-9):
            i = int(np.argmax(np.abs(got - expected)))
            return _report(
                False,
                f"for counts {counts} with k={k}, word {i} should get {expected[i]:.4f}, you gave {got[i]:.4f}",
            )
    return _report(True, f"add-k smoothing is right on all {len(cases)} cases, including an unseen context")


def check_perplexity(fn: Callable[[Sequence[float]], float]) -> bool:
    """Check ``fn(log2_probs) -> perplexity`` of a text from its per-token log2 probabilities.

    Introduced in chapter 01_ngram (exercise 3): perplexity = 2 ** (cross-entropy
    in bits per token), and one zero-probability token makes it infinite.
    """
    cases = [[-1.0, -1.0, -1.0], [-2.0, -0.5], [-3.3219280948873626] * 5, [-1.0, -math.inf]]
    for log2_probs in cases:
        expected = 2.0 ** (-sum(log2_probs) / len(log2_probs))
        got, error = _call(fn, list(log2_probs))
        if error:
            return _report(False, error)
        if got is None or not isinstance(got, (int, float, np.floating)):
            return _report(False, f"for log2 probabilities {log2_probs} you returned {got!r}, not a number")
        if math.isinf(expected):
            if not math.isinf(got):
                return _report(False, f"a token with probability 0 (log2 = -inf) makes perplexity infinite; you gave {got}")
            continue
        if not math.isclose(float(got), expected, rel_tol=1e-9):
            return _report(
                False,
                f"for log2 probabilities {log2_probs} perplexity is {expected:.4f}, you gave {float(got):.4f}; "
                "remember: average the negative log2 probabilities, then raise 2 to that power",
            )
    return _report(True, "perplexity is right, including the infinite case")
