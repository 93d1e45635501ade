from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from lmbook_utils.repro import get_device, set_seed


def _draws():
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_set_seed_makes_all_generators_repeat():
    set_seed(123)
    first = _draws()
    set_seed(123)
    assert _draws() == first
    set_seed(124)
    assert _draws() != first


def test_set_seed_pins_threads():
    before = torch.get_num_threads()
    try:
        set_seed(0, threads=1)
        assert torch.get_num_threads() == 1
        set_seed(0, threads=None)  # leaves it alone
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("seed, exc", [(-1, ValueError), (2**32, ValueError), (1.5, TypeError),
                                       ("0", TypeError), (True, TypeError)])
def test_set_seed_rejects_bad_seed(seed, exc):
    with pytest.raises(exc, match="seed"):
        set_seed(seed)


@pytest.mark.parametrize("threads, exc", [(0, ValueError), (2.0, TypeError)])
def test_set_seed_rejects_bad_threads(threads, exc):
    with pytest.raises(exc, match="threads"):
        set_seed(0, threads=threads)


def test_get_device_explicit_cpu():
    assert get_device("cpu") == torch.device("cpu")
    assert get_device(" CPU ") == torch.device("cpu")


def test_get_device_env_var(monkeypatch):
    monkeypatch.setenv("LMBOOK_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")
    monkeypatch.setenv("LMBOOK_DEVICE", "tpu")
    with pytest.raises(ValueError, match="LMBOOK_DEVICE"):
        get_device()


def test_get_device_default_is_available(monkeypatch):
    monkeypatch.delenv("LMBOOK_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if torch.backends.mps.is_available() else "cpu")
    assert get_device().type == expected


def test_get_device_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"name must be one of cpu, cuda, mps"):
        get_device("gpu")
    with pytest.raises(ValueError, match="name"):
        get_device("cpu:0")
    with pytest.raises(TypeError, match="name"):
        get_device(0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_get_device_missing_cuda_is_an_error():
    with pytest.raises(RuntimeError, match="CUDA"):
        get_device("cuda")
