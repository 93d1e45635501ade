"""Retrieval over a collection of documents: Okapi BM25, dense cosine retrieval, and their scores.

For the coming chapter 09 (applications): automatic answering as retrieval over an FAQ, and the
retriever of retrieval-augmented question answering. A query is scored against every document;
the best k are handed on (to the user, or to a reader that writes the answer).

* `BM25` is Okapi BM25 over tokenized documents, equal to `rank_bm25.BM25Okapi` 0.2.2's scores
  (the tests compare the two to 1e-9; the package does not depend on rank_bm25), with the
  Lucene/Elasticsearch IDF as an option (`idf="lucene"`).
* `DenseRetriever` ranks documents by the cosine similarity of their vectors to a query vector;
  the vectors come from an encoder the chapter trains.
* `evaluate_retriever` gives mean recall@k, hit rate@k and MRR over queries, with the functions
  of `lmbook_utils.ranking`.

Tokenization is the caller's: documents and queries are lists of str tokens (for the toy world,
`toyworld.tokenize_en`), and the same tokenizer must be used for both. A str where a list of
tokens is expected is an error, not a list of characters.

Ties: `top_k` returns indices best first, and documents with equal scores in index order (lower
index first), so a ranking is reproducible. rank_bm25's `get_top_n` takes numpy's `argsort`
reversed, which leaves the order of ties unspecified (in practice often higher index first); the
scores are the same, only tied documents may be ordered differently.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence

import numpy as np

from .ranking import hit_rate_at_k, mrr, recall_at_k

__all__ = ["IDF_KINDS", "BM25", "DenseRetriever", "evaluate_retriever"]

IDF_KINDS = ("okapi", "lucene")


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    return int(k)


def _check_tokens(tokens: object, name: str) -> list[str]:
    if isinstance(tokens, str) or not isinstance(tokens, (list, tuple)):
        raise ValueError(f"{name} must be a list of str tokens (tokenization is the caller's, e.g. "
                         f"toyworld.tokenize_en), got {type(tokens).__name__}")
    for t in tokens:
        if not isinstance(t, str):
            raise ValueError(f"{name} must be a list of str tokens, but holds {t!r} ({type(t).__name__})")
    return list(tokens)


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores, best first, ties in index order; all of them if k > len."""
    return np.argsort(-scores, kind="stable")[:k].astype(np.int64)


def _check_number(value: object, name: str, lo: float, hi: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or not lo <= value <= hi:
        where = f"in [{lo}, {hi}]" if math.isfinite(hi) else f">= {lo}"
        raise ValueError(f"{name} must be a finite number {where}, got {value!r}")
    return float(value)


class BM25:
    """Okapi BM25 (Robertson et al., TREC-3, 1994), as rank_bm25 0.2.2's `BM25Okapi` computes it.

    The score of document d for query q is a sum over the query's tokens (a token repeated in the
    query counts each time; a token no document has counts 0):

        score(d, q) = sum over t in q of idf(t) * tf(t, d) * (k1 + 1)
                                         / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))

    tf(t, d) is how often t occurs in d, |d| the length of d in tokens, avgdl the mean length over
    the corpus. k1 (>= 0) sets how fast repeats saturate (k1 = 0: only presence counts), b (in
    [0, 1]) how much long documents are penalized (b = 0: not at all).

    With N documents of which n contain t, the IDF is one of:

    * ``idf="okapi"`` (the default, rank_bm25's): log((N - n + 0.5) / (n + 0.5)), the
      Robertson-Sparck Jones weight without relevance information. It is negative for a word in
      more than half the documents, so a match on a common word would lower a score. rank_bm25
      (and this class) replaces every negative IDF by epsilon * the mean IDF over the vocabulary
      (the mean taken before the replacement, negative ones included). So all common words get one
      weight, whether they are in 60% or in all documents, a word in exactly half keeps its IDF of
      0 (below the floor), and when most words are common the mean, hence the floor, is itself
      negative. In a small FAQ of templated questions ("what did X read ?") the frame words are in
      most documents, so this matters.
    * ``idf="lucene"`` (Lucene's and Elasticsearch's BM25): log(1 + (N - n + 0.5) / (n + 0.5)),
      always > 0 and decreasing in n, so common words weigh little but never count against a
      match; epsilon is not used. (Lucene >= 8 also leaves out the constant factor k1 + 1, which
      scales all scores alike and changes no ranking, and stores document lengths rounded; we
      keep the formula above.)

    An empty document is allowed (rank_bm25 allows it): it counts in N and in avgdl and scores 0
    for every query. The corpus must have at least one token. Use: ``BM25().fit(docs).top_k(q, 5)``.
    """

    def __init__(self, k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25, idf: str = "okapi"):
        self.k1 = _check_number(k1, "k1", 0.0)
        self.b = _check_number(b, "b", 0.0, 1.0)
        self.epsilon = _check_number(epsilon, "epsilon", 0.0)
        if idf not in IDF_KINDS:
            raise ValueError(f"idf must be one of {IDF_KINDS}, got {idf!r}")
        self.idf = idf
        self.vocabulary_: dict[str, int] | None = None  # set by fit

    def fit(self, corpus: Iterable[Sequence[str]]) -> "BM25":
        """Index the corpus, a non-empty list of documents, each a list of str tokens. Returns self.

        Sets `vocabulary_` (word -> column), `doc_freq_` (n per column), `idf_` (per column, after
        the floor), `average_idf_` (the mean before the floor, as rank_bm25's `average_idf`),
        `doc_len_` and `avgdl_`."""
        if isinstance(corpus, (str, bytes)) or not isinstance(corpus, Iterable):
            raise ValueError(f"corpus must be a list of documents (lists of str tokens), got {type(corpus).__name__}")
        docs = [_check_tokens(d, f"corpus[{i}]") for i, d in enumerate(corpus)]
        if not docs:
            raise ValueError("corpus is empty: there is no document to retrieve")
        doc_len = np.array([len(d) for d in docs], dtype=np.float64)
        if doc_len.sum() == 0:
            raise ValueError(f"corpus has {len(docs)} documents but no token: every document is empty")
        vocabulary: dict[str, int] = {}
        postings: list[tuple[list[int], list[int]]] = []  # per column: documents, term frequencies
        for i, d in enumerate(docs):
            for word, tf in Counter(d).items():  # first-occurrence order, as rank_bm25's dicts
                col = vocabulary.setdefault(word, len(vocabulary))
                if col == len(postings):
                    postings.append(([], []))
                postings[col][0].append(i)
                postings[col][1].append(tf)
        n_docs = len(docs)
        doc_freq = np.array([len(p[0]) for p in postings], dtype=np.float64)
        if self.idf == "okapi":
            # rank_bm25 computes log(N - n + 0.5) - log(n + 0.5), word by word; so do we
            raw = np.array([math.log(n_docs - n + 0.5) - math.log(n + 0.5) for n in doc_freq])
            average = float(sum(raw.tolist()) / raw.size)  # summed in order, as rank_bm25
            idf = np.where(raw < 0, self.epsilon * average, raw)
        else:
            raw = np.log1p((n_docs - doc_freq + 0.5) / (doc_freq + 0.5))
            average = float(raw.mean())
            idf = raw
        self.vocabulary_ = vocabulary
        self.doc_freq_ = doc_freq.astype(np.int64)
        self.idf_ = idf
        self.average_idf_ = average
        self.doc_len_ = doc_len.astype(np.int64)
        self.avgdl_ = float(doc_len.sum() / n_docs)
        self._postings = [(np.array(ds, dtype=np.int64), np.array(tfs, dtype=np.float64)) for ds, tfs in postings]
        self._length_norm = self.k1 * (1 - self.b + self.b * doc_len / self.avgdl_)
        return self

    def _fitted(self) -> dict[str, int]:
        if self.vocabulary_ is None:
            raise RuntimeError("BM25 is not fitted: call fit(corpus) first")
        return self.vocabulary_

    @property
    def n_documents(self) -> int:
        self._fitted()
        return int(self.doc_len_.size)

    def term_idf(self, word: str) -> float:
        """The IDF used for `word` (after the floor); 0.0 for a word no document has."""
        col = self._fitted().get(word)
        return 0.0 if col is None else float(self.idf_[col])

    def scores(self, query_tokens: Sequence[str]) -> np.ndarray:
        """(n_documents,) float64 BM25 scores of every document for the query (a list of str
        tokens; an empty query scores 0 everywhere). Equal to rank_bm25's `get_scores`."""
        vocabulary = self._fitted()
        query = _check_tokens(query_tokens, "query_tokens")
        score = np.zeros(self.doc_len_.size)
        k1 = self.k1
        for token in query:
            col = vocabulary.get(token)
            if col is None:
                continue
            docs, tf = self._postings[col]  # a document without the token adds 0
            score[docs] += self.idf_[col] * (tf * (k1 + 1) / (tf + self._length_norm[docs]))
        return score

    def top_k(self, query_tokens: Sequence[str], k: int) -> np.ndarray:
        """Indices of the k best documents for the query, best first; equal scores in index order
        (lower first); all documents if k exceeds their number."""
        k = _check_k(k)
        return _top_k(self.scores(query_tokens), k)


def _as_float_array(x: object, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().double().numpy()
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be an array of numbers: {e}") from None
    return a


class DenseRetriever:
    """Nearest documents by cosine similarity: cos(q, d) = q . d / (|q| |d|).

    embeddings: (n_documents, dim), one vector per document (a numpy array, or a torch tensor,
    copied to float64 numpy), finite and none of zero norm (its cosine would be undefined). The
    rows are normalized once, so only their directions count: a long vector is not favoured, as
    it would be by a raw dot product. Queries are vectors of the same dim, from the same encoder.
    """

    def __init__(self, embeddings):
        e = _as_float_array(embeddings, "embeddings")
        if e.ndim != 2 or e.shape[0] < 1 or e.shape[1] < 1:
            raise ValueError(f"embeddings must be a 2-D (n_documents, dim) array with both >= 1, got shape {e.shape}")
        if not np.isfinite(e).all():
            bad = int(np.flatnonzero(~np.isfinite(e).all(axis=1))[0])
            raise ValueError(f"embeddings must be finite, but row {bad} holds nan or inf")
        norms = np.linalg.norm(e, axis=1)
        if (norms == 0).any():
            raise ValueError(f"embeddings row {int(np.flatnonzero(norms == 0)[0])} has norm 0: "
                             "its cosine similarity is undefined")
        self.embeddings = e / norms[:, None]  # unit rows

    @property
    def n_documents(self) -> int:
        return int(self.embeddings.shape[0])

    def scores(self, query_vector) -> np.ndarray:
        """(n_documents,) cosine similarities in [-1, 1] of the query vector (dim,) to each document."""
        q = _as_float_array(query_vector, "query_vector")
        dim = self.embeddings.shape[1]
        if q.shape != (dim,):
            raise ValueError(f"query_vector must have shape ({dim},), the documents' dim, got {q.shape}")
        if not np.isfinite(q).all():
            raise ValueError("query_vector must be finite, but holds nan or inf")
        norm = float(np.linalg.norm(q))
        if norm == 0:
            raise ValueError("query_vector has norm 0: its cosine similarity is undefined")
        return self.embeddings @ (q / norm)

    def top_k(self, query_vector, k: int) -> np.ndarray:
        """Indices of the k most similar documents, best first; equal scores in index order (lower
        first); all documents if k exceeds their number."""
        k = _check_k(k)
        return _top_k(self.scores(query_vector), k)


def evaluate_retriever(rankings: Sequence[Sequence[Hashable]], relevant_sets: Sequence[Iterable[Hashable]],
                       ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Mean recall@k, mean hit rate@k (for each k in ks) and MRR over queries.

    rankings[q] is query q's ranked document ids, best first (as `top_k` returns them),
    relevant_sets[q] the ids that answer it (non-empty; leave out a query without any). Returns
    {"recall@k": ..., "hit_rate@k": ... for each k, "mrr": ..., "n": number of queries}. MRR
    is taken over the whole ranking given, so a top-10 list gives MRR@10. With one relevant id
    per query, recall@k and hit rate@k are equal; with several (an FAQ whose question is asked of
    several stories) hit rate@k counts a query found when any one is in the top k."""
    if isinstance(rankings, (str, bytes)) or not isinstance(rankings, Sequence) or len(rankings) == 0:
        raise ValueError("rankings must be a non-empty list of rankings, one per query")
    if isinstance(relevant_sets, (str, bytes)) or not isinstance(relevant_sets, Sequence):
        raise ValueError(f"relevant_sets must be a list of relevant id sets, one per query, "
                         f"got {type(relevant_sets).__name__}")
    if len(relevant_sets) != len(rankings):
        raise ValueError(f"relevant_sets has {len(relevant_sets)} entries but rankings has {len(rankings)}: "
                         "one relevant set per query")
    if isinstance(ks, (str, bytes)) or not isinstance(ks, Iterable):
        raise ValueError(f"ks must be a list of ints >= 1, got {ks!r}")
    ks = [_check_k(k) for k in ks]
    if not ks:
        raise ValueError("ks is empty: give at least one cutoff k")
    out: dict[str, float] = {}
    recall = {k: 0.0 for k in ks}
    hits = {k: 0.0 for k in ks}
    for q, (ranking, relevant) in enumerate(zip(rankings, relevant_sets)):
        try:
            for k in ks:
                recall[k] += recall_at_k(ranking, relevant, k)
                hits[k] += hit_rate_at_k(ranking, relevant, k)
        except ValueError as e:
            raise ValueError(f"query {q} (rankings[{q}], relevant_sets[{q}]): {e}") from None
    n = len(rankings)
    for k in ks:
        out[f"recall@{k}"] = recall[k] / n
        out[f"hit_rate@{k}"] = hits[k] / n
    out["mrr"] = mrr(rankings, relevant_sets)
    out["n"] = n
    return out
