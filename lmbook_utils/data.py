"""Real text that works offline, the reader's own text files, and batches for neural LMs.

Introduced in chapter 00_introduction (text) and chapter 06_gpt (batches).

- `python_docs_text()`: human-written English that every Python installation ships, the
  Python Language Reference topics in ``pydoc_data.topics`` (the text behind ``help("if")``),
  about 465k characters. Written by the CPython documentation authors, (c) Python Software
  Foundation, under the PSF License Agreement / the Python documentation license (see
  https://docs.python.org/3/license.html). It was the best real prose found in the book's
  environment: NLTK ships no corpora, other packages ship only short license files.
- `download()`: for readers who want bigger corpora; it checks a SHA-256 and caches. The book
  itself never downloads anything.
- `SequenceDataset` + `batches()`: whole sequences (a story, a prompt) as (x, y), padded per
  batch; padded targets are -100, which cross-entropy ignores (chapter 06_gpt).
- `unseen_items()`: the test inputs never seen in training, for supervised and few-shot results;
  `distinct_items()`: every input once.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import textwrap
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

CACHE_ENV_VAR = "LMBOOK_CACHE"


def python_docs_text(prose_only: bool = True) -> str:
    """The Python Language Reference topics as one English text, topics in sorted key order.

    Introduced in chapter 00_introduction. ``prose_only`` drops the reST heading underlines,
    the grammar rules (paragraphs with "::=") and the interactive examples (">>>"), and
    removes the indentation of what remains; some short code examples stay in the prose.
    """
    from pydoc_data.topics import topics

    parts = []
    for key in sorted(topics):
        text = topics[key].replace("\r\n", "\n").strip()
        if prose_only:
            kept = []
            for block in re.split(r"\n\s*\n", text):
                lines = [ln for ln in block.split("\n") if not re.fullmatch(r"\s*([*=\-^~])\1{2,}\s*", ln)]
                if not lines or any("::=" in ln or ln.lstrip().startswith(">>>") for ln in lines):
                    continue
                kept.append(textwrap.dedent("\n".join(lines)).rstrip())
            text = "\n\n".join(kept)
        parts.append(text)
    return "\n\n".join(parts) + "\n"


def load_text_file(path: str | os.PathLike, encoding: str = "utf-8",
                   max_chars: int | None = None) -> str:
    """Read a text file, with errors that say what is wrong. Introduced in 00_introduction."""
    p = Path(path).expanduser()
    if max_chars is not None and (isinstance(max_chars, bool) or not isinstance(max_chars, int)
                                  or max_chars < 1):
        raise ValueError(f"max_chars must be an int >= 1 or None, got {max_chars!r}")
    if not p.exists():
        raise FileNotFoundError(f"path {str(p)!r} does not exist")
    if p.is_dir():
        raise IsADirectoryError(f"path {str(p)!r} is a directory, expected a text file")
    data = p.read_bytes()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        raise ValueError(f"path {str(p)!r} is not valid {encoding}: byte {e.start} "
                         f"({data[e.start:e.start + 1]!r}) cannot be decoded; pass the right "
                         "encoding=...") from None
    except LookupError:
        raise ValueError(f"encoding {encoding!r} is not a known text encoding") from None
    if not text:
        raise ValueError(f"path {str(p)!r} is an empty file")
    return text if max_chars is None else text[:max_chars]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, sha256: str, cache_dir: str | os.PathLike | None = None,
             filename: str | None = None) -> Path:
    """Fetch `url` into the cache once and return its path; the SHA-256 must match.

    Introduced in chapter 00_introduction. Cache: `cache_dir`, else $LMBOOK_CACHE, else
    ~/.cache/lmbook. The file is written to a temporary name and renamed when complete and
    verified, so an interrupted download never leaves a half file under the final name.
    """
    if not isinstance(url, str) or not re.match(r"^(https?|file)://", url):
        raise ValueError(f"url must be an http(s):// or file:// URL, got {url!r}")
    if not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise ValueError(f"sha256 must be 64 hexadecimal characters, got {sha256!r}")
    sha256 = sha256.lower()
    name = filename or url.rstrip("/").rsplit("/", 1)[-1]
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(f"filename must be a plain file name, got {name!r} (pass filename=...)")
    root = Path(cache_dir or os.environ.get(CACHE_ENV_VAR) or Path.home() / ".cache" / "lmbook")
    root = root.expanduser()
    root.mkdir(parents=True, exist_ok=True)
    target = root / name
    if target.is_file() and _sha256(target) == sha256:
        return target
    fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
        got = _sha256(Path(tmp))
        if got != sha256:
            raise ValueError(f"sha256 mismatch for {url}: expected {sha256}, got {got}; "
                             "the download was discarded")
        os.replace(tmp, target)  # atomic on one file system
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def unseen_items(items: Sequence, training: Sequence, key: Callable[[Any], Any] | None = None) -> list:
    """The items whose key never occurs in `training`: a held-out set of inputs never seen.

    Generated data repeats itself (short toy-world sentences recur), so a random test sample
    shares many inputs with the training set and measures memory, not generalization. For a
    supervised or few-shot result, keep only the unseen ones; report how many there were. `key`
    says what counts as the same input (default: the item itself), e.g. ``lambda p: p.en`` for
    a translation pair. Order is kept.
    """
    if key is not None and not callable(key):
        raise TypeError(f"key must be a function item -> hashable, got {type(key).__name__}")
    for name, value in (("items", items), ("training", training)):
        if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
            raise TypeError(f"{name} must be a list or tuple of items, got {type(value).__name__}")
    key = key or (lambda item: item)
    try:
        seen = {key(item) for item in training}
        return [item for item in items if key(item) not in seen]
    except TypeError as error:  # an unhashable key
        raise TypeError(f"key must return something hashable (a str, a tuple): {error}") from None


def distinct_items(items: Iterable, key: Callable[[Any], Any] | None = None) -> list:
    """The first item of each key, in order: a data set with every input once.

    Introduced in chapter 05_bert. Generated examples repeat (short toy-world sentences recur),
    so a pool and a test set cut from them would share inputs; deduplicate first. `key` says
    what counts as the same input (default: the item itself), e.g. ``lambda x: x[0]`` for
    (text, label) pairs."""
    if key is not None and not callable(key):
        raise TypeError(f"key must be a function item -> hashable, got {type(key).__name__}")
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise TypeError(f"items must be an iterable of items, got {type(items).__name__}")
    key = key or (lambda item: item)
    first: dict = {}
    try:
        for item in items:
            first.setdefault(key(item), item)
    except TypeError as error:  # an unhashable key
        raise TypeError(f"key must return something hashable (a str, a tuple): {error}") from None
    return list(first.values())


class SequenceDataset(Dataset):
    """One example per sequence of ids: x = seq[:-1], y = seq[1:], padded when batched.

    Introduced in chapter 06_gpt. Unlike token blocks, no window crosses from one story into
    the next, so a model is scored exactly on each sequence's own predictions."""

    def __init__(self, sequences: Sequence[Sequence[int]], pad_id: int,
                 first_target: Sequence[int] | None = None) -> None:
        """first_target[i]: index of the first token of sequences[i] that is a target (earlier
        targets are -100), for text whose beginning cannot be predicted; None: from index 1."""
        if isinstance(pad_id, bool) or not isinstance(pad_id, int) or pad_id < 0:
            raise ValueError(f"pad_id must be an int >= 0, got {pad_id!r}")
        seqs = []
        for i, seq in enumerate(sequences):
            if len(seq) < 2 or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in seq):
                raise ValueError(f"sequences[{i}] must be a list of at least 2 ids (ints >= 0), got {list(seq)[:8]!r}")
            seqs.append(torch.tensor(seq, dtype=torch.long))
        if not seqs:
            raise ValueError("sequences must hold at least one sequence")
        starts = [1] * len(seqs) if first_target is None else list(first_target)
        if len(starts) != len(seqs):
            raise ValueError(f"first_target must have one entry per sequence ({len(seqs)}), got {len(starts)}")
        for i, (start, seq) in enumerate(zip(starts, seqs)):
            if isinstance(start, bool) or not isinstance(start, int) or not 1 <= start < len(seq):
                raise ValueError(f"first_target[{i}] must be an int in [1, {len(seq)}), got {start!r}")
        self.sequences, self.pad_id, self.first_target = seqs, pad_id, starts

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.sequences[i], self.first_target[i]

    def collate(self, items: list[tuple[torch.Tensor, int]]) -> list[torch.Tensor]:
        """[x, y], (B, T) each, T = longest sequence - 1; x padded with pad_id, y with -100."""
        x, lengths = pad_sequences([s[:-1] for s, _ in items], self.pad_id)
        y, _ = pad_sequences([s[1:] for s, _ in items], -100)
        starts = torch.tensor([start for _, start in items], device=y.device)
        y[torch.arange(y.shape[1], device=y.device)[None, :] < starts[:, None] - 1] = -100
        return [x, y]


def pad_sequences(sequences: Sequence[Sequence[int]], pad_value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids (B, T), lengths (B,)): the sequences left-aligned, padded on the right to the longest.

    Introduced in chapter 06_gpt. Lists of ints give CPU tensors; tensors (all on one device)
    give tensors on their device."""
    if isinstance(pad_value, bool) or not isinstance(pad_value, int):
        raise ValueError(f"pad_value must be an int, got {pad_value!r}")
    rows = [torch.as_tensor(s, dtype=torch.long) for s in sequences]
    if not rows or any(r.dim() != 1 or len(r) == 0 for r in rows):
        raise ValueError("sequences must be a non-empty list of non-empty 1-D id sequences")
    devices = {r.device for r in rows}
    if len(devices) > 1:
        raise ValueError(f"sequences must all be on one device, got {sorted(map(str, devices))}")
    device = rows[0].device
    lengths = torch.tensor([len(r) for r in rows], device=device)
    # one C++ call instead of a Python loop of row copies: the collate of every training batch
    ids = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=pad_value)
    return ids, lengths


def batches(dataset: Dataset, batch_size: int, seed: int = 0, shuffle: bool = True,
            drop_last: bool = False) -> DataLoader:
    """A re-iterable DataLoader with a seeded order: each pass is a new, reproducible epoch.

    Introduced in chapter 06_gpt. Batches are [x, y] with shapes (B, T). Use
    ``shuffle=False`` for held-out data, so every evaluation sees the same batches.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if drop_last and len(dataset) < batch_size:
        raise ValueError(f"batch_size must be <= len(dataset) = {len(dataset)} with "
                         f"drop_last=True, got {batch_size}")
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                      generator=generator, num_workers=0, collate_fn=getattr(dataset, "collate", None))
