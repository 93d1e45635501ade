from __future__ import annotations

import os
import platform
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from lmbook_utils.repro import PINNED_CPU_ENV, get_device, pin_cpu_numerics, set_seed


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


def test_pin_cpu_numerics_fills_in_what_is_unset_and_keeps_the_rest():
    environ = {"MKL_CBWR": "COMPATIBLE", "PATH": "/bin"}
    in_effect = pin_cpu_numerics(environ)
    assert environ["MKL_CBWR"] == "COMPATIBLE"          # the reader's own choice wins
    assert environ["PATH"] == "/bin"
    for name, value in PINNED_CPU_ENV.items():
        if name != "MKL_CBWR":
            assert environ[name] == value
    assert in_effect == {name: environ[name] for name in PINNED_CPU_ENV}


def test_pin_cpu_numerics_rejects_a_non_mapping():
    with pytest.raises(TypeError, match="environ"):
        pin_cpu_numerics(["ATEN_CPU_CAPABILITY=avx2"])


def _has_avx2() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return " avx2" in f.read()
    except OSError:
        return False


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or not _has_avx2(),
                    reason="the pinned kernels are x86 AVX2 ones")
def test_pinned_environment_selects_the_avx2_kernels():
    # A misspelt name or value would leave torch on the machine's own widest kernels (with a
    # warning), and the stored outputs would again depend on which CPU ran them.
    code = ("import torch; print(torch.backends.cpu.get_cpu_capability()); "
            "torch.ones(64, 64) @ torch.ones(64, 64)")
    env = {**os.environ, **PINNED_CPU_ENV, "MKL_VERBOSE": "1"}
    done = subprocess.run([sys.executable, "-W", "error", "-c", code], env=env, capture_output=True,
                          text=True, check=True)
    assert done.stdout.splitlines()[0] == "AVX2", done.stderr
    # MKL reports the reproducibility mode of each call it makes (the matrix product above).
    # Its branches other than AUTO exist on Intel processors only: elsewhere (AMD) MKL falls
    # back to the AUTO branch, still in strict reproducibility mode, without a warning (oneMKL
    # developer guide, "Specifying Code Branches"). The mode must be on either way.
    if torch.backends.mkl.is_available():
        branch = PINNED_CPU_ENV["MKL_CBWR"] if _vendor() == "GenuineIntel" else "AUTO,STRICT"
        assert f"CNR:{branch}" in done.stdout, done.stdout[-500:]


def _vendor() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("vendor_id")), "")
    except OSError:
        return ""


def test_reproduces_notebook_only_on_the_maker_that_computed_the_outputs():
    from lmbook_utils.repro import ANY_X86, reproduces_notebook

    assert reproduces_notebook("GenuineIntel", "GenuineIntel", True)[0]
    assert reproduces_notebook("AuthenticAMD", "AuthenticAMD", True)[0]
    ok, why = reproduces_notebook("AuthenticAMD", "GenuineIntel", True)
    assert not ok and "AuthenticAMD" in why and "GenuineIntel" in why
    assert reproduces_notebook(ANY_X86, "GenuineIntel", True)[0]
    assert reproduces_notebook(ANY_X86, None, True)[0]            # reproduced on both makers
    assert not reproduces_notebook("GenuineIntel", None, True)[0]  # an unreadable vendor is another maker
    ok, why = reproduces_notebook(None, "GenuineIntel", True)
    assert not ok and "outputs_cpu" in why                         # a notebook that records nothing
    assert not reproduces_notebook(ANY_X86, "GenuineIntel", False)[0]   # no pinned AVX2 kernels at all
    with pytest.raises(TypeError, match="reproduces"):
        reproduces_notebook("GenuineIntel", "GenuineIntel", 1)


def test_every_chapter_records_which_cpu_computed_its_outputs():
    import json
    from pathlib import Path

    from lmbook_utils.repro import ANY_X86

    for path in sorted((Path(__file__).resolve().parents[1] / "book" / "chapters").glob("*.ipynb")):
        cpu = json.loads(path.read_text(encoding="utf-8"))["metadata"].get("lmbook", {}).get("outputs_cpu")
        assert cpu in (ANY_X86, "GenuineIntel", "AuthenticAMD"), f"{path.name}: outputs_cpu is {cpu!r}"
