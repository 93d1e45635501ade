"""Grading: run a folder of submitted notebooks and tabulate which exercise checks pass.

For teachers. Every chapter's exercises end in a check (``exercises.check_xxx(...)``) that prints
one verdict, "✅ ..." when the answer is right or "❌ ..." with what is still wrong. This module
runs each submitted notebook from top to bottom in a fresh kernel and reads those verdicts back:

1. Hand out the student edition of the chapters (`make student`, lmbook_utils/student.py: the
   chapters with the solutions removed) and collect the notebooks the students send back into one folder, one
   ``.ipynb`` file per student (``alice.ipynb``, ``bob.ipynb``, ...), together with any data
   file the notebooks read.
2. Run ``make grade SUBMISSIONS=path/to/folder`` (or ``python -m lmbook_utils.grading
   path/to/folder --out grades.csv [--timeout SECONDS] [--kernel python3]``). It prints one line
   per submission ("alice.ipynb: 2/3 checks passed (1 not yet)") and writes
   ``path/to/folder/grades.csv`` with one row per check call: submission, cell, check, status,
   message. The statuses are ``passed`` (✅), ``not yet`` (❌, with the check's hint),
   ``error`` (the cell raised: the exception's name and message), ``timed out`` (the notebook
   ran past its time limit in this cell), ``not run`` (a cell after a time-out or a crashed
   kernel), ``no verdict`` (the cell ran but printed neither mark) and ``unreadable`` (the file
   is not a notebook; one row, no cell). ``cell`` counts every cell from 0, markdown included.

It works offline: nothing is downloaded, the notebooks run in the book's own environment and
kernel. Each notebook runs in a copy of its folder (the submissions are never modified), with
``LMBOOK_DEVICE=cpu`` and the book's pinned CPU kernels (``repro.PINNED_CPU_ENV``), so every
student's numbers are computed the same way as the book's. A cell that fails does not stop the
rest (the checks after it are still graded), and each notebook has a time limit (``--timeout``,
600 s by default) on the running of its cells, the kernel's start aside: a notebook that runs
past it has its kernel killed, and grading goes on with the next one.

Two cautions. The students' code runs with your permissions: grade on a machine or an account
you do not mind them using. And the verdicts are read from what each cell printed, so a student
who prints a "✅" line by hand fools the table: look at the notebooks of surprising grades.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import tokenize
from collections.abc import Iterable
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import NamedTuple

__all__ = ["Row", "STATUSES", "CSV_COLUMNS", "DEFAULT_TIMEOUT", "grade_folder", "grade_notebook",
           "check_calls", "submissions", "kernel_env", "summary", "write_csv", "main"]

DEFAULT_TIMEOUT = 600.0  # seconds a notebook's cells may run in all; the chapters need <= 180 s
DEFAULT_KERNEL = "python3"
STARTUP_TIMEOUT = 60  # seconds the kernel may take to start (not counted in the time limit)
# nbclient's own per-cell limit is the time the notebook has left plus this margin: a backstop
# in case killing the kernel at the deadline fails (the kill is what enforces the limit).
BACKSTOP_S = 10.0

PASSED, NOT_YET, ERROR, TIMED_OUT, NOT_RUN, NO_VERDICT, UNREADABLE = (
    "passed", "not yet", "error", "timed out", "not run", "no verdict", "unreadable")
STATUSES = (PASSED, NOT_YET, ERROR, TIMED_OUT, NOT_RUN, NO_VERDICT, UNREADABLE)
_MARKS = {"✅ ": PASSED, "❌ ": NOT_YET}

# nbclient logs its own account of a time-out or a dead kernel; the rows say it already.
_quiet_log = logging.getLogger(__name__ + ".nbclient")
_quiet_log.setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class Row:
    """One check call of one submission: a row of the CSV."""

    submission: str  # the notebook's file name
    cell: int | None  # the cell's index (every cell counts, from 0); None for an unreadable file
    check: str  # the check's name, e.g. "check_toy_probability"; "" for an unreadable file
    status: str  # one of STATUSES
    message: str  # the check's message after its mark, or what went wrong; one line


CSV_COLUMNS = tuple(f.name for f in fields(Row))


# --- arguments -------------------------------------------------------------------------------

def _check_timeout(timeout, name: str = "timeout") -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def _check_kernel(kernel, name: str = "kernel") -> str:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    if not isinstance(kernel, str) or not kernel:
        raise ValueError(f"{name} must be the name of a Jupyter kernel such as 'python3', got {kernel!r}")
    manager = KernelSpecManager()
    try:
        manager.get_kernel_spec(kernel)
    except NoSuchKernel:
        known = ", ".join(sorted(manager.find_kernel_specs())) or "none"
        raise ValueError(f"{name}: there is no Jupyter kernel named {kernel!r} (installed: {known}); "
                         "`make env` installs the book's, python3") from None
    return kernel


def submissions(folder, name: str = "folder") -> list[Path]:
    """The notebooks in `folder` that are graded: its ``*.ipynb`` files (not its subfolders'),
    sorted by name; hidden files such as macOS's ``._alice.ipynb`` are left out.

    Raises FileNotFoundError, NotADirectoryError or ValueError (no notebook), naming `name`."""
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"{name} {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(f"{name} {str(folder)!r} is not a folder")
    found = sorted((p for p in folder.glob("*.ipynb") if p.is_file() and not p.name.startswith(".")),
                   key=lambda p: p.name)
    if not found:
        raise ValueError(f"{name} {str(folder)!r} holds no notebook (*.ipynb) to grade")
    return found


# --- reading a notebook ----------------------------------------------------------------------

_CALL = re.compile(r"\bexercises\s*\.\s*(check_\w+)\s*\(")


def check_calls(source: str) -> list[str]:
    """The names of the checks that a cell's code calls as ``exercises.check_xxx(``, in order;
    calls inside comments and strings do not count."""
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline)
                  if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT)]
    except (tokenize.TokenError, SyntaxError):  # e.g. IPython syntax the tokenizer rejects
        return _CALL.findall(source)
    return [c.string for a, b, c, d in zip(tokens, tokens[1:], tokens[2:], tokens[3:])
            if a.type == tokenize.NAME and a.string == "exercises" and b.string == "."
            and c.type == tokenize.NAME and c.string.startswith("check_") and d.string == "("]


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _exception(exc: BaseException) -> str:
    return _one_line(f"{type(exc).__name__}: {exc}")


def _verdicts(cell) -> list[tuple[str, str]]:
    """(status, message) of each ✅/❌ line the cell printed, in order."""
    text = "".join(out.get("text", "") for out in cell.get("outputs", [])
                   if out.get("output_type") == "stream" and out.get("name") == "stdout")
    found = []
    for line in text.splitlines():
        for mark, status in _MARKS.items():
            if line.startswith(mark):
                found.append((status, _one_line(line[len(mark):])))
    return found


def _raised(cell) -> str | None:
    """'Name: message' of the exception the cell raised, or None."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return _one_line(f"{out.get('ename', 'Error')}: {out.get('evalue', '')}")
    return None


# --- running a notebook ----------------------------------------------------------------------

class _Stop(NamedTuple):
    cell: int  # the cell that was running (or next to run) when the notebook stopped
    status: str  # TIMED_OUT or ERROR
    here: str  # the message of that cell's unfinished checks
    after: str  # the message of the checks in the cells after it (NOT_RUN)


def kernel_env() -> dict[str, str]:
    """The kernel's environment: this one, with the book's pinned CPU kernels and LMBOOK_DEVICE=cpu
    (overriding any other value: every submission is computed the same way)."""
    from .repro import DEVICE_ENV_VAR, PINNED_CPU_ENV  # imports torch, here only: once per run

    return {**os.environ, **PINNED_CPU_ENV, DEVICE_ENV_VAR: "cpu"}


def _kill(client, fired: threading.Event) -> None:
    """The watchdog: kill the kernel (its process group, so whatever it started dies too)."""
    fired.set()
    process = getattr(getattr(client.km, "provisioner", None), "process", None)
    if process is None:
        return  # not a local kernel: the per-cell backstop stops the notebook instead
    try:
        pgid = os.getpgid(process.pid) if hasattr(os, "getpgid") else None
        if pgid is not None and pgid != os.getpgid(0):  # never our own group
            os.killpg(pgid, signal.SIGKILL)
        else:
            process.kill()
    except OSError:
        pass  # already gone


def _run(nb, workdir: Path, timeout: float, kernel: str, env: dict[str, str]) -> _Stop | None:
    """Execute `nb` in place; None when every cell ran, else where and why it stopped."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    limit = f"the notebook ran past its {timeout:g} s time limit"
    deadline = math.inf

    def per_cell(_cell) -> float:
        return max(deadline - time.monotonic(), 0.0) + BACKSTOP_S

    client = NotebookClient(nb, kernel_name=kernel, allow_errors=True, timeout=int(timeout + BACKSTOP_S),
                            timeout_func=per_cell, interrupt_on_timeout=False, shutdown_kernel="immediate",
                            startup_timeout=STARTUP_TIMEOUT, log=_quiet_log,
                            resources={"metadata": {"path": str(workdir)}})
    code_cells = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    try:
        context = client.setup_kernel(env=env)
        context.__enter__()
    except Exception as exc:  # noqa: BLE001 -- whatever stops the kernel from starting is reported
        first = code_cells[0] if code_cells else 0
        why = f"the kernel did not start ({_exception(exc)})"
        return _Stop(first, ERROR, why, why)
    fired = threading.Event()
    deadline = time.monotonic() + timeout
    watchdog = threading.Timer(timeout, _kill, args=(client, fired))
    watchdog.daemon = True
    watchdog.start()
    stop = None
    try:
        for index in code_cells:
            if fired.is_set() or time.monotonic() >= deadline:
                stop = _Stop(index, TIMED_OUT, f"{limit} in this cell", f"{limit} in cell {index}")
                break
            try:
                client.execute_cell(nb.cells[index], index)
            except (CellTimeoutError, DeadKernelError) as exc:
                if fired.is_set() or isinstance(exc, CellTimeoutError):
                    stop = _Stop(index, TIMED_OUT, f"{limit} in this cell", f"{limit} in cell {index}")
                else:
                    stop = _Stop(index, ERROR, "the kernel died in this cell (it crashed, exited or ran "
                                               "out of memory)", f"the kernel died in cell {index}")
                break
            except Exception as exc:  # noqa: BLE001 -- one notebook must not stop the grading
                stop = _Stop(index, ERROR, f"grading stopped in this cell ({_exception(exc)})",
                             f"grading stopped in cell {index}")
                break
    finally:
        watchdog.cancel()
        try:
            context.__exit__(None, None, None)
        except Exception:  # noqa: BLE001 -- a kernel that is already dead cannot be shut down
            pass
    return stop


def grade_notebook(path, timeout: float = DEFAULT_TIMEOUT, *, kernel: str = DEFAULT_KERNEL) -> list[Row]:
    """Run the notebook at `path` and grade its check calls: one Row per call, in order.

    The notebook runs in a fresh `kernel`, in a temporary copy of its folder (the working
    directory, so that it finds its data files; the submission is never modified), with the
    environment of ``kernel_env()``. Its cells may run `timeout` seconds in all; then the kernel is
    killed. A file that is not a notebook gives one ``unreadable`` row.
    """
    path = Path(path)
    timeout = _check_timeout(timeout)
    kernel = _check_kernel(kernel)
    if not path.is_file():
        raise FileNotFoundError(f"path {str(path)!r} is not a file")
    return _grade(path, timeout, kernel, kernel_env())


def _grade(path: Path, timeout: float, kernel: str, env: dict[str, str]) -> list[Row]:
    import nbformat

    name = path.name
    try:
        nb = nbformat.read(path, as_version=4)
        calls = {i: check_calls(cell.source) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"}
    except Exception as exc:  # noqa: BLE001 -- not JSON, not a notebook, not UTF-8, unreadable
        return [Row(name, None, "", UNREADABLE, _exception(exc))]
    calls = {i: names for i, names in calls.items() if names}
    if not calls:
        return []
    for cell in nb.cells:  # the submission's own outputs must never count
        if cell.cell_type == "code":
            cell.outputs = []
    with tempfile.TemporaryDirectory(prefix="lmbook-grade-") as tmp:
        workdir = Path(tmp) / "submission"
        shutil.copytree(path.parent, workdir, symlinks=True,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        stop = _run(nb, workdir, timeout, kernel, env)

    rows = []
    for index, names in calls.items():
        cell = nb.cells[index]
        if stop is not None and index > stop.cell:
            rows += [Row(name, index, check, NOT_RUN, stop.after) for check in names]
            continue
        verdicts = _verdicts(cell)
        if stop is not None and index == stop.cell:
            unfinished = (stop.status, stop.here)
        else:
            raised = _raised(cell)
            unfinished = ((ERROR, raised) if raised else
                          (NO_VERDICT, "the cell ran but printed no ✅ or ❌ line for this check"))
        for k, check in enumerate(names):
            status, message = verdicts[k] if k < len(verdicts) else unfinished
            rows.append(Row(name, index, check, status, message))
    return rows


def grade_folder(folder, timeout: float = DEFAULT_TIMEOUT, *, kernel: str = DEFAULT_KERNEL) -> list[Row]:
    """Grade every notebook of `folder` (see ``submissions``), one after the other, in name order:
    the rows of ``grade_notebook`` for each, in one list."""
    timeout = _check_timeout(timeout)
    kernel = _check_kernel(kernel)
    paths = submissions(folder)
    env = kernel_env()
    return [row for path in paths for row in _grade(path, timeout, kernel, env)]


# --- reporting -------------------------------------------------------------------------------

def summary(name: str, rows: Iterable[Row]) -> str:
    """One line for the submission `name`: "alice.ipynb: 2/3 checks passed (1 not yet)"."""
    rows = [r for r in rows if r.submission == name]
    if any(r.status == UNREADABLE for r in rows):
        return f"{name}: unreadable ({rows[0].message})"
    if not rows:
        return f"{name}: no check calls found"
    passed = sum(r.status == PASSED for r in rows)
    others = [f"{n} {status}" for status in STATUSES[1:] if (n := sum(r.status == status for r in rows))]
    return f"{name}: {passed}/{len(rows)} checks passed" + (f" ({', '.join(others)})" if others else "")


def write_csv(rows: Iterable[Row], out) -> None:
    """Write `rows` to the CSV file `out` (UTF-8), with a header line: submission, cell, check,
    status, message."""
    with open(out, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow(["" if value is None else value for value in astuple(row)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lmbook_utils.grading",
        description="Run every submitted notebook (*.ipynb) of a folder, offline and with a time limit, "
                    "and write a CSV of which exercise checks each one passes.")
    parser.add_argument("folder", metavar="SUBMISSIONS_DIR", help="the folder of submitted notebooks")
    parser.add_argument("--out", metavar="CSV",
                        help="where to write the grades (default: SUBMISSIONS_DIR/grades.csv)")
    parser.add_argument("--timeout", metavar="SECONDS", type=float, default=DEFAULT_TIMEOUT,
                        help=f"how long each notebook's cells may run in all (default: {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--kernel", default=DEFAULT_KERNEL,
                        help=f"the Jupyter kernel to run them in (default: {DEFAULT_KERNEL}, the book's)")
    args = parser.parse_args(argv)
    try:
        _check_timeout(args.timeout, "--timeout")
        paths = submissions(args.folder, "SUBMISSIONS_DIR")
        out = Path(args.out) if args.out else Path(args.folder) / "grades.csv"
        if not out.parent.is_dir():
            raise FileNotFoundError(f"--out {str(out)!r}: its folder does not exist")
        kernel = _check_kernel(args.kernel, "--kernel")
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    env = kernel_env()
    rows: list[Row] = []
    for path in paths:
        graded = _grade(path, args.timeout, kernel, env)
        print(summary(path.name, graded), flush=True)
        rows += graded
    write_csv(rows, out)
    print(f"wrote {out}: {len(rows)} check{'s' if len(rows) != 1 else ''} of {len(paths)} "
          f"submission{'s' if len(paths) != 1 else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
