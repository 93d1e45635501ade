"""word2vec: skip-gram and CBOW with negative sampling, in PyTorch, small enough to read.

Introduced in chapter 02b_word_vectors, which trains both models and compares them with gensim.
Mikolov, Chen, Corrado & Dean (2013, "Efficient Estimation of Word Representations in Vector
Space", arXiv 1301.3781) introduced the two models; Mikolov,
Sutskever, Chen, Corrado & Dean (2013, "Distributed Representations of Words and Phrases and
their Compositionality", NeurIPS) added negative sampling, the unigram^0.75 noise and the
subsampling of frequent words. We follow their word2vec.c and gensim where it matters for the
result, so that `gensim.models.Word2Vec` is a reference (the tests compare the two):

- each epoch, a word is kept with probability (sqrt(f/t) + 1) t/f (f its share of the corpus,
  t = `sample`) and dropped words are removed before windowing;
- each center word draws its own window size uniformly from 1..window (`shrink_window`), so
  near words count more;
- input vectors start uniform in [-0.5/dim, 0.5/dim], output vectors at zero;
- plain SGD, each pair with the step size alpha, decayed linearly from `lr` to `min_lr`
  over training; a negative equal to the true word is skipped, as in word2vec.c.

Departures, for speed: pairs are made with numpy for a whole epoch at once; updates are summed
over a batch of pairs (word2vec.c updates after every pair; too large a batch diverges, which
`train_word2vec` reports); the gradients are written out (`sgns_gradients`, checked against
autograd of `sgns_loss` in the tests), as word2vec.c does, which is 4x faster than autograd here.
In skip-gram the center word's input vector predicts each context word; in CBOW the mean of
the context words' input vectors predicts the center word (gensim's cbow_mean=1).
"""

from __future__ import annotations

import math
import numbers
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .word_vectors import UnknownWordError, WordVectors

__all__ = ["Word2VecConfig", "Vocabulary", "noise_distribution", "keep_probabilities", "context_pairs",
           "sgns_loss", "sgns_gradients", "Word2VecModel", "train_word2vec"]


def _is_int(x: object) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


@dataclass
class Word2VecConfig:
    """Every setting of `train_word2vec`; the defaults are gensim's, but for sg (gensim's is CBOW) and batch_size."""
    sg: bool = True              # True: skip-gram (center predicts context); False: CBOW
    dim: int = 100               # vector size
    window: int = 5              # largest distance between a center and a context word
    shrink_window: bool = True   # draw each center's window uniformly from 1..window
    negative: int = 5            # noise words per positive pair
    ns_exponent: float = 0.75    # noise distribution: unigram counts ** ns_exponent
    sample: float = 1e-3         # subsampling threshold t; 0 keeps every word
    min_count: int = 5           # words seen fewer times are dropped from the corpus
    epochs: int = 5              # passes over the corpus
    lr: float = 0.025            # starting SGD step size (alpha)
    min_lr: float = 0.0001       # step size at the end of training (linear decay)
    batch_size: int = 512        # examples per SGD step: pairs (skip-gram) or center words (CBOW)
    seed: int = 0                # seeds every random draw (initialization, subsampling, windows, noise)

    def __post_init__(self) -> None:
        if not isinstance(self.sg, bool):
            raise ValueError(f"Word2VecConfig.sg must be a bool, got {self.sg!r}")
        if not isinstance(self.shrink_window, bool):
            raise ValueError(f"Word2VecConfig.shrink_window must be a bool, got {self.shrink_window!r}")
        for name, low in (("dim", 1), ("window", 1), ("negative", 1), ("min_count", 1), ("epochs", 1),
                          ("batch_size", 1), ("seed", 0)):
            value = getattr(self, name)
            if not _is_int(value) or value < low:
                raise ValueError(f"Word2VecConfig.{name} must be an int >= {low}, got {value!r}")
        for name, ok, what in (("ns_exponent", lambda x: 0 <= x <= 1, "in [0, 1]"),
                               ("sample", lambda x: 0 <= x < 1, "in [0, 1)"),
                               ("lr", lambda x: 0 < x < math.inf, "> 0"),
                               ("min_lr", lambda x: 0 <= x <= self.lr, f"in [0, lr={self.lr}]")):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or isinstance(value, bool) or not ok(value):
                raise ValueError(f"Word2VecConfig.{name} must be a number {what}, got {value!r}")

    @classmethod
    def tiny(cls, **overrides) -> Word2VecConfig:
        """A small setting for unit tests."""
        return cls(**{"dim": 16, "window": 2, "negative": 2, "min_count": 1, "epochs": 1, **overrides})


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """The kept words, most frequent first (ties alphabetical), and their corpus counts."""
    words: tuple[str, ...]
    counts: np.ndarray  # int64, counts[i] for words[i]

    @classmethod
    def build(cls, sentences: Sequence[Sequence[str]], min_count: int = 1) -> Vocabulary:
        if not _is_int(min_count) or min_count < 1:
            raise ValueError(f"min_count must be an int >= 1, got {min_count!r}")
        freq = Counter(t for s in _check_sentences(sentences) for t in s)
        if not freq:
            raise ValueError("sentences must hold at least one token, got an empty corpus")
        kept = sorted((w for w, c in freq.items() if c >= min_count), key=lambda w: (-freq[w], w))
        if not kept:
            raise ValueError(f"no word occurs min_count={min_count} times (the most frequent, "
                             f"{max(freq, key=freq.get)!r}, occurs {max(freq.values())} times)")
        return cls(tuple(kept), np.array([freq[w] for w in kept], dtype=np.int64))

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {w: i for i, w in enumerate(self.words)})

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def id(self, word: str) -> int:
        if word not in self.index:
            raise UnknownWordError(f"{word!r} is not in the vocabulary ({len(self)} words)")
        return self.index[word]

    def encode(self, sentence: Sequence[str]) -> list[int]:
        """Ids of the known words; unknown ones are dropped, as word2vec.c does."""
        return [self.index[t] for t in sentence if t in self.index]


def _check_sentences(sentences: object) -> list[Sequence[str]]:
    if isinstance(sentences, (str, bytes)) or not isinstance(sentences, (list, tuple)):
        raise TypeError(f"sentences must be a list of token lists, got {type(sentences).__name__}")
    for i, s in enumerate(sentences):
        if not isinstance(s, (list, tuple)) or not all(isinstance(t, str) for t in s):
            raise TypeError(f"sentences[{i}] must be a list of str tokens, got {s!r:.60}")
    return list(sentences)


def _counts(counts: object) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.size == 0 or not np.isfinite(c).all() or (c <= 0).any():
        raise ValueError(f"counts must be a non-empty 1-D array of positive numbers, got {counts!r:.80}")
    return c


def noise_distribution(counts, exponent: float = 0.75) -> np.ndarray:
    """P_n(w) = count(w)^exponent / sum: 0 is uniform, 1 the unigram; 0.75 (Mikolov et al.
    2013) draws rare words more often than their share, frequent ones less."""
    c = _counts(counts)
    if not isinstance(exponent, numbers.Real) or not 0 <= exponent <= 1:
        raise ValueError(f"exponent must be a number in [0, 1], got {exponent!r}")
    p = c ** exponent
    return p / p.sum()


def keep_probabilities(counts, sample: float = 1e-3) -> np.ndarray:
    """The probability of keeping each occurrence: min(1, (sqrt(f/t) + 1) t/f), f = count/total.

    word2vec.c's and gensim's formula (the NeurIPS paper printed 1 - sqrt(t/f) for discarding).
    Words with f << t are always kept; "." and "the" mostly go. sample=0 keeps everything."""
    c = _counts(counts)
    if not isinstance(sample, numbers.Real) or not 0 <= sample < 1:
        raise ValueError(f"sample must be a number in [0, 1), got {sample!r}")
    if sample == 0:
        return np.ones_like(c)
    f = c / c.sum()
    return np.minimum(1.0, (np.sqrt(f / sample) + 1) * sample / f)


def context_pairs(sentence_ids, window: int, rng: np.random.Generator,
                  shrink_window: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(center, context) positions of every pair within a window, never across sentences.

    `sentence_ids[i]` says which sentence position i belongs to. With shrink_window each center
    draws its window b uniformly from 1..window and pairs with the words at distance <= b.
    Sorted by center then context position, the order word2vec.c reads them."""
    if not _is_int(window) or window < 1:
        raise ValueError(f"window must be an int >= 1, got {window!r}")
    sid = np.asarray(sentence_ids)
    b = rng.integers(1, window + 1, size=len(sid)) if shrink_window else np.full(len(sid), window)
    centers, contexts = [], []
    for d in range(1, window + 1):
        left = np.nonzero(sid[:-d] == sid[d:])[0]
        right = left + d
        for c, o in ((left, right), (right, left)):
            keep = b[c] >= d
            centers.append(c[keep])
            contexts.append(o[keep])
    centers, contexts = np.concatenate(centers), np.concatenate(contexts)
    order = np.lexsort((contexts, centers))
    return centers[order], contexts[order]


def sgns_loss(center_vecs: torch.Tensor, context_vecs: torch.Tensor, negative_vecs: torch.Tensor,
              negative_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over pairs of -log σ(u_o·v_c) - Σ_k log σ(-u_k·v_c) (Mikolov et al. 2013, NeurIPS eq. 4).

    center_vecs v_c (B, d); context_vecs u_o (B, d), the true words' output vectors;
    negative_vecs u_k (B, K, d). negative_mask (B, K), True = keep: False drops a term (a noise
    draw that equals the true word)."""
    if center_vecs.ndim != 2 or context_vecs.shape != center_vecs.shape:
        raise ValueError(f"center_vecs and context_vecs must both be (B, d), got "
                         f"{tuple(center_vecs.shape)} and {tuple(context_vecs.shape)}")
    B, d = center_vecs.shape
    if negative_vecs.ndim != 3 or negative_vecs.shape[0] != B or negative_vecs.shape[2] != d:
        raise ValueError(f"negative_vecs must be (B={B}, K, d={d}), got {tuple(negative_vecs.shape)}")
    if negative_mask is not None and negative_mask.shape != negative_vecs.shape[:2]:
        raise ValueError(f"negative_mask must be (B, K) = {tuple(negative_vecs.shape[:2])}, "
                         f"got {tuple(negative_mask.shape)}")
    pos = F.logsigmoid((center_vecs * context_vecs).sum(-1))
    neg = F.logsigmoid(-(negative_vecs * center_vecs.unsqueeze(1)).sum(-1))  # (B, K); faster than bmm
    if negative_mask is not None:
        neg = neg * negative_mask
    return -(pos + neg.sum(-1)).mean()


def sgns_gradients(h: torch.Tensor, w_out: torch.Tensor, targets: torch.Tensor,
                   negatives: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
    """`sgns_loss` summed over a batch, and its gradients for h (B, d) and w_out (V, d), in closed form.

    d loss / d (u·h) is σ(u·h) - 1 for the true word and σ(u·h) for a noise word (word2vec.c's
    g = (label - σ) alpha, without the alpha). With the toy world's ~100 words it is cheaper to
    score every word once (one matrix product) and collect these derivatives in a (B, V) matrix
    G than to gather K vectors per pair; the cost grows with V, so a real vocabulary would
    gather instead. A noise draw equal to the true word is skipped, as in word2vec.c."""
    scores = h @ w_out.T                                            # (B, V): u_w · h for every word
    pos = scores.gather(1, targets[:, None]).squeeze(1)             # (B,)
    neg = scores.gather(1, negatives)                               # (B, K)
    keep = negatives != targets[:, None]
    loss = -(F.logsigmoid(pos).sum() + (F.logsigmoid(-neg) * keep).sum())
    G = torch.zeros_like(scores)
    G.scatter_add_(1, negatives, torch.sigmoid(neg) * keep)         # a word drawn twice counts twice
    G.scatter_add_(1, targets[:, None], (torch.sigmoid(pos) - 1)[:, None])
    return float(loss), G @ w_out, G.T @ h


class Word2VecModel(WordVectors):
    """Trained word2vec: `vectors` (input embeddings, float32 (V, dim)) are the word vectors;
    `context_vectors` are the output ones. Look-ups (`vector`, `most_similar`, `analogy`)
    come from `WordVectors`."""

    def __init__(self, vocab: Vocabulary, vectors: np.ndarray, context_vectors: np.ndarray,
                 config: Word2VecConfig, words_per_second: float, epoch_losses: list[float]) -> None:
        super().__init__(vocab.words, vectors)
        self.vocab, self.config = vocab, config
        self.context_vectors = np.asarray(context_vectors, dtype=np.float32)
        self.words_per_second = words_per_second  # corpus words (before subsampling) per second; informative only
        self.epoch_losses = epoch_losses          # mean sgns_loss of each epoch


def _cbow_contexts(centers: np.ndarray, contexts: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Each distinct center once, with its context positions padded to `width` (-1 = none)."""
    uniq, start, n = np.unique(centers, return_index=True, return_counts=True)
    table = np.full((len(uniq), width), -1, dtype=np.int64)
    rank = np.arange(len(centers)) - np.repeat(start, n)
    table[np.repeat(np.arange(len(uniq)), n), rank] = contexts
    return uniq, table


def train_word2vec(sentences: Sequence[Sequence[str]], config: Word2VecConfig | None = None) -> Word2VecModel:
    """Train skip-gram or CBOW with negative sampling on token lists; deterministic for a seed on CPU."""
    config = Word2VecConfig() if config is None else config
    if not isinstance(config, Word2VecConfig):
        raise TypeError(f"config must be a Word2VecConfig, got {type(config).__name__}")
    vocab = Vocabulary.build(sentences, config.min_count)
    encoded = [vocab.encode(s) for s in sentences]
    if max(map(len, encoded)) < 2:
        raise ValueError("sentences must hold a sentence with at least two vocabulary words: "
                         "no (center, context) pair exists")
    ids = np.array([i for s in encoded for i in s], dtype=np.int64)
    sid = np.repeat(np.arange(len(encoded)), [len(s) for s in encoded])
    V, dim, K = len(vocab), config.dim, config.negative
    rng = np.random.default_rng(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    w_in = (torch.rand(V, dim, generator=gen) - 0.5) / dim
    w_out = torch.zeros(V, dim)
    noise_cdf = np.cumsum(noise_distribution(vocab.counts, config.ns_exponent))
    keep_p = keep_probabilities(vocab.counts, config.sample)
    losses, t0 = [], time.perf_counter()
    for epoch in range(config.epochs):
        kept = rng.random(len(ids)) < keep_p[ids]               # subsampling, redrawn every epoch
        e_ids, e_sid = ids[kept], sid[kept]
        centers, contexts = context_pairs(e_sid, config.window, rng, config.shrink_window)
        if config.sg:   # one example per pair: the center's vector predicts the context word
            inputs, targets = torch.from_numpy(e_ids[centers][:, None]), torch.from_numpy(e_ids[contexts])
        else:           # one example per center: the mean of its context vectors predicts it
            uniq, table = _cbow_contexts(centers, contexts, 2 * config.window)
            inputs = torch.from_numpy(np.where(table >= 0, e_ids[np.maximum(table, 0)], -1))
            targets = torch.from_numpy(e_ids[uniq])
        n = len(targets)
        noise = torch.from_numpy(np.minimum(np.searchsorted(noise_cdf, rng.random((n, K)), side="right"), V - 1))
        total = 0.0
        for start in range(0, n, config.batch_size):
            alpha = config.lr - (config.lr - config.min_lr) * (epoch + start / n) / config.epochs
            inp, tgt = inputs[start:start + config.batch_size], targets[start:start + config.batch_size]
            mask = inp >= 0                                      # CBOW's padding; all True for skip-gram
            h = (w_in[inp.clamp(min=0)] * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            loss, grad_h, grad_out = sgns_gradients(h, w_out, tgt, noise[start:start + config.batch_size])
            w_out -= alpha * grad_out                            # summed over the batch: each pair steps by alpha
            # every context word gets the whole gradient of h, as in word2vec.c and gensim's cbow_mean=1
            w_in.index_add_(0, inp[mask], grad_h[:, None].expand(-1, inp.shape[1], -1)[mask], alpha=-alpha)
            total += loss
        losses.append(total / max(n, 1))
        if not math.isfinite(losses[-1]):
            raise RuntimeError(f"training diverged in epoch {epoch} (loss {losses[-1]}); lower "
                               "Word2VecConfig.lr or Word2VecConfig.batch_size")
    wps = len(ids) * config.epochs / max(time.perf_counter() - t0, 1e-9)
    return Word2VecModel(vocab, w_in.numpy().copy(), w_out.numpy().copy(), config, wps, losses)
