"""Ranking metrics for retrieval, recommendation and knowledge-graph link prediction.

For the coming chapter 09 (applications): a retriever or a recommender returns a ranked list of
ids, judged against the ids that are relevant (`recall_at_k`, `hit_rate_at_k`, `ndcg_at_k`,
`mrr`); a knowledge-graph model such as TransE (Bordes et al. 2013, "Translating Embeddings for
Modeling Multi-relational Data", NeurIPS) scores every entity as the missing head or tail of a
triple, judged by the rank of the true one (`filtered_rank`, `link_prediction_metrics`), and its
errors are read by relation category (`relation_categories`).

The per-query functions take one query's ranking, best first; a system's score is their mean over
queries. A query without any relevant item is an error rather than a silent 0 or 1: leave it out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence

import numpy as np

__all__ = ["recall_at_k", "hit_rate_at_k", "ndcg_at_k", "mrr", "TIE_POLICIES", "filtered_rank",
           "link_prediction_metrics", "relation_categories"]

TIE_POLICIES = ("optimistic", "pessimistic", "mean")


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    return int(k)


def _check_ranking(ranked_ids: object, name: str = "ranked_ids") -> list:
    if isinstance(ranked_ids, (str, bytes)) or not isinstance(ranked_ids, (Sequence, np.ndarray)):
        raise ValueError(f"{name} must be a sequence of ids, best first, got {type(ranked_ids).__name__}")
    ids = list(ranked_ids.tolist() if isinstance(ranked_ids, np.ndarray) else ranked_ids)
    if not ids:
        raise ValueError(f"{name} is empty: there is no ranking to score")
    seen: set = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"{name} lists id {i!r} more than once; a ranking names each id once")
        seen.add(i)
    return ids


def _check_relevant(relevant: object, name: str = "relevant") -> set:
    if isinstance(relevant, (str, bytes)) or not isinstance(relevant, (Iterable, np.ndarray)):
        raise ValueError(f"{name} must be a collection of ids, got {type(relevant).__name__}")
    ids = set(relevant.tolist() if isinstance(relevant, np.ndarray) else relevant)
    if not ids:
        raise ValueError(f"{name} is empty: the metric is undefined for a query without relevant items")
    return ids


def recall_at_k(ranked_ids: Sequence[Hashable], relevant: Iterable[Hashable], k: int) -> float:
    """Share of the relevant ids found in the top k: |top-k & relevant| / |relevant|. What a
    retriever feeding a reader needs, since the reader can only use what was retrieved. A list
    shorter than k is scored as it is."""
    k, ids, rel = _check_k(k), _check_ranking(ranked_ids), _check_relevant(relevant)
    return len(rel.intersection(ids[:k])) / len(rel)


def hit_rate_at_k(ranked_ids: Sequence[Hashable], relevant: Iterable[Hashable], k: int) -> float:
    """1.0 if at least one relevant id is in the top k, else 0.0; its mean over users is a
    recommender's HR@k (with one held-out item per user it equals recall@k)."""
    k, ids, rel = _check_k(k), _check_ranking(ranked_ids), _check_relevant(relevant)
    return float(not rel.isdisjoint(ids[:k]))


def ndcg_at_k(ranked_ids: Sequence[Hashable], relevant_or_gains: Iterable[Hashable] | Mapping[Hashable, float],
              k: int) -> float:
    """Normalized discounted cumulative gain of the top k (Jarvelin and Kekalainen 2002).

    DCG@k = sum over ranks i = 1..k of gain(ranked_ids[i]) / log2(i + 1), and nDCG@k = DCG@k over
    the DCG@k of the ideal ranking, made from all the relevant ids (also those the ranking missed)
    sorted by gain. relevant_or_gains is a collection of ids (binary: gain 1 each) or a mapping
    id -> gain >= 0 (graded; linear gains, as sklearn's ndcg_score; pass 2**rel - 1 for the
    exponential form). Ids not in it have gain 0. At least one gain must be positive."""
    k, ids = _check_k(k), _check_ranking(ranked_ids)
    if isinstance(relevant_or_gains, Mapping):
        gains = {i: g for i, g in relevant_or_gains.items()}
        values = np.array(list(gains.values()), dtype=np.float64)
        if not (np.isfinite(values).all() and (values >= 0).all()):
            raise ValueError("relevant_or_gains must map ids to finite gains >= 0")
    else:
        gains = dict.fromkeys(_check_relevant(relevant_or_gains, "relevant_or_gains"), 1.0)
    ideal_gains = np.sort(np.array([g for g in gains.values() if g > 0], dtype=np.float64))[::-1][:k]
    if ideal_gains.size == 0:
        raise ValueError("relevant_or_gains has no positive gain: nDCG is undefined for this query")
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    got = np.array([gains.get(i, 0.0) for i in ids[:k]], dtype=np.float64)
    return float((got * discount[:got.size]).sum() / (ideal_gains * discount[:ideal_gains.size]).sum())


def mrr(rankings: Sequence[Sequence[Hashable]], relevants: Sequence[Iterable[Hashable]],
        k: int | None = None) -> float:
    """Mean reciprocal rank over queries: the mean of 1 / (rank of the first relevant id), 0 for a
    query whose relevant ids are not in its top k (or not in the list at all when k is None). Only
    the first hit counts, which suits queries with one right answer."""
    if k is not None:
        k = _check_k(k)
    if isinstance(rankings, (str, bytes)) or not isinstance(rankings, Sequence) or not rankings:
        raise ValueError("rankings must be a non-empty list of rankings, one per query")
    if isinstance(relevants, (str, bytes)) or not isinstance(relevants, Sequence) or len(relevants) != len(rankings):
        n = len(relevants) if isinstance(relevants, Sequence) else type(relevants).__name__
        raise ValueError(f"relevants must hold one relevant set per ranking ({len(rankings)}), got {n}")
    total = 0.0
    for q, (ranking, relevant) in enumerate(zip(rankings, relevants)):
        ids = _check_ranking(ranking, f"rankings[{q}]")[:k]
        rel = _check_relevant(relevant, f"relevants[{q}]")
        total += next((1.0 / (r + 1) for r, i in enumerate(ids) if i in rel), 0.0)
    return total / len(rankings)


def filtered_rank(scores, true_index: int, known_true_indices: Iterable[int] = (), ties: str = "mean") -> float:
    """The rank of the true candidate among all candidates, in Bordes et al.'s "filtered" setting.

    scores: (n_candidates,), higher is better (for TransE pass minus the distance). The rank is 1 +
    the number of candidates scoring strictly better than scores[true_index], after removing the
    other known true answers (known_true_indices: the entities that also complete the triple in
    train, valid or test; true_index itself may be among them). Without filtering, a model is
    punished for ranking another right answer first. With known_true_indices empty it is the raw
    rank.

    Candidates scoring exactly as the true one are counted by `ties`: "optimistic" puts the true
    one before all of them (1 + better), "pessimistic" after them (1 + better + equal), "mean" (the
    default) half-way, 1 + better + equal / 2, which is PyKEEN's "realistic" rank: the expected rank
    under a random order of the tied candidates. Optimistic ranks reward a model that gives every
    entity the same score; the mean does not."""
    if ties not in TIE_POLICIES:
        raise ValueError(f"ties must be one of {TIE_POLICIES}, got {ties!r}")
    s = np.asarray(scores.detach().cpu() if hasattr(scores, "detach") else scores)
    if s.ndim != 1 or s.size == 0 or not np.issubdtype(s.dtype, np.number):
        raise ValueError(f"scores must be a non-empty 1-D array of numbers, got shape {s.shape}")
    if np.isnan(s).any():
        raise ValueError("scores has nan: a nan candidate cannot be ranked")
    n = s.size
    if isinstance(true_index, bool) or not isinstance(true_index, (int, np.integer)) or not 0 <= true_index < n:
        raise ValueError(f"true_index must be an int in [0, {n}), got {true_index!r}")
    known = np.asarray(list(known_true_indices)).reshape(-1)
    if known.size and not np.issubdtype(known.dtype, np.integer):
        raise ValueError(f"known_true_indices must be integer indices, got dtype {known.dtype}")
    known = known.astype(np.int64)
    if known.size and (known.min() < 0 or known.max() >= n):
        raise ValueError(f"known_true_indices must be indices in [0, {n}), "
                         f"got values from {known.min()} to {known.max()}")
    keep = np.ones(n, dtype=bool)
    keep[known] = False
    keep[true_index] = False  # the true one is not its own competitor
    rivals, target = s[keep], s[true_index]
    better, equal = int((rivals > target).sum()), int((rivals == target).sum())
    return 1.0 + better + {"optimistic": 0.0, "pessimistic": float(equal), "mean": equal / 2}[ties]


def link_prediction_metrics(ranks, ks: Sequence[int] = (1, 3, 10)) -> dict[str, float]:
    """{"mrr", "mean_rank", "hits@k" for each k, "n"} from the ranks of the true answers (one per
    test triple and side, filtered or raw). MRR is the mean of 1 / rank; Hits@k the share of ranks
    <= k (a mean rank of 1.5 is not a hit at 1); the mean rank is Bordes et al.'s headline number,
    MRR and Hits@10 the ones later papers report, being less swayed by a few very bad ranks."""
    r = np.asarray(ranks, dtype=np.float64).reshape(-1) if not hasattr(ranks, "detach") \
        else ranks.detach().cpu().double().numpy().reshape(-1)
    if r.size == 0:
        raise ValueError("ranks is empty: there is no test triple to score")
    if not (np.isfinite(r).all() and (r >= 1).all()):
        raise ValueError("ranks must be finite numbers >= 1 (rank 1 is the best)")
    out = {"mrr": float(np.mean(1.0 / r)), "mean_rank": float(np.mean(r))}
    for k in ks:
        out[f"hits@{_check_k(k)}"] = float(np.mean(r <= k))
    out["n"] = int(r.size)
    return out


def relation_categories(triples: Iterable[tuple[Hashable, Hashable, Hashable]],
                        threshold: float = 1.5) -> dict[Hashable, str]:
    """Each relation's kind, "1-to-1", "1-to-N", "N-to-1" or "N-to-N", by Bordes et al. 2013's rule.

    For a relation r, heads-per-tail is the mean, over the distinct (r, tail) pairs, of the number
    of distinct heads, and tails-per-head the mean, over the distinct (head, r) pairs, of the number
    of distinct tails. A side is "1" when its average is below the threshold (1.5 in the paper) and
    "N" otherwise: the head side from heads-per-tail, the tail side from tails-per-head. So
    "capital_of" (one city per country) is 1-to-1, "has_child" 1-to-N. TransE fits 1-to-1 best,
    since one translation h + r = t cannot send one head to several tails. triples are (head,
    relation, tail); repeats are counted once."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not threshold > 1:
        raise ValueError(f"threshold must be a number > 1, got {threshold!r}")
    tails: dict = defaultdict(lambda: defaultdict(set))  # relation -> head -> tails
    heads: dict = defaultdict(lambda: defaultdict(set))  # relation -> tail -> heads
    for n, triple in enumerate(triples):
        if isinstance(triple, (str, bytes)) or not isinstance(triple, Sequence) or len(triple) != 3:
            raise ValueError(f"triples[{n}] must be a (head, relation, tail) triple, got {triple!r}")
        h, r, t = triple
        tails[r][h].add(t)
        heads[r][t].add(h)
    if not tails:
        raise ValueError("triples is empty: there is no relation to classify")
    out = {}
    for r in tails:
        tails_per_head = np.mean([len(v) for v in tails[r].values()])
        heads_per_tail = np.mean([len(v) for v in heads[r].values()])
        head_side = "1" if heads_per_tail < threshold else "N"
        tail_side = "1" if tails_per_head < threshold else "N"
        out[r] = f"{head_side}-to-{tail_side}"
    return out
