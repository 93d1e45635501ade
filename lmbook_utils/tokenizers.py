"""Character, word and subword (BPE) tokenizers behind one small interface.

Introduced in chapter 00_introduction (characters and words); BPE (Sennrich, Haddow & Birch
2016, ACL; byte-level as in GPT-2, Radford et al. 2019) in chapter 06_gpt. Every tokenizer has
encode/decode/tokenize, a vocabulary with fixed special tokens and JSON save/load (no pickle).

Conventions:
- Ids: special tokens come first, in the order pad, unk, bos, eos (each may be None to leave it
  out), then the caller's extra specials (e.g. "[CLS]", "[SEP]", "[MASK]"), then ordinary
  tokens. So with the defaults <pad>=0, <unk>=1, <bos>=2, <eos>=3 whatever the training text.
- A special token written in the text (e.g. "[MASK]") is encoded as that special token.
- Unknown input maps to the unk token; with ``unk=None`` encode raises ValueError instead.
- Lossless, decode(encode(text)) == text: CharTokenizer (when every character is known) and
  byte-level BPETokenizer (always). WordTokenizer and whitespace BPE lose the spacing.
"""

from __future__ import annotations

import importlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

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


def _learn_merges(words: Counter[str], specials: Sequence[str], vocab_size: int,
                  min_frequency: int) -> tuple[list[str], list[tuple[str, str]]]:
    """Grow a subword vocabulary by merging the most frequent adjacent pair, ties broken by
    spelling. Words start as their first character and "##"-marked continuation characters.

    Hugging Face's trainers break ties in hash-map order, which changes from process to
    process; this keeps the same texts giving the same vocabulary and ids everywhere.
    Returns (vocabulary in id order, merges in the order learned)."""
    pieces = {w: [w[0]] + ["##" + c for c in w[1:]] for w in sorted(words)}
    vocab = list(specials) + sorted({p for split in pieces.values() for p in split} - set(specials))
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < len(vocab):
        raise ValueError(f"vocab_size must be an int >= {len(vocab)} ({len(specials)} specials + "
                         f"{len(vocab) - len(specials)} characters and continuation characters), got {vocab_size!r}")
    known, merges = set(vocab), []
    while len(vocab) < vocab_size:
        pairs: Counter[tuple[str, str]] = Counter()
        for w, split in pieces.items():
            for a, b in zip(split, split[1:]):
                pairs[a, b] += words[w]
        candidates = [(c, pair) for pair, c in pairs.items() if c >= min_frequency]
        if not candidates:
            break
        best_count = max(c for c, _ in candidates)
        a, b = min(pair for c, pair in candidates if c == best_count)
        merged = a + b[2:]
        merges.append((a, b))
        for w, split in pieces.items():
            i, out = 0, []
            while i < len(split):
                if i + 1 < len(split) and split[i] == a and split[i + 1] == b:
                    out.append(merged)
                    i += 2
                else:
                    out.append(split[i])
                    i += 1
            pieces[w] = out
        if merged not in known:
            known.add(merged)
            vocab.append(merged)
    return vocab, merges


class Tokenizer:
    """The shared interface; subclasses split text into pieces. Introduced in 00_introduction."""

    kind = "base"

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
        kinds = {k.kind: k for k in (CharTokenizer, WordTokenizer, BPETokenizer, WordPieceTokenizer)}
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


class BPETokenizer(Tokenizer):
    """Byte-pair encoding trained with Hugging Face `tokenizers`. Introduced in chapter 06_gpt.

    ``pre_tokenizer="byte_level"`` (GPT-2): text is UTF-8 bytes, so any text, Chinese
    included, encodes with no unknowns and decodes exactly; token strings show bytes as
    printable characters (a space is "Ġ"). ``"whitespace"``: words and punctuation are split
    first and subwords carry a "##" prefix; decoding loses the original spacing.
    """

    kind = "bpe"

    def __init__(self, hf_tokenizer: Any, *, pre_tokenizer: str = "byte_level",
                 **specials: Any) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        if not isinstance(hf_tokenizer, HFTokenizer):
            raise TypeError(f"hf_tokenizer must be a tokenizers.Tokenizer, got "
                            f"{type(hf_tokenizer).__name__}")
        self.hf, self.pre_tokenizer = hf_tokenizer, pre_tokenizer
        vocab = hf_tokenizer.get_vocab()
        Tokenizer.__init__(self, [], **specials)
        self._itos = sorted(vocab, key=vocab.__getitem__)
        self._stoi = dict(vocab)
        if self._itos[:len(self.specials)] != self.specials:
            raise ValueError(f"hf_tokenizer's first ids must be the specials {self.specials}")

    def tokenize(self, text: str) -> list[str]:
        return self.hf.encode(self._check_text(text), add_special_tokens=False).tokens

    def _check_text(self, text: str) -> str:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if self.unk_id is None and self.pre_tokenizer == "whitespace":
            bad = [(i, c) for i, c in enumerate(text) if not c.isspace() and c not in self._stoi
                   and all(not text.startswith(s, i) for s in self.specials)]
            if bad:
                shown = ", ".join(f"{c!r} at position {i}" for i, c in bad[:5])
                raise ValueError(f"text has {len(bad)} character(s) not in the vocabulary: "
                                 f"{shown} (this tokenizer has unk=None)")
        return text

    def merges(self) -> list[tuple[str, str]]:
        """The learned merges in the order they were learned (the first was the most frequent
        pair). Introduced in chapter 00_introduction."""
        raw = json.loads(self.hf.to_str())["model"]["merges"]
        return [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in raw]

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        ids = self.hf.encode(self._check_text(text), add_special_tokens=False).ids
        return self._add_bos_eos(ids, add_bos, add_eos)

    def decode(self, ids: Iterable[int], skip_specials: bool = False) -> str:
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        ids = [self._stoi[self.id_to_token(i)] for i in ids]  # validates every id
        return self.hf.decode(ids, skip_special_tokens=skip_specials)

    def _config(self) -> dict[str, Any]:
        return {"pre_tokenizer": self.pre_tokenizer, "hf": json.loads(self.hf.to_str())}

    @classmethod
    def _from_dict(cls, data: dict, split: Any = None) -> BPETokenizer:
        from tokenizers import Tokenizer as HFTokenizer

        hf = HFTokenizer.from_str(json.dumps(data["config"]["hf"]))
        return cls(hf, pre_tokenizer=data["config"]["pre_tokenizer"], **data["roles"],
                   extra_specials=data["extra_specials"])

    @classmethod
    def train(cls, texts: str | Iterable[str], vocab_size: int, min_frequency: int = 2,
              pre_tokenizer: str = "byte_level", **specials: Any) -> BPETokenizer:
        """Learn merges until `vocab_size` tokens (fewer if no pair occurs min_frequency times)."""
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        texts = _check_texts(texts)
        if pre_tokenizer not in ("byte_level", "whitespace"):
            raise ValueError(f"pre_tokenizer must be 'byte_level' or 'whitespace', got {pre_tokenizer!r}")
        if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 1:
            raise ValueError(f"min_frequency must be an int >= 1, got {min_frequency!r}")
        shell = Tokenizer([], **specials)
        if pre_tokenizer == "byte_level":
            alphabet = pre_tokenizers.ByteLevel.alphabet()
        else:
            alphabet = sorted({c for t in texts for c in t if not c.isspace()})
        smallest = len(shell.specials) + len(alphabet)
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < smallest:
            raise ValueError(f"vocab_size must be an int >= {smallest} ({len(shell.specials)} "
                             f"specials + {len(alphabet)} base symbols), got {vocab_size!r}")
        if pre_tokenizer == "whitespace":  # learned here: the library's trainer is not deterministic
            splitter = pre_tokenizers.Whitespace()
            words = Counter(w for t in texts for w, _ in splitter.pre_tokenize_str(t))
            vocab, merges = _learn_merges(words, shell.specials, vocab_size, min_frequency)
            hf = HFTokenizer(models.BPE(vocab={t: i for i, t in enumerate(vocab)}, merges=merges,
                                        unk_token=shell.roles["unk"], continuing_subword_prefix="##"))
            hf.pre_tokenizer = splitter
            hf.decoder = decoders.WordPiece(prefix="##")
            hf.add_special_tokens(list(shell.specials))
            return cls(hf, pre_tokenizer=pre_tokenizer, **specials)
        hf = HFTokenizer(models.BPE())  # byte level: the library's trainer, deterministic here
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                      special_tokens=shell.specials, initial_alphabet=alphabet,
                                      show_progress=False)
        hf.train_from_iterator(texts, trainer)
        return cls(hf, pre_tokenizer=pre_tokenizer, **specials)


class WordPieceTokenizer(BPETokenizer):
    """BERT's WordPiece, trained with Hugging Face `tokenizers`: lower-cased words and
    punctuation, rare words split into pieces marked "##". Introduced in chapter 05_bert.

    Specials are BERT's: [PAD] [UNK] [CLS] [SEP] [MASK]. `encode_pair` builds
    [CLS] a [SEP] b [SEP] with segment ids 0 ... 0 1 ... 1; `vocab()` is the vocab.txt that
    transformers' BertTokenizer reads, which splits text into the same ids.
    """

    kind = "wordpiece"
    BERT_SPECIALS = {"pad": "[PAD]", "unk": "[UNK]", "bos": "[CLS]", "eos": "[SEP]", "extra_specials": ("[MASK]",)}

    def __init__(self, hf_tokenizer: Any, *, pre_tokenizer: str = "bert", **specials: Any) -> None:
        super().__init__(hf_tokenizer, pre_tokenizer=pre_tokenizer, **(specials or self.BERT_SPECIALS))

    @property
    def mask_id(self) -> int:
        return self.token_to_id("[MASK]")

    def vocab(self) -> list[str]:
        """Tokens in id order (write one per line as vocab.txt)."""
        return list(self._itos)

    def encode_pair(self, a: str, b: str | None = None) -> tuple[list[int], list[int]]:
        """([CLS] a [SEP] (b [SEP])) ids and segment ids."""
        ids = [self.bos_id] + self.encode(a) + [self.eos_id]
        segments = [0] * len(ids)
        if b is not None:
            second = self.encode(b) + [self.eos_id]
            ids += second
            segments += [1] * len(second)
        return ids, segments

    def encode_batch(self, firsts: Sequence[str], seconds: Sequence[str] | None = None) -> tuple[Any, Any]:
        """`encode_pair` for many texts (or pairs), padded: (ids, segment ids), two (batch, T)
        torch.long tensors, [PAD] and segment 0 after each row's end."""
        import torch

        if isinstance(firsts, str) or not firsts:
            raise ValueError("firsts must be a non-empty list of texts")
        if seconds is not None and len(seconds) != len(firsts):
            raise ValueError(f"seconds must have one text per first text ({len(firsts)}), got {len(seconds)}")
        rows = [self.encode_pair(a, None if seconds is None else seconds[i]) for i, a in enumerate(firsts)]
        T = max(len(ids) for ids, _ in rows)
        ids = torch.full((len(rows), T), self.pad_id, dtype=torch.long)
        segments = torch.zeros((len(rows), T), dtype=torch.long)
        for i, (row, seg) in enumerate(rows):
            ids[i, :len(row)] = torch.tensor(row)
            segments[i, :len(seg)] = torch.tensor(seg)
        return ids, segments

    @classmethod
    def train(cls, texts: str | Iterable[str], vocab_size: int, min_frequency: int = 2,
              pre_tokenizer: str = "bert", **specials: Any) -> WordPieceTokenizer:
        """Learn a WordPiece vocabulary of at most `vocab_size` tokens from `texts`.

        Like Hugging Face's WordPieceTrainer, the vocabulary is grown by merging the most
        frequent adjacent pair of pieces (continuation pieces carry "##"), but ties are broken
        by the pair's spelling, so the same texts always give the same vocabulary and ids
        (the library's trainer breaks ties in hash-map order, differently in every process).
        Encoding is the library's WordPiece model: greedy longest match, "[UNK]" if none.
        """
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, normalizers, pre_tokenizers

        texts = _check_texts(texts)
        if pre_tokenizer != "bert":
            raise ValueError(f"pre_tokenizer must be 'bert' for WordPiece, got {pre_tokenizer!r}")
        if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 1:
            raise ValueError(f"min_frequency must be an int >= 1, got {min_frequency!r}")
        specials = specials or dict(cls.BERT_SPECIALS)
        shell = Tokenizer([], **specials)
        normalizer, splitter = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
        words: Counter[str] = Counter()
        for text in texts:
            words.update(w for w, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text)))
        vocab, _ = _learn_merges(words, shell.specials, vocab_size, min_frequency)
        hf = HFTokenizer(models.WordPiece(vocab={t: i for i, t in enumerate(vocab)}, unk_token=shell.roles["unk"],
                                          continuing_subword_prefix="##"))
        hf.normalizer, hf.pre_tokenizer = normalizer, splitter
        hf.decoder = decoders.WordPiece(prefix="##")
        hf.add_special_tokens(list(shell.specials))
        return cls(hf, **specials)
