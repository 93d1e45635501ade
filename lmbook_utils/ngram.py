"""N-gram language models: counting, smoothing, scoring and sampling, vectorized with numpy.

Introduced in chapter 01_ngram. One class, `NGramLM`, with five smoothing methods:

- ``"mle"``: relative frequencies; an unseen n-gram gets probability 0 (perplexity inf).
- ``"add_k"``: add k to every count (Laplace when k = 1).
- ``"interpolated"``: Jelinek & Mercer (1980) linear interpolation of the MLE estimates of
  orders 1..n; `NGramLM.tune_lambdas` fits the weights on held-out text with EM.
- ``"absolute"``: interpolated absolute discounting (Ney, Essen & Kneser 1994).
- ``"kneser_ney"``: interpolated Kneser-Ney (Kneser & Ney 1995) as defined by Chen & Goodman
  (1998, TR-10-98, eq. 17-18 with one discount D): a single fixed discount shared by every
  order, NOT the modified KN with three discounts. The top order uses raw counts; lower orders
  use continuation counts N1+(. w), the number of distinct tokens seen just before w, so
  "Francisco" (frequent, but only after "San") gets little unigram mass.
  Absolute discounting and KN end in a uniform distribution over the vocabulary, so every
  token, <unk> included, has probability > 0.

Conventions (the chapter's entropy floor uses the same ones):
- A sentence w1..wT is padded to ``<s>``*(n-1) w1..wT ``</s>``. The model predicts the T words
  and ``</s>``, never ``<s>``; cross-entropy averages over those T+1 predictions.
- The vocabulary is the training tokens seen at least `min_count` times, plus ``</s>`` and
  (with ``unknown="map"``) ``<unk>``. Other tokens become ``<unk>`` everywhere; with
  ``unknown="error"`` they raise ValueError instead. With min_count=1 ``<unk>`` never occurs
  in training, so mle/interpolated give it probability 0; use min_count=2 to train it.
- Implementation: token ids 0..V-1 (``</s>`` = 0), ``<s>`` = V, base B = V+1. The m-gram
  ending at a position is the int64 key sum_j id[pos-j] * B**j (the newest token is the
  least significant digit), so dropping the oldest token is ``key % B**(m-1)`` and the
  context is ``key // B``. Counting is np.unique, lookup is np.searchsorted: a whole test
  set is scored with a few array operations per order.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections import Counter
from collections.abc import Sequence

import numpy as np

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
SMOOTHING_METHODS = ("mle", "add_k", "interpolated", "absolute", "kneser_ney")


def _find(keys: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each query in the sorted `keys`, and whether it is there."""
    if len(keys) == 0:
        return np.zeros(len(queries), np.int64), np.zeros(len(queries), bool)
    i = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)
    return i, keys[i] == queries


def _check_sequences(sequences: object, name: str) -> list[Sequence[str]]:
    if isinstance(sequences, (str, bytes)) or not isinstance(sequences, (list, tuple)):
        raise TypeError(f"{name} must be a list of token lists, got {type(sequences).__name__}")
    if not set(map(type, sequences)) <= {list, tuple}:  # C-level fast path; subclasses below
        for i, seq in enumerate(sequences):
            if not isinstance(seq, (list, tuple)):
                raise TypeError(f"{name}[{i}] must be a list of str tokens, got {type(seq).__name__}"
                                " (for characters pass list(text))")
    try:  # check each distinct token once, not every occurrence
        types = set().union(*sequences)
        ok = set(map(type, types)) <= {str} and BOS not in types and EOS not in types
    except TypeError:  # an unhashable token
        ok = False
    if not ok:
        for i, seq in enumerate(sequences):  # slow path, only to name the culprit
            for tok in seq:
                if not isinstance(tok, str):
                    raise TypeError(f"{name}[{i}] holds a {type(tok).__name__}; tokens must be str")
                if tok in (BOS, EOS):
                    raise ValueError(f"{name}[{i}] holds the reserved marker {tok!r}; the model "
                                     "adds <s> and </s> itself")
    return list(sequences)


class NGramLM:
    """An n-gram language model over token sequences (words, or characters for Chinese).

    Introduced in chapter 01_ngram. `lambdas[m-1]` weighs the order-m estimate ("interpolated"
    only; default uniform). `k` is used by "add_k", `discount` by "absolute" and "kneser_ney".
    """

    def __init__(self, n: int = 3, smoothing: str = "kneser_ney", *, k: float = 1.0,
                 discount: float = 0.75, lambdas: Sequence[float] | None = None,
                 min_count: int = 1, unknown: str = "map") -> None:
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        if smoothing not in SMOOTHING_METHODS:
            raise ValueError(f"smoothing must be one of {SMOOTHING_METHODS}, got {smoothing!r}")
        if not isinstance(k, numbers.Real) or not (0 <= k < math.inf):
            raise ValueError(f"k must be a finite number >= 0, got {k!r}")
        if not isinstance(discount, numbers.Real) or not (0 < discount < 1):
            raise ValueError(f"discount must be a number in (0, 1), got {discount!r}")
        if isinstance(min_count, bool) or not isinstance(min_count, numbers.Integral) or min_count < 1:
            raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}")
        if unknown not in ("map", "error"):
            raise ValueError(f"unknown must be 'map' or 'error', got {unknown!r}")
        if unknown == "error" and min_count > 1:
            raise ValueError("min_count > 1 turns rare words into <unk>, which needs unknown='map'")
        self.n, self.smoothing, self.k, self.discount = int(n), smoothing, float(k), float(discount)
        self.min_count, self.unknown = int(min_count), unknown
        self.lambdas = self._check_lambdas(lambdas)
        self.vocab: list[str] = []

    def _check_lambdas(self, lambdas: Sequence[float] | None) -> np.ndarray:
        if lambdas is None:
            return np.full(self.n, 1.0 / self.n)
        lam = np.asarray(lambdas, dtype=float)
        if lam.shape != (self.n,) or (lam < 0).any() or abs(lam.sum() - 1) > 1e-9:
            raise ValueError(f"lambdas must be {self.n} non-negative weights (orders 1..n) "
                             f"summing to 1, got {list(lambdas)!r}")
        return lam

    # ---- training -----------------------------------------------------------------------
    def fit(self, sequences: Sequence[Sequence[str]]) -> NGramLM:
        """Count every m-gram (m = 1..n) of the padded training sequences."""
        seqs = _check_sequences(sequences, "sequences")
        if not seqs:
            raise ValueError("sequences must hold at least one sequence, got an empty corpus")
        freq = Counter(tok for seq in seqs for tok in seq)
        if self.unknown == "map":
            words = sorted(w for w, c in freq.items() if c >= self.min_count and w != UNK)
            self.vocab = [EOS, UNK] + words
        else:
            self.vocab = [EOS] + sorted(freq)
        self._id = {w: i for i, w in enumerate(self.vocab)}
        V = len(self.vocab)
        self._bos, self._base = V, V + 1
        if self._base ** self.n >= 2**63:
            raise ValueError(f"n={self.n} with {V} vocabulary tokens overflows int64 keys; "
                             "use a smaller n or a larger min_count")
        keys = self._event_keys(seqs, "sequences")
        # Per order m (from the top): sorted m-gram keys, raw counts, the counts the estimator
        # uses (continuation counts for KN's lower orders), and per context its total and types.
        self._tables: list[tuple[np.ndarray, ...]] = [()] * self.n
        upper = None
        for m in range(self.n, 0, -1):
            grams, raw = np.unique(keys % self._base**m, return_counts=True)
            used = raw
            if self.smoothing == "kneser_ney" and m < self.n:
                _, used = np.unique(upper % self._base**m, return_counts=True)  # N1+(. g)
            ctx, start, types = np.unique(grams // self._base, return_index=True, return_counts=True)
            self._tables[m - 1] = (grams, raw, used, ctx, np.add.reduceat(used, start), types)
            upper = grams
        return self

    def _event_keys(self, seqs: list[Sequence[str]], name: str) -> np.ndarray:
        """The int64 key of the n-gram ending at every predicted token, sentence by sentence."""
        n = self.n
        lens = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
        tokens = itertools.chain.from_iterable(seqs)
        if self.unknown == "map":  # map() with C-level dict.get: no Python code per token
            ids = map(self._id.get, tokens, itertools.repeat(self._id[UNK]))
        else:
            ids = map(self._id.__getitem__, tokens)
        try:
            flat = np.fromiter(ids, dtype=np.int64, count=int(lens.sum()))
        except KeyError as err:
            raise ValueError(f"{name} holds the unknown token {err.args[0]!r} and unknown="
                             "'error'; it never occurred in training") from None
        sent = np.repeat(np.arange(len(seqs)), lens)
        toks = np.full(int(lens.sum()) + n * len(seqs), self._bos, dtype=np.int64)
        toks[np.arange(len(flat)) + sent * n + n - 1] = flat  # (n-1) <s> before each sentence
        toks[np.cumsum(lens) + np.arange(len(seqs)) * n + n - 1] = self._id[EOS]
        pos = np.flatnonzero(toks != self._bos)  # every predicted token, </s> included
        keys = np.zeros(len(pos), np.int64)
        for j in range(n):
            keys += toks[pos - j] * self._base**j
        return keys

    # ---- probabilities --------------------------------------------------------------------
    def _stats(self, m: int, full: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each query: count of its m-gram, total and number of types of its context."""
        grams, _, used, ctx, total, types = self._tables[m - 1]
        g, inv = np.unique(full % self._base**m, return_inverse=True)  # sorted queries: faster
        i, hit = _find(grams, g)
        j, seen = _find(ctx, g // self._base)
        return (np.where(hit, used[i], 0)[inv].astype(float),
                np.where(seen, total[j], 0)[inv].astype(float),
                np.where(seen, types[j], 0)[inv].astype(float))

    def _components(self, full: np.ndarray) -> np.ndarray:
        """(N, n) MLE estimates of orders 1..n; an unseen context takes the order below's."""
        cols = []
        for m in range(1, self.n + 1):
            c, ch, _ = self._stats(m, full)
            est = c / np.maximum(ch, 1)
            cols.append(est if m == 1 else np.where(ch > 0, est, cols[-1]))
        return np.stack(cols, axis=1)

    def _probs(self, full: np.ndarray) -> np.ndarray:
        V = len(self.vocab)
        if self.smoothing in ("mle", "add_k"):
            c, ch, _ = self._stats(self.n, full)
            k = self.k if self.smoothing == "add_k" else 0.0
            den = ch + k * V  # 0 only for an unseen context without smoothing: p := 0
            return np.where(den > 0, (c + k) / np.maximum(den, 1e-300), 0.0)
        if self.smoothing == "interpolated":
            return self._components(full) @ self.lambdas
        p, d = np.full(len(full), 1.0 / V), self.discount  # order 0: uniform
        for m in range(1, self.n + 1):  # p_m = (max(c-d,0) + d * N1+(h .) * p_{m-1}) / c(h)
            c, ch, types = self._stats(m, full)
            p = np.where(ch > 0, (np.maximum(c - d, 0) + d * types * p) / np.maximum(ch, 1), p)
        return p

    def _check_fitted(self) -> None:
        if not self.vocab:
            raise RuntimeError("this NGramLM is not fitted yet; call fit(sequences) first")

    def _token_id(self, tok: object, name: str) -> int:
        if not isinstance(tok, str):
            raise TypeError(f"{name} tokens must be str, got {type(tok).__name__}")
        if tok in self._id:
            return self._id[tok]
        if self.unknown == "map":
            return self._id[UNK]
        raise ValueError(f"{name} holds the unknown token {tok!r} and unknown='error'")

    def _context_key(self, context: Sequence[str]) -> int:
        if isinstance(context, str) or not isinstance(context, (list, tuple)):
            raise TypeError(f"context must be a list or tuple of str tokens, got "
                            f"{type(context).__name__} (for characters pass list(text))")
        ids = [self._bos if t == BOS else self._token_id(t, "context") for t in context]
        ids = ([self._bos] * (self.n - 1) + ids)[len(ids):]  # short context = sentence start
        return sum(t * self._base**j for j, t in enumerate(reversed(ids)))

    def prob(self, word: str, context: Sequence[str] = ()) -> float:
        """P(word | last n-1 tokens of context); a short context is left-padded with <s>.

        Under "mle" an unseen context gives 0.0 (the n-gram was never seen)."""
        self._check_fitted()
        if word == BOS:
            raise ValueError("word must be a vocabulary token; <s> is never predicted")
        key = self._context_key(context) * self._base + self._token_id(word, "word")
        return float(self._probs(np.array([key], np.int64))[0])

    def next_token_distribution(self, context: Sequence[str] = ()) -> np.ndarray:
        """P(. | context) as an array aligned with `self.vocab` (sums to 1).

        Raises ValueError for "mle" (or add_k with k=0) after a context never seen in training,
        where the distribution is undefined."""
        self._check_fitted()
        keys = self._context_key(context) * self._base + np.arange(len(self.vocab))
        p = self._probs(keys)
        if p.sum() == 0:
            raise ValueError(f"context {tuple(context)!r} never occurred in training, so the "
                             f"{self.smoothing} distribution after it is undefined")
        return p

    def log_prob_sequences(self, sequences: Sequence[Sequence[str]]) -> np.ndarray:
        """log2 P of every predicted token: len(seq)+1 entries per sequence (its words, </s>).

        Per-sentence totals: np.add.reduceat(lp, np.cumsum([0] + [len(s) + 1 for s in seqs])[:-1])."""
        self._check_fitted()
        seqs = _check_sequences(sequences, "sequences")
        if not seqs:
            raise ValueError("sequences must hold at least one sequence, got none")
        with np.errstate(divide="ignore"):
            return np.log2(self._probs(self._event_keys(seqs, "sequences")))

    def cross_entropy(self, sequences: Sequence[Sequence[str]]) -> float:
        """Bits per token, counting each sentence's </s> and never <s>; inf if a token has p=0."""
        return float(-self.log_prob_sequences(sequences).mean())

    def perplexity(self, sequences: Sequence[Sequence[str]]) -> float:
        """2 ** cross_entropy: the effective number of equally likely next tokens."""
        return float(2.0 ** self.cross_entropy(sequences))

    def tune_lambdas(self, heldout: Sequence[Sequence[str]], max_iter: int = 200,
                     tol: float = 1e-9) -> np.ndarray:
        """Fit the interpolation weights on held-out text with EM (Jelinek & Mercer 1980).

        Each step is one matrix product: the posterior that order m produced each held-out
        token, averaged. Use text not seen in training, or the top order takes all the weight.
        Tokens that every order gives probability 0 are skipped. Returns and sets `lambdas`."""
        self._check_fitted()
        if self.smoothing != "interpolated":
            raise ValueError(f"tune_lambdas needs smoothing='interpolated', got {self.smoothing!r}")
        seqs = _check_sequences(heldout, "heldout")
        if not seqs:
            raise ValueError("heldout must hold at least one sequence, got none")
        comps = self._components(self._event_keys(seqs, "heldout"))
        comps = comps[comps.sum(axis=1) > 0]
        if len(comps) == 0:
            raise ValueError("heldout has no token with a non-zero probability under any order")
        lam = np.full(self.n, 1.0 / self.n)
        for _ in range(max_iter):
            post = comps * lam / (comps @ lam)[:, None]  # (N, n) responsibilities
            new = post.mean(axis=0)
            done = np.abs(new - lam).max() < tol
            lam = new
            if done:
                break
        self.lambdas = lam / lam.sum()
        return self.lambdas.copy()

    # ---- generation and inspection -------------------------------------------------------
    def sample(self, max_len: int = 50, seed: int = 0, context: Sequence[str] = (),
               temperature: float = 1.0) -> list[str]:
        """Draw tokens after `context` until </s> (not returned) or `max_len` tokens."""
        self._check_fitted()
        if isinstance(max_len, bool) or not isinstance(max_len, numbers.Integral) or max_len < 1:
            raise ValueError(f"max_len must be an integer >= 1, got {max_len!r}")
        if not isinstance(temperature, numbers.Real) or not temperature > 0:
            raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
        rng, ctx, out = np.random.default_rng(seed), list(context), []
        for _ in range(max_len):
            with np.errstate(divide="ignore"):
                logits = np.log(self.next_token_distribution(ctx)) / temperature
            p = np.exp(logits - logits.max())
            i = int(rng.choice(len(p), p=p / p.sum()))
            if i == self._id[EOS]:
                break
            out.append(self.vocab[i])
            ctx.append(self.vocab[i])
        return out

    def _gram_key(self, ngram: Sequence[str], max_len: int) -> int:
        if isinstance(ngram, str) or not isinstance(ngram, (list, tuple)) \
                or not 1 <= len(ngram) <= max_len:
            raise ValueError(f"ngram must be a tuple of 1..{max_len} tokens, got {ngram!r}")
        ids = [self._bos if t == BOS else self._token_id(t, "ngram") for t in ngram]
        return sum(t * self._base**j for j, t in enumerate(reversed(ids)))

    def count(self, ngram: Sequence[str]) -> int:
        """How often `ngram` (1..n tokens, "<s>" allowed) ends at a predicted token in training."""
        self._check_fitted()
        key = self._gram_key(ngram, self.n)
        grams, raw = self._tables[len(ngram) - 1][:2]
        i, hit = _find(grams, np.array([key], np.int64))
        return int(raw[i[0]]) if hit[0] else 0

    def continuation_count(self, ngram: Sequence[str]) -> int:
        """N1+(. ngram): how many distinct tokens precede `ngram` (1..n-1 tokens) in training."""
        self._check_fitted()
        if self.n == 1:
            raise ValueError("continuation counts need n >= 2 (they are read off the (m+1)-grams)")
        key, m = self._gram_key(ngram, self.n - 1), len(ngram)
        return int(np.count_nonzero(self._tables[m][0] % self._base**m == key))

    def __repr__(self) -> str:
        return (f"NGramLM(n={self.n}, smoothing={self.smoothing!r}, vocab={len(self.vocab)} tokens"
                f"{'' if self.vocab else ', not fitted'})")
