"""dedup: normalization and shingles by hand, MinHash and LSH candidates equal to datasketch's,
the S-curve by hand (FineWeb's 14 x 8, and 20 x 450 against 450 x 20), planted near-copies."""

from __future__ import annotations

import math
import random
from itertools import combinations

import datasketch  # the reference, pinned in pyproject.toml (dev): missing, these tests fail rather than skip
import numpy as np
import pytest

from lmbook_utils.dedup import (FINEWEB_BANDS, FINEWEB_NUM_PERM, FINEWEB_ROWS, REFINEDWEB_NUM_PERM, LSHIndex,
                                MinHasher, band_probability, estimated_jaccard, exact_duplicates, jaccard,
                                near_duplicates, normalize_text, shingles, threshold_of)



def random_tokens(seed: int, size: int) -> set[str]:
    """Random strings, some non-ASCII, so that the UTF-8 encoding is exercised too."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyzéß漢字 "
    return {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(size)}


def random_text(seed: int, words: int = 200) -> str:
    rng = random.Random(seed)
    return " ".join(f"w{rng.randrange(5000)}" for _ in range(words))


# --- normalization, exact duplicates, shingles ------------------------------------------------

def test_normalize_text_by_hand():
    # NFKC: full-width letters and the ideographic space become ASCII; the "ﬁ" ligature becomes "fi"
    assert normalize_text("ＨＥＬＬＯ\u3000Ｗｏｒｌｄ") == "hello world"
    assert normalize_text("ﬁne") == "fine"
    # punctuation becomes a space (so "end.Start" is two words), whitespace runs collapse
    assert normalize_text("end.Start") == "end start"
    assert normalize_text("  Don't\t\n stop—now!! ") == "don t stop now"
    # accents are kept: NFKC composes "e" + combining acute into "é", it does not strip it
    assert normalize_text("Cafe\u0301") == "café"
    assert normalize_text("...") == ""


def test_exact_duplicates_ignore_case_whitespace_and_width():
    texts = ["Hello  World", "goodbye world", "hello world", "ＨＥＬＬＯ　ＷＯＲＬＤ", "Hello, world!",
             "hello\tworld\n", "goodbye, World.", "hello worlds"]
    # every spelling of "hello world" points at index 0, of "goodbye world" at 1; "worlds" is new
    assert exact_duplicates(texts) == [0, 1, 0, 0, 0, 0, 1, 7]
    assert exact_duplicates([]) == []


def test_shingles_by_hand():
    assert shingles("a b c d", 2) == {"a b", "b c", "c d"}
    assert shingles("a b c d", 4) == {"a b c d"}
    assert shingles("a a a", 2) == {"a a"}  # a set: the repeated bigram counts once
    assert shingles("a b", 5) == {"a b"}  # shorter than n: the text itself
    assert shingles("abcd", 3, unit="char") == {"abc", "bcd"}
    assert shingles("ab", 1, unit="char") == {"a", "b"}


def test_jaccard_by_hand():
    assert jaccard({"a", "b", "c"}, {"b", "c", "d"}) == pytest.approx(2 / 4)
    assert jaccard({1}, {2}) == 0.0
    assert jaccard([1, 1, 2], {1, 2}) == 1.0


# --- MinHash against datasketch ------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
@pytest.mark.parametrize("seed, num_perm, size", [(1, 128, 50), (0, 16, 1), (42, 256, 500), (2**31 + 5, 7, 30)])
def test_signatures_equal_datasketch(scheme, seed, num_perm, size):
    tokens = random_tokens(seed % 1000 + size, size)
    ref = datasketch.MinHash(num_perm=num_perm, seed=seed, scheme=scheme)
    for t in tokens:
        ref.update(t.encode("utf-8"))
    ours = MinHasher(num_perm, seed, scheme).signature(tokens)
    assert ours.dtype == ref.hashvalues.dtype
    np.testing.assert_array_equal(ours, ref.hashvalues)


def test_default_signature_equals_datasketch_default_on_shingles():
    # MinHash(num_perm, seed) with no scheme: datasketch 2.0.0's default, affine32; bytes tokens too
    grams = shingles(normalize_text(random_text(3, 300)), 5)
    ref = datasketch.MinHash(num_perm=FINEWEB_NUM_PERM, seed=1)
    ref.update_batch([g.encode("utf-8") for g in grams])
    np.testing.assert_array_equal(MinHasher(FINEWEB_NUM_PERM).signature(grams), ref.hashvalues)
    np.testing.assert_array_equal(MinHasher(FINEWEB_NUM_PERM).signature([g.encode() for g in grams]), ref.hashvalues)
    # the empty set: datasketch's sentinel, 2**32 - 1 everywhere
    np.testing.assert_array_equal(MinHasher(8).signature([]), datasketch.MinHash(num_perm=8).hashvalues)


def test_legacy_scheme_with_many_permutations_equals_datasketch():
    # RefinedWeb's 9,000 hashes: a long permutation table drawn pair by pair from RandomState(seed)
    tokens = random_tokens(11, 40)
    ref = datasketch.MinHash(num_perm=REFINEDWEB_NUM_PERM, seed=5, scheme="legacy")
    ref.update_batch([t.encode() for t in tokens])
    np.testing.assert_array_equal(MinHasher(REFINEDWEB_NUM_PERM, 5, "legacy").signature(tokens), ref.hashvalues)


@pytest.mark.parametrize("common, only_a, only_b", [(60, 20, 20), (20, 40, 40), (180, 10, 10), (0, 50, 50)])
@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
def test_estimated_jaccard_within_four_standard_errors(common, only_a, only_b, scheme):
    # sets built with a known overlap: J = common / (common + only_a + only_b), e.g. 60 / 100 = 0.6
    a = {f"c{i}" for i in range(common)} | {f"a{i}" for i in range(only_a)}
    b = {f"c{i}" for i in range(common)} | {f"b{i}" for i in range(only_b)}
    true_j = common / (common + only_a + only_b)
    assert jaccard(a, b) == pytest.approx(true_j)
    num_perm = 256
    hasher = MinHasher(num_perm, seed=7, scheme=scheme)
    est = estimated_jaccard(hasher.signature(a), hasher.signature(b))
    # each position agrees with probability J, independently: binomial, standard error sqrt(J(1-J)/k);
    # J = 0 gives no agreement at all (the permutations are bijections on the token hashes)
    assert abs(est - true_j) <= 4 * math.sqrt(true_j * (1 - true_j) / num_perm)


def test_signature_ignores_order_and_repeats_and_is_deterministic():
    tokens = sorted(random_tokens(5, 60))
    first = MinHasher(64, seed=3).signature(tokens)
    np.testing.assert_array_equal(first, MinHasher(64, seed=3).signature(reversed(tokens + tokens)))
    assert not np.array_equal(first, MinHasher(64, seed=4).signature(tokens))
    texts = [random_text(1), random_text(2), random_text(1).replace("w", "W")]
    assert near_duplicates(texts) == near_duplicates(texts) == [[0, 2]]


# --- the S-curve ----------------------------------------------------------------------------

def test_band_probability_by_hand():
    # s = 0.5, 2 bands of 2 rows: a band matches with 0.5**2 = 0.25, P = 1 - 0.75**2 = 0.4375
    assert band_probability(0.5, 2, 2) == pytest.approx(0.4375)
    # s = 0.25: 1 - (1 - 0.0625)**2 = 1 - 0.87890625 = 0.12109375
    np.testing.assert_allclose(band_probability(np.array([0.0, 0.25, 1.0]), 2, 2), [0.0, 0.12109375, 1.0])
    assert threshold_of(4, 2) == pytest.approx(0.5)  # (1/4)**(1/2)
    # FineWeb, 14 bands of 8 rows: threshold (1/14)**(1/8) = exp(-ln 14 / 8) = exp(-0.32989) = 0.7190;
    # at s = 0.8: 0.8**8 = 0.16777, 1 - 0.83223**14 = 1 - exp(14 * -0.18365) = 1 - 0.0765 = 0.9235
    assert threshold_of(FINEWEB_BANDS, FINEWEB_ROWS) == pytest.approx(0.7190, abs=1e-4)
    assert band_probability(0.8, FINEWEB_BANDS, FINEWEB_ROWS) == pytest.approx(0.9235, abs=1e-4)


@pytest.mark.parametrize("bands, rows", [(2, 2), (14, 8), (20, 5), (450, 20), (20, 450)])
def test_s_curve_is_monotone(bands, rows):
    p = band_probability(np.linspace(0.0, 1.0, 201), bands, rows)
    assert p[0] == 0.0 and p[-1] == 1.0
    assert np.all(np.diff(p) >= 0)


def test_same_9000_hashes_two_filters():
    # 20 bands of 450 rows: threshold (1/20)**(1/450) = exp(-2.99573 / 450) = 0.99337; at s = 0.8 a band
    # matches with 0.8**450 = exp(450 * -0.223144) = exp(-100.415) = 2.46e-44, P ~ 20 * that = 4.9e-43
    assert 20 * 450 == 450 * 20 == REFINEDWEB_NUM_PERM
    assert threshold_of(20, 450) == pytest.approx(0.99337, abs=1e-5)
    assert band_probability(0.8, 20, 450) == pytest.approx(4.92e-43, rel=1e-2, abs=0)
    # 450 bands of 20 rows: threshold (1/450)**(1/20) = exp(-6.10925 / 20) = 0.73678; at s = 0.8 a band
    # matches with 0.8**20 = 0.0115292, P = 1 - 0.9884708**450 = 1 - exp(450 * -0.0115962) = 1 - 0.00542
    assert threshold_of(450, 20) == pytest.approx(0.73678, abs=1e-5)
    assert band_probability(0.8, 450, 20) == pytest.approx(0.99458, abs=1e-4)


# --- LSH against datasketch ------------------------------------------------------------------

def corpus_of_sets(seed: int, groups: int = 8, copies: int = 4) -> list[set[str]]:
    """Groups of sets around a base set, each copy keeping a random 40-95% of it: many pairs in
    the S-curve's steep part, so that some are candidates and some are not."""
    rng = random.Random(seed)
    sets = []
    for g in range(groups):
        base = [f"g{g}t{i}" for i in range(80)]
        for c in range(copies):
            keep = rng.uniform(0.4, 0.95)
            sets.append({t for t in base if rng.random() < keep} | {f"g{g}c{c}x{i}" for i in range(rng.randrange(10))})
    return sets


@pytest.mark.parametrize("bands, rows", [(4, 4), (8, 2), (FINEWEB_BANDS, FINEWEB_ROWS), (3, 5), (32, 1)])
def test_lsh_candidates_equal_datasketch(bands, rows):
    sets = corpus_of_sets(bands * 100 + rows)
    num_perm = bands * rows
    ref = datasketch.MinHashLSH(num_perm=num_perm, params=(bands, rows))
    ref_sigs = []
    for i, s in enumerate(sets):
        m = datasketch.MinHash(num_perm=num_perm, seed=1)
        m.update_batch([t.encode() for t in s])
        ref.insert(i, m)
        ref_sigs.append(m)
    hasher, ours = MinHasher(num_perm), LSHIndex(bands, rows)
    for i, s in enumerate(sets):
        ours.insert(i, hasher.signature(s))
    ref_pairs = {(min(i, j), max(i, j)) for i, m in enumerate(ref_sigs) for j in ref.query(m) if j != i}
    assert ours.candidate_pairs() == ref_pairs
    for i, s in enumerate(sets):
        assert ours.query(hasher.signature(s)) == set(ref.query(ref_sigs[i]))
    # the comparison means something only if some pairs are candidates and some are not
    assert 0 < len(ref_pairs) < len(list(combinations(range(len(sets)), 2)))


def test_clusters_by_hand():
    # 2 bands of 3 rows. 0 and 1 share band 0 (estimate 4/6), 0 and 2 share band 1 (estimate 3/6),
    # 1 and 2 share nothing, 3 shares nothing with anyone
    index = LSHIndex(2, 3)
    for key, sig in enumerate([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 0, 0], [9, 9, 9, 4, 5, 6], [7, 7, 7, 7, 7, 7]]):
        index.insert(key, np.array(sig, dtype=np.uint32))
    assert index.candidate_pairs() == {(0, 1), (0, 2)}
    assert index.clusters() == [[0, 1, 2]]  # union-find: 1 and 2 join through 0
    assert index.clusters(threshold=0.6) == [[0, 1]]  # the 3/6 pair is dropped
    assert index.clusters(threshold=0.9) == []


# --- the pipeline ----------------------------------------------------------------------------

def test_near_duplicates_find_a_planted_copy():
    original = random_text(10)
    words = original.split()
    words[100] = "changed"
    copy = " ".join(words)
    unrelated = random_text(20)
    # one word changed in 200 touches the 5 five-grams that cover it: 196 shingles each, 191 shared,
    # J = 191 / (196 + 5) = 0.950; the S-curve gives 1 - (1 - 0.95**8)**14 = 1 - 0.3366**14 > 0.9999
    a, b = shingles(normalize_text(original), 5), shingles(normalize_text(copy), 5)
    assert jaccard(a, b) == pytest.approx(191 / 201)
    texts = [original, unrelated, copy.upper()]
    assert near_duplicates(texts) == [[0, 2]]
    assert near_duplicates(texts, threshold=0.8) == [[0, 2]]
    assert near_duplicates([original, unrelated]) == []
    # character shingles find it too, with another banding
    assert near_duplicates(texts, n=5, unit="char", bands=20, rows=5) == [[0, 2]]


# --- bad input -------------------------------------------------------------------------------

def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="num_perm"):
        MinHasher(num_perm=0)
    with pytest.raises(TypeError, match="num_perm"):
        MinHasher(num_perm=2.5)
    with pytest.raises(ValueError, match="scheme"):
        MinHasher(scheme="affine16")
    with pytest.raises(ValueError, match="num_perm"):
        LSHIndex(2, 3).insert(0, np.zeros(5, dtype=np.uint32))
    with pytest.raises(ValueError, match="num_perm"):
        near_duplicates(["a b c"], num_perm=100, bands=14, rows=8)
    with pytest.raises(ValueError, match="bands"):
        LSHIndex(0, 3)
    with pytest.raises(ValueError, match="n must"):
        shingles("a b", 0)
    with pytest.raises(ValueError, match="text"):
        shingles("", 2)
    with pytest.raises(ValueError, match="text"):
        shingles(" \t ", 2, unit="word")
    with pytest.raises(ValueError, match="unit"):
        shingles("a b", 2, unit="byte")
    with pytest.raises(TypeError, match="text"):
        shingles(["a", "b"], 2)
    with pytest.raises(TypeError, match="text"):
        normalize_text(None)
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        exact_duplicates(["a", 3])
    with pytest.raises(ValueError, match=r"texts\[1\]"):
        near_duplicates(["a b", "?!"])
    with pytest.raises(ValueError, match="s must"):
        band_probability(1.5, 2, 2)
    with pytest.raises(ValueError, match="rows"):
        threshold_of(2, 0)
    with pytest.raises(ValueError, match="both empty"):
        jaccard(set(), [])
    with pytest.raises(ValueError, match="sig_a"):
        estimated_jaccard(np.zeros(4), np.zeros(5))
    index = LSHIndex(2, 2)
    index.insert("k", np.zeros(4, dtype=np.uint32))
    with pytest.raises(ValueError, match="already"):
        index.insert("k", np.ones(4, dtype=np.uint32))
    with pytest.raises(ValueError, match="threshold"):
        index.clusters(threshold=1.5)
