"""retrieval: BM25's scores against rank_bm25 0.2.2's BM25Okapi (a hand corpus, random corpora with
negative IDFs, the toy-world FAQ), one BM25 term and both IDFs by hand, dense retrieval against a
brute-force cosine ranking, evaluate_retriever by hand, and the errors for bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from lmbook_utils.retrieval import BM25, DenseRetriever, evaluate_retriever
from lmbook_utils.toyworld import faq_pairs, tokenize_en

# Lengths 3, 4, 4, 5: 16 tokens, avgdl = 4. Document frequencies (N = 4): "the" and "sat" are in
# 3 documents (more than half: negative Okapi IDF), the other 9 words in 1 each.
_HAND = [["the", "dog", "sat"],
         ["the", "bird", "sat", "down"],
         ["a", "cat", "cat", "ran"],
         ["the", "fox", "sat", "up", "high"]]


def _assert_equal_to_rank_bm25(corpus, queries, k1=1.5, b=0.75, epsilon=0.25):
    ours = BM25(k1=k1, b=b, epsilon=epsilon).fit(corpus)
    theirs = BM25Okapi(corpus, k1=k1, b=b, epsilon=epsilon)
    for word, idf in theirs.idf.items():
        assert ours.term_idf(word) == pytest.approx(idf, abs=1e-12), word
    assert ours.average_idf_ == pytest.approx(theirs.average_idf, abs=1e-12)
    for query in queries:
        np.testing.assert_allclose(ours.scores(query), theirs.get_scores(query), rtol=0, atol=1e-9)


def test_hand_corpus_equals_rank_bm25():
    queries = [["cat"], ["the"], ["the", "cat"], ["sat", "down"], ["cat", "cat"],  # repeated token
               ["unicorn"], [], ["the", "sat", "fox", "high", "unicorn"]]
    _assert_equal_to_rank_bm25(_HAND, queries)
    _assert_equal_to_rank_bm25(_HAND, queries, k1=0.9, b=0.4, epsilon=0.5)


def test_one_bm25_term_by_hand():
    # "cat" is in one document of four: Okapi idf = log((4 - 1 + 0.5) / (1 + 0.5)) = log(7/3).
    # In document 2 it occurs twice (tf = 2) and |d| = 4 = avgdl, so the length factor
    # 1 - b + b * |d| / avgdl is 1 and the denominator is tf + k1 = 2 + 1.5 = 3.5:
    #   term = log(7/3) * 2 * (1.5 + 1) / 3.5 = log(7/3) * 10/7 = 0.8473 * 1.4286 = 1.2104
    s = BM25().fit(_HAND).scores(["cat"])
    assert s[2] == pytest.approx(math.log(7 / 3) * 10 / 7, rel=1e-12)
    assert s[2] == pytest.approx(1.2104, abs=1e-4)
    assert s[0] == s[1] == s[3] == 0.0


def test_epsilon_floor_by_hand():
    # raw Okapi IDFs: 9 words with log(7/3), "the" and "sat" with log(1.5/3.5) = -log(7/3).
    # Mean over the 11 words, before the floor: (9 - 2) / 11 * log(7/3). The negative ones become
    # epsilon * mean = 0.25 * 7/11 * log(7/3), about 0.1348.
    floor = 0.25 * 7 / 11 * math.log(7 / 3)
    bm25 = BM25().fit(_HAND)
    assert bm25.average_idf_ == pytest.approx(7 / 11 * math.log(7 / 3), rel=1e-12)
    assert bm25.term_idf("the") == pytest.approx(floor, rel=1e-12)
    assert bm25.term_idf("sat") == pytest.approx(floor, rel=1e-12)
    assert bm25.term_idf("dog") == pytest.approx(math.log(7 / 3), rel=1e-12)
    assert bm25.term_idf("unicorn") == 0.0
    # "the" in document 0: tf = 1, |d| = 3: 1 - 0.75 + 0.75 * 3/4 = 0.8125, times k1: 1.21875
    assert bm25.scores(["the"])[0] == pytest.approx(floor * 2.5 / (1 + 1.21875), rel=1e-12)
    assert BM25(epsilon=0.0).fit(_HAND).scores(["the"]).tolist() == [0.0] * 4


def test_lucene_idf_by_hand():
    # log(1 + (N - n + 0.5) / (n + 0.5)): "cat" (n = 1) log(1 + 3.5/1.5) = log(10/3); "the"
    # (n = 3) log(1 + 1.5/3.5) = log(10/7) > 0, no floor, and not epsilon's business
    bm25 = BM25(idf="lucene", epsilon=0.9).fit(_HAND)
    assert bm25.term_idf("cat") == pytest.approx(math.log(10 / 3), rel=1e-12)
    assert bm25.term_idf("the") == pytest.approx(math.log(10 / 7), rel=1e-12)
    assert bm25.scores(["cat"])[2] == pytest.approx(math.log(10 / 3) * 10 / 7, rel=1e-12)
    assert bm25.scores(["the"])[0] == pytest.approx(math.log(10 / 7) * 2.5 / (1 + 1.21875), rel=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_random_corpora_with_negative_idf_equal_rank_bm25(seed):
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(6)]  # six words: several must be in most documents
    n_docs = int(rng.integers(4, 30))
    # Zipf-like word draws; lengths 0..9, so some documents may be empty
    p = 1.0 / np.arange(1, 7)
    p /= p.sum()
    corpus = [list(rng.choice(vocab, size=int(rng.integers(0, 10)), p=p)) for _ in range(n_docs)]
    corpus[0].append("w0")  # at least one token
    df = {w: sum(w in d for d in corpus) for w in vocab}
    assert any(n > n_docs / 2 for n in df.values()), "the corpus must exercise the epsilon floor"
    queries = [list(rng.choice(vocab + ["oov"], size=int(rng.integers(1, 6)))) for _ in range(10)]
    k1, b, eps = float(rng.uniform(0.5, 2.0)), float(rng.uniform(0, 1)), float(rng.uniform(0, 1))
    _assert_equal_to_rank_bm25(corpus, queries)
    _assert_equal_to_rank_bm25(corpus, queries, k1=k1, b=b, epsilon=eps)


def test_toyworld_faq_equals_rank_bm25():
    pairs = faq_pairs(150)
    questions = [tokenize_en(p.question) for p in pairs]
    entries = [tokenize_en(p.question + " " + p.answer) for p in pairs]  # the FAQ as question + answer
    contexts = [tokenize_en(p.context) for p in pairs]
    queries = questions[:40] + [tokenize_en(p.answer) for p in pairs[:20]]
    for corpus in (questions, entries, contexts):
        _assert_equal_to_rank_bm25(corpus, queries)
    # the templated questions' frame words ("what", "did", "?") are in most of them: floored
    bm25 = BM25().fit(questions)
    assert bm25.term_idf("?") == pytest.approx(0.25 * bm25.average_idf_, rel=1e-12)


def test_faq_question_retrieves_its_own_entry_among_the_top():
    # a question's own words occur in its own entry, so that entry is in the set of those scoring
    # the maximum; ties there are between the entries of `same_question`
    pairs = faq_pairs(150)
    bm25 = BM25().fit([tokenize_en(p.question + " " + p.answer) for p in pairs])
    for p in pairs[:30]:
        top = int(bm25.top_k(tokenize_en(p.question), 1)[0])
        assert top in p.same_question


def test_top_k_breaks_ties_by_lower_index():
    corpus = [["x", "y"], ["a", "b"], ["a", "b"], ["y", "x"], ["a", "b", "c", "d"]]
    bm25 = BM25().fit(corpus)
    # documents 0 and 3 have the same bag of words, as have 1 and 2: exactly equal scores
    assert bm25.top_k(["x"], 2).tolist() == [0, 3]
    assert bm25.top_k(["a"], 3).tolist() == [1, 2, 4]  # 4 is longer: lower score
    assert bm25.top_k(["zzz"], 5).tolist() == [0, 1, 2, 3, 4]  # all zero: index order
    assert bm25.top_k(["a"], 50).tolist() == [1, 2, 4, 0, 3]  # k past the corpus: all of it


def test_empty_document_is_allowed_and_scores_zero():
    corpus = [["a", "b"], [], ["b", "b", "c"]]
    bm25 = BM25().fit(corpus)
    assert bm25.n_documents == 3 and bm25.avgdl_ == pytest.approx(5 / 3)
    np.testing.assert_allclose(bm25.scores(["b", "c"]), BM25Okapi(corpus).get_scores(["b", "c"]), atol=1e-9)
    assert bm25.scores(["a", "b", "c"])[1] == 0.0


def _cosine_brute_force(emb, q):
    out = []
    for row in emb:
        dot = sum(float(a) * float(c) for a, c in zip(row, q))
        out.append(dot / (math.sqrt(sum(float(a) ** 2 for a in row)) * math.sqrt(sum(float(c) ** 2 for c in q))))
    return out


def test_dense_own_vector_is_top_1_even_among_long_vectors():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(40, 16))
    emb[7] *= 100.0  # a long vector: a raw dot product would put it first for many queries
    retriever = DenseRetriever(emb)
    for i in range(40):
        assert retriever.top_k(emb[i], 1).tolist() == [i]
        assert retriever.scores(emb[i])[i] == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_dense_equals_brute_force_cosine_ranking(seed):
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(25, 6)) * rng.uniform(0.1, 10, size=(25, 1))
    retriever = DenseRetriever(emb)
    for _ in range(5):
        q = rng.normal(size=6) * 3.0
        cos = _cosine_brute_force(emb, q)
        np.testing.assert_allclose(retriever.scores(q), cos, atol=1e-12)
        expected = sorted(range(25), key=lambda i: (-cos[i], i))
        assert retriever.top_k(q, 25).tolist() == expected
        assert retriever.top_k(q, 5).tolist() == expected[:5]


def test_dense_ties_by_lower_index():
    emb = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])  # 1 and 2 same direction, 0 and 3 too
    assert DenseRetriever(emb).top_k(np.array([1.0, 0.0]), 4).tolist() == [1, 2, 0, 3]


def test_evaluate_retriever_by_hand():
    rankings = [[2, 0, 1], [1, 2, 0], [1, 0, 2]]
    relevant = [{0}, {0, 2}, {1}]
    # query 0: its one relevant id (0) at rank 2: recall@1 0, @2 1, @3 1; reciprocal rank 1/2
    # query 1: 2 at rank 2, 0 at rank 3: recall@1 0, @2 1/2, @3 1; hit@1 0, @2 1; rr 1/2
    # query 2: 1 at rank 1: everything 1, rr 1
    out = evaluate_retriever(rankings, relevant, ks=(1, 2, 3))
    assert out["recall@1"] == pytest.approx(1 / 3)
    assert out["recall@2"] == pytest.approx((1 + 0.5 + 1) / 3)  # 5/6: query 1 half found
    assert out["recall@3"] == pytest.approx(1.0)
    assert out["hit_rate@1"] == pytest.approx(1 / 3)
    assert out["hit_rate@2"] == pytest.approx(1.0)  # query 1 has a hit at 2
    assert out["hit_rate@3"] == pytest.approx(1.0)
    assert out["mrr"] == pytest.approx((0.5 + 0.5 + 1) / 3)
    assert out["n"] == 3
    assert set(out) == {"recall@1", "recall@2", "recall@3", "hit_rate@1", "hit_rate@2", "hit_rate@3", "mrr", "n"}


def test_evaluate_retriever_takes_numpy_rankings_from_top_k():
    bm25 = BM25().fit(_HAND)
    rankings = [bm25.top_k(["cat"], 2), bm25.top_k(["fox", "high"], 2)]  # documents 2, then 3
    out = evaluate_retriever(rankings, [{2}, {0}], ks=(1,))
    assert out["recall@1"] == pytest.approx(0.5)  # query 0 right, query 1 wants 0, not 3
    # query 1: 0, 1 and 2 all score 0 for "fox high", so 0 comes second (lower index): rr 1/2
    assert rankings[1].tolist() == [3, 0]
    assert out["mrr"] == pytest.approx((1 + 0.5) / 2)


@pytest.mark.parametrize("kwargs, match", [
    ({"k1": -0.1}, "k1 must be"), ({"b": 1.5}, "b must be"), ({"epsilon": float("nan")}, "epsilon must be"),
    ({"k1": True}, "k1 must be"), ({"idf": "bm25+"}, "idf must be one of"),
])
def test_bm25_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BM25(**kwargs)


@pytest.mark.parametrize("corpus, match", [
    ([], "corpus is empty"),
    ([[], []], "no token"),
    ("the cat sat", "corpus must be a list of documents"),
    ([["a"], "b c"], r"corpus\[1\] must be a list of str tokens"),
    ([["a", 3]], r"corpus\[0\] must be a list of str tokens, but holds 3"),
])
def test_bm25_bad_corpus(corpus, match):
    with pytest.raises(ValueError, match=match):
        BM25().fit(corpus)


def test_bm25_bad_queries_and_k():
    bm25 = BM25().fit(_HAND)
    with pytest.raises(ValueError, match="query_tokens must be a list of str tokens"):
        bm25.scores("the cat")  # untokenized: not read as characters
    with pytest.raises(ValueError, match="query_tokens must be a list of str tokens, but holds None"):
        bm25.scores(["the", None])
    for k in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="k must be an int >= 1"):
            bm25.top_k(["the"], k)
    with pytest.raises(RuntimeError, match="call fit"):
        BM25().scores(["the"])


def test_dense_bad_inputs():
    with pytest.raises(ValueError, match="embeddings must be a 2-D"):
        DenseRetriever(np.ones(4))
    with pytest.raises(ValueError, match="embeddings must be a 2-D"):
        DenseRetriever(np.ones((0, 3)))
    with pytest.raises(ValueError, match="row 1 holds nan or inf"):
        DenseRetriever(np.array([[1.0, 0.0], [np.inf, 1.0]]))
    with pytest.raises(ValueError, match="row 2 has norm 0"):
        DenseRetriever(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
    retriever = DenseRetriever(np.eye(3))
    with pytest.raises(ValueError, match=r"query_vector must have shape \(3,\)"):
        retriever.top_k(np.ones(2), 1)
    with pytest.raises(ValueError, match="query_vector has norm 0"):
        retriever.top_k(np.zeros(3), 1)
    with pytest.raises(ValueError, match="query_vector must be finite"):
        retriever.scores(np.array([1.0, np.nan, 0.0]))
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        retriever.top_k(np.ones(3), 0)


def test_evaluate_retriever_bad_inputs():
    with pytest.raises(ValueError, match="rankings must be a non-empty list"):
        evaluate_retriever([], [])
    with pytest.raises(ValueError, match="relevant_sets has 1 entries but rankings has 2"):
        evaluate_retriever([[0], [1]], [{0}])
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        evaluate_retriever([[0]], [{0}], ks=(1, 0))
    with pytest.raises(ValueError, match="ks is empty"):
        evaluate_retriever([[0]], [{0}], ks=())
    with pytest.raises(ValueError, match=r"query 1 \(rankings\[1\], relevant_sets\[1\]\).*empty"):
        evaluate_retriever([[0], [1]], [{0}, set()])
