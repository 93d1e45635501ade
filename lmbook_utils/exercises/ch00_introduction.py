"""Exercise checks of chapter 00_introduction: a sentence's probability from the toy grammar,
and byte-pair encoding beyond the two steps the chapter writes out (applying learned merges
to a new word; learning the merges).

Introduced in chapter 00_introduction.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Callable

import numpy as np

from .. import toyworld
from ._common import _call, _report

__all__ = ["check_toy_probability", "check_apply_merges", "check_learn_bpe"]


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
    # The hint names the direction and a rounded factor, never the answer: a rounded factor
    # points to the rule that is off, but multiplying by it does not pass the check.
    side = "too large" if ratio > 1 else "too small"
    factor = ratio if ratio > 1 else 1 / ratio
    return _report(False, f"yours is {side}, by a factor of about {factor:.2g}. Is one rule missing, "
                          "or counted twice? Look for a rule probability near that factor (or its "
                          "inverse).")


_WORD_COUNTS = {("l", "o", "w"): 5, ("l", "o", "w", "e", "r"): 2, ("n", "e", "w", "e", "s", "t"): 6,
                ("w", "i", "d", "e", "s", "t"): 3}


def _pair_counts(word_counts: dict) -> Counter:
    pairs: Counter = Counter()
    for word, c in word_counts.items():
        for a, b in zip(word, word[1:]):
            pairs[a, b] += c
    return pairs


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


def _learn(word_counts: dict, n_merges: int) -> list[tuple[str, str]]:
    merges, words = [], dict(word_counts)
    for _ in range(n_merges):
        pairs = _pair_counts(words)
        if not pairs:
            break
        best = max(pairs.values())
        pair = min(p for p, c in pairs.items() if c == best)
        merges.append(pair)
        merged: dict = {}
        for w, c in words.items():
            merged[_merge(w, pair)] = merged.get(_merge(w, pair), 0) + c
        words = merged
    return merges


def _apply(word: str, merges: list) -> list[str]:
    symbols = tuple(word)
    for pair in merges:
        symbols = _merge(symbols, tuple(pair))
    return list(symbols)


def check_apply_merges(fn: Callable[[str, list], list]) -> bool:
    """Check ``fn(word, merges) -> tokens``: a new word split by merges learned before.

    Introduced in chapter 00_introduction (exercise 2). The word starts as its characters;
    each merge, in the order learned, joins every occurrence of its pair, left to right and
    without overlaps. So the order matters: ("b", "c") then ("a", "b") leaves "a" "bc".
    """
    learned = _learn(_WORD_COUNTS, 6)
    cases = [("lowest", learned), ("newer", learned), ("aaa", [("a", "a")]),
             ("abc", [("b", "c"), ("a", "b")]), ("xyz", learned)]
    for word, merges in cases:
        expected = _apply(word, merges)
        got, error = _call(fn, word, list(merges))
        if error:
            return _report(False, error)
        if not isinstance(got, (list, tuple)) or list(got) != expected:
            hint = ("apply the merges in the order they were learned, each over the whole word"
                    if isinstance(got, (list, tuple)) and "".join(map(str, got)) == word else
                    "return the list of tokens, which joined give the word back")
            return _report(False, f"{word!r} with merges {merges} should give {expected}, you gave {got!r}: {hint}")
    return _report(True, f"every word is split right in all {len(cases)} cases, merge order included")


def check_learn_bpe(fn: Callable[[dict, int], list]) -> bool:
    """Check ``fn(word_counts, n_merges) -> merges``: BPE training, the merges in order.

    Introduced in chapter 00_introduction (exercise 3). Each step merges the most frequent
    adjacent pair (each occurrence counts with its word's frequency; a tie goes to the pair
    that sorts first) everywhere, then counts again; it stops early when no pair is left.
    """
    cases = [(_WORD_COUNTS, 4), ({("q", "y", "z"): 1, ("y", "z"): 1, ("x", "y"): 5}, 3),
             ({("a", "b"): 1, ("c", "d"): 1}, 5)]
    for words, n in cases:
        expected = _learn(words, n)
        got, error = _call(fn, dict(words), n)
        if error:
            return _report(False, error)
        got_list = [tuple(p) for p in got] if isinstance(got, (list, tuple)) else None
        if got_list != expected:
            first = next((k for k, (a, b) in enumerate(zip(got_list or [], expected)) if a != b), None)
            where = (f"merge {first + 1} should be {expected[first]}, you have {got_list[first]}" if first is not None
                     else f"there should be {len(expected)} merges, you have "
                          f"{len(got_list) if got_list is not None else got!r}")
            return _report(False, f"for {words} with n_merges={n}: {where}. Count the pairs again after each "
                                  "merge, weighted by word frequency")
    return _report(True, f"the merges are right in all {len(cases)} cases, ties and early stops included")
