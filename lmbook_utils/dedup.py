"""Exact and near-duplicate removal for training data: normalization, MinHash, LSH banding.

For the coming chapter 10 (training in practice, the data section). A web crawl holds the same
page many times, verbatim or with a changed date, a footer, one word; a model trained on it
memorizes the repeats. Exact copies are caught by hashing a normalized text (`exact_duplicates`).
Near copies are caught by comparing sets of shingles (word or character n-grams) by their Jaccard
similarity, which MinHash estimates from short signatures (`MinHasher`, `estimated_jaccard`);
LSH banding then finds the similar pairs without comparing all pairs (`LSHIndex`): signatures
are cut into `bands` bands of `rows` values, and two texts become candidates when some band is
equal, with probability `band_probability(s, bands, rows)` at Jaccard similarity s.

`MinHasher` gives exactly the hash values of datasketch 2.0.0's `MinHash(num_perm, seed)`
(its default scheme, "affine32") or, with scheme="legacy", of `MinHash(..., scheme="legacy")`,
the only scheme before datasketch 2.0.0 (the Mersenne-prime one most tutorials describe). The
scheme is re-implemented here with numpy so that the package does not depend on datasketch; the
tests compare the two. `near_duplicates` is the whole pipeline.
"""

from __future__ import annotations

import hashlib
import struct
import unicodedata
from collections.abc import Hashable, Iterable, Sequence

import numpy as np

__all__ = ["normalize_text", "exact_duplicates", "shingles", "MinHasher", "jaccard",
           "estimated_jaccard", "band_probability", "threshold_of", "LSHIndex", "near_duplicates",
           "FINEWEB_NGRAM", "FINEWEB_BANDS", "FINEWEB_ROWS", "FINEWEB_NUM_PERM",
           "REFINEDWEB_NGRAM", "REFINEDWEB_NUM_PERM", "REFINEDWEB_BANDS", "REFINEDWEB_ROWS"]

# FineWeb (Penedo et al. 2024, Hugging Face's FineWeb blog post; datatrove's MinhashConfig
# defaults): 5-gram word shingles, 112 hashes = 14 bands ("buckets") of 8 rows ("hashes per
# bucket"), threshold (1/14)**(1/8) ~ 0.72. datatrove hashes with its own functions (64-bit by
# default), so its signatures are not datasketch's or ours; the banding is the same.
FINEWEB_NGRAM = 5
FINEWEB_BANDS = 14
FINEWEB_ROWS = 8
FINEWEB_NUM_PERM = FINEWEB_BANDS * FINEWEB_ROWS  # 112
# RefinedWeb (Penedo et al. 2023, "The RefinedWeb Dataset for Falcon LLM", section on fuzzy
# deduplication): 9,000 hashes per document over 5-grams. The split is written from memory as
# "20 buckets of 450 hashes"; it was NOT checked against the paper here. Read that way the
# threshold is (1/20)**(1/450) ~ 0.993, almost exact matching; read the other way (450 bands of
# 20 rows) it is ~ 0.74, near FineWeb's. The same 9,000 hashes give two different filters: see
# the tests, which evaluate `band_probability` at s = 0.8 for both.
REFINEDWEB_NGRAM = 5
REFINEDWEB_NUM_PERM = 9000
REFINEDWEB_BANDS = 20  # unverified, see above
REFINEDWEB_ROWS = 450  # unverified, see above

_MERSENNE_PRIME = np.uint64((1 << 61) - 1)  # the legacy scheme's modulus
_MAX_HASH32 = np.uint32(0xFFFFFFFF)
_SCHEMES = ("affine32", "legacy")


def _check_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    return value


def normalize_text(text: str) -> str:
    """The text two copies must share to count as one: NFKC (full-width "Ａ" and the ligature "ﬁ"
    become "A" and "fi"), lower case, every Unicode punctuation character (categories P*) replaced
    by a space, then runs of whitespace collapsed to one space and the ends stripped. Punctuation
    becomes a space, not nothing, so "end.Start" gives two words ("end start")."""
    text = unicodedata.normalize("NFKC", _check_str("text", text)).lower()
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    return " ".join(text.split())


def exact_duplicates(texts: Sequence[str]) -> list[int]:
    """For each text, the index of the first text with the same `normalize_text` (its own index
    when it is the first). Texts are compared by the SHA-1 of their normalized UTF-8 bytes, so a
    corpus is deduplicated in one pass with a set of 20-byte digests, not of the texts."""
    first: dict[bytes, int] = {}
    out = []
    for i, text in enumerate(texts):
        key = hashlib.sha1(normalize_text(_check_str(f"texts[{i}]", text)).encode("utf-8")).digest()
        out.append(first.setdefault(key, i))
    return out


def shingles(text: str, n: int, unit: str = "word") -> set[str]:
    """The set of n-grams of a text: n consecutive words joined by one space (unit="word",
    words split on whitespace), or n consecutive characters (unit="char"). The text is taken as
    given; call `normalize_text` first. A text shorter than n gives one shingle, itself, so that
    short texts are still compared rather than all found empty and equal."""
    text = _check_str("text", text)
    n = _check_int("n", n)
    if unit not in ("word", "char"):
        raise ValueError(f"unit must be 'word' or 'char', got {unit!r}")
    items: Sequence[str] = text.split() if unit == "word" else text
    if len(items) == 0:
        raise ValueError("text is empty (no words or characters to shingle)")
    join = " ".join if unit == "word" else "".join
    return {join(items[i:i + n]) for i in range(max(1, len(items) - n + 1))}


def _sha1_hash32(token: bytes) -> int:
    """The first 4 bytes of SHA-1, little-endian: datasketch.hashfunc.sha1_hash32."""
    return struct.unpack("<I", hashlib.sha1(token).digest()[:4])[0]


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer (a bijection), which datasketch's affine32 scheme applies to
    each token hash before the permutations; uint32 arithmetic wraps, as intended."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


class MinHasher:
    """MinHash signatures of token sets, equal to datasketch 2.0.0's `MinHash(num_perm, seed)`.

    Each of the num_perm values is the minimum, over the set, of a random hash of a token; two
    sets have the same minimum with probability equal to their Jaccard similarity. Tokens (str,
    UTF-8 encoded, or bytes) are hashed to 32 bits by SHA-1, then permuted by a_k * h + b_k, with
    a_k, b_k drawn by np.random.RandomState(seed) exactly as datasketch draws them:

    - scheme="affine32" (datasketch's default since 2.0.0): h is first mixed by MurmurHash3's
      finalizer, then a_k * h + b_k mod 2**32 with a_k odd, a bijection: no collisions added.
      Signatures are uint32.
    - scheme="legacy" (datasketch before 2.0.0): ((a_k * h + b_k) mod (2**61 - 1)) keeping the low
      32 bits, a_k in [1, p), b_k in [0, p), stored as uint64. The product a_k * h can exceed
      2**64 and wraps in numpy's uint64 before the modulo; datasketch computes it that way, so we
      do too, to get its values bit for bit.

    The empty set's signature is all 2**32 - 1 (datasketch's "empty" sentinel)."""

    def __init__(self, num_perm: int = 128, seed: int = 1, scheme: str = "affine32"):
        self.num_perm = _check_int("num_perm", num_perm)
        self.seed = _check_int("seed", seed, minimum=0)
        if scheme not in _SCHEMES:
            raise ValueError(f"scheme must be one of {_SCHEMES}, got {scheme!r}")
        self.scheme = scheme
        gen = np.random.RandomState(self.seed)
        if scheme == "legacy":  # one (a, b) pair per permutation, in this order, as datasketch
            pairs = [(gen.randint(1, _MERSENNE_PRIME, dtype=np.uint64),
                      gen.randint(0, _MERSENNE_PRIME, dtype=np.uint64)) for _ in range(self.num_perm)]
            self.a, self.b = np.array(pairs, dtype=np.uint64).T
        else:  # all a's, then all b's
            self.a = gen.randint(0, 1 << 31, self.num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
            self.b = gen.randint(0, 1 << 32, self.num_perm, dtype=np.uint32)

    def signature(self, tokens: Iterable[str | bytes]) -> np.ndarray:
        """The (num_perm,) signature of a set of tokens (duplicates and order do not matter)."""
        data = [t.encode("utf-8") if isinstance(t, str) else t for t in tokens]
        if any(not isinstance(t, bytes) for t in data):
            raise TypeError("tokens must be str or bytes")
        dtype = np.uint64 if self.scheme == "legacy" else np.uint32
        sig = np.full(self.num_perm, _MAX_HASH32, dtype=dtype)
        hv = np.array([_sha1_hash32(t) for t in data], dtype=np.uint32)
        for start in range(0, len(hv), 1024):  # chunks bound the (tokens, num_perm) table
            h = hv[start:start + 1024, None]
            if self.scheme == "legacy":
                phv = ((h.astype(np.uint64) * self.a + self.b) % _MERSENNE_PRIME) & np.uint64(_MAX_HASH32)
            else:
                phv = _fmix32(h) * self.a + self.b
            sig = np.minimum(sig, phv.min(axis=0))
        return sig


def jaccard(a: Iterable[Hashable], b: Iterable[Hashable]) -> float:
    """|a & b| / |a | b|, the similarity MinHash estimates. Two empty sets raise: 0/0."""
    a, b = set(a), set(b)
    if not a and not b:
        raise ValueError("a and b are both empty: their Jaccard similarity is undefined")
    return len(a & b) / len(a | b)


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """The share of positions where two signatures agree: an unbiased estimate of the Jaccard
    similarity with standard error sqrt(J (1 - J) / num_perm). Same seed and scheme required."""
    sig_a, sig_b = np.asarray(sig_a), np.asarray(sig_b)
    if sig_a.ndim != 1 or sig_a.shape != sig_b.shape or sig_a.size == 0:
        raise ValueError(f"sig_a and sig_b must be 1-d of one length, got {sig_a.shape} and {sig_b.shape}")
    return float(np.mean(sig_a == sig_b))


def band_probability(s: float | np.ndarray, bands: int, rows: int) -> float | np.ndarray:
    """P(two texts of Jaccard similarity s share at least one band) = 1 - (1 - s**rows)**bands:
    a band of `rows` values matches with probability s**rows, and the bands are independent. As a
    function of s it is the S-curve, steepest near `threshold_of(bands, rows)`."""
    bands, rows = _check_int("bands", bands), _check_int("rows", rows)
    arr = np.asarray(s, dtype=float)
    if np.any((arr < 0) | (arr > 1)) or np.any(np.isnan(arr)):
        raise ValueError(f"s must lie in [0, 1], got {s!r}")
    with np.errstate(divide="ignore"):  # s = 1: log1p(-1) = -inf, and the result is exactly 1
        # 1 - (1 - x)**b written as -expm1(b * log1p(-x)): the direct form rounds to 0 when s**rows
        # is below 1e-16, where the S-curve's tail (the false positives) is what one wants to see
        p = -np.expm1(bands * np.log1p(-(arr ** rows)))
    return float(p) if p.ndim == 0 else p


def threshold_of(bands: int, rows: int) -> float:
    """(1/bands)**(1/rows), the usual approximation of where the S-curve rises (Leskovec,
    Rajaraman and Ullman, Mining of Massive Datasets, ch. 3): above it, pairs are mostly found."""
    return (1.0 / _check_int("bands", bands)) ** (1.0 / _check_int("rows", rows))


class LSHIndex:
    """Signatures cut into `bands` bands of `rows` values; keys whose signatures agree on a whole
    band share a bucket and become candidate pairs. The candidates are those of datasketch's
    `MinHashLSH(num_perm=bands * rows, params=(bands, rows))`; `clusters` joins them."""

    def __init__(self, bands: int, rows: int):
        self.bands, self.rows = _check_int("bands", bands), _check_int("rows", rows)
        self.num_perm = self.bands * self.rows
        self._buckets: list[dict[bytes, list[Hashable]]] = [{} for _ in range(self.bands)]
        self._signatures: dict[Hashable, np.ndarray] = {}  # insertion order is kept

    def _band_keys(self, signature: np.ndarray) -> list[bytes]:
        sig = np.asarray(signature)
        if sig.shape != (self.num_perm,):
            raise ValueError(f"num_perm of the signature must equal bands * rows = {self.bands} * "
                             f"{self.rows} = {self.num_perm}, got shape {sig.shape}")
        return [sig[i * self.rows:(i + 1) * self.rows].tobytes() for i in range(self.bands)]

    def insert(self, key: Hashable, signature: np.ndarray) -> None:
        """Add a key with its signature; a key already inserted raises."""
        if key in self._signatures:
            raise ValueError(f"key {key!r} was already inserted")
        for band, h in zip(self._buckets, self._band_keys(signature)):
            band.setdefault(h, []).append(key)
        self._signatures[key] = np.asarray(signature).copy()

    def query(self, signature: np.ndarray) -> set[Hashable]:
        """The keys sharing at least one band with the signature (itself included, if inserted)."""
        return {k for band, h in zip(self._buckets, self._band_keys(signature)) for k in band.get(h, ())}

    def candidate_pairs(self) -> set[tuple[Hashable, Hashable]]:
        """Every pair sharing a bucket, once, as (earlier key, later key) in insertion order."""
        order = {k: i for i, k in enumerate(self._signatures)}
        pairs = set()
        for band in self._buckets:
            for keys in band.values():
                for i, a in enumerate(keys):
                    for b in keys[i + 1:]:
                        pairs.add((a, b) if order[a] < order[b] else (b, a))
        return pairs

    def clusters(self, threshold: float | None = None) -> list[list[Hashable]]:
        """Connected components (union-find) of the candidate pairs, each in insertion order,
        sizes >= 2 only, ordered by their first key. With a threshold, a pair joins only if its
        estimated Jaccard is >= threshold, which drops the S-curve's false positives."""
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1] or be None, got {threshold!r}")
        rank = {k: i for i, k in enumerate(self._signatures)}
        parent = {k: k for k in rank}

        def find(k):
            while parent[k] != k:
                parent[k] = parent[parent[k]]
                k = parent[k]
            return k

        for a, b in sorted(self.candidate_pairs(), key=lambda p: (rank[p[0]], rank[p[1]])):
            if threshold is None or estimated_jaccard(self._signatures[a], self._signatures[b]) >= threshold:
                ra, rb = find(a), find(b)
                if ra != rb:
                    parent[rb] = ra
        groups: dict[Hashable, list[Hashable]] = {}
        for k in rank:
            groups.setdefault(find(k), []).append(k)
        return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: rank[g[0]])


def near_duplicates(texts: Sequence[str], n: int = FINEWEB_NGRAM, num_perm: int | None = None,
                    bands: int = FINEWEB_BANDS, rows: int = FINEWEB_ROWS, threshold: float | None = None,
                    seed: int = 1, unit: str = "word") -> list[list[int]]:
    """Clusters (lists of indices, size >= 2) of near-duplicate texts: normalize, shingle, MinHash,
    band, join. FineWeb's settings by default (5-grams, 14 bands of 8 rows); num_perm, if given,
    must equal bands * rows. threshold=None keeps every LSH candidate, as FineWeb does; a float
    also requires the estimated Jaccard of a pair to reach it."""
    num_perm = bands * rows if num_perm is None else _check_int("num_perm", num_perm)
    if num_perm != _check_int("bands", bands) * _check_int("rows", rows):
        raise ValueError(f"num_perm must equal bands * rows = {bands * rows}, got {num_perm}")
    hasher, index = MinHasher(num_perm, seed), LSHIndex(bands, rows)
    for i, text in enumerate(texts):
        norm = normalize_text(_check_str(f"texts[{i}]", text))
        if not norm:
            raise ValueError(f"texts[{i}] is empty after normalization")
        index.insert(i, hasher.signature(shingles(norm, n, unit)))
    return index.clusters(threshold)
