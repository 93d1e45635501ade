"""The student edition: the chapters with the exercises' solutions taken out, to hand out to a class.

In the chapters every exercise is a MyST ``:::{exercise}`` cell followed by its starter (a stub and
its check call, ``exercises.check_xxx(...)``, which prints "❌ ..." for the stub), and, for the
exercises that have one, a solution gated by sphinx-exercise's markers: a markdown cell that starts
with ``:::{solution-start}``, the solution's cells, and a markdown cell that starts with
``:::{solution-end}``. The student edition is the same notebooks without every cell from a
``solution-start`` marker through its ``solution-end`` marker; every other cell is kept as it is,
with its stored outputs (the chapter's figures and numbers) and its id.

For teachers:

1. ``make student`` (or ``python -m lmbook_utils.student --chapters book/chapters --out student
   [--book book]``) writes ``student/*.ipynb``, one notebook per chapter under the same file
   name, and with ``--book`` the HTML book without the solutions, ``student/html/`` (built from
   the notebooks' stored outputs: nothing is executed; open ``student/html/index.html``).
2. Hand out the notebooks (and the HTML book to read). The students fill in the stubs and run the
   check cells until they print "✅ ..."; they need the book's environment (``make env``), since
   the notebooks import ``lmbook_utils``.
3. Collect the notebooks they send back into one folder, one ``.ipynb`` per student, and run
   ``make grade SUBMISSIONS=path/to/folder`` (lmbook_utils/grading.py): it runs every submission
   offline in a fresh kernel and writes ``path/to/folder/grades.csv``, the status of each check
   call (``passed``, ``not yet``, ``error``, ...). A notebook handed back untouched grades
   ``not yet`` on the exercises with a stub.

The solutions stay in the book itself (``make book``), behind a dropdown; only this edition leaves
them out. Open-ended exercises have no solution and are handed out as they are.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
from nbformat import NotebookNode

__all__ = ["marker", "solution_gates", "strip_solutions", "write_student_edition", "prepare_student_book",
           "build_student_book", "main"]

# A MyST colon fence (three colons or more) opening one of these directives, at the start of a
# markdown cell.
_MARKER = re.compile(r":{3,}\{(exercise|solution-start|solution-end)\}")
EXERCISE, START, END = "exercise", "solution-start", "solution-end"

# What is not copied from the book folder (build outputs and caches).
_BOOK_IGNORE = shutil.ignore_patterns("_build", ".ipynb_checkpoints", "__pycache__", ".jupyter_cache")


def marker(cell) -> str | None:
    """"exercise", "solution-start" or "solution-end" when `cell` is a markdown cell whose source
    starts with that directive (``:::{exercise}``, ...), else None."""
    if cell.get("cell_type") != "markdown":
        return None
    found = _MARKER.match(cell.get("source", "").lstrip())
    return found.group(1) if found else None


def solution_gates(nb: NotebookNode, name: str | None = None) -> list[tuple[int, int]]:
    """The solution gates of `nb`: (start, end) cell indices of each ``solution-start`` marker and
    its ``solution-end`` marker, in order.

    Raises ValueError naming the cell index (and the notebook `name`, if given) for a
    ``solution-end`` without a start, a ``solution-start`` inside an open gate (gates do not nest)
    or a ``solution-start`` without an end."""
    where = f"{name}: " if name else ""
    gates, start = [], None
    for index, cell in enumerate(nb.cells):
        kind = marker(cell)
        if kind == START:
            if start is not None:
                raise ValueError(f"{where}notebook cell {index}: a solution-start inside the solution gate "
                                 f"opened at cell {start} (solution gates do not nest; close it first "
                                 "with a :::{solution-end} cell)")
            start = index
        elif kind == END:
            if start is None:
                raise ValueError(f"{where}notebook cell {index}: a solution-end without a solution-start "
                                 "before it")
            gates.append((start, index))
            start = None
    if start is not None:
        raise ValueError(f"{where}notebook cell {start}: a solution-start without a solution-end after it")
    return gates


def strip_solutions(nb: NotebookNode, name: str | None = None) -> NotebookNode:
    """A copy of `nb` without its solutions: every cell from a ``solution-start`` marker through its
    ``solution-end`` marker, both included, is left out; every other cell is kept as it is (source,
    outputs, metadata, id), as are the notebook's metadata. `nb` is not modified.

    Raises ValueError naming the cell index (and the notebook `name`, if given) for an unmatched
    or nested marker (see ``solution_gates``)."""
    gated = {i for start, end in solution_gates(nb, name) for i in range(start, end + 1)}
    student = copy.deepcopy(nb)
    student.cells = [cell for i, cell in enumerate(student.cells) if i not in gated]
    return student


# --- folders ---------------------------------------------------------------------------------

def _folder(path, name: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{name} {str(path)!r} does not exist")
    if not path.is_dir():
        raise NotADirectoryError(f"{name} {str(path)!r} is not a folder")
    return path


def _notebooks(folder: Path, name: str) -> list[Path]:
    """The ``*.ipynb`` files of `folder` (not its subfolders'; hidden files left out), by name."""
    found = sorted((p for p in folder.glob("*.ipynb") if p.is_file() and not p.name.startswith(".")),
                   key=lambda p: p.name)
    if not found:
        raise ValueError(f"{name} {str(folder)!r} holds no notebook (*.ipynb)")
    return found


def _out_folder(out_dir, name: str, *sources: tuple[Path, str]) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{name} {str(out)!r} is not a folder")
    for source, source_name in sources:
        if out.resolve() == source.resolve():
            raise ValueError(f"{name} {str(out)!r} is {source_name}: the student edition would "
                             "overwrite the originals")
    return out


def _write_edition(chapters_dir, out_dir, chapters_name: str, out_name: str) -> list[tuple[Path, int, int]]:
    """Write the student edition; (written path, solutions removed, cells removed) per notebook."""
    chapters = _folder(chapters_dir, chapters_name)
    out = _out_folder(out_dir, out_name, (chapters, chapters_name))
    stripped = []
    for path in _notebooks(chapters, chapters_name):  # every notebook first: all or nothing
        nb = nbformat.read(path, as_version=4)
        student = strip_solutions(nb, path.name)
        stripped.append((path.name, student, len(solution_gates(nb)), len(nb.cells) - len(student.cells)))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, student, n_gates, n_cells in stripped:
        nbformat.write(student, out / file_name)
        written.append((out / file_name, n_gates, n_cells))
    return written


def write_student_edition(chapters_dir, out_dir) -> list[Path]:
    """Write the student edition of every notebook (``*.ipynb``) of `chapters_dir` into `out_dir`
    (created if need be), under the same file names; returns the paths written, in name order.

    Every notebook is read and stripped before any is written, so a bad marker (ValueError naming
    the notebook and the cell) writes nothing. Raises FileNotFoundError or NotADirectoryError
    naming `chapters_dir` or `out_dir`, and ValueError when `chapters_dir` holds no notebook or is
    `out_dir`."""
    return [path for path, _, _ in _write_edition(chapters_dir, out_dir, "chapters_dir", "out_dir")]


# --- the HTML book ---------------------------------------------------------------------------

def _book_folder(book_dir, name: str) -> Path:
    book = _folder(book_dir, name)
    for required in ("_config.yml", "_toc.yml"):
        if not (book / required).is_file():
            raise FileNotFoundError(f"{name} {str(book)!r} is not a Jupyter Book folder: it has no {required}")
    return book


def _execution_off(config: Path) -> None:
    """Set execute.execute_notebooks to "off" in the _config.yml `config`; nothing else changes."""
    import yaml

    data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    execute = data.get("execute")
    if not isinstance(execute, dict):
        execute = data["execute"] = {}
    execute["execute_notebooks"] = "off"
    config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def prepare_student_book(book_dir, dest) -> Path:
    """Copy the book folder `book_dir` (its sources: not ``_build`` nor caches) to `dest`, which must
    not exist, replace every notebook in the copy by its student edition and turn notebook
    execution off in the copy's ``_config.yml`` (the book is built from the stored outputs).
    Returns `dest`. Nothing is written when a notebook has a bad marker (ValueError)."""
    book = _book_folder(book_dir, "book_dir")
    dest = Path(dest)
    notebooks = sorted(p for p in book.rglob("*.ipynb")
                       if not any(part in ("_build", ".ipynb_checkpoints") for part in p.relative_to(book).parts))
    stripped = {}
    for path in notebooks:
        relative = path.relative_to(book)
        stripped[relative] = strip_solutions(nbformat.read(path, as_version=4), str(relative))
    shutil.copytree(book, dest, ignore=_BOOK_IGNORE)
    for relative, student in stripped.items():
        nbformat.write(student, dest / relative)
    _execution_off(dest / "_config.yml")
    return dest


def _jupyter_book() -> Path:
    jb = Path(sys.executable).with_name("jupyter-book")  # the venv's, next to its python
    if not jb.is_file():
        raise FileNotFoundError(f"jupyter-book is not installed next to {sys.executable}: run `make env`")
    return jb


def build_student_book(book_dir, out_dir) -> Path:
    """Build the HTML book without the solutions into ``out_dir/html`` and return that folder.

    The book folder `book_dir` is copied into a temporary folder (see ``prepare_student_book``:
    its notebooks are replaced by their student editions and execution is off), built with this
    environment's ``jupyter-book build <copy> --all --warningiserror --keep-going``, and the
    resulting ``_build/html`` replaces ``out_dir/html``. The JavaScript assets are taken from the
    node_modules/ beside `book_dir` (unless LMBOOK_NODE_MODULES says otherwise), as for the book
    itself. Raises RuntimeError when the build fails (its messages are printed as it runs);
    ``out_dir/html`` is then left as it was."""
    book = _book_folder(book_dir, "book_dir")
    out = _out_folder(out_dir, "out_dir", (book, "book_dir"))
    jb = _jupyter_book()
    env = dict(os.environ)
    env.setdefault("LMBOOK_NODE_MODULES", str(book.resolve().parent / "node_modules"))
    with tempfile.TemporaryDirectory(prefix="lmbook-student-") as tmp:
        source = prepare_student_book(book, Path(tmp) / "book")
        cmd = [str(jb), "build", str(source), "--all", "--warningiserror", "--keep-going"]
        result = subprocess.run(cmd, cwd=source, env=env, check=False)
        html = source / "_build" / "html"
        if result.returncode != 0:
            raise RuntimeError(f"the student book's build failed (jupyter-book exited with status "
                               f"{result.returncode}); its messages are above")
        if not (html / "index.html").is_file():
            raise RuntimeError(f"jupyter-book wrote no {html / 'index.html'}")
        target = out / "html"
        out.mkdir(parents=True, exist_ok=True)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        shutil.copytree(html, target)
    return target


# --- command line ----------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lmbook_utils.student",
        description="Write the student edition of the chapters: the notebooks without the exercises' "
                    "solutions (the cells from each :::{solution-start} cell through its "
                    ":::{solution-end} cell), and with --book the HTML book without them.")
    parser.add_argument("--chapters", required=True, metavar="DIR",
                        help="the folder of chapter notebooks (*.ipynb), e.g. book/chapters")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="where to write the student notebooks (same file names) and, with --book, html/")
    parser.add_argument("--book", metavar="DIR",
                        help="also build the HTML book of this book folder (e.g. book), solutions "
                             "removed from all its notebooks, into OUT/html, from the stored outputs")
    args = parser.parse_args(argv)
    try:
        chapters = _folder(args.chapters, "--chapters")
        book = _book_folder(args.book, "--book") if args.book else None
        sources = [(chapters, "--chapters")] + ([(book, "--book")] if book else [])
        out = _out_folder(args.out, "--out", *sources)
        _notebooks(chapters, "--chapters")
        if book:
            _jupyter_book()
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    try:
        written = _write_edition(chapters, out, "--chapters", "--out")
    except ValueError as exc:  # a bad marker: nothing was written
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    for path, n_gates, n_cells in written:
        print(f"wrote {path}: {n_gates} solution{'s' if n_gates != 1 else ''} removed "
              f"({n_cells} cell{'s' if n_cells != 1 else ''})")
    if book:
        try:
            html = build_student_book(book, out)
        except (ValueError, RuntimeError) as exc:
            parser.exit(1, f"{parser.prog}: error: {exc}\n")
        print(f"wrote {html}: open {html / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
