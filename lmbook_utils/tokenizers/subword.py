"""Subword tokenizers learned from text: BPE and WordPiece, on Hugging Face `tokenizers`.

BPE (Sennrich, Haddow & Birch 2016, ACL; byte-level as in GPT-2, Radford et al. 2019) is
introduced in chapter 00_introduction (run by hand) and used by chapter 06_gpt; WordPiece
(BERT's) in chapter 05_bert. Encoding is the library's; where the library's trainer breaks
ties in hash-map order (whitespace BPE, WordPiece), `_learn_merges` learns the vocabulary
here instead, so the same texts give the same ids in every process.

`from tokenizers import ...` below is the third-party library: imports are absolute, so it
never means this package (`lmbook_utils.tokenizers`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from .base import Tokenizer, _check_texts

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
