"""The interface every tokenizer shares: vocabulary with fixed special tokens, encode/decode/
tokenize, and JSON save/load. Introduced in chapter 00_introduction.

A subclass only says how text splits into pieces (`_split`) and how pieces join back
(`_join`); everything else, ids, specials, unknowns, errors and persistence, is here, so every
tokenizer of the book behaves the same way. Each subclass names its `kind` (the "type" of its
saved JSON) and registers itself when it is defined, so `Tokenizer.load` finds it and this
module never imports the subclasses (`simple` and `subword` import this one).

`split_words` is here, not with `WordTokenizer`, because `hf_export` also rebuilds its rule.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

ROLES = ("pad", "unk", "bos", "eos")
_WORD = re.compile(r"[A-Za-z0-9]+|[^\sA-Za-z0-9]")


def split_words(text: str) -> list[str]:
    """ASCII letter/digit runs; every other non-space character (punctuation, each Chinese
    character, "'" in "don't") is a token of its own.

    Introduced in chapter 00_introduction. It is the rule of `toyworld.tokenize_en` without
    the lowercasing: ``split_words(text.lower()) == toyworld.tokenize_en(text)``, so
    ``WordTokenizer(lowercase=True)`` splits exactly like the toy-world corpus.
    """
    return _WORD.findall(text)


# Its public name: saved WordTokenizers name their split function by module, and files written
# before this module existed say "lmbook_utils.tokenizers:split_words" (still importable there).
split_words.__module__ = "lmbook_utils.tokenizers"


def _check_texts(texts: str | Iterable[str]) -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, Iterable):
        raise TypeError(f"texts must be a str or an iterable of str, got {type(texts).__name__}")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] must be a str, got {type(t).__name__}")
    if not any(t.strip() for t in texts):
        raise ValueError("texts must contain some non-whitespace training text, got none")
    return texts


class Tokenizer:
    """The shared interface; subclasses split text into pieces. Introduced in 00_introduction."""

    kind = "base"
    _kinds: ClassVar[dict[str, type[Tokenizer]]] = {}  # kind -> subclass, for `load`

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Register every subclass that names its own `kind` (a subclass that does not saves
        and loads as its parent). A class with a kind already taken replaces the old one only
        if it has the same module and name, as when its module is reloaded."""
        super().__init_subclass__(**kwargs)
        if "kind" not in cls.__dict__:
            return
        old = Tokenizer._kinds.get(cls.kind)
        if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise TypeError(f"kind {cls.kind!r} is already the kind of {old.__name__}; "
                            f"give {cls.__name__} another kind")
        Tokenizer._kinds[cls.kind] = cls

    def __init__(self, tokens: Sequence[str], *, pad: str | None = "<pad>",
                 unk: str | None = "<unk>", bos: str | None = "<bos>", eos: str | None = "<eos>",
                 extra_specials: Sequence[str] = ()) -> None:
        roles = {"pad": pad, "unk": unk, "bos": bos, "eos": eos}
        for role, tok in roles.items():
            if tok is not None and (not isinstance(tok, str) or not tok):
                raise TypeError(f"{role} must be a non-empty str or None, got {tok!r}")
        if isinstance(extra_specials, str) or not all(
                isinstance(t, str) and t for t in extra_specials):
            raise TypeError(f"extra_specials must be a list of non-empty str, got {extra_specials!r}")
        self.roles = roles
        self.specials = [t for t in roles.values() if t is not None] + list(extra_specials)
        if len(set(self.specials)) != len(self.specials):
            raise ValueError(f"special tokens must be distinct, got {self.specials}")
        clash = [t for t in tokens if t in set(self.specials)]
        if clash:
            raise ValueError(f"tokens must not repeat special tokens, got {clash[:5]}")
        self._itos = self.specials + list(tokens)
        self._stoi = {t: i for i, t in enumerate(self._itos)}
        if len(self._stoi) != len(self._itos):
            raise ValueError("tokens must be distinct")
        pattern = "|".join(re.escape(t) for t in sorted(self.specials, key=len, reverse=True))
        self._special_re = re.compile(pattern) if pattern else None

    # -- vocabulary ----------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self._itos)

    def __len__(self) -> int:
        return self.vocab_size

    def token_to_id(self, token: str) -> int:
        if token not in self._stoi:
            raise ValueError(f"token {token!r} is not in the vocabulary")
        return self._stoi[token]

    def id_to_token(self, i: int) -> str:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < self.vocab_size:
            raise ValueError(f"id must be an int in [0, {self.vocab_size}), got {i!r}")
        return self._itos[i]

    def _role_id(self, role: str) -> int | None:
        tok = self.roles[role]
        return None if tok is None else self.token_to_id(tok)

    pad_id = property(lambda self: self._role_id("pad"))
    unk_id = property(lambda self: self._role_id("unk"))
    bos_id = property(lambda self: self._role_id("bos"))
    eos_id = property(lambda self: self._role_id("eos"))

    @property
    def special_ids(self) -> dict[str, int]:
        return {t: self._stoi[t] for t in self.specials}

    # -- text <-> ids --------------------------------------------------------------------
    def _split(self, text: str) -> list[str]:
        raise NotImplementedError

    def _join(self, pieces: list[str]) -> str:
        raise NotImplementedError

    def _pieces(self, text: str) -> list[tuple[int, str, bool]]:
        """(character offset, piece, is_special) in order; specials are cut out first."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        out, start = [], 0
        matches = list(self._special_re.finditer(text)) if self._special_re else []
        for m in matches + [None]:
            end = m.start() if m else len(text)
            segment, cursor = text[start:end], 0
            for piece in self._split(segment):
                found = segment.find(piece, cursor)  # offsets only for error messages
                cursor = found + len(piece) if found >= 0 else cursor
                out.append((start + (found if found >= 0 else cursor), piece, False))
            if m:
                out.append((m.start(), m.group(), True))
                start = m.end()
        return out

    def tokenize(self, text: str) -> list[str]:
        """The pieces of `text` before vocabulary lookup."""
        return [p for _, p, _ in self._pieces(text)]

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        ids, unknown = [], []
        for offset, piece, _ in self._pieces(text):
            i = self._stoi.get(piece)
            if i is None:
                unknown.append((offset, piece))
                i = self.unk_id
            ids.append(i)
        if unknown and self.unk_id is None:
            shown = ", ".join(f"{p!r} at {self._where(o)}" for o, p in unknown[:5])
            raise ValueError(f"text has {len(unknown)} {self._unit}(s) not in the vocabulary: "
                             f"{shown}{' ...' if len(unknown) > 5 else ''} (this tokenizer has "
                             "unk=None; build it with an unk token to map them to it)")
        return self._add_bos_eos(ids, add_bos, add_eos)

    _unit = "piece"

    def _where(self, offset: int) -> str:
        return f"position {offset}"

    def _add_bos_eos(self, ids: list[int], add_bos: bool, add_eos: bool) -> list[int]:
        for flag, role in ((add_bos, "bos"), (add_eos, "eos")):
            if flag and self.roles[role] is None:
                raise ValueError(f"add_{role}=True but this tokenizer has {role}=None")
        return [self.bos_id] * add_bos + ids + [self.eos_id] * add_eos

    def decode(self, ids: Iterable[int], skip_specials: bool = False) -> str:
        if hasattr(ids, "tolist"):  # a tensor or array
            ids = ids.tolist()
        tokens = [self.id_to_token(i) for i in ids]
        if skip_specials:
            tokens = [t for t in tokens if t not in self._special_set]
        return self._join(tokens)

    def tokens_of(self, ids: Iterable[int], *, until: int | None = None, skip: Iterable[int] = ()) -> list[str]:
        """The token strings of `ids` (a generated row, say) before the first `until` id (an end
        token; None: all of them), leaving out the ids in `skip` (such as <bos> and padding)."""
        if hasattr(ids, "tolist"):  # a tensor or array
            ids = ids.tolist()
        skip = set(skip)
        out = []
        for i in ids:
            if until is not None and i == until:
                break
            if i not in skip:
                out.append(self.id_to_token(i))
        return out

    @property
    def _special_set(self) -> set[str]:
        return set(self.specials)

    # -- persistence ---------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "version": 1, "roles": self.roles,
                "extra_specials": self.specials[sum(t is not None for t in self.roles.values()):],
                "tokens": self._itos[len(self.specials):], "config": self._config()}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.to_dict() == self.to_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1),
                              encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path, split: Callable[[str], list[str]] | None = None) -> Tokenizer:
        """Read a tokenizer written by `save`; the JSON says which kind it is."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        kinds = Tokenizer._kinds
        if not isinstance(data, dict) or data.get("type") not in kinds:
            raise ValueError(f"path {str(path)!r} is not a saved tokenizer (type must be one of "
                             f"{sorted(kinds)})")
        kind = kinds[data["type"]]
        if cls is not Tokenizer and kind is not cls:
            raise ValueError(f"path {str(path)!r} holds a {kind.__name__}, not a {cls.__name__}")
        return kind._from_dict(data, split=split)

    @classmethod
    def _from_dict(cls, data: dict, split: Any = None) -> Tokenizer:
        return cls(data["tokens"], **data["roles"], extra_specials=data["extra_specials"],
                   **data["config"])


