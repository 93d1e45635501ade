"""The student edition (lmbook_utils/student.py): the chapters without the solutions' cells.

Fast: small synthetic notebooks, and static checks of the real chapters (nothing executed).
Slow (marked `slow`; select them with `-k execute` and `-k build`): the student notebooks run
and graded, and the student HTML book built.
"""

from __future__ import annotations

import copy
import hashlib
import html
import json
import re
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell

from lmbook_utils.grading import NOT_YET, PASSED, check_calls, grade_folder
from lmbook_utils.student import (build_student_book, main, prepare_student_book, solution_gates,
                                  strip_solutions, write_student_edition)

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHAPTERS = sorted(p for p in (BOOK / "chapters").glob("*.ipynb") if not p.name.startswith("."))

# Old-style hidden solutions: a code cell with one of these tags outside every gate.
SOLUTION_TAGS = {"hide-cell", "solution"}


# --- synthetic notebooks ---------------------------------------------------------------------

def exercise(label: str, title: str) -> nbformat.NotebookNode:
    return new_markdown_cell(f":::{{exercise}} {title}\n:label: {label}\n\nWrite `f()`.\n:::")


def start(label: str, colons: str = ":::") -> nbformat.NotebookNode:
    return new_markdown_cell(f"{colons}{{solution-start}} {label}\n:class: dropdown\n{colons}")


def end(colons: str = ":::") -> nbformat.NotebookNode:
    return new_markdown_cell(f"{colons}{{solution-end}}\n{colons}")


def chapter() -> nbformat.NotebookNode:
    """A chapter with three exercises: one with a starter and a gated solution of two code cells
    (and a markdown cell), one open-ended (no solution), one with a solution in a four-colon gate."""
    figure = new_code_cell("plt.plot([1, 2])", execution_count=1, outputs=[
        new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})])
    starter = new_code_cell("def f():\n    ...\n\nexercises.check_f(f)", execution_count=2,
                            outputs=[new_output("stream", name="stdout", text="❌ not yet: f returns None\n")],
                            metadata={"tags": ["starter"]})
    cells = [
        new_markdown_cell("# A chapter\n\nSolutions are gated with `:::{solution-start}`."),  # 0
        figure,                                                                                 # 1
        exercise("ch-ex1", "Return 42 (easy)"),                                                 # 2
        starter,                                                                                # 3
        start("ch-ex1"),                                                                        # 4
        new_code_cell("def f():\n    return 42  # SOLUTION-ONE"),                               # 5
        new_markdown_cell("The check passes:"),                                                 # 6
        new_code_cell("exercises.check_f(f)  # SOLUTION-TWO", outputs=[
            new_output("stream", name="stdout", text="✅ right\n")]),                           # 7
        end(),                                                                                  # 8
        exercise("ch-ex2", "Think about it (open-ended)"),                                      # 9
        new_code_cell('print(":::{solution-start} not a marker: a code cell")'),                # 10
        new_raw_cell(":::{solution-end}\n:::"),                                                 # 11 (raw: no marker)
        exercise("ch-ex3", "Another one (medium)"),                                             # 12
        start("ch-ex3", "::::"),                                                                # 13
        new_code_cell("g = 3  # SOLUTION-THREE"),                                               # 14
        end("::::"),                                                                            # 15
        new_markdown_cell("\n## The end"),                                                      # 16
    ]
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                            "language": "python"}})
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"
    return nb


KEPT = [0, 1, 2, 3, 9, 10, 11, 12, 16]


def test_strip_solutions_removes_exactly_the_gated_cells():
    nb = chapter()
    assert solution_gates(nb) == [(4, 8), (13, 15)]
    stripped = strip_solutions(nb)
    assert stripped.cells == [nb.cells[i] for i in KEPT]
    assert [c.id for c in stripped.cells] == [f"cell-{i}" for i in KEPT]
    assert stripped.cells[1].outputs == nb.cells[1].outputs  # the figure stays
    assert stripped.cells[3].outputs[0].text == "❌ not yet: f returns None\n"
    assert stripped.cells[3].metadata == {"tags": ["starter"]}
    assert stripped.metadata == nb.metadata
    assert (stripped.nbformat, stripped.nbformat_minor) == (nb.nbformat, nb.nbformat_minor)
    assert isinstance(stripped, nbformat.NotebookNode)
    nbformat.validate(stripped)
    text = json.dumps(stripped)
    for gone in ("SOLUTION-ONE", "SOLUTION-TWO", "SOLUTION-THREE", "✅", "The check passes"):
        assert gone not in text


def test_strip_solutions_leaves_its_argument_alone():
    nb = chapter()
    before = copy.deepcopy(nb)
    stripped = strip_solutions(nb)
    assert nb == before
    stripped.cells[0].source = "changed"
    assert nb.cells[0].source == before.cells[0].source  # a copy, not a view


def test_a_notebook_without_gates_is_kept_whole():
    nb = chapter()
    nb.cells = [c for i, c in enumerate(nb.cells) if i in KEPT]
    assert solution_gates(nb) == []
    stripped = strip_solutions(nb)
    assert stripped == nb and stripped is not nb


@pytest.mark.parametrize("cells, index, says", [
    ([new_markdown_cell("# t"), start("a"), new_code_cell("x = 1")], 1, "without a solution-end"),
    ([new_markdown_cell("# t"), new_code_cell("x = 1"), end()], 2, "without a solution-start"),
    ([start("a"), new_code_cell("x = 1"), start("b"), new_code_cell("y = 2"), end()], 2, "do not nest"),
    ([start("a"), end(), new_code_cell("x = 1"), end()], 3, "without a solution-start"),
    ([start("a"), end(), start("b")], 2, "without a solution-end"),
])
def test_bad_markers_name_the_cell(cells, index, says):
    nb = new_notebook(cells=cells)
    with pytest.raises(ValueError, match=rf"^ch\.ipynb: notebook cell {index}: .*{says}"):
        strip_solutions(nb, "ch.ipynb")
    with pytest.raises(ValueError, match=rf"^notebook cell {index}: "):
        strip_solutions(nb)


def digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def chapters_dir(tmp_path) -> Path:
    folder = tmp_path / "chapters"
    folder.mkdir()
    nbformat.write(chapter(), folder / "01_b.ipynb")
    plain = chapter()
    plain.cells = [c for i, c in enumerate(plain.cells) if i in KEPT]
    nbformat.write(plain, folder / "00_a.ipynb")
    nbformat.write(chapter(), folder / ".hidden.ipynb")
    (folder / "notes.md").write_text("# not a notebook\n", encoding="utf-8")
    (folder / "sub").mkdir()
    nbformat.write(chapter(), folder / "sub" / "deeper.ipynb")
    return folder


def test_write_student_edition(chapters_dir, tmp_path):
    before = digest(chapters_dir)
    out = tmp_path / "out" / "student"
    written = write_student_edition(chapters_dir, out)
    assert written == [out / "00_a.ipynb", out / "01_b.ipynb"]
    assert sorted(p.name for p in out.iterdir()) == ["00_a.ipynb", "01_b.ipynb"]
    for path in written:
        original = nbformat.read(chapters_dir / path.name, as_version=4)
        assert nbformat.read(path, as_version=4) == strip_solutions(original)
    assert len(nbformat.read(out / "01_b.ipynb", as_version=4).cells) == len(KEPT)
    assert digest(chapters_dir) == before  # the chapters are never modified


def test_write_student_edition_writes_nothing_for_a_bad_marker(chapters_dir, tmp_path):
    bad = new_notebook(cells=[new_markdown_cell("# t"), start("a"), new_code_cell("x = 1")])
    nbformat.write(bad, chapters_dir / "02_bad.ipynb")
    out = tmp_path / "student"
    with pytest.raises(ValueError, match=r"^02_bad\.ipynb: notebook cell 1: "):
        write_student_edition(chapters_dir, out)
    assert not out.exists()


def test_write_student_edition_rejects_bad_folders(chapters_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="chapters_dir .*does not exist"):
        write_student_edition(tmp_path / "missing", tmp_path / "out")
    with pytest.raises(NotADirectoryError, match="chapters_dir .*is not a folder"):
        write_student_edition(chapters_dir / "notes.md", tmp_path / "out")
    with pytest.raises(NotADirectoryError, match="out_dir .*is not a folder"):
        write_student_edition(chapters_dir, chapters_dir / "notes.md")
    with pytest.raises(ValueError, match="out_dir .*would overwrite the originals"):
        write_student_edition(chapters_dir, chapters_dir)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="chapters_dir .*holds no notebook"):
        write_student_edition(tmp_path / "empty", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_writes_the_student_notebooks(chapters_dir, tmp_path, capsys):
    out = tmp_path / "student"
    assert main(["--chapters", str(chapters_dir), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["00_a.ipynb", "01_b.ipynb"]
    assert capsys.readouterr().out.splitlines() == [
        f"wrote {out / '00_a.ipynb'}: 0 solutions removed (0 cells)",
        f"wrote {out / '01_b.ipynb'}: 2 solutions removed (8 cells)",
    ]


@pytest.mark.parametrize("args, says", [
    (["--chapters", "{tmp}/missing", "--out", "{tmp}/o"], "--chapters '{tmp}/missing' does not exist"),
    (["--chapters", "{chapters}/notes.md", "--out", "{tmp}/o"], "--chapters '{chapters}/notes.md' is not a folder"),
    (["--chapters", "{chapters}", "--out", "{tmp}/o", "--book", "{tmp}/nobook"],
     "--book '{tmp}/nobook' does not exist"),
    (["--chapters", "{chapters}", "--out", "{tmp}/o", "--book", "{chapters}"],
     "--book '{chapters}' is not a Jupyter Book folder: it has no _config.yml"),
    (["--chapters", "{chapters}", "--out", "{chapters}"], "--out '{chapters}' is --chapters"),
    (["--chapters", "{chapters}", "--out", "{chapters}/notes.md"], "--out '{chapters}/notes.md' is not a folder"),
    (["--chapters", "{chapters}/sub/..", "--out", "{tmp}/o"], None),  # fine: the control case
])
def test_cli_names_the_bad_argument(chapters_dir, tmp_path, capsys, args, says):
    fill = {"tmp": str(tmp_path), "chapters": str(chapters_dir)}
    argv = [a.format(**fill) for a in args]
    if says is None:
        assert main(argv) == 0
        return
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert f"error: {says.format(**fill)}" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_reports_a_bad_marker(chapters_dir, tmp_path, capsys):
    bad = new_notebook(cells=[new_markdown_cell("# t"), new_code_cell("x = 1"), end()])
    nbformat.write(bad, chapters_dir / "02_bad.ipynb")
    with pytest.raises(SystemExit) as exit_:
        main(["--chapters", str(chapters_dir), "--out", str(tmp_path / "o")])
    assert exit_.value.code == 1
    assert "error: 02_bad.ipynb: notebook cell 2: a solution-end without a solution-start" \
        in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_prepare_a_synthetic_student_book(chapters_dir, tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    (book / "_config.yml").write_text("# A comment\ntitle: T\nexecute:\n  execute_notebooks: force\n"
                                      "  timeout: 600\nparse:\n  myst_enable_extensions: [colon_fence]\n",
                                      encoding="utf-8")
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\n", encoding="utf-8")
    (book / "intro.md").write_text("# Intro\n", encoding="utf-8")
    (book / "_build" / "html").mkdir(parents=True)
    (book / "_build" / "html" / "stale.html").write_text("old", encoding="utf-8")
    (book / "chapters").mkdir()
    nbformat.write(chapter(), book / "chapters" / "01_b.ipynb")
    before = digest(book)
    copied = prepare_student_book(book, tmp_path / "copy")
    assert copied == tmp_path / "copy"
    assert sorted(digest(copied)) == ["_config.yml", "_toc.yml", "chapters/01_b.ipynb", "intro.md"]
    assert nbformat.read(copied / "chapters" / "01_b.ipynb", as_version=4) == strip_solutions(chapter())
    assert yaml.safe_load((copied / "_config.yml").read_text(encoding="utf-8")) == {
        "title": "T", "execute": {"execute_notebooks": "off", "timeout": 600},
        "parse": {"myst_enable_extensions": ["colon_fence"]}}
    assert digest(book) == before
    (book / "_config.yml").write_text("title: T\n", encoding="utf-8")  # no execute section yet
    copied = prepare_student_book(book, tmp_path / "copy2")
    assert yaml.safe_load((copied / "_config.yml").read_text(encoding="utf-8")) == {
        "title": "T", "execute": {"execute_notebooks": "off"}}


# --- the real chapters, statically ------------------------------------------------------------
# An independent reading of the markers (not the module's), so that the two can disagree.

START_RE = re.compile(r"\s*:{3,}\{solution-start\}")
END_RE = re.compile(r"\s*:{3,}\{solution-end\}")
EXERCISE_RE = re.compile(r"\s*:{3,}\{exercise\}")


def is_(pattern: re.Pattern, cell) -> bool:
    return cell.cell_type == "markdown" and pattern.match(cell.source) is not None


def gated(nb) -> set[int]:
    """The indices of the cells inside a solution gate, markers included."""
    inside, open_at = set(), None
    for i, cell in enumerate(nb.cells):
        if is_(START_RE, cell):
            assert open_at is None, f"cell {i}: a solution-start inside the gate opened at cell {open_at}"
            open_at = i
        if open_at is not None:
            inside.add(i)
        if is_(END_RE, cell):
            assert open_at is not None, f"cell {i}: a solution-end without a solution-start"
            open_at = None
    assert open_at is None, f"cell {open_at}: a solution-start without a solution-end"
    return inside


def norm(source: str) -> str:
    return source.strip()


def calls_of(cells) -> list[str]:
    return [name for c in cells if c.cell_type == "code" for name in check_calls(c.source)]


def test_there_are_chapters():
    assert len(CHAPTERS) >= 6, CHAPTERS


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_student_edition_of_the_chapter(path):
    nb = nbformat.read(path, as_version=4)
    inside = gated(nb)
    outside_cells = [c for i, c in enumerate(nb.cells) if i not in inside]
    stripped = strip_solutions(nb, path.name)
    assert stripped.cells == outside_cells
    assert stripped.metadata == nb.metadata
    # no source of a gated cell (unless the same source is also outside the gates)
    removed = {norm(nb.cells[i].source) for i in inside} - {norm(c.source) for c in outside_cells} - {""}
    leaked = removed & {norm(c.source) for c in stripped.cells}
    assert not leaked
    # the check calls outside the gates, and every exercise, are still there
    assert calls_of(stripped.cells) == calls_of(outside_cells)
    exercises = [c.source for c in nb.cells if is_(EXERCISE_RE, c)]
    assert [c.source for c in stripped.cells if is_(EXERCISE_RE, c)] == exercises
    assert not any(is_(START_RE, c) or is_(END_RE, c) for c in stripped.cells)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_solution_outside_the_gates(path):
    """Every solution is gated: no code cell tagged "hide-cell" or "solution" (the old way of
    hiding a solution) lies outside a solution-start ... solution-end gate."""
    nb = nbformat.read(path, as_version=4)
    inside = gated(nb)
    hidden = [f"cell {i} (tags {c.metadata.get('tags')}): {c.source.splitlines()[0] if c.source else ''!r}"
              for i, c in enumerate(nb.cells)
              if c.cell_type == "code" and i not in inside and SOLUTION_TAGS & set(c.metadata.get("tags", []))]
    assert not hidden, f"{path.name} has solution cells outside the gates:\n" + "\n".join(hidden)


def test_student_copy_of_the_real_book(tmp_path):
    copied = prepare_student_book(BOOK, tmp_path / "book")
    config = yaml.safe_load((BOOK / "_config.yml").read_text(encoding="utf-8"))
    config["execute"]["execute_notebooks"] = "off"
    assert yaml.safe_load((copied / "_config.yml").read_text(encoding="utf-8")) == config
    assert not (copied / "_build").exists()
    skipped = {"_build", "__pycache__", ".ipynb_checkpoints", ".jupyter_cache"}
    sources = {p.relative_to(BOOK) for p in BOOK.rglob("*")
               if p.is_file() and not skipped & set(p.relative_to(BOOK).parts)}
    assert {p.relative_to(copied) for p in copied.rglob("*") if p.is_file()} == sources
    for relative in sources:
        if relative.suffix == ".ipynb":
            original = nbformat.read(BOOK / relative, as_version=4)
            assert nbformat.read(copied / relative, as_version=4) == strip_solutions(original)
        elif relative.name != "_config.yml":
            assert (copied / relative).read_bytes() == (BOOK / relative).read_bytes(), relative


# --- slow: run the student notebooks, build the student book ---------------------------------

@pytest.mark.slow
def test_execute_student_notebooks(tmp_path):
    """Every student notebook runs; its stubs grade `not yet`, nothing errs or times out."""
    folder = tmp_path / "student"
    written = write_student_edition(BOOK / "chapters", folder)
    expected = {p.name: calls_of(nbformat.read(p, as_version=4).cells) for p in written}
    rows = grade_folder(folder, timeout=900)
    bad = [r for r in rows if r.status not in (NOT_YET, PASSED)]
    assert not bad, "\n".join(f"{r.submission} cell {r.cell} {r.check}: {r.status}: {r.message}" for r in bad)
    for name, calls in expected.items():
        mine = [r for r in rows if r.submission == name]
        assert [r.check for r in mine] == calls, name  # one row per check call, in order
        if calls:
            assert any(r.status == NOT_YET for r in mine), f"{name}: no stub left for the students"


def page_text(page: str) -> str:
    """A page's text: no tags, entities decoded, whitespace collapsed."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S | re.I)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", page)).split())


def site_texts(site: Path) -> dict[str, str]:
    """The text of every page of the built site, and of the notebooks it offers for download."""
    texts = {}
    for path in sorted(site.rglob("*")):
        if path.suffix == ".html":
            texts[str(path.relative_to(site))] = page_text(path.read_text(encoding="utf-8"))
        elif path.suffix == ".ipynb":
            nb = nbformat.read(path, as_version=4)
            parts = [c.source for c in nb.cells] + [json.dumps(c.get("outputs", []), ensure_ascii=False)
                                                    for c in nb.cells]
            texts[str(path.relative_to(site))] = " ".join("\n".join(parts).split())
        elif path.suffix in (".txt", ".md", ".py"):
            texts[str(path.relative_to(site))] = " ".join(path.read_text(encoding="utf-8").split())
    return texts


def plain_fragment(markdown: str) -> str:
    """The longest run of plain words of `markdown` (no markup, quotes or dashes, which Sphinx
    transforms), as it shows in the page's text."""
    pieces = re.split(r"[`*_$\[\](){}\\\"'<>|~\-–—.:,;!?]+", markdown)
    return max((" ".join(p.split()) for p in pieces), key=len)


@pytest.mark.slow
def test_build_student_book(tmp_path):
    site = build_student_book(BOOK, tmp_path / "out")
    assert site == tmp_path / "out" / "html"
    texts = site_texts(site)
    corpus = "\n".join(texts.values())
    notebooks = {p: nbformat.read(p, as_version=4) for p in CHAPTERS}
    kept = [c.source for nb in notebooks.values() for i, c in enumerate(nb.cells) if i not in gated(nb)]
    kept += [p.read_text(encoding="utf-8") for p in BOOK.glob("*.md")]
    kept_everywhere = " ".join("\n".join(kept).split())
    missing, leaked = [], []
    for path in CHAPTERS:
        nb = notebooks[path]
        page = texts.get(f"chapters/{path.stem}.html")
        assert page is not None, f"chapters/{path.stem}.html was not built"
        inside = gated(nb)
        for i, cell in enumerate(nb.cells):
            if i in inside:
                continue
            if is_(EXERCISE_RE, cell):  # the exercise's title and its longest plain sentence
                title = cell.source.strip().splitlines()[0].split("}", 1)[1]
                body = [line for line in cell.source.splitlines()[1:] if not line.startswith(":")]
                for fragment in (plain_fragment(title), plain_fragment("\n".join(body))):
                    if len(fragment) >= 8 and fragment not in page:
                        missing.append(f"{path.name} cell {i}: {fragment!r}")
            for name in check_calls(cell.source) if cell.cell_type == "code" else []:
                if f"exercises.{name}(" not in page:  # the control: kept code is found
                    missing.append(f"{path.name} cell {i}: exercises.{name}(")
        for i in sorted(inside):
            cell = nb.cells[i]
            if cell.cell_type != "code":
                continue
            lines = [" ".join(line.split()) for line in cell.source.splitlines()]
            lines = [line for line in lines if len(line) >= 12 and line not in kept_everywhere]
            if not lines:
                continue
            line = max(lines, key=len)  # a distinctive line of the removed cell
            leaked += [f"{path.name} cell {i}: {line!r} in {where}" for where, text in texts.items()
                       if line in text]
        kept_outputs = json.dumps([c.get("outputs", []) for i, c in enumerate(nb.cells) if i not in inside],
                                  ensure_ascii=False)
        kept_sources = "\n".join(c.source for i, c in enumerate(nb.cells) if i not in inside)
        if "✅" not in kept_outputs + kept_sources:  # a solution's verdict must not show either
            assert "✅" not in page, f"{path.name}: a ✅ verdict in the student page"
    assert not missing, "not in the student book:\n" + "\n".join(missing)
    assert not leaked, "solution code in the student book:\n" + "\n".join(leaked)
    assert "exercises.check_" in corpus
