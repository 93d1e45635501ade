from __future__ import annotations

import hashlib
import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmbook_utils.data import (CORPORA, SequenceDataset, pad_sequences, TokenBlockDataset, batches, download, load_text_file,
                               python_docs_text, split_items)


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


def test_registry_entries_are_well_formed():
    for name, (url, digest) in CORPORA.items():
        assert url.startswith("https://") and len(digest) == 64, name


# ---- splitting -----------------------------------------------------------------------------
def test_split_items_sizes_and_determinism():
    items = list(range(100))
    a, b, c = split_items(items, (0.8, 0.1, 0.1), seed=1)
    assert (len(a), len(b), len(c)) == (80, 10, 10)
    assert sorted(a + b + c) == items
    assert (a, b, c) == split_items(items, (0.8, 0.1, 0.1), seed=1)
    assert a != split_items(items, (0.8, 0.1, 0.1), seed=2)[0]
    assert split_items("abcdefghij", (0.7, 0.3), shuffle=False) == ("abcdefg", "hij")


@settings(max_examples=50, deadline=None)
@given(st.integers(4, 200), st.integers(0, 10))
def test_split_items_is_a_partition(n, seed):
    parts = split_items(list(range(n)), (0.5, 0.25, 0.25), seed=seed)
    assert sorted(x for p in parts for x in p) == list(range(n))
    assert len(parts[0]) == round(n * 0.5)


def test_split_items_bad_input():
    with pytest.raises(ValueError, match="fractions must be positive numbers that sum to 1"):
        split_items([1, 2, 3], (0.5, 0.4))
    with pytest.raises(ValueError, match="fractions"):
        split_items([1, 2, 3], (1.2, -0.2))
    with pytest.raises(ValueError, match="too few"):
        split_items([1, 2], (0.8, 0.1, 0.1))
    with pytest.raises(TypeError, match="items is a str"):
        split_items("abc", (0.5, 0.5))
    with pytest.raises(TypeError, match="items must be a sequence"):
        split_items({1, 2, 3}, (0.5, 0.5))


# ---- blocks and batches --------------------------------------------------------------------
def test_token_block_dataset_windows():
    ids = torch.arange(10)
    ds = TokenBlockDataset(ids, block_size=3)
    assert len(ds) == 3  # starts 0, 3, 6 (6..9 needs tokens up to index 9)
    x, y = ds[1]
    assert x.tolist() == [3, 4, 5] and y.tolist() == [4, 5, 6]
    assert ds[-1][1].tolist() == [7, 8, 9]
    overlapping = TokenBlockDataset(ids, block_size=4, stride=1)
    assert len(overlapping) == 6 and overlapping[5][1].tolist() == [6, 7, 8, 9]
    with pytest.raises(IndexError):
        ds[3]


def test_token_block_dataset_bad_input():
    with pytest.raises(ValueError, match=r"block_size must be < len\(ids\) = 5"):
        TokenBlockDataset(torch.arange(5), block_size=5)
    with pytest.raises(ValueError, match="block_size must be an int >= 1"):
        TokenBlockDataset(torch.arange(5), block_size=0)
    with pytest.raises(TypeError, match="ids must be a 1-D torch.long"):
        TokenBlockDataset(torch.arange(6.0), block_size=2)
    with pytest.raises(TypeError, match="ids must be a 1-D torch.long"):
        TokenBlockDataset([1, 2, 3], block_size=1)
    with pytest.raises(ValueError, match="stride"):
        TokenBlockDataset(torch.arange(6), block_size=2, stride=0)


def _epochs(loader, n=2):
    return [[x.tolist() for x, _ in loader] for _ in range(n)]


def test_batches_are_seeded_and_reiterable():
    ds = TokenBlockDataset(torch.arange(41), block_size=4)  # 10 windows
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
    ds = TokenBlockDataset(torch.arange(9), block_size=4)
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
