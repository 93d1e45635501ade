"""ranking: recall, hit rate, nDCG and MRR worked by hand, nDCG against sklearn's ndcg_score,
filtered ranks and their tie policies, Bordes et al.'s relation categories."""

from __future__ import annotations

from math import log2

import numpy as np
import pytest
from sklearn.metrics import ndcg_score

from lmbook_utils.ranking import (filtered_rank, hit_rate_at_k, link_prediction_metrics, mrr, ndcg_at_k,
                                  recall_at_k, relation_categories)

_RANKED = ["a", "b", "c", "d", "e"]


def test_recall_and_hit_rate_worked_by_hand():
    relevant = {"b", "e", "x"}  # x is relevant but never retrieved
    assert recall_at_k(_RANKED, relevant, 1) == 0.0
    assert recall_at_k(_RANKED, relevant, 3) == pytest.approx(1 / 3)  # only b in a, b, c
    assert recall_at_k(_RANKED, relevant, 5) == pytest.approx(2 / 3)  # b and e of three
    assert recall_at_k(_RANKED, relevant, 10) == pytest.approx(2 / 3)  # k past the list: the whole list
    assert recall_at_k(np.array([3, 1, 2]), [1, 2], 2) == 0.5  # numpy ids, a list of relevant ids
    assert hit_rate_at_k(_RANKED, relevant, 1) == 0.0
    assert hit_rate_at_k(_RANKED, relevant, 2) == 1.0
    assert hit_rate_at_k(_RANKED, {"x"}, 5) == 0.0


def test_ndcg_binary_worked_by_hand():
    # relevant b (rank 2) and d (rank 4): DCG@4 = 1/log2(3) + 1/log2(5); the ideal puts both
    # first: IDCG@4 = 1/log2(2) + 1/log2(3) = 1 + 1/log2(3)
    assert ndcg_at_k(["a", "b", "c", "d"], {"b", "d"}, 4) == pytest.approx(
        (1 / log2(3) + 1 / log2(5)) / (1 + 1 / log2(3)))  # about 0.651
    # top 2: only b counts, and the ideal top 2 still holds two relevant ids
    assert ndcg_at_k(["a", "b", "c", "d"], {"b", "d"}, 2) == pytest.approx((1 / log2(3)) / (1 + 1 / log2(3)))
    assert ndcg_at_k(["a", "b", "c", "d"], {"b", "d"}, 1) == 0.0
    assert ndcg_at_k(["b", "d", "a"], {"b", "d"}, 3) == pytest.approx(1.0)


def test_ndcg_graded_takes_the_ideal_from_every_relevant_id():
    gains = {"a": 3, "c": 2, "z": 1}  # z is relevant but not retrieved
    # ranking c, b, a: DCG@3 = 2/log2(2) + 0 + 3/log2(4) = 2 + 1.5 = 3.5
    # ideal 3, 2, 1 (z included): IDCG@3 = 3 + 2/log2(3) + 1/log2(4) = 3.5 + 2/log2(3)
    assert ndcg_at_k(["c", "b", "a"], gains, 3) == pytest.approx(3.5 / (3.5 + 2 / log2(3)))
    # a gain of 0 in the mapping is the same as leaving the id out
    assert ndcg_at_k(["c", "b", "a"], gains | {"b": 0}, 3) == ndcg_at_k(["c", "b", "a"], gains, 3)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 3, 10, 30])
def test_ndcg_matches_sklearn_on_random_graded_relevance(seed, k):
    # sklearn takes, per query, every item's true relevance and its score, ranks by score and takes
    # the ideal from the relevances (linear gains, the same log2(rank + 1) discount). We give it the
    # scores whose descending order is our ranking: distinct scores, so sklearn's tie averaging
    # never applies. Items of relevance 0 are left out of our mapping.
    rng = np.random.default_rng(seed)
    n = 30
    relevance = rng.integers(0, 4, size=n)
    relevance[rng.integers(n)] = 3  # at least one positive gain
    scores = rng.permutation(n).astype(float)
    ranked = list(np.argsort(-scores))
    gains = {i: int(g) for i, g in enumerate(relevance) if g > 0}
    assert ndcg_at_k(ranked, gains, k) == pytest.approx(ndcg_score([relevance], [scores], k=k), rel=1e-12)


def test_mrr_worked_by_hand():
    rankings = [["a", "b", "c"], ["x", "y", "z"], ["p", "q"]]
    relevants = [{"c"}, {"x", "z"}, {"r"}]
    # first hits at ranks 3, 1 (x; z is not counted) and none: (1/3 + 1 + 0) / 3 = 4/9
    assert mrr(rankings, relevants) == pytest.approx(4 / 9)
    # with k = 2 the first query's c (rank 3) is cut: (0 + 1 + 0) / 3
    assert mrr(rankings, relevants, k=2) == pytest.approx(1 / 3)


def test_filtering_moves_the_rank_from_4_to_2():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    # raw: 0.9, 0.8 and 0.7 beat the true candidate 3 (0.6), so rank 4. Candidates 0 and 2 are
    # other known true answers: without them only 0.8 is better, rank 2
    assert filtered_rank(scores, 3) == 4.0
    assert filtered_rank(scores, 3, known_true_indices=[0, 2]) == 2.0
    assert filtered_rank(scores, 3, known_true_indices={0, 2, 3}) == 2.0  # the true one in the list is kept
    assert filtered_rank(scores, 0, known_true_indices=[1, 2]) == 1.0  # nothing beats the best
    assert filtered_rank(-scores, 3, known_true_indices=[0, 2]) == 2.0  # negated: 0.5 -> -0.5 is better


def test_tie_policies_differ_as_documented():
    scores = np.array([0.5, 0.9, 0.5, 0.5, 0.1])
    # true candidate 0: one better (0.9), two tied (2, 3). optimistic 1 + 1 = 2, pessimistic
    # 1 + 1 + 2 = 4, mean 1 + 1 + 2/2 = 3 (the average over the 3! orders of the tied three)
    assert filtered_rank(scores, 0, ties="optimistic") == 2.0
    assert filtered_rank(scores, 0, ties="pessimistic") == 4.0
    assert filtered_rank(scores, 0, ties="mean") == 3.0
    assert filtered_rank(scores, 0) == 3.0  # the default is the mean
    # filtering candidate 2 leaves one tie: 2, 3 and 2.5
    assert [filtered_rank(scores, 0, [2], ties=t) for t in ("optimistic", "pessimistic", "mean")] == [2.0, 3.0, 2.5]
    # a model that scores everything equally: the mean is the middle rank (n + 1) / 2, optimistic 1
    assert filtered_rank(np.zeros(9), 4) == 5.0 and filtered_rank(np.zeros(9), 4, ties="optimistic") == 1.0


def test_link_prediction_metrics_worked_by_hand():
    ranks = [1, 2, 4, 10, 11, 2.5]
    out = link_prediction_metrics(ranks)
    assert out["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 4 + 1 / 10 + 1 / 11 + 1 / 2.5) / 6)
    assert out["hits@1"] == pytest.approx(1 / 6)  # only the 1
    assert out["hits@3"] == pytest.approx(3 / 6)  # 1, 2, 2.5
    assert out["hits@10"] == pytest.approx(5 / 6)  # all but 11
    assert out["mean_rank"] == pytest.approx(30.5 / 6)
    assert out["n"] == 6
    assert set(link_prediction_metrics([1.5], ks=(1, 2))) == {"mrr", "mean_rank", "hits@1", "hits@2", "n"}
    assert link_prediction_metrics([1.5], ks=(1, 2))["hits@1"] == 0.0  # 1.5 is not a hit at 1


def test_relation_categories_one_of_each_kind():
    triples = [
        # capital_of: each city one country, each country one city -> 1-to-1
        ("paris", "capital_of", "france"), ("berlin", "capital_of", "germany"), ("rome", "capital_of", "italy"),
        ("paris", "capital_of", "france"),  # a repeat, counted once
        # parent_of: ann and dan have 2 children each (tails per head 2), each child 1 parent -> 1-to-N
        ("ann", "parent_of", "bob"), ("ann", "parent_of", "cid"),
        ("dan", "parent_of", "eve"), ("dan", "parent_of", "fay"),
        # born_in: 2 people per city (heads per tail 2), 1 city per person -> N-to-1
        ("bob", "born_in", "paris"), ("cid", "born_in", "paris"),
        ("eve", "born_in", "rome"), ("fay", "born_in", "rome"),
        # likes: a and d both like b and c: 2 tails per head and 2 heads per tail -> N-to-N
        ("a", "likes", "b"), ("a", "likes", "c"), ("d", "likes", "b"), ("d", "likes", "c"),
    ]
    assert relation_categories(triples) == {"capital_of": "1-to-1", "parent_of": "1-to-N",
                                            "born_in": "N-to-1", "likes": "N-to-N"}


def test_relation_categories_threshold_is_below_1_5():
    # h1 -> t1, t2 and h2 -> t3: tails per head (2 + 1) / 2 = 1.5, not below 1.5, so "N"
    assert relation_categories([("h1", "r", "t1"), ("h1", "r", "t2"), ("h2", "r", "t3")]) == {"r": "1-to-N"}
    # one more single-tail head: (2 + 1 + 1) / 3 = 1.33 < 1.5, so "1"
    assert relation_categories([("h1", "r", "t1"), ("h1", "r", "t2"), ("h2", "r", "t3"),
                                ("h3", "r", "t4")]) == {"r": "1-to-1"}
    # the head side likewise: t1 <- h1, h2 and t2 <- h3: heads per tail 1.5, so "N"
    assert relation_categories([("h1", "r", "t1"), ("h2", "r", "t1"), ("h3", "r", "t2")]) == {"r": "N-to-1"}
    # the averages are per relation: the same entities under another relation do not count
    assert relation_categories([("h1", "r", "t1"), ("h1", "s", "t2")]) == {"r": "1-to-1", "s": "1-to-1"}


@pytest.mark.parametrize("call, message", [
    (lambda: recall_at_k(_RANKED, {"a"}, 0), "k must be an int >= 1, got 0"),
    (lambda: hit_rate_at_k(_RANKED, {"a"}, True), "k must be an int >= 1, got True"),
    (lambda: ndcg_at_k(_RANKED, {"a"}, 2.0), "k must be an int >= 1, got 2.0"),
    (lambda: mrr([_RANKED], [{"a"}], k=0), "k must be an int >= 1, got 0"),
    (lambda: recall_at_k([], {"a"}, 1), "ranked_ids is empty"),
    (lambda: ndcg_at_k([], {"a"}, 1), "ranked_ids is empty"),
    (lambda: recall_at_k("abc", {"a"}, 1), "ranked_ids must be a sequence of ids"),
    (lambda: recall_at_k(["a", "b", "a"], {"a"}, 1), "ranked_ids lists id 'a' more than once"),
    (lambda: recall_at_k(_RANKED, set(), 1), "relevant is empty"),
    (lambda: ndcg_at_k(_RANKED, {"a": 0}, 3), "relevant_or_gains has no positive gain"),
    (lambda: ndcg_at_k(_RANKED, {"a": -1}, 3), "relevant_or_gains must map ids to finite gains >= 0"),
    (lambda: mrr([], [], None), "rankings must be a non-empty list"),
    (lambda: mrr([_RANKED, []], [{"a"}, {"a"}]), r"rankings\[1\] is empty"),
    (lambda: mrr([_RANKED], [{"a"}, {"b"}]), r"relevants must hold one relevant set per ranking \(1\), got 2"),
    (lambda: filtered_rank(np.zeros(5), 5), r"true_index must be an int in \[0, 5\), got 5"),
    (lambda: filtered_rank(np.zeros(5), -1), r"true_index must be an int in \[0, 5\), got -1"),
    (lambda: filtered_rank(np.zeros(5), 1.0), r"true_index must be an int in \[0, 5\)"),
    (lambda: filtered_rank(np.zeros(5), 0, [7]), r"known_true_indices must be indices in \[0, 5\)"),
    (lambda: filtered_rank(np.zeros(5), 0, [1.5]), "known_true_indices must be integer indices"),
    (lambda: filtered_rank(np.zeros(5), 0, ties="random"), "ties must be one of"),
    (lambda: filtered_rank(np.array([]), 0), "scores must be a non-empty 1-D array"),
    (lambda: filtered_rank(np.array([0.1, np.nan]), 0), "scores has nan"),
    (lambda: link_prediction_metrics([]), "ranks is empty"),
    (lambda: link_prediction_metrics([0.5, 2]), "ranks must be finite numbers >= 1"),
    (lambda: link_prediction_metrics([1, 2], ks=(0,)), "k must be an int >= 1, got 0"),
    (lambda: relation_categories([]), "triples is empty"),
    (lambda: relation_categories([("h", "r")]), r"triples\[0\] must be a \(head, relation, tail\) triple"),
    (lambda: relation_categories([("h", "r", "t")], threshold=1), "threshold must be a number > 1"),
])
def test_bad_input_names_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()
