"""The exercise checks accept right answers and explain wrong ones specifically."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from lmbook_utils import exercises as ex


def bigram_right(sentences, word, prev):
    pairs = Counter((a, b) for s in sentences for a, b in zip(s, s[1:]))
    total = sum(c for (a, _), c in pairs.items() if a == prev)
    return pairs[(prev, word)] / total


def test_bigram_accepts_right_answer(capsys):
    assert ex.check_bigram_mle(bigram_right)
    assert "✅" in capsys.readouterr().out


def test_bigram_explains_a_wrong_denominator(capsys):
    # A classic mistake: dividing by all occurrences of the previous word, including sentence ends.
    def wrong(sentences, word, prev):
        pairs = Counter((a, b) for s in sentences for a, b in zip(s, s[1:]))
        unigrams = Counter(w for s in sentences for w in s)
        return pairs[(prev, word)] / unigrams[prev]

    assert not ex.check_bigram_mle(wrong)
    # "dog" ends one sentence ("the dog"), so it is followed by a word only once:
    # P(sat | dog) = 1/1, while dividing by its 2 occurrences gives 0.5.
    assert "P('sat' | 'dog') should be 1.0000, you gave 0.5000" in capsys.readouterr().out


def test_bigram_reports_exceptions_without_raising(capsys):
    assert not ex.check_bigram_mle(lambda s, w, p: 1 / 0)
    assert "ZeroDivisionError" in capsys.readouterr().out


def test_add_k_right_and_wrong(capsys):
    assert ex.check_add_k(lambda c, k: (c + k) / (c.sum() + k * len(c)))
    assert not ex.check_add_k(lambda c, k: (c + k) / (c.sum() + k))  # forgot the V
    out = capsys.readouterr().out
    # counts [3 0 1], k=1: numerators 4+1+2 = 7 over 4+1 = 5 instead of 4+3 = 7.
    assert "counts [3 0 1] with k=1.0 sum to 1.4, not 1" in out


def test_add_k_shape_message(capsys):
    assert not ex.check_add_k(lambda c, k: np.ones(2) / 2)
    assert "needs shape (3,)" in capsys.readouterr().out


def test_perplexity_right_and_infinite(capsys):
    def right(lp):
        return 2 ** (-sum(lp) / len(lp))

    assert ex.check_perplexity(right)

    def finite_only(lp):
        finite = [x for x in lp if math.isfinite(x)]
        return 2 ** (-sum(finite) / len(finite))

    assert not ex.check_perplexity(finite_only)
    assert "infinite" in capsys.readouterr().out


def test_non_callable_is_a_clear_error():
    with pytest.raises(TypeError, match="fn must be a function"):
        ex.check_perplexity(3)
