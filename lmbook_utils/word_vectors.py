"""Count-based word vectors and the evaluations the toy world makes exact.

Introduced in chapter 02_neural_lm, which looks at its models' embedding tables with
`WordVectors`, `word_categories` and `pca_2d`; chapter 02b_word_vectors uses the rest (PPMI, SVD,
the analogies, category precision, Procrustes and the bilingual lexicon).
Two halves:

- Vectors from counts: `cooccurrence_counts` (a symmetric window), `ppmi` (positive, shifted,
  optionally context-smoothed pointwise mutual information) and `svd_vectors`. Levy & Goldberg
  (2014, "Neural Word Embedding as Implicit Matrix Factorization", NeurIPS) showed that
  skip-gram with k negative samples factorizes the PMI matrix shifted by log k; Levy, Goldberg &
  Dagan (2015, "Improving Distributional Similarity with Lessons Learned from Word Embeddings",
  TACL) showed that word2vec's smoothed noise distribution (counts^0.75) helps PPMI as well.
- Evaluations. In a real language "is this neighbour right?" is a matter of opinion; the toy
  world knows every word's category, gender, polarity and Chinese translation, so
  `category_precision_at_k`, `grammar_analogies`/`analogy_accuracy` and
  `bilingual_lexicon_induction` (after `procrustes`) have exact answers.

`WordVectors` (words and a matrix, cosine look-ups, 3CosAdd analogies) is what every method's
vectors are wrapped in; `word2vec.Word2VecModel` is one. Cosine similarity on unit-length rows
throughout, as gensim does; ties are broken by row order, so results are deterministic.
It is longer than 400 lines because the evaluations need the lexicon helpers and `WordVectors`;
the toy-world evaluations could move to a module of their own if it grows.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from .toyworld import grammar as g

__all__ = ["UnknownWordError", "WordVectors", "nearest_neighbours", "cooccurrence_counts", "ppmi",
           "svd_vectors", "word_categories", "name_genders", "polarities", "en_zh_dictionary",
           "segment_zh", "AnalogyQuestion", "AnalogyResult", "grammar_analogies", "analogy_accuracy",
           "category_precision_at_k", "procrustes", "BLIResult", "bilingual_lexicon_induction", "pca_2d"]


class UnknownWordError(KeyError, ValueError):
    """A word that is not in the vocabulary: a KeyError (like a dict) and a ValueError (bad input)."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0])


def _int(value: object, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _matrix(x: object, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} must hold finite numbers only; it has nan or inf")
    return a


def _unit(a: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (an all-zero row stays zero: cosine 0 with everything)."""
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    return a / np.where(norms > 0, norms, 1.0)


def _row(index: Mapping[str, int], word: str, hint: str = "; pass allow_unknown=True to skip it") -> int:
    if word not in index:
        raise UnknownWordError(f"{word!r} is not in the vocabulary ({len(index)} words){hint}")
    return index[word]


def _ranked(sims: np.ndarray, words: Sequence[str], exclude: set[int], k: int) -> list[tuple[str, float]]:
    sims = sims.copy()
    sims[list(exclude)] = -np.inf
    order = np.argsort(-sims, kind="stable")[:min(k, len(words) - len(exclude))]
    return [(words[i], float(sims[i])) for i in order]


class WordVectors:
    """Words and their vectors (row i is `words[i]`), with cosine look-ups.

    Wrap any method's matrix in it (`svd_vectors`'s, a
    Procrustes-mapped one) to compare methods with the same calls."""

    def __init__(self, words: Sequence[str], vectors) -> None:
        words = list(words)
        a = np.asarray(vectors, dtype=np.float32)
        if a.ndim != 2 or a.shape[0] != len(words) or a.shape[0] == 0:
            raise ValueError(f"vectors must be a 2-D array with one row per word ({len(words)} words), "
                             f"got shape {a.shape}")
        if len(set(words)) != len(words) or not np.isfinite(a).all():
            raise ValueError("words must be distinct and vectors finite (no nan or inf)")
        self.words, self.vectors = words, a
        self.index = {w: i for i, w in enumerate(words)}
        self._unit = _unit(a.astype(np.float64))

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def vector(self, word: str, *, allow_unknown: bool = False) -> np.ndarray | None:
        """The word's vector (a copy); None for an unknown word with allow_unknown=True."""
        if word not in self.index and allow_unknown:
            return None
        return self.vectors[_row(self.index, word)].copy()

    def most_similar(self, word: str, topn: int = 10, *, allow_unknown: bool = False) -> list[tuple[str, float]]:
        """The `topn` nearest words by cosine, the word itself excluded."""
        topn = _int(topn, "topn", 1)
        if word not in self.index and allow_unknown:
            return []
        i = _row(self.index, word)
        return _ranked(self._unit @ self._unit[i], self.words, {i}, topn)

    def analogy(self, a: str, b: str, c: str, topn: int = 1, *,
                allow_unknown: bool = False) -> list[tuple[str, float]]:
        """a : b :: c : ?, by 3CosAdd (Mikolov, Yih & Zweig 2013, NAACL): the words nearest to
        unit(b) - unit(a) + unit(c), excluding a, b and c, with their cosines, as gensim's
        `most_similar(positive=[b, c], negative=[a])` does."""
        topn = _int(topn, "topn", 1)
        if allow_unknown and not all(w in self.index for w in (a, b, c)):
            return []
        ia, ib, ic = (_row(self.index, w) for w in (a, b, c))
        target = self._unit[ib] - self._unit[ia] + self._unit[ic]
        return _ranked(self._unit @ target / max(np.linalg.norm(target), 1e-12), self.words, {ia, ib, ic}, topn)


def nearest_neighbours(vectors, index: Mapping[str, int], word: str, k: int = 10, *,
                       allow_unknown: bool = False) -> list[tuple[str, float]]:
    """The `k` words whose rows are most cosine-similar to `word`'s, the word itself excluded.

    `index` maps each word to its row of `vectors`, one word per row. An unknown word raises
    UnknownWordError, or gives [] with allow_unknown=True."""
    k, a = _int(k, "k", 1), _matrix(vectors, "vectors")
    if sorted(index.values()) != list(range(a.shape[0])):
        raise ValueError(f"index must map one word to each of the {a.shape[0]} rows of vectors")
    words = sorted(index, key=index.__getitem__)
    return WordVectors(words, a).most_similar(word, k, allow_unknown=allow_unknown)


# ---- vectors from counts --------------------------------------------------------------------
def cooccurrence_counts(sentences: Sequence[Sequence[str]], vocab: Sequence[str], window: int, *,
                        weighting: str = "uniform") -> np.ndarray:
    """counts[i, j]: how often vocab[j] occurs within `window` tokens of vocab[i] (both sides).

    `weighting="harmonic"` counts a pair at distance d as 1/d (GloVe's and Levy et al.'s
    "dynamic context" idea: near words say more). Tokens outside `vocab` keep their place,
    so distances are measured in the text, but they are counted with nothing."""
    window = _int(window, "window", 1)
    if weighting not in ("uniform", "harmonic"):
        raise ValueError(f"weighting must be 'uniform' or 'harmonic', got {weighting!r}")
    words = list(vocab)
    if not words or len(set(words)) != len(words):
        raise ValueError("vocab must be a non-empty sequence of distinct words")
    if isinstance(sentences, str) or not sentences or not any(len(s) for s in sentences):
        raise ValueError("sentences must be a non-empty list of token lists, got an empty corpus")
    index, V = {w: i for i, w in enumerate(words)}, len(words)
    ids = np.array([index.get(t, -1) for s in sentences for t in s], dtype=np.int64)
    sid = np.repeat(np.arange(len(sentences)), [len(s) for s in sentences])
    counts = np.zeros(V * V)
    for d in range(1, window + 1):
        left, right = ids[:-d], ids[d:]
        ok = (sid[:-d] == sid[d:]) & (left >= 0) & (right >= 0)
        w = 1.0 if weighting == "uniform" else 1.0 / d
        counts += w * np.bincount(left[ok] * V + right[ok], minlength=V * V)
        counts += w * np.bincount(right[ok] * V + left[ok], minlength=V * V)
    return counts.reshape(V, V)


def ppmi(counts, *, alpha: float = 0.75, shift: float = 1.0) -> np.ndarray:
    """max(PMI(w, c) - log shift, 0), with PMI(w, c) = log P(w, c) / (P(w) P_alpha(c)).

    P_alpha(c) = #c^alpha / sum #c'^alpha is the smoothed context distribution of Levy et al.
    (2015); alpha=1 is plain PPMI. shift = k gives the shifted PPMI that skip-gram with k
    negative samples implicitly factorizes (Levy & Goldberg 2014). Zero counts give 0."""
    m = _matrix(counts, "counts")
    if (m < 0).any() or m.sum() <= 0:
        raise ValueError("counts must be non-negative with a positive total")
    if not isinstance(alpha, numbers.Real) or not 0 < alpha <= 1:
        raise ValueError(f"alpha must be a number in (0, 1], got {alpha!r}")
    if not isinstance(shift, numbers.Real) or not shift >= 1:
        raise ValueError(f"shift must be a number >= 1 (it is k, the number of negatives), got {shift!r}")
    p_w = m.sum(axis=1, keepdims=True) / m.sum()
    c_alpha = m.sum(axis=0, keepdims=True) ** alpha
    with np.errstate(divide="ignore", invalid="ignore"):  # log 0 where the count is 0, replaced below
        pmi = np.log(m / m.sum()) - np.log(p_w) - np.log(c_alpha / c_alpha.sum())
    return np.where(m > 0, np.maximum(pmi - np.log(shift), 0.0), 0.0)


def svd_vectors(ppmi_matrix, dim: int, *, power: float = 0.5) -> np.ndarray:
    """Rows of U_d * S_d^power from the truncated SVD M ~ U_d S_d V_d^T.

    power=0.5 is Levy & Goldberg's symmetric SVD_1/2 (W W^T = M for a symmetric PSD M); Levy
    et al. (2015) found 0 or 0.5 better than 1 for similarity. Each singular vector's sign is
    fixed so its largest-magnitude entry is positive: the same input always gives the same vectors."""
    m = _matrix(ppmi_matrix, "ppmi_matrix")
    dim = _int(dim, "dim", 1)
    if dim > min(m.shape):
        raise ValueError(f"dim must be <= min(ppmi_matrix.shape) = {min(m.shape)}, got {dim}")
    if not isinstance(power, numbers.Real) or not 0 <= power <= 1:
        raise ValueError(f"power must be a number in [0, 1], got {power!r}")
    u, s, _ = np.linalg.svd(m, full_matrices=False)
    u = u[:, :dim] * np.where(u[np.abs(u[:, :dim]).argmax(axis=0), np.arange(dim)] < 0, -1.0, 1.0)
    return u * s[:dim] ** power


# ---- what the toy world knows about its words --------------------------------------------------
def _lexicon() -> list[tuple[str, str, str]]:
    """(English, Chinese, category) for every lexicon entry, duplicates included."""
    rows = [(e.lower(), z, "person") for e, z, _ in g.PEOPLE] + [(e, z, "animal") for e, z, _ in g.ANIMALS]
    rows += [(e, z, kind) for kind, entries in g.THINGS.items() for e, z, _ in entries]
    rows += [(e, z, "adjective") for entries in g.ADJECTIVES.values() for e, z in entries]
    rows += [(e, z, "place") for e, z, _, _ in g.PLACES] + [(e, z, "feeling") for e, z, _ in g.FEELINGS]
    rows += [(e, z, "attitude") for e, z, _ in g.ATTITUDES]
    return rows + [(e, z, "action") for e, z in g.PERSON_ACTIONS + g.ANIMAL_ACTIONS]


def _lang(lang: str) -> int:
    if lang not in ("en", "zh"):
        raise ValueError(f"lang must be 'en' or 'zh', got {lang!r}")
    return 0 if lang == "en" else 1


def word_categories(lang: str = "en") -> dict[str, str]:
    """Word -> its lexicon category: person, animal, food, toy, reading, adjective, place,
    feeling, attitude, action. English multi-word entries ("train station", "ran away") are
    left out: they are not one corpus token. A word in two tables (the adjective "big", the
    action "slept") has one category, as it has one meaning."""
    col = _lang(lang)
    return {row[col]: row[2] for row in _lexicon() if not (col == 0 and " " in row[0])}


def name_genders(lang: str = "en") -> dict[str, str]:
    """Each name -> "f" or "m": the one feature the grammar gives names (it picks he or she)."""
    col = _lang(lang)
    return {(e.lower(), z)[col]: gender for e, z, gender in g.PEOPLE}


def polarities(lang: str = "en") -> dict[str, int]:
    """Feelings and attitudes -> +1, -1 or 0 (tired): a label the sentiment views use."""
    col = _lang(lang)
    return {(e, z)[col]: p for e, z, p in g.FEELINGS + g.ATTITUDES}


def en_zh_dictionary() -> dict[str, str]:
    """English -> Chinese for every single-word lexicon entry (the gold standard of `bilingual_lexicon_induction`)."""
    return {e: z for e, z, _ in _lexicon() if " " not in e}


def _zh_words() -> frozenset[str]:
    """The Chinese lexicon words, plus the function words of the sentence rules (去了, 看见了, 很, ...)."""
    words = {z for _, z, _ in _lexicon()}
    for _, _, zh, _ in g.SENTENCE_RULES:
        words.update(p for p in re.split(r"<[A-Z_]+>|。", zh) if p)
    words.update(t for r in g.RULES["VT_TOY"] for kind, t in r.zh if kind == "T")
    return frozenset(words)


_ZH_WORDS = _zh_words()
_ZH_MAX = max(map(len, _ZH_WORDS))


def segment_zh(text: str) -> list[str]:
    """Chinese toy-world text as words, by greedy longest match over `_ZH_WORDS`.

    The corpus' Chinese units are characters (`toyworld.tokenize_zh`); a word vector for 爱丽丝
    needs the word. Characters that start no known word (那, 一, classifiers, punctuation) stay
    single. Greedy is exact here because no known word ends with the start of another that may
    follow it (the tests check this against the parallel English)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    chars, out, i = "".join(text.split()), [], 0
    while i < len(chars):
        n = next((n for n in range(min(_ZH_MAX, len(chars) - i), 1, -1) if chars[i:i + n] in _ZH_WORDS), 1)
        out.append(chars[i:i + n])
        i += n
    return out


# ---- analogies the grammar encodes ------------------------------------------------------------
class AnalogyQuestion(NamedTuple):
    """a : b :: c : ?, right if the answer is any of `answers` (never one of a, b, c)."""
    a: str
    b: str
    c: str
    answers: frozenset[str]
    relation: str


def grammar_analogies() -> list[AnalogyQuestion]:
    """The analogies whose answer the toy grammar fixes, by relation.

    A relation is exact only if the grammar encodes it: words of one category are picked
    uniformly and nothing else depends on which, so they are exchangeable, and a difference
    inside a category (happy:sad, liked:disliked, dog:cat) is not in the statistics of the text
    at all; polarity is a label, not a context. What the grammar does encode:
    - "pronoun": gender x case, he:she :: him:her (8 questions, one answer each);
    - "name_pronoun": a name's pronoun has its gender, alice:she :: bob:he (100);
    - "name_gender": alice:bob :: carol:? is any other male name (200, set answers: names
      differ by gender and nothing else);
    - "noun_verb": the verb that selects the noun's category, apple:ate :: book:read (toys
      take found or lost);
    - "place_preposition": park:in :: beach:on (the preposition of "saw ... in the park").
    Only pairs whose answer differs from b are asked, as 3CosAdd excludes a, b and c."""
    genders = name_genders()
    names = {s: sorted(n for n, x in genders.items() if x == s) for s in "fm"}
    pron = {"f": ("she", "her"), "m": ("he", "him")}
    q = []
    corner = {(0, 0): "he", (1, 0): "she", (0, 1): "him", (1, 1): "her"}  # (gender, case)
    for (x, y), a in corner.items():
        b, c, d = corner[1 - x, y], corner[x, 1 - y], corner[1 - x, 1 - y]
        q += [AnalogyQuestion(a, b, c, frozenset({d}), "pronoun"), AnalogyQuestion(a, c, b, frozenset({d}), "pronoun")]
    for s, t in (("f", "m"), ("m", "f")):
        q += [AnalogyQuestion(a, pron[s][case], c, frozenset({pron[t][case]}), "name_pronoun")
              for a in names[s] for c in names[t] for case in (0, 1)]
        q += [AnalogyQuestion(a, b, c, frozenset(names[t]) - {b}, "name_gender")
              for a in names[s] for b in names[t] for c in names[s] if c != a]
    verbs = {"food": ("ate",), "reading": ("read",), "toy": ("found", "lost")}  # SENTENCE_RULES, VT_TOY
    q += [AnalogyQuestion(a, b, c, frozenset(vy), "noun_verb") for x, vx in verbs.items()
          for y, vy in verbs.items() if x != y for a, _, _ in g.THINGS[x] for b in vx for c, _, _ in g.THINGS[y]]
    places = [(e, p) for e, _, p, _ in g.PLACES if " " not in e]
    q += [AnalogyQuestion(a, pa, c, frozenset({pc}), "place_preposition")
          for a, pa in places for c, pc in places if pa != pc]
    return q


class AnalogyResult(NamedTuple):
    accuracy: float               # correct / answered
    correct: int
    answered: int
    skipped: int                  # questions with a word the vectors do not have
    by_relation: dict[str, float]  # accuracy per relation (answered questions only)


def analogy_accuracy(vectors_lookup: WordVectors, questions: Sequence[AnalogyQuestion]) -> AnalogyResult:
    """Share of questions whose top 3CosAdd answer is right. Questions with a word that
    `vectors_lookup` (a `WordVectors`, e.g. a `Word2VecModel`) lacks are skipped and counted,
    as gensim's `evaluate_word_analogies` does."""
    if not isinstance(vectors_lookup, WordVectors):
        raise TypeError(f"vectors_lookup must be a WordVectors, got {type(vectors_lookup).__name__}")
    if not questions:
        raise ValueError("questions must hold at least one AnalogyQuestion, got none")
    hits: dict[str, list[bool]] = {}
    for qn in questions:
        best = vectors_lookup.analogy(qn.a, qn.b, qn.c, topn=1, allow_unknown=True)
        if best:  # [] when a word is unknown
            hits.setdefault(qn.relation, []).append(best[0][0] in qn.answers)
    answered, correct = sum(map(len, hits.values())), sum(map(sum, hits.values()))
    return AnalogyResult(correct / answered if answered else float("nan"), correct, answered,
                         len(questions) - answered, {r: sum(h) / len(h) for r, h in hits.items()})


def category_precision_at_k(vectors, words: Sequence[str], categories: Mapping[str, str],
                            k: int = 5) -> tuple[float, float]:
    """(precision, chance): the mean share of a word's k nearest neighbours (cosine) in its category.

    Only the words that have a category take part, as queries and as neighbours, so function
    words do not count against a method. Chance is what a random order gives: the mean over
    words of (size of its category - 1) / (number of words - 1)."""
    k = _int(k, "k", 1)
    a = _matrix(vectors, "vectors")
    if a.shape[0] != len(words):
        raise ValueError(f"vectors must have one row per word: {len(words)} words, {a.shape[0]} rows")
    rows = [i for i, w in enumerate(words) if w in categories]
    if k > len(rows) - 1:
        raise ValueError(f"k must be <= {len(rows) - 1} (the categorized words minus one), got {k}")
    labels = np.array([categories[words[i]] for i in rows])
    unit = _unit(a[rows])
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    precision = float((labels[top] == labels[:, None]).mean())
    same = (labels[:, None] == labels[None, :]).sum(axis=1) - 1
    return precision, float((same / (len(rows) - 1)).mean())


# ---- mapping one space onto another -------------------------------------------------------------
def procrustes(X, Y) -> np.ndarray:
    """The orthogonal W minimizing ||X W - Y||_F: W = U V^T from the SVD U S V^T of X^T Y
    (Schönemann 1966, Psychometrika 31)."""
    x, y = _matrix(X, "X"), _matrix(Y, "Y")
    if x.shape != y.shape:
        raise ValueError(f"X and Y must have the same shape (paired rows, same dimension), got {x.shape} and {y.shape}")
    u, _, vt = np.linalg.svd(x.T @ y)
    return u @ vt


class BLIResult(NamedTuple):
    p_at_1: float                       # share of test words whose nearest target is the translation
    p_at_5: float                       # ... among the 5 nearest
    n_test: int
    mapping: np.ndarray                 # W: unit(src) @ W lands in the target space
    predictions: dict[str, list[str]]   # each test word's 5 nearest target words


def _pairs(d: object, name: str) -> list[tuple[str, str]]:
    pairs = list(d.items()) if isinstance(d, Mapping) else list(d)
    if not pairs or not all(isinstance(p, tuple) and len(p) == 2 for p in pairs):
        raise ValueError(f"{name} must be a non-empty dict or list of (source, target) word pairs")
    return pairs


def bilingual_lexicon_induction(src_vectors: WordVectors, tgt_vectors: WordVectors, seed_dictionary,
                                test_dictionary) -> BLIResult:
    """Translate held-out words by nearest neighbour after an orthogonal map learned on seed pairs.

    Mikolov, Le & Sutskever (2013, arXiv 1309.4168) learned a linear map between two languages'
    word2vec spaces from a small dictionary; Xing et al. (2015, NAACL) made it orthogonal on
    unit-length vectors, which is `procrustes`; Conneau et al. (2018, ICLR, "Word Translation
    Without Parallel Data") is the reference setting. Retrieval is plain cosine (no CSLS)."""
    for name, v in (("src_vectors", src_vectors), ("tgt_vectors", tgt_vectors)):
        if not isinstance(v, WordVectors):
            raise TypeError(f"{name} must be a WordVectors, got {type(v).__name__}")
    if src_vectors.vectors.shape[1] != tgt_vectors.vectors.shape[1]:
        raise ValueError(f"src_vectors and tgt_vectors must have the same dimension, got "
                         f"{src_vectors.vectors.shape[1]} and {tgt_vectors.vectors.shape[1]}")
    seed, test = _pairs(seed_dictionary, "seed_dictionary"), _pairs(test_dictionary, "test_dictionary")
    overlap = {s for s, _ in seed} & {s for s, _ in test}
    if overlap:
        raise ValueError(f"test_dictionary must hold words not in seed_dictionary; both have {sorted(overlap)[:5]}")
    src = [[_row(src_vectors.index, s, "") for s, _ in pairs] for pairs in (seed, test)]
    tgt = [[_row(tgt_vectors.index, t, "") for _, t in pairs] for pairs in (seed, test)]
    W = procrustes(src_vectors._unit[src[0]], tgt_vectors._unit[tgt[0]])
    sims = (src_vectors._unit[src[1]] @ W) @ tgt_vectors._unit.T   # (test words, target words)
    top = np.argsort(-sims, axis=1, kind="stable")[:, :5]
    predictions = {s: [tgt_vectors.words[j] for j in row] for (s, _), row in zip(test, top)}
    hit1 = np.mean([predictions[s][0] == t for s, t in test])
    hit5 = np.mean([t in predictions[s] for s, t in test])
    return BLIResult(float(hit1), float(hit5), len(test), W, predictions)


def pca_2d(vectors) -> np.ndarray:
    """(n, 2) coordinates on the two principal axes of the centred rows, for a picture.

    numpy's SVD may return either sign of an axis; each axis is flipped so that its
    largest-magnitude loading is positive, so the picture does not mirror between runs."""
    a = _matrix(vectors, "vectors")
    if a.shape[0] < 2 or a.shape[1] < 2:
        raise ValueError(f"vectors must have at least 2 rows and 2 columns, got shape {a.shape}")
    centred = a - a.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:2] * np.where(vt[:2][np.arange(2), np.abs(vt[:2]).argmax(axis=1)] < 0, -1.0, 1.0)[:, None]
    return centred @ axes.T
