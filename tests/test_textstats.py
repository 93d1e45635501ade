from __future__ import annotations

import pytest

from lmbook_utils.textstats import distinct_n, repeats_a_sentence, repetition_share, sentences


def test_distinct_n_counts_by_hand():
    texts = [["a", "b", "a", "b"], ["a", "b", "c"]]
    # bigrams: ab ba ab | ab bc -> 3 distinct of 5
    assert distinct_n(texts, 2) == pytest.approx(3 / 5)
    assert distinct_n(texts, 1) == pytest.approx(3 / 7)
    assert distinct_n([["x", "y"], ["z"]], 2) == 1.0  # the 1-token text adds no bigram


def test_distinct_n_bad_input():
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        distinct_n([["a"]], 0)
    with pytest.raises(ValueError, match="no 3-gram"):
        distinct_n([["a", "b"]], 3)
    with pytest.raises(ValueError, match="list of token lists"):
        distinct_n(["a cat"], 2)


def test_sentences_and_repetition():
    toks = "he sang . she slept . he sang .".split()
    assert sentences(toks) == [("he", "sang", "."), ("she", "slept", "."), ("he", "sang", ".")]
    assert sentences("he sang . she".split()) == [("he", "sang", ".")]  # unfinished tail dropped
    assert repeats_a_sentence(toks)
    assert not repeats_a_sentence("he sang . she sang .".split())
    assert repetition_share([toks, toks[:6], ["a"]]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="at least one text"):
        repetition_share([])
