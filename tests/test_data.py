from __future__ import annotations

import hashlib
import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmbook_utils.data import (SequenceDataset, batches, distinct_items, download, load_text_file, pad_sequences,
                               python_docs_text)


# ---- the offline corpus --------------------------------------------------------------------
def test_python_docs_text_is_english_prose_and_deterministic():
    text = python_docs_text()
    assert text == python_docs_text()
    assert len(text) > 300_000
    assert text.startswith('The "assert" statement')  # sorted by topic key
    assert "::=" not in text and ">>>" not in text and "*****" not in text
    words = text.lower().split()
    assert words.count("the") > 0.03 * len(words)  # the commonest English word
    raw = python_docs_text(prose_only=False)
    assert len(raw) > len(text) and "::=" in raw


# ---- reading files -------------------------------------------------------------------------
def test_load_text_file(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("héllo 世界\n", encoding="utf-8")
    assert load_text_file(path) == "héllo 世界\n"
    assert load_text_file(str(path), max_chars=3) == "hél"
    path.write_bytes("héllo".encode("latin-1"))
    assert load_text_file(path, encoding="latin-1") == "héllo"


def test_load_text_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_text_file(tmp_path / "missing.txt")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        load_text_file(tmp_path)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"abc\xffdef")
    with pytest.raises(ValueError, match=r"not valid utf-8: byte 3 \(b'\\xff'\)"):
        load_text_file(bad)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty file"):
        load_text_file(empty)
    with pytest.raises(ValueError, match="max_chars"):
        load_text_file(bad, max_chars=0)
    with pytest.raises(ValueError, match="encoding 'klingon'"):
        load_text_file(bad, encoding="klingon")


# ---- download (local file:// URLs only) ----------------------------------------------------
@pytest.fixture
def source(tmp_path):
    path = tmp_path / "src" / "corpus.txt"
    path.parent.mkdir()
    path.write_bytes(b"to be or not to be\n" * 100)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_caches_and_verifies(tmp_path, source):
    path, digest = source
    cache = tmp_path / "cache"
    got = download(path.as_uri(), digest, cache_dir=cache)
    assert got == cache / "corpus.txt" and got.read_bytes() == path.read_bytes()
    path.write_bytes(b"changed upstream")  # the cached, verified copy is reused
    assert download(path.as_uri(), digest.upper(), cache_dir=cache).read_bytes().startswith(b"to be")
    assert sorted(os.listdir(cache)) == ["corpus.txt"]  # no temporary files left


def test_download_uses_env_cache_and_filename(tmp_path, source, monkeypatch):
    path, digest = source
    monkeypatch.setenv("LMBOOK_CACHE", str(tmp_path / "envcache"))
    got = download(path.as_uri(), digest, filename="shakes.txt")
    assert got == tmp_path / "envcache" / "shakes.txt"


def test_download_checksum_mismatch_removes_file(tmp_path, source):
    path, digest = source
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="sha256 mismatch"):
        download(path.as_uri(), "0" * 64, cache_dir=cache)
    assert os.listdir(cache) == []
    (cache / "corpus.txt").write_bytes(b"corrupt")  # a bad cached copy is replaced
    assert download(path.as_uri(), digest, cache_dir=cache).read_bytes() == path.read_bytes()


def test_download_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="url must be"):
        download("ftp://example.org/x", "0" * 64, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="sha256 must be 64"):
        download("file:///x", "abc", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="filename"):
        download("file:///x/", "0" * 64, cache_dir=tmp_path, filename="../up")


# ---- batches --------------------------------------------------------------------
class _Windows(torch.utils.data.Dataset):
    """n windows (x, y) of 4 tokens of the stream 0, 1, 2, ..., y shifted by one."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        x = torch.arange(4 * i, 4 * i + 4)
        return x, x + 1


def _epochs(loader, n=2):
    return [[x.tolist() for x, _ in loader] for _ in range(n)]


def test_batches_are_seeded_and_reiterable():
    ds = _Windows(10)
    loader = batches(ds, batch_size=3, seed=7)
    first, second = _epochs(loader)
    assert first != second  # a new order each epoch
    assert _epochs(batches(ds, batch_size=3, seed=7)) == [first, second]  # reproducible
    assert _epochs(batches(ds, batch_size=3, seed=8))[0] != first
    starts = sorted(row[0] for batch in first for row in batch)
    assert starts == list(range(0, 40, 4))  # every window exactly once per epoch
    x, y = next(iter(loader))
    assert x.shape == (3, 4) and torch.equal(y[:, :-1], x[:, 1:])
    ordered = [x[:, 0].tolist() for x, _ in batches(ds, 4, shuffle=False)]
    assert ordered == [[0, 4, 8, 12], [16, 20, 24, 28], [32, 36]]
    assert len(batches(ds, 4, drop_last=True)) == 2


def test_batches_bad_input():
    ds = _Windows(2)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        batches(ds, 0)
    with pytest.raises(ValueError, match="batch_size must be <= len"):
        batches(ds, 5, drop_last=True)
    with pytest.raises(TypeError, match="seed"):
        batches(ds, 2, seed=1.5)


def test_sequence_dataset_pads_each_batch_to_its_longest():
    ds = SequenceDataset([[1, 2, 3], [4, 5], [6, 7, 8, 9]], pad_id=0)
    x, y = next(iter(batches(ds, batch_size=3, shuffle=False)))
    assert x.tolist() == [[1, 2, 0], [4, 0, 0], [6, 7, 8]]
    assert y.tolist() == [[2, 3, -100], [5, -100, -100], [7, 8, 9]]
    x, y = next(iter(batches(ds, batch_size=2, shuffle=False)))
    assert x.shape == (2, 2)  # padded to this batch's longest, not the dataset's
    orders = [[tuple(x[:, 0].tolist()) for x, _ in batches(ds, 1, seed=s)] for s in (0, 0, 1)]
    assert orders[0] == orders[1] and sorted(orders[0]) == [(1,), (4,), (6,)]


def test_sequence_dataset_bad_input():
    with pytest.raises(ValueError, match=r"sequences\[1\] must be a list of at least 2 ids"):
        SequenceDataset([[1, 2], [3]], pad_id=0)
    with pytest.raises(ValueError, match=r"sequences\[0\] must be a list of at least 2 ids"):
        SequenceDataset([[1, -2]], pad_id=0)
    with pytest.raises(ValueError, match="pad_id must be an int >= 0"):
        SequenceDataset([[1, 2]], pad_id=-1)
    with pytest.raises(ValueError, match="at least one sequence"):
        SequenceDataset([], pad_id=0)


def test_sequence_dataset_first_target_hides_earlier_targets():
    ds = SequenceDataset([[1, 2, 3, 4], [5, 6, 7]], pad_id=0, first_target=[3, 1])
    x, y = next(iter(batches(ds, batch_size=2, shuffle=False)))
    assert x.tolist() == [[1, 2, 3], [5, 6, 0]]
    assert y.tolist() == [[-100, -100, 4], [6, 7, -100]]
    with pytest.raises(ValueError, match="one entry per sequence"):
        SequenceDataset([[1, 2]], pad_id=0, first_target=[1, 1])
    with pytest.raises(ValueError, match=r"first_target\[0\] must be an int in \[1, 2\)"):
        SequenceDataset([[1, 2]], pad_id=0, first_target=[2])


def test_pad_sequences():
    ids, lengths = pad_sequences([[3, 4], [5], [6, 7, 8]], pad_value=-1)
    assert ids.tolist() == [[3, 4, -1], [5, -1, -1], [6, 7, 8]]
    assert lengths.tolist() == [2, 1, 3]
    with pytest.raises(ValueError, match="non-empty list of non-empty"):
        pad_sequences([[1], []], 0)
    with pytest.raises(ValueError, match="pad_value must be an int"):
        pad_sequences([[1]], 0.5)


def test_unseen_items_keeps_only_inputs_never_seen_in_training():
    from lmbook_utils.data import unseen_items

    train = [("a", 1), ("b", 2), ("c", 3)]
    test = [("b", 9), ("d", 4), ("a", 1), ("e", 5)]
    assert unseen_items(test, train, key=lambda x: x[0]) == [("d", 4), ("e", 5)]
    assert unseen_items(test, train) == [("b", 9), ("d", 4), ("e", 5)]  # whole items by default
    assert unseen_items([], train) == []
    with pytest.raises(TypeError, match="items must be a list"):
        unseen_items("abc", train)
    with pytest.raises(TypeError, match="hashable"):
        unseen_items([[1]], [[2]])
    with pytest.raises(TypeError, match="key must be a function"):
        unseen_items(test, train, key="first")


def test_distinct_items_keep_the_first_of_each_key_in_order():
    pairs = [("b", 1), ("a", 0), ("b", 0), ("c", 1), ("a", 1)]
    assert distinct_items(pairs, key=lambda x: x[0]) == [("b", 1), ("a", 0), ("c", 1)]
    assert distinct_items(iter([3, 1, 3, 2, 1])) == [3, 1, 2]
    with pytest.raises(TypeError, match="key must return something hashable"):
        distinct_items([[1], [2]])
    with pytest.raises(TypeError, match="items must be an iterable"):
        distinct_items("abc")
