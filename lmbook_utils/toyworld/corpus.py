"""The toy-world corpus: sentences, stories, the entropy floor and the train/valid/test splits.

Introduced in chapter 00_introduction. `generate_corpus` draws stories with a seeded
`random.Random` until the text is long enough; every story carries its exact log-probability,
so `entropy_floor` estimates the entropy rate of the text, the floor under any model's
cross-entropy (units: see the `toyworld` docstring).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from .grammar import SENTENCE_SYMBOLS, detokenize_en, tokenize_en, tokenize_zh
from .sampling import _expand, _sample_story

__all__ = ["Sentence", "Story", "generate_sentences", "generate_stories", "EntropyFloor", "entropy_floor",
           "SPLITS", "ToyCorpus", "generate_corpus"]


@dataclass(frozen=True)
class Sentence:
    """A standalone sentence and its exact log-probability. Introduced in chapter 00_introduction."""
    en: str
    zh: str
    log_prob: float


@dataclass(frozen=True)
class Story:
    """A story (2-5 sentences, one line) in both languages. Introduced in chapter 00_introduction."""
    en: str
    zh: str
    log_prob: float
    sentences_en: tuple[str, ...]
    sentences_zh: tuple[str, ...]


def _check_int(value: object, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def _to_story(d: dict) -> Story:
    off, toks, text = d["offsets"], d["tokens"], d["text"]
    sents = tuple(text[off[a]:off[b - 1] + len(toks[b - 1])] for a, b in d["bounds"])
    return Story(d["text"], "".join(d["zh"]), d["log_prob"], sents, tuple(d["zh"]))


def generate_sentences(n: int, seed: int = 0, start: str = "S") -> list[Sentence]:
    """`n` standalone sentences from `start` ("S", "REVIEW" or "INTENT"). Introduced in chapter 00_introduction."""
    _check_int(n, "n", 1)
    _check_int(seed, "seed", 0)
    if start not in SENTENCE_SYMBOLS:
        raise ValueError(f"start must be one of {SENTENCE_SYMBOLS}, got {start!r}")
    rng, out = random.Random(seed), []
    for _ in range(n):
        en, zh, lp, _, _, _ = _expand(start, rng, None)
        out.append(Sentence(detokenize_en(en), zh, lp))
    return out


def generate_stories(n: int, seed: int = 0) -> list[Story]:
    """`n` stories. Introduced in chapter 00_introduction."""
    _check_int(n, "n", 1)
    rng = random.Random(_check_int(seed, "seed", 0))
    return [_to_story(_sample_story(rng)) for _ in range(n)]


# ---- the entropy floor and the corpus -------------------------------------------------------
def _ratio(a: list[float], b: list[int]) -> tuple[float, float]:
    """sum(a)/sum(b) and its standard error (delta method, i.i.d. pairs)."""
    n, r = len(a), sum(a) / sum(b)
    if n < 2:
        return r, math.nan
    mean_b = sum(b) / n
    var = sum((x - r * y) ** 2 for x, y in zip(a, b)) / (n - 1)
    return r, math.sqrt(var / n) / mean_b


@dataclass(frozen=True)
class EntropyFloor:
    """True entropy of toy-world text per unit, in nats, with standard errors (`_se`).

    Units: English word tokens + one ``</s>`` per story; English characters + one ``\\n`` per
    story; Chinese characters + one end unit per story. Introduced in chapter 01_ngram."""
    nats_per_token: float
    nats_per_token_se: float
    nats_per_char: float
    nats_per_char_se: float
    nats_per_char_zh: float
    nats_per_char_zh_se: float
    n_stories: int
    n_tokens: int
    n_chars: int

    @property
    def bits_per_token(self) -> float:
        return self.nats_per_token / math.log(2)

    @property
    def bits_per_token_se(self) -> float:
        return self.nats_per_token_se / math.log(2)

    @property
    def bits_per_char(self) -> float:
        return self.nats_per_char / math.log(2)

    @property
    def bits_per_char_se(self) -> float:
        return self.nats_per_char_se / math.log(2)

    @property
    def bits_per_char_zh(self) -> float:
        return self.nats_per_char_zh / math.log(2)

    @property
    def bits_per_char_zh_se(self) -> float:
        return self.nats_per_char_zh_se / math.log(2)


def entropy_floor(stories: list[Story]) -> EntropyFloor:
    """Monte-Carlo estimate of the entropy rate from the stories' exact log-probabilities.

    Introduced in chapter 01_ngram."""
    if not isinstance(stories, (list, tuple)) or not stories or not isinstance(stories[0], Story):
        raise ValueError("stories must be a non-empty list of Story")
    nll = [-s.log_prob for s in stories]
    toks = [len(tokenize_en(s.en)) + 1 for s in stories]
    chars = [len(s.en) + 1 for s in stories]
    chars_zh = [len(tokenize_zh(s.zh)) + 1 for s in stories]
    return EntropyFloor(*_ratio(nll, toks), *_ratio(nll, chars), *_ratio(nll, chars_zh),
                        len(stories), sum(toks), sum(chars))


SPLITS = {"train": (0.0, 0.8), "valid": (0.8, 0.9), "test": (0.9, 1.0), "all": (0.0, 1.0)}


@dataclass(frozen=True)
class ToyCorpus:
    """Stories, one per line. Introduced in chapter 00_introduction.

    Splits are contiguous: the first 80% of stories train, the next 10% valid, the last 10%
    test (stories are i.i.d., so contiguous blocks are as good as shuffled ones)."""
    stories: tuple[Story, ...]
    seed: int

    @property
    def text(self) -> str:
        return "".join(s.en + "\n" for s in self.stories)

    @property
    def text_zh(self) -> str:
        return "".join(s.zh + "\n" for s in self.stories)

    def split(self, name: str = "all") -> list[Story]:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {tuple(SPLITS)}, got {name!r}")
        a, b = SPLITS[name]
        n = len(self.stories)
        return list(self.stories[round(a * n):round(b * n)])

    def tokens(self, split: str = "all") -> list[list[str]]:
        """One token list per story: the sequences whose T+1 predictions the floor counts."""
        return [tokenize_en(s.en) for s in self.split(split)]

    def entropy(self, split: str = "all") -> EntropyFloor:
        return entropy_floor(self.split(split))


def generate_corpus(n_chars: int = 1_000_000, seed: int = 0) -> ToyCorpus:
    """Stories until the English text (with newlines) has at least `n_chars` characters.

    Introduced in chapter 00_introduction."""
    _check_int(n_chars, "n_chars", 1)
    rng, stories, total = random.Random(_check_int(seed, "seed", 0)), [], 0
    while total < n_chars:
        stories.append(_to_story(_sample_story(rng)))
        total += len(stories[-1].en) + 1
    return ToyCorpus(tuple(stories), seed)
