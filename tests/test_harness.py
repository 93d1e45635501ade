"""The test harness's choice of how nbval compares outputs (conftest.py at the repository root).

The stored outputs are x86 AVX2 CPU outputs. Where the CPU cannot reproduce them digit for digit
(Apple silicon, ARM Linux), `make test` still runs every chapter and compares every output with
its numbers masked, and says so in one line. These tests cover the choice without that hardware.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from nbval.plugin import get_sanitize_patterns

from lmbook_utils.repro import reproduces_stored_outputs

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
ARM_LINE = ("nbval: this CPU (arm64) cannot reproduce the stored x86 AVX2 outputs digit for "
            "digit; comparing outputs with numbers masked")


def _load_root_conftest():
    # Imported under its own name: tests/conftest.py is also "conftest".
    spec = importlib.util.spec_from_file_location("lmbook_root_conftest", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


harness = _load_root_conftest()


def _sanitize(text: str, cfg: str) -> str:
    """What nbval compares: `text` with the rules of `cfg` applied in order, as nbval does."""
    for regex, replace in get_sanitize_patterns(cfg):
        text = re.sub(regex, replace, text)
    return text


# --- which CPUs reproduce the stored outputs -----------------------------------------------------

@pytest.mark.parametrize("machine", ["x86_64", "AMD64"])
def test_x86_64_with_avx2_reproduces(machine):
    ok, reason = reproduces_stored_outputs(machine, "fpu sse2 avx fma avx2 avx512f")
    assert ok, reason
    assert reason == f"this CPU ({machine}, AVX2) reproduces the stored outputs digit for digit"


@pytest.mark.parametrize("flags, missing", [("fpu sse2 avx", "AVX2 and FMA"),
                                            (["sse2", "avx", "fma"], "AVX2"),
                                            ((), "AVX2 and FMA")])
def test_x86_64_without_avx2_does_not(flags, missing):
    ok, reason = reproduces_stored_outputs("x86_64", flags)
    assert not ok
    assert reason == (f"this CPU (x86_64 without {missing}) cannot reproduce the stored x86 AVX2 "
                      "outputs digit for digit")


@pytest.mark.parametrize("machine", ["arm64", "aarch64", "ppc64le", ""])
def test_other_machines_do_not_whatever_their_flags(machine):
    ok, reason = reproduces_stored_outputs(machine, "avx2 fma")
    assert not ok
    assert "cannot reproduce the stored x86 AVX2 outputs digit for digit" in reason
    assert f"({machine or 'unknown machine'})" in reason


def test_this_machine_gives_an_answer():
    ok, reason = reproduces_stored_outputs()
    assert isinstance(ok, bool) and reason.startswith("this CPU (")


@pytest.mark.parametrize("kwargs, match", [({"machine": 64}, "machine must be a str"),
                                           ({"machine": "x86_64", "cpu_flags": 3},
                                            "cpu_flags must be .* got int"),
                                           ({"machine": "x86_64", "cpu_flags": ["avx2", None]},
                                            "cpu_flags must be .* got an item of type NoneType")])
def test_reproduces_rejects_bad_input(kwargs, match):
    with pytest.raises(TypeError, match=match):
        reproduces_stored_outputs(**kwargs)


# --- the numbers mask ----------------------------------------------------------------------------

def test_numbers_mask_ignores_digits_but_not_words():
    cfg = harness.NUMBERS_CFG.read_text(encoding="utf-8")
    assert _sanitize("loss 1.234 at step 300", cfg) == _sanitize("loss 1.237 at step 300", cfg)
    assert _sanitize("loss 1.234 at step 300", cfg) != _sanitize("lost 1.234 at step 300", cfg)


@pytest.mark.parametrize("stored, fresh", [
    ("[0.5    0.5   ]", "[0.5  0.25]"),             # numpy pads to the widest number
    ("[ 0.1 -0.2]", "[0.1 0.2]"),                    # ... and leaves room for a sign
    ("14,053 stories", "9,998 stories"),
    ("largest difference 0.0e+00", "largest difference 1.2e-07"),
    (" n=16: 64.9% (60%-71%)", " n=16: 100.0% (9%-100%)"),
])
def test_numbers_mask_ignores_width_and_format(stored, fresh):
    cfg = harness.NUMBERS_CFG.read_text(encoding="utf-8")
    assert _sanitize(stored, cfg) == _sanitize(fresh, cfg)


@pytest.mark.parametrize("stored, fresh", [("perplexity 4.87", "perplexity nan"),
                                           ("Alice saw a dog.", "Alice saw a cat."),
                                           ("[1, 2, 3]", "[1, 2]")])
def test_numbers_mask_still_sees_everything_else(stored, fresh):
    cfg = harness.NUMBERS_CFG.read_text(encoding="utf-8")
    assert _sanitize(stored, cfg) != _sanitize(fresh, cfg)


# --- the choice of mode --------------------------------------------------------------------------

@pytest.mark.parametrize("requested, reproduces, mode", [
    (None, True, "strict"), (None, False, "masked"), ("", False, "masked"),
    ("lax", True, "lax"), (" Strict ", False, "strict"), ("masked", True, "masked"),
])
def test_mode_is_strict_only_where_the_cpu_reproduces(requested, reproduces, mode):
    assert harness.nbval_digits_mode(requested, reproduces) == mode


def test_mode_rejects_an_unknown_request():
    with pytest.raises(ValueError, match="LMBOOK_NBVAL_DIGITS must be one of strict, masked, lax"):
        harness.nbval_digits_mode("loose", False)
    with pytest.raises(TypeError, match="reproduces must be a bool"):
        harness.nbval_digits_mode(None, "yes")


def test_header_is_one_line_and_only_when_not_strict():
    reason = reproduces_stored_outputs("arm64")[1]
    assert harness.nbval_digits_header("masked", reason) == ARM_LINE
    assert harness.nbval_digits_header("strict", "this CPU (x86_64, AVX2) reproduces ...") is None
    assert harness.nbval_digits_header("lax", reason, "lax").startswith(
        "nbval: LMBOOK_NBVAL_DIGITS=lax; checking that every cell runs")
    for mode in harness.DIGITS_MODES:
        assert "\n" not in (harness.nbval_digits_header(mode, reason, mode) or "")


@pytest.mark.parametrize("mode", ["masked", "lax"])
def test_masked_and_lax_modes_append_the_mask_to_the_sanitize_file(tmp_path, mode):
    base = tmp_path / "base.cfg"
    base.write_text("regex: \\d+ ms\nreplace: TIME\n", encoding="utf-8")
    option = SimpleNamespace(nbval_sanitize_with=str(base), nbval_lax=False)
    harness.apply_nbval_digits_mode(option, mode, tmp_path)
    rules = get_sanitize_patterns(Path(option.nbval_sanitize_with).read_text(encoding="utf-8"))
    numbers = get_sanitize_patterns(harness.NUMBERS_CFG.read_text(encoding="utf-8"))
    assert rules == [("\\d+ ms", "TIME"), *numbers]  # the base rules first: they may match digits
    assert option.nbval_lax is (mode == "lax")


def test_strict_mode_leaves_nbval_alone(tmp_path):
    option = SimpleNamespace(nbval_sanitize_with="tests/nbval_sanitize.cfg", nbval_lax=False)
    harness.apply_nbval_digits_mode(option, "strict", tmp_path)
    assert option == SimpleNamespace(nbval_sanitize_with="tests/nbval_sanitize.cfg",
                                     nbval_lax=False)


def test_the_test_run_computes_on_the_cpu():
    assert os.environ["LMBOOK_DEVICE"] == "cpu"


# --- the whole path, through pytest and nbval, on a one-cell notebook ----------------------------

def _notebook_storing(path: Path, stored: str, code: str) -> None:
    cell = nbformat.v4.new_code_cell(code, execution_count=1)  # nbval skips unrun cells
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=stored)]
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)


@pytest.mark.parametrize("digits, passed", [("masked", 2), ("strict", 0)])  # of 3
def test_nbval_run_with_masked_numbers(pytester, monkeypatch, digits, passed):
    """A stored "loss 1.234" against a fresh "loss 1.237" passes with the numbers masked and
    fails digit for digit; a changed word fails either way."""
    (pytester.path / "tests").mkdir()
    shutil.copy(harness.NUMBERS_CFG, pytester.path / "tests" / harness.NUMBERS_CFG.name)
    shutil.copy(ROOT / "conftest.py", pytester.path / "conftest.py")
    _notebook_storing(pytester.path / "digits.ipynb", "loss 1.234 at step 300\n",
                      "print('loss 1.237 at step 300')")
    _notebook_storing(pytester.path / "digits_too.ipynb", "[0.5  0.25]\n", "print('[0.5  0.26]')")
    _notebook_storing(pytester.path / "words.ipynb", "loss 1.234 at step 300\n",
                      "print('lost 1.234 at step 300')")
    monkeypatch.setenv("LMBOOK_NBVAL_DIGITS", digits)
    result = pytester.runpytest_inprocess("--nbval", "--nbval-current-env",
                                          "-p", "no:cacheprovider")
    result.assert_outcomes(passed=passed, failed=3 - passed)
    header = [line for line in result.outlines if line.startswith("nbval: ")]
    assert header == [f"nbval: LMBOOK_NBVAL_DIGITS={digits}; comparing "
                      + ("outputs with numbers masked" if digits == "masked" else "every digit")]


def _notebook_from(path: Path, stored: str, code: str, outputs_cpu: str) -> None:
    _notebook_storing(path, stored, code)
    nb = nbformat.read(path, as_version=4)
    nb.metadata["lmbook"] = {"outputs_cpu": outputs_cpu}
    nbformat.write(nb, path)


@pytest.mark.skipif(not harness.REPRODUCES or harness.cpu_vendor() is None,
                    reason="needs an x86 AVX2 CPU whose vendor_id can be read")
def test_a_notebook_from_another_makers_cpu_runs_lax(pytester, monkeypatch):
    """In a strict run, a chapter whose stored outputs another maker's CPU computed must still run
    every cell, but its digits and words are not compared; one from this maker's CPU is compared
    digit for digit; the summary names the first."""
    shutil.copy(ROOT / "conftest.py", pytester.path / "conftest.py")
    this = harness.cpu_vendor()
    other = "AuthenticAMD" if this == "GenuineIntel" else "GenuineIntel"
    _notebook_from(pytester.path / "theirs.ipynb", "loss 1.234\n", "print('loss 1.237')", other)
    _notebook_from(pytester.path / "ours.ipynb", "loss 1.234\n", "print('loss 1.237')", this)
    _notebook_from(pytester.path / "broken.ipynb", "loss 1.234\n", "raise RuntimeError('no')", other)
    monkeypatch.delenv("LMBOOK_NBVAL_DIGITS", raising=False)   # the automatic choice: strict on this CPU
    result = pytester.runpytest_inprocess("--nbval", "--nbval-current-env", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)   # theirs passes; ours differs; broken raises
    outcomes = {r.nodeid.split(".ipynb")[0]: r.outcome for r in result.reprec.getreports("pytest_runtest_logreport")
                if r.when == "call"}
    assert outcomes == {"theirs": "passed", "ours": "failed", "broken": "failed"}
    summary = [line for line in result.outlines if line.startswith("nbval: run in lax mode")]
    assert len(summary) == 1 and "theirs" in summary[0] and "broken" in summary[0] and "ours (" not in summary[0]
