"""Settings for every test run, and for every notebook kernel nbval starts (kernels inherit this
process's environment).

* LMBOOK_DEVICE=cpu, always: the stored outputs are CPU outputs, so the chapters run on the CPU
  even where a GPU exists.
* On an x86-64 CPU with AVX2, the CPU kernels the stored outputs were computed with
  (lmbook_utils.repro.PINNED_CPU_ENV), and nbval compares every output digit for digit, in each
  chapter whose stored outputs this CPU's maker reproduces (its metadata["lmbook"]["outputs_cpu"],
  repro.reproduces_notebook). A chapter computed on another maker's CPU (Intel or AMD) trains
  to other last digits and figures; it runs in nbval's lax mode: every cell must run without an
  error, outputs are compared only where marked. The run's header and summary say which.
* On any other CPU (Apple silicon, ARM Linux, an x86 CPU without AVX2) the last digits cannot
  match. nbval still runs every chapter top to bottom and compares every output, with its
  numbers masked (tests/nbval_sanitize_numbers.cfg), and the run's header says so in one line.
  The kernels are not pinned there: torch warns that ATEN_CPU_CAPABILITY=avx2 is invalid on
  ARM, and the warning would become an output of its own.

LMBOOK_NBVAL_DIGITS overrides that choice, for a reader or a test:
  strict  compare every digit;
  masked  compare every output with its numbers masked;
  lax     nbval's lax mode: every cell must run without an error, and only the cells marked
          NBVAL_CHECK_OUTPUT are compared (numbers masked).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from lmbook_utils.repro import (DEVICE_ENV_VAR, OUTPUTS_CPU_KEY, cpu_vendor, pin_cpu_numerics,
                                reproduces_notebook, reproduces_stored_outputs)

DIGITS_ENV_VAR = "LMBOOK_NBVAL_DIGITS"
DIGITS_MODES = ("strict", "masked", "lax")
NUMBERS_CFG = Path(__file__).resolve().parent / "tests" / "nbval_sanitize_numbers.cfg"

_HEADER = pytest.StashKey[str]()
_MODE = pytest.StashKey[str]()
_LAX_NOTEBOOKS = pytest.StashKey[list]()
_TMPDIR = pytest.StashKey[Path]()

REPRODUCES, CPU_REASON = reproduces_stored_outputs()
os.environ[DEVICE_ENV_VAR] = "cpu"
if REPRODUCES:
    pin_cpu_numerics()


def nbval_digits_mode(requested: str | None, reproduces: bool) -> str:
    """How nbval compares outputs: "strict" where this CPU reproduces the stored outputs, else
    "masked"; `requested` (the value of $LMBOOK_NBVAL_DIGITS, None or "" when unset) wins."""
    if requested is not None and not isinstance(requested, str):
        raise TypeError(f"requested must be a str or None, got {type(requested).__name__}")
    if not isinstance(reproduces, bool):
        raise TypeError(f"reproduces must be a bool, got {type(reproduces).__name__}")
    choice = (requested or "").strip().lower()
    if not choice:
        return "strict" if reproduces else "masked"
    if choice not in DIGITS_MODES:
        raise ValueError(f"{DIGITS_ENV_VAR} must be one of {', '.join(DIGITS_MODES)} (or unset), "
                         f"got {requested!r}")
    return choice


def nbval_digits_header(mode: str, reason: str, requested: str | None = None) -> str | None:
    """The one line the test run prints about it, or None for the usual digit-for-digit run."""
    if mode not in DIGITS_MODES:
        raise ValueError(f"mode must be one of {', '.join(DIGITS_MODES)}, got {mode!r}")
    how = {"strict": "comparing every digit",
           "masked": "comparing outputs with numbers masked",
           "lax": "checking that every cell runs (nbval lax mode), outputs only where marked"}[mode]
    if (requested or "").strip():
        return f"nbval: {DIGITS_ENV_VAR}={mode}; {how}"
    return None if mode == "strict" else f"nbval: {reason}; {how}"


def masked_sanitize_rules(base_cfg: str | os.PathLike | None) -> str:
    """The sanitize file nbval reads in masked and lax mode: `base_cfg`'s rules (the
    --nbval-sanitize-with file, if any) first, as they may match numbers, then the masks."""
    parts = [] if base_cfg is None else [Path(base_cfg).read_text(encoding="utf-8")]
    parts.append(NUMBERS_CFG.read_text(encoding="utf-8"))
    return "\n".join(part.rstrip("\n") + "\n" for part in parts)


def apply_nbval_digits_mode(option, mode: str, workdir: Path) -> None:
    """Set nbval's options (`option` is pytest's config.option) for `mode`. nbval reads a single
    sanitize file, so in masked and lax mode the combined rules are written into `workdir`."""
    if mode not in DIGITS_MODES:
        raise ValueError(f"mode must be one of {', '.join(DIGITS_MODES)}, got {mode!r}")
    if mode == "strict":
        return
    combined = Path(workdir) / "nbval_sanitize_masked.cfg"
    combined.write_text(masked_sanitize_rules(option.nbval_sanitize_with), encoding="utf-8")
    option.nbval_sanitize_with = str(combined)
    if mode == "lax":
        option.nbval_lax = True


@pytest.hookimpl(trylast=True)  # after nbval's own pytest_configure, which settles its options
def pytest_configure(config: pytest.Config) -> None:
    option = config.option
    if not (getattr(option, "nbval", False) or getattr(option, "nbval_lax", False)):
        return
    requested = os.environ.get(DIGITS_ENV_VAR)
    try:
        mode = nbval_digits_mode(requested, REPRODUCES)
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    if mode != "strict":
        workdir = Path(tempfile.mkdtemp(prefix="lmbook-nbval-"))
        config.stash[_TMPDIR] = workdir
        apply_nbval_digits_mode(option, mode, workdir)
    # the per-chapter rule applies to the automatic choice; a requested mode wins everywhere
    config.stash[_MODE], config.stash[_LAX_NOTEBOOKS] = ("" if (requested or "").strip() else mode), []
    header = nbval_digits_header(mode, CPU_REASON, requested)
    if header:
        config.stash[_HEADER] = header


def notebook_outputs_cpu(path: str | os.PathLike) -> object:
    """The notebook's metadata["lmbook"]["outputs_cpu"], or None."""
    import json

    metadata = json.loads(Path(path).read_text(encoding="utf-8")).get("metadata", {})
    return metadata.get("lmbook", {}).get(OUTPUTS_CPU_KEY) if isinstance(metadata, dict) else None


def pytest_collectstart(collector: pytest.Collector) -> None:
    """In a strict run that LMBOOK_NBVAL_DIGITS did not ask for, a notebook whose stored outputs
    come from another maker's CPU is checked in lax mode (nbval reads `compare_outputs` when it
    collects the notebook's cells)."""
    config = collector.config
    if config.stash.get(_MODE, None) != "strict" or not hasattr(collector, "compare_outputs"):
        return
    path = getattr(collector, "path", None)
    if path is None or Path(path).suffix != ".ipynb":
        return
    ok, why = reproduces_notebook(notebook_outputs_cpu(path), cpu_vendor(), REPRODUCES)
    if not ok:
        collector.compare_outputs = False
        config.stash[_LAX_NOTEBOOKS].append(f"{Path(path).stem} ({why})")


def pytest_report_header(config: pytest.Config) -> str | None:
    return config.stash.get(_HEADER, None)


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    lax = config.stash.get(_LAX_NOTEBOOKS, [])
    if lax:
        terminalreporter.write_line("nbval: run in lax mode (every cell must run; outputs not compared "
                                    "digit for digit): " + "; ".join(lax))


def pytest_unconfigure(config: pytest.Config) -> None:
    workdir = config.stash.get(_TMPDIR, None)
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)
