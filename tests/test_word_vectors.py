"""Tests for lmbook_utils.word_vectors (chapters 02_neural_lm and 02b_word_vectors).

Expected values are worked out by hand with math.log, computed by another library (scipy's
orthogonal Procrustes, numpy's eigh for PCA), planted (a known rotation), or read from the
toy world's parallel English and grammar tables, never from the output under test.
"""

from __future__ import annotations

import functools
import math
from collections import Counter

import numpy as np
import pytest
import scipy.linalg

from lmbook_utils import toyworld as tw
from lmbook_utils import word_vectors as wv
from lmbook_utils.toyworld import grammar as g


@functools.lru_cache(maxsize=1)
def corpus_tokens() -> list[list[str]]:
    return tw.generate_corpus(n_chars=200_000).tokens("train")


# ---- counts, PPMI, SVD ----------------------------------------------------------------------
def test_cooccurrence_counts_by_hand():
    sents = [["a", "b", "c"], ["c", "a"]]
    c1 = wv.cooccurrence_counts(sents, ["a", "b", "c"], 1)
    # window 1: a-b, b-c (sentence 1) and c-a (sentence 2), each seen from both sides
    assert c1.tolist() == [[0, 1, 1], [1, 0, 1], [1, 1, 0]]
    c2 = wv.cooccurrence_counts(sents, ["a", "b", "c"], 2)
    assert c2[0, 2] == c2[2, 0] == 2  # a..c at distance 2 in sentence 1, plus c a
    h2 = wv.cooccurrence_counts(sents, ["a", "b", "c"], 2, weighting="harmonic")
    assert h2[0, 2] == 1 + 0.5 and h2[0, 1] == 1
    # an unknown word keeps its place; no pair crosses a sentence boundary
    assert wv.cooccurrence_counts([["a", "x", "b"]], ["a", "b"], 1).sum() == 0
    assert wv.cooccurrence_counts([["a", "x", "b"]], ["a", "b"], 2)[0, 1] == 1
    assert wv.cooccurrence_counts([["a"], ["b"]], ["a", "b"], 5).sum() == 0


def test_ppmi_by_hand():
    m = np.array([[0, 2, 1], [2, 0, 3], [1, 3, 0]], float)  # total 12; row/column sums 3, 5, 4
    plain = wv.ppmi(m, alpha=1.0)
    assert plain[0, 1] == pytest.approx(math.log(2 * 12 / (3 * 5)))
    assert plain[0, 2] == 0.0  # PMI = log(1 * 12 / (3 * 4)) = 0
    assert plain[0, 0] == 0.0  # a zero count gives 0, not -inf
    p_c1 = 5 ** 0.75 / (3 ** 0.75 + 5 ** 0.75 + 4 ** 0.75)
    smoothed = math.log((2 / 12) / ((3 / 12) * p_c1))
    assert wv.ppmi(m)[0, 1] == pytest.approx(smoothed)  # alpha=0.75 is the default
    assert wv.ppmi(m, alpha=1.0, shift=1.5)[0, 1] == pytest.approx(math.log(1.6) - math.log(1.5))
    assert wv.ppmi(m, alpha=1.0, shift=2)[0, 1] == 0.0  # log 1.6 < log 2: clipped


def test_svd_vectors_factorize_a_psd_matrix_and_fix_signs():
    a = np.random.default_rng(0).standard_normal((6, 3))
    m = a @ a.T  # symmetric PSD of rank 3: M = U S U^T, so (U S^1/2)(U S^1/2)^T = M
    w = wv.svd_vectors(m, 3, power=0.5)
    np.testing.assert_allclose(w @ w.T, m, atol=1e-10)
    u = wv.svd_vectors(m, 3, power=0.0)
    assert (u[np.abs(u).argmax(axis=0), range(3)] > 0).all()
    np.testing.assert_allclose(wv.svd_vectors(m, 3, power=1.0), u * np.linalg.eigvalsh(m)[::-1][:3], atol=1e-10)


def test_ppmi_svd_groups_toy_world_categories():
    """Independent of any neural method: counts alone put same-category words together."""
    sents = corpus_tokens()
    vocab = sorted({t for s in sents for t in s})
    x = wv.svd_vectors(wv.ppmi(wv.cooccurrence_counts(sents, vocab, 2)), 30)
    precision, chance = wv.category_precision_at_k(x, vocab, wv.word_categories(), 5)
    assert chance < 0.15 and precision > 0.6  # measured 0.79


# ---- the lexicon -----------------------------------------------------------------------------
def test_word_categories_genders_polarities_dictionary():
    cats = wv.word_categories()
    assert {w for w, c in cats.items() if c == "person"} == {e.lower() for e, _, _ in g.PEOPLE}
    assert cats["dog"] == "animal" and cats["apple"] == "food" and cats["kite"] == "toy"
    assert cats["newspaper"] == "reading" and cats["park"] == "place" and cats["liked"] == "attitude"
    assert cats["big"] == "adjective" and cats["slept"] == "action" and cats["scared"] == "feeling"
    assert "train station" not in cats and "ran away" not in cats
    assert wv.word_categories("zh")["火车站"] == "place"  # one word in Chinese
    vocab = {t for s in corpus_tokens() for t in s}
    assert set(cats) <= vocab  # every categorized word is a corpus token
    genders = wv.name_genders()
    assert Counter(genders.values()) == {"f": 5, "m": 5} and genders["alice"] == "f" and genders["tom"] == "m"
    assert wv.name_genders("zh")["鲍勃"] == "m"
    pol = wv.polarities()
    assert (pol["happy"], pol["sad"], pol["tired"], pol["loved"], pol["hated"]) == (1, -1, 0, 1, -1)
    d = wv.en_zh_dictionary()
    assert d["alice"] == "爱丽丝" and d["cute"] == "可爱的" and d["slept"] == "睡着了"
    assert "train station" not in d and "ran away" not in d and len(set(d.values())) == len(d)


def test_segment_zh_by_hand():
    assert wv.segment_zh("鲍勃很爱爱丽丝。") == ["鲍勃", "很爱", "爱丽丝", "。"]
    assert wv.segment_zh("大卫吃了一个大苹果。") == ["大卫", "吃了", "一", "个", "大", "苹果", "。"]
    assert wv.segment_zh("艾玛不喜欢那本书。") == ["艾玛", "不喜欢", "那", "本", "书", "。"]
    assert wv.segment_zh("汤姆在图书馆里看见了 一只兔子。") == [
        "汤姆", "在", "图书馆", "里", "看见了", "一", "只", "兔子", "。"]
    assert wv.segment_zh("") == []


def test_segment_zh_matches_the_parallel_english():
    """Each story's Chinese words, read through the dictionary, are its English words."""
    d = wv.en_zh_dictionary()
    zh_words = set(d.values())
    for story in tw.generate_stories(400, seed=5):
        words = wv.segment_zh(story.zh)
        assert "".join(words) == "".join(tw.tokenize_zh(story.zh))
        en = Counter(d[t] for t in tw.tokenize_en(story.en) if t in d)
        assert Counter(w for w in words if w in zh_words) == en, (story.en, story.zh, words)


# ---- analogies -------------------------------------------------------------------------------
def test_grammar_analogies_are_well_posed():
    q = wv.grammar_analogies()
    n_places = Counter(p for e, _, p, _ in g.PLACES if " " not in e)
    same_prep = sum(n * n for n in n_places.values())
    expected = {"pronoun": 8, "name_pronoun": 5 * 5 * 2 * 2, "name_gender": 2 * 5 * 5 * 4,
                "noun_verb": 4 * 1 * 3 + 4 * 1 * 3 + 3 * 1 * 4 + 3 * 1 * 3 + 3 * 2 * 4 + 3 * 2 * 3,
                "place_preposition": sum(n_places.values()) ** 2 - same_prep}
    assert Counter(x.relation for x in q) == expected
    vocab = {t for s in corpus_tokens() for t in s}
    for x in q:
        assert x.answers and not x.answers & {x.a, x.b, x.c} and {x.a, x.b, x.c} | x.answers <= vocab


def test_noun_verb_and_place_relations_hold_in_the_corpus():
    """What the questions assume, read off the text: 'ate' is followed by food, 'in the' by park..."""
    cats, objects = wv.word_categories(), {"food", "toy", "reading", "animal", "person"}
    follows: dict[str, set[str]] = {}
    for s in corpus_tokens():
        for i, t in enumerate(s):
            if t in ("ate", "read", "found", "lost"):
                nxt = next(w for w in s[i + 1:] if cats.get(w) in objects or w in ("it", "him", "her", "."))
                follows.setdefault(t, set()).add(cats.get(nxt, nxt))
            if t in ("in", "at", "by", "on") and s[i + 1] == "the":
                follows.setdefault(t, set()).add(s[i + 2])
    assert follows["ate"] == {"food", "it"} and follows["read"] == {"reading", "it"}
    assert follows["found"] == follows["lost"] == {"toy", "it"}
    for x in wv.grammar_analogies():
        if x.relation == "place_preposition":
            assert x.a in follows[x.b] and all(x.c in follows[p] for p in x.answers)


def _feature_vectors(drop: tuple[str, ...] = ()) -> wv.WordVectors:
    """Vectors built from the grammar's features (random near-orthogonal directions)."""
    rng = np.random.default_rng(0)
    f = functools.cache(lambda name: rng.standard_normal(400) * (name not in drop))
    vec = {}
    for w, (gender, case) in {"he": "ms", "she": "fs", "him": "mo", "her": "fo"}.items():
        vec[w] = f("pronoun") + f(gender) + f(case)
    for w, gender in wv.name_genders().items():
        vec[w] = f("name") + f(gender) + 0.3 * rng.standard_normal(400)
    for kind, verbs in {"food": ["ate"], "reading": ["read"], "toy": ["found", "lost"]}.items():
        for noun, _, _ in g.THINGS[kind]:
            vec[noun] = f("noun") + f(kind) + 0.3 * rng.standard_normal(400)
        for v in verbs:
            vec[v] = f("verb") + f(kind) + 0.3 * rng.standard_normal(400)
    for place, _, prep, _ in g.PLACES:
        vec[place] = f("place") + f(prep) + 0.3 * rng.standard_normal(400)
        vec[prep] = f("preposition") + f(prep)
    return wv.WordVectors(list(vec), np.array(list(vec.values())))


def test_analogy_accuracy_on_vectors_that_encode_the_features():
    questions = wv.grammar_analogies()
    exact = wv.analogy_accuracy(_feature_vectors(), questions)
    assert exact.accuracy == 1.0 and exact.skipped == 0 and exact.answered == len(questions)
    # the controls can fail: without gender, a name's nearest other name is of either gender
    # (4 of the 7 candidate names are right: about 0.57), a noun's verb is any verb (measured 0.70, 0.46, 0.53)
    no_gender = wv.analogy_accuracy(_feature_vectors(drop=("f", "m")), questions).by_relation
    no_selection = wv.analogy_accuracy(_feature_vectors(drop=("in", "at", "by", "on", "food", "toy", "reading")),
                                       questions).by_relation
    assert no_gender["name_gender"] < 0.8 and no_gender["pronoun"] == 1.0  # he = she, but excluding a, b, c leaves the twin
    assert no_selection["noun_verb"] < 0.7 and no_selection["place_preposition"] < 0.7
    rng = np.random.default_rng(1)
    words = _feature_vectors().words
    random = wv.analogy_accuracy(wv.WordVectors(words, rng.standard_normal((len(words), 50))), questions)
    assert random.accuracy < 0.3


def test_analogy_accuracy_counts_and_skips():
    v = wv.WordVectors(["he", "she", "him", "her"], [[1, 0, 0], [0, 1, 0], [1, 0, 1], [0, 1, 1]])
    r2 = math.sqrt(2)
    target = (-1 + 1 / r2, 1, 1 / r2)  # unit(she) - unit(he) + unit(him)
    cos_her = (target[1] / r2 + target[2] / r2) / math.sqrt(sum(t * t for t in target))
    assert v.analogy("he", "she", "him") == [("her", pytest.approx(cos_her))]
    q = [wv.AnalogyQuestion("he", "she", "him", frozenset({"her"}), "pronoun"),
         wv.AnalogyQuestion("she", "he", "her", frozenset({"zebra"}), "pronoun"),  # answered, wrong
         wv.AnalogyQuestion("he", "she", "it", frozenset({"her"}), "pronoun")]     # "it" unknown: skipped
    r = wv.analogy_accuracy(v, q)
    assert (r.accuracy, r.correct, r.answered, r.skipped, r.by_relation) == (0.5, 1, 2, 1, {"pronoun": 0.5})


def test_category_precision_and_chance_by_hand():
    words = ["a1", "a2", "b1", "b2", "x"]
    vecs = [[1, 0], [0.9, 0.2], [0, 1], [0.2, 0.9], [0.7, 0.7]]
    cats = {"a1": "A", "a2": "A", "b1": "B", "b2": "B"}  # "x" has no category: left out
    assert wv.category_precision_at_k(vecs, words, cats, 1) == (1.0, pytest.approx(1 / 3))
    assert wv.category_precision_at_k(vecs, words, cats, 2)[0] == 0.5


def test_nearest_neighbours_by_hand():
    vecs = np.array([[1, 0], [0.8, 0.6], [0, 2], [-1, 0]])
    index = {"a": 0, "b": 1, "c": 2, "d": 3}
    assert wv.nearest_neighbours(vecs, index, "a", 2) == [("b", pytest.approx(0.8)), ("c", pytest.approx(0))]
    assert [w for w, _ in wv.nearest_neighbours(vecs, index, "a", 10)] == ["b", "c", "d"]
    assert wv.nearest_neighbours(vecs, index, "zebra", 2, allow_unknown=True) == []
    with pytest.raises(KeyError, match="'zebra' is not in the vocabulary"):
        wv.nearest_neighbours(vecs, index, "zebra", 2)


# ---- Procrustes, bilingual lexicon induction, PCA ----------------------------------------------
def test_procrustes_matches_scipy_and_recovers_a_planted_rotation():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 6)), rng.standard_normal((40, 6))
    w = wv.procrustes(x, y)
    np.testing.assert_allclose(w, scipy.linalg.orthogonal_procrustes(x, y)[0], atol=1e-10)
    np.testing.assert_allclose(w @ w.T, np.eye(6), atol=1e-10)
    r, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    np.testing.assert_allclose(wv.procrustes(x, x @ r), r, atol=1e-10)


def _planted_bli(noise: float, shuffle_seed: bool = False) -> wv.BLIResult:
    rng = np.random.default_rng(0)
    tgt = rng.standard_normal((60, 20))
    r, _ = np.linalg.qr(rng.standard_normal((20, 20)))
    src = tgt @ r.T + noise * rng.standard_normal((60, 20))  # src @ r = tgt, plus noise
    pairs = [(f"s{i}", f"t{i}") for i in range(60)]
    seed = pairs[:30]
    if shuffle_seed:
        seed = [(s, t) for (s, _), (_, t) in zip(seed, seed[1:] + seed[:1])]
    return wv.bilingual_lexicon_induction(wv.WordVectors([s for s, _ in pairs], src),
                                          wv.WordVectors([t for _, t in pairs], tgt), seed, dict(pairs[30:]))


def test_bilingual_lexicon_induction_on_planted_data():
    exact = _planted_bli(0.01)
    assert (exact.p_at_1, exact.p_at_5, exact.n_test) == (1.0, 1.0, 30)
    assert exact.predictions["s45"][0] == "t45"
    assert _planted_bli(0.01, shuffle_seed=True).p_at_1 < 0.3  # a wrong seed dictionary fails
    noisy = _planted_bli(1.0)
    assert noisy.p_at_1 < exact.p_at_1 and noisy.p_at_1 <= noisy.p_at_5


def test_pca_2d_against_eigh():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 5)) * [3, 2, 1, 0.5, 0.1] + 4
    centred = x - x.mean(axis=0)
    _, vecs = np.linalg.eigh(centred.T @ centred)
    axes = vecs[:, ::-1][:, :2]
    axes = axes * np.sign(axes[np.abs(axes).argmax(axis=0), [0, 1]])  # largest loading positive
    np.testing.assert_allclose(wv.pca_2d(x), centred @ axes, atol=1e-10)
    np.testing.assert_allclose(wv.pca_2d(x[::-1]), wv.pca_2d(x)[::-1], atol=1e-10)


# ---- bad input --------------------------------------------------------------------------------
M3 = np.ones((3, 3))


@pytest.mark.parametrize("call, match", [
    (lambda: wv.cooccurrence_counts([["a"]], ["a"], 0), "window must be an int >= 1, got 0"),
    (lambda: wv.cooccurrence_counts([], ["a"], 2), "empty corpus"),
    (lambda: wv.cooccurrence_counts([["a"]], ["a", "a"], 2), "distinct words"),
    (lambda: wv.cooccurrence_counts([["a"]], ["a"], 2, weighting="log"), "weighting must be"),
    (lambda: wv.ppmi(-M3), "non-negative"),
    (lambda: wv.ppmi(M3, alpha=0), r"alpha must be a number in \(0, 1\]"),
    (lambda: wv.ppmi(M3, shift=0.5), "shift must be a number >= 1"),
    (lambda: wv.ppmi(np.ones(3)), "counts must be a non-empty 2-D array"),
    (lambda: wv.svd_vectors(M3, 0), "dim must be an int >= 1, got 0"),
    (lambda: wv.svd_vectors(M3, 4), r"dim must be <= min\(ppmi_matrix.shape\) = 3, got 4"),
    (lambda: wv.svd_vectors(M3 * np.nan, 2), "finite"),
    (lambda: wv.nearest_neighbours(M3, {"a": 0, "b": 1, "c": 2}, "a", 0), "k must be an int >= 1, got 0"),
    (lambda: wv.nearest_neighbours(M3, {"a": 0, "b": 1}, "a", 1), "index must map one word to each"),
    (lambda: wv.category_precision_at_k(M3, ["a", "b"], {"a": "x"}, 1), "one row per word"),
    (lambda: wv.category_precision_at_k(M3, ["a", "b", "c"], {"a": "x", "b": "y"}, 0), "k must be an int >= 1"),
    (lambda: wv.category_precision_at_k(M3, ["a", "b", "c"], {"a": "x", "b": "y"}, 2), "k must be <= 1"),
    (lambda: wv.procrustes(np.ones((3, 2)), np.ones((3, 3))), "same shape"),
    (lambda: wv.pca_2d(np.ones((1, 3))), "at least 2 rows"),
    (lambda: wv.WordVectors(["a", "b"], np.ones((3, 2))), "one row per word"),
    (lambda: wv.WordVectors(["a", "a"], np.ones((2, 2))), "distinct"),
    (lambda: wv.WordVectors(["a", "b"], M3[:2]).most_similar("a", 0), "topn must be an int >= 1"),
    (lambda: wv.WordVectors(["a", "b"], M3[:2]).analogy("a", "b", "zebra"), "'zebra' is not in the vocabulary"),
    (lambda: wv.word_categories("fr"), "lang must be 'en' or 'zh'"),
    (lambda: wv.analogy_accuracy(wv.WordVectors(["a"], [[1.0]]), []), "at least one AnalogyQuestion"),
])
def test_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_types_and_bli_input():
    with pytest.raises(TypeError, match="text must be a str"):
        wv.segment_zh(["爱丽丝"])
    with pytest.raises(TypeError, match="vectors_lookup must be a WordVectors"):
        wv.analogy_accuracy({"he": [1.0]}, wv.grammar_analogies())
    v = wv.WordVectors(["a", "b", "c"], np.eye(3))
    with pytest.raises(ValueError, match=r"test_dictionary must hold words not in seed_dictionary; both have \['a'\]"):
        wv.bilingual_lexicon_induction(v, v, {"a": "a", "b": "b"}, {"a": "b"})
    with pytest.raises(KeyError, match="'zebra' is not in the vocabulary"):
        wv.bilingual_lexicon_induction(v, v, {"a": "a", "b": "b"}, {"c": "zebra"})
    with pytest.raises(ValueError, match="same dimension"):
        wv.bilingual_lexicon_induction(v, wv.WordVectors(["a", "b"], np.eye(2)), {"a": "a"}, {"b": "b"})
    with pytest.raises(ValueError, match="seed_dictionary must be a non-empty"):
        wv.bilingual_lexicon_induction(v, v, {}, {"b": "b"})
    assert v.vector("zebra", allow_unknown=True) is None and v.most_similar("zebra", allow_unknown=True) == []
    assert v.analogy("a", "b", "zebra", allow_unknown=True) == []
