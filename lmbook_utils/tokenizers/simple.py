"""Tokenizers whose pieces are given, not learned: characters and whole words.
Introduced in chapter 00_introduction.

Their vocabulary is just what the training text contains (every character, or every word seen
`min_freq` times), so they show the interface at its simplest and the two extremes that
subword tokenizers (`subword`) sit between: few tokens but long sequences, or short sequences
but a huge vocabulary with unknown words.
"""

from __future__ import annotations

import importlib
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .base import Tokenizer, _check_texts, split_words

class CharTokenizer(Tokenizer):
    """One token per character; vocabulary in code point order. Introduced in 00_introduction."""

    kind = "char"
    _unit = "character"

    def _split(self, text: str) -> list[str]:
        return list(text)

    def _join(self, pieces: list[str]) -> str:
        return "".join(pieces)

    @classmethod
    def train(cls, texts: str | Iterable[str], **specials: Any) -> CharTokenizer:
        """Every character of `texts`; `specials` are pad/unk/bos/eos/extra_specials."""
        chars = sorted(set("".join(_check_texts(texts))))
        return cls(chars, **specials)


class WordTokenizer(Tokenizer):
    """Whole words and punctuation marks. Introduced in chapter 00_introduction.

    Decoding joins words with spaces (none before closing punctuation or between CJK
    characters), so it is not lossless. `split` replaces the word-splitting rule.
    """

    kind = "word"
    _unit = "word"

    def __init__(self, tokens: Sequence[str], *, lowercase: bool = False,
                 split: Callable[[str], list[str]] | None = None, **specials: Any) -> None:
        super().__init__(tokens, **specials)
        if split is not None and not callable(split):
            raise TypeError(f"split must be a callable str -> list[str], got {type(split).__name__}")
        self.lowercase = bool(lowercase)
        self.split = split or split_words

    def _split(self, text: str) -> list[str]:
        return list(self.split(text.lower() if self.lowercase else text))

    def _where(self, offset: int) -> str:
        return f"character {offset}"

    def _join(self, pieces: list[str]) -> str:
        text = " ".join(pieces)
        text = re.sub(r" (?=[.,!?;:%)\]}])|(?<=[(\[{]) ", "", text)
        text = re.sub(r"(?<=[A-Za-z0-9]) ([-'’]) (?=[A-Za-z0-9])", r"\1", text)  # don't, well-known
        return re.sub(r"(?<=[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]) (?=[\u3000-\u303f\u3400-\u9fff\uff00-\uffef])",
                      "", text)

    def _config(self) -> dict[str, Any]:
        return {"lowercase": self.lowercase,
                "split": f"{getattr(self.split, '__module__', None) or '?'}:"
                         f"{getattr(self.split, '__qualname__', type(self.split).__name__)}"}

    @classmethod
    def _from_dict(cls, data: dict, split: Any = None) -> WordTokenizer:
        config = dict(data["config"])
        module, _, name = config.pop("split").partition(":")
        if split is None:
            if not module.startswith("lmbook_utils"):  # never import arbitrary code from a file
                raise ValueError(f"this tokenizer was saved with split={module}:{name}; pass "
                                 "load(path, split=...) with that function")
            split = getattr(importlib.import_module(module), name)
        return cls(data["tokens"], **data["roles"], extra_specials=data["extra_specials"],
                   split=split, **config)

    @classmethod
    def train(cls, texts: str | Iterable[str], min_freq: int = 1, lowercase: bool = False,
              split: Callable[[str], list[str]] | None = None, **specials: Any) -> WordTokenizer:
        """Words seen at least `min_freq` times, most frequent first (ties alphabetical)."""
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"min_freq must be an int >= 1, got {min_freq!r}")
        if min_freq > 1 and specials.get("unk", "<unk>") is None:
            raise ValueError("min_freq > 1 leaves rare training words out, so unk must not be None")
        shell = cls([], lowercase=lowercase, split=split, **specials)
        counts = Counter(w for t in _check_texts(texts) for w in shell.tokenize(t)
                         if w not in shell._special_set)
        words = sorted((w for w, c in counts.items() if c >= min_freq),
                       key=lambda w: (-counts[w], w))
        return cls(words, lowercase=lowercase, split=split, **specials)
