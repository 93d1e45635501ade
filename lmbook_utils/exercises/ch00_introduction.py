"""Exercise checks of chapter 00_introduction: a sentence's probability from the toy grammar,
and the two steps of byte-pair encoding (the most frequent pair, merging it).

Introduced in chapter 00_introduction.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Callable

import numpy as np

from .. import toyworld
from ._common import _call, _report

__all__ = ["check_toy_probability", "check_most_frequent_pair", "check_merge_pair"]


def check_toy_probability(sentence: str, probability: float) -> bool:
    """Check a probability worked out by hand from the toy world's rule tables.

    Introduced in chapter 00_introduction (exercise 1). The reference is
    ``exp(toyworld.log_prob(sentence))``, computed by parsing with the grammar.
    """
    if not isinstance(sentence, str) or not toyworld.is_grammatical(sentence):
        raise ValueError(f"sentence must be a sentence the toy grammar can write, got {sentence!r}")
    expected = math.exp(toyworld.log_prob(sentence))
    if not isinstance(probability, (int, float, np.floating)) or not 0 < float(probability) <= 1:
        return _report(False, f"a probability is a number between 0 and 1, you gave {probability!r}")
    ratio = float(probability) / expected
    if math.isclose(ratio, 1.0, rel_tol=1e-6):
        return _report(True, f"P({sentence!r}) = {expected:.6g} is right")
    side = "too large" if ratio > 1 else "too small"
    factor = ratio if ratio > 1 else 1 / ratio
    return _report(False, f"P({sentence!r}) is {expected:.6g}; yours is {side} by a factor of "
                          f"{factor:.4g}. Is one rule missing, or counted twice? Look for a rule "
                          "probability near that factor (or its inverse).")


_PAIR_CASES = [
    {("l", "o", "w"): 5, ("l", "o", "w", "e", "r"): 2, ("n", "e", "w", "e", "s", "t"): 6,
     ("w", "i", "d", "e", "s", "t"): 3},
    {("a", "b"): 1, ("c", "d"): 1},                       # a tie: the pair that sorts first wins
    {("q", "y", "z"): 1, ("y", "z"): 1, ("x", "y"): 5},   # counts matter, not word types
]


def _pair_counts(word_counts: dict) -> Counter:
    pairs: Counter = Counter()
    for word, c in word_counts.items():
        for a, b in zip(word, word[1:]):
            pairs[a, b] += c
    return pairs


def check_most_frequent_pair(fn: Callable[[dict], tuple]) -> bool:
    """Check ``fn(word_counts) -> (a, b)``: the adjacent symbol pair BPE merges next.

    Introduced in chapter 00_introduction (exercise 2). `word_counts` maps a word, as a tuple
    of symbols, to its frequency; each pair occurrence counts with its word's frequency, and a
    tie goes to the pair that sorts first.
    """
    for case in _PAIR_CASES:
        pairs = _pair_counts(case)
        best = max(pairs.values())
        expected = min(p for p, c in pairs.items() if c == best)
        got, error = _call(fn, dict(case))
        if error:
            return _report(False, error)
        if got is None or tuple(got) != expected:
            got_count = pairs.get(tuple(got), 0) if isinstance(got, (tuple, list)) else None
            hint = ("remember to weigh each pair by how often its word occurs"
                    if got_count is not None and got_count < best else
                    "on a tie, return the pair that sorts first" if got_count == best else
                    "return a tuple of two adjacent symbols")
            return _report(False, f"for {case} the most frequent pair is {expected} ({best} times); "
                                  f"you gave {got!r}: {hint}")
    return _report(True, f"the most frequent pair is right in all {len(_PAIR_CASES)} cases, ties included")


def _merge(word: tuple, pair: tuple) -> tuple:
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def check_merge_pair(fn: Callable[[dict, tuple], dict]) -> bool:
    """Check ``fn(word_counts, pair) -> new word_counts`` with every occurrence of `pair` merged.

    Introduced in chapter 00_introduction (exercise 3). Occurrences are merged left to right
    and never overlap: ("a", "a", "a") with pair ("a", "a") becomes ("aa", "a").
    """
    cases = [(_PAIR_CASES[0], ("e", "s")), (_PAIR_CASES[0], ("l", "o")),
             ({("a", "a", "a"): 2, ("b", "a", "a"): 1}, ("a", "a"))]
    for words, pair in cases:
        expected: dict = {}
        for w, c in words.items():
            expected[_merge(w, pair)] = expected.get(_merge(w, pair), 0) + c
        got, error = _call(fn, dict(words), pair)
        if error:
            return _report(False, error)
        if not isinstance(got, dict):
            return _report(False, f"return a dict from word tuples to counts, got {type(got).__name__}")
        for w, c in words.items():
            want = _merge(w, pair)
            if got.get(want) != expected[want]:
                found = [k for k in got if "".join(k) == "".join(w)]
                return _report(False, f"merging {pair} in {w} should give {want}, you have "
                                      f"{found[0] if found else 'no entry for that word'}")
        if len(got) != len(expected):
            return _report(False, f"after merging {pair} there should be {len(expected)} words, you have {len(got)}")
    return _report(True, f"merging is right in all {len(cases)} cases, overlapping pairs included")
