"""The grading command runs a folder of submissions and records each check's verdict exactly.

The submissions are tiny notebooks written here with nbformat; they use chapter 00's checks,
which do not import torch, so each notebook runs in a second or two.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from lmbook_utils import exercises as ex
from lmbook_utils import grading
from lmbook_utils.grading import Row

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 5  # seconds per notebook: the looping one must be stopped after this

IMPORT = "import os\nfrom lmbook_utils import exercises"
RIGHT_P = 'exercises.check_toy_probability("Bob ate the cake.", 0.10 * 0.08 * 0.85 * 0.1)'
WRONG_APPLY = "exercises.check_apply_merges(lambda word, merges: list(word))"
RIGHT_APPLY = """from lmbook_utils.exercises.ch00_introduction import _apply as apply_merges  # the reference

exercises.check_apply_merges(apply_merges)"""
NOT_A_SENTENCE = 'exercises.check_toy_probability("not a sentence", 0.5)'


def write_notebook(path: Path, *sources: str) -> Path:
    """A notebook: a markdown title (cell 0), then one code cell per source (cells 1, 2, ...)."""
    nb = new_notebook(cells=[new_markdown_cell("# Exercises")] + [new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def verdicts_here(source: str) -> list[tuple[str, str]]:
    """(status, message) of each verdict the cell's code prints when run in this process."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(source, {"exercises": ex})  # noqa: S102 -- our own test source
    marks = {"✅ ": "passed", "❌ ": "not yet"}
    return [(marks[line[:2]], line[2:]) for line in out.getvalue().splitlines() if line[:2] in marks]


def raised_here(source: str) -> str:
    """'Name: message' of what the cell's code raises when run in this process."""
    with pytest.raises(Exception) as info, contextlib.redirect_stdout(io.StringIO()):
        exec(source, {"exercises": ex})  # noqa: S102
    return f"{info.type.__name__}: {info.value}"


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def classroom(tmp_path_factory):
    """A folder of submissions graded once:
    (folder, rows, seconds, pid of the looping kernel, digest before, digest after)."""
    folder = tmp_path_factory.mktemp("submissions")
    pidfile = tmp_path_factory.mktemp("pid") / "kernel.pid"
    (folder / "data.txt").write_text("42")
    # alice: all right; her notebook also checks the kernel's environment and working directory,
    # and tries to change the submission folder.
    write_notebook(folder / "alice.ipynb", IMPORT,
                   'assert os.environ["LMBOOK_DEVICE"] == "cpu", os.environ["LMBOOK_DEVICE"]\n'
                   'assert os.environ["MKL_CBWR"] == "AVX2,STRICT", os.environ["MKL_CBWR"]\n'
                   'assert open("data.txt").read() == "42"\n'
                   'open("data.txt", "w").write("changed"); open("scratch.txt", "w").write("x")\n' + RIGHT_P,
                   RIGHT_APPLY)
    # bob: a loop that never ends (cell 3), sorted before the others, which must still be graded
    write_notebook(folder / "bob_loops.ipynb",
                   IMPORT + f"\nopen({str(pidfile)!r}, 'w').write(str(os.getpid()))",
                   RIGHT_P,
                   "while True:\n    pass\n" + WRONG_APPLY,
                   "x = 1",
                   RIGHT_P)
    # carol: one check right, one not yet
    write_notebook(folder / "carol.ipynb", IMPORT, RIGHT_P, WRONG_APPLY)
    # dan: cells that raise before and at a check; the checks after them are still graded
    write_notebook(folder / "dan.ipynb", IMPORT,
                   'exercises.check_toy_probability("Bob ate the cake.", p)',
                   NOT_A_SENTENCE,
                   WRONG_APPLY + "\nexercises.check_learn_bpe(learn_bpe)",
                   '# exercises.check_learn_bpe(f) in a comment, and in a string:\n'
                   'print("exercises.check_learn_bpe(f)")\n' + RIGHT_P,
                   "if False:\n    exercises.check_learn_bpe(None)",
                   "x = 1")
    (folder / "eve.ipynb").write_text("this is not a notebook")
    (folder / "._alice.ipynb").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")  # hidden: skipped
    (folder / "notes.txt").write_text("not a notebook")
    (folder / "late").mkdir()
    write_notebook(folder / "late" / "frank.ipynb", IMPORT, RIGHT_P)  # a subfolder: not graded
    before = digest(folder)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LMBOOK_DEVICE", "mps")  # the grader must set cpu in the kernel
        mp.setenv("MKL_CBWR", "AUTO")
        # If killing the kernel at the time limit failed, nbclient's backstop would stop the loop
        # only after this long, and the elapsed-time assertion below would fail.
        mp.setattr(grading, "BACKSTOP_S", 120.0)
        start = time.monotonic()
        rows = grading.grade_folder(folder, timeout=TIMEOUT)
        seconds = time.monotonic() - start
    return folder, rows, seconds, int(pidfile.read_text()), before, digest(folder)


def rows_of(rows: list[Row], name: str) -> list[tuple]:
    return [(r.cell, r.check, r.status, r.message) for r in rows if r.submission == name]


def test_grades_every_submission_in_name_order(classroom):
    _, rows, *_ = classroom
    names = list(dict.fromkeys(r.submission for r in rows))
    assert names == ["alice.ipynb", "bob_loops.ipynb", "carol.ipynb", "dan.ipynb", "eve.ipynb"]


def test_all_right(classroom):
    _, rows, *_ = classroom
    assert rows_of(rows, "alice.ipynb") == [
        (2, "check_toy_probability", "passed", verdicts_here(RIGHT_P)[0][1]),
        (3, "check_apply_merges", "passed", verdicts_here(RIGHT_APPLY)[0][1]),
    ]
    assert all(not r.message.startswith("✅") and r.message for r in rows)


def test_one_check_wrong_gives_its_message(classroom):
    _, rows, *_ = classroom
    (status, message), = verdicts_here(WRONG_APPLY)
    assert status == "not yet"
    assert rows_of(rows, "carol.ipynb") == [
        (2, "check_toy_probability", "passed", verdicts_here(RIGHT_P)[0][1]),
        (3, "check_apply_merges", "not yet", message),
    ]
    assert grading.summary("carol.ipynb", rows) == "carol.ipynb: 1/2 checks passed (1 not yet)"


def test_errors_are_recorded_and_later_checks_still_graded(classroom):
    _, rows, *_ = classroom
    assert rows_of(rows, "dan.ipynb") == [
        (2, "check_toy_probability", "error", "NameError: name 'p' is not defined"),
        (3, "check_toy_probability", "error", raised_here(NOT_A_SENTENCE)),
        (4, "check_apply_merges", "not yet", verdicts_here(WRONG_APPLY)[0][1]),
        (4, "check_learn_bpe", "error", "NameError: name 'learn_bpe' is not defined"),
        (5, "check_toy_probability", "passed", verdicts_here(RIGHT_P)[0][1]),
        (6, "check_learn_bpe", "no verdict", "the cell ran but printed no ✅ or ❌ line for this check"),
    ]
    assert raised_here(NOT_A_SENTENCE).startswith("ValueError: ")
    assert grading.summary("dan.ipynb", rows) == \
        "dan.ipynb: 1/6 checks passed (1 not yet, 3 error, 1 no verdict)"


def test_a_notebook_that_loops_forever_times_out_and_grading_goes_on(classroom):
    _, rows, seconds, pid, *_ = classroom
    limit = f"the notebook ran past its {TIMEOUT} s time limit"
    assert rows_of(rows, "bob_loops.ipynb") == [
        (2, "check_toy_probability", "passed", verdicts_here(RIGHT_P)[0][1]),
        (3, "check_apply_merges", "timed out", f"{limit} in this cell"),
        (5, "check_toy_probability", "not run", f"{limit} in cell 3"),
    ]
    assert grading.summary("bob_loops.ipynb", rows) == \
        "bob_loops.ipynb: 1/3 checks passed (1 timed out, 1 not run)"
    # Stopped by killing the kernel at the limit, not by the (120 s) backstop; and the kernel is gone.
    assert seconds < 60, f"grading took {seconds:.0f} s"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_an_unreadable_file_gets_one_row(classroom):
    _, rows, *_ = classroom
    assert rows_of(rows, "eve.ipynb") == [
        (None, "", "unreadable", "NotJSONError: Notebook does not appear to be JSON: 'this is not a notebook'"),
    ]
    assert grading.summary("eve.ipynb", rows).startswith("eve.ipynb: unreadable (NotJSONError: ")


def test_submissions_are_never_modified(classroom):
    folder, _, _, _, before, after = classroom
    assert after == before
    assert (folder / "data.txt").read_text() == "42" and not (folder / "scratch.txt").exists()


def test_grade_notebook_matches_grade_folder(tmp_path):
    path = write_notebook(tmp_path / "carol.ipynb", IMPORT, WRONG_APPLY)
    assert grading.grade_notebook(path, timeout=30) == [
        Row("carol.ipynb", 2, "check_apply_merges", "not yet", verdicts_here(WRONG_APPLY)[0][1])]


def test_a_notebook_without_checks_gives_no_rows_and_is_not_run(tmp_path):
    path = write_notebook(tmp_path / "empty.ipynb", "while True:\n    pass")
    start = time.monotonic()
    assert grading.grade_notebook(path, timeout=30) == []
    assert time.monotonic() - start < 10  # nothing to grade: not executed
    assert grading.summary("empty.ipynb", []) == "empty.ipynb: no check calls found"


def test_check_calls_ignore_comments_and_strings():
    source = ('# exercises.check_a(1)\nx = "exercises.check_b(2)"\nexercises.check_c(f)\n'
              'lmbook_utils.exercises . check_d (g); exercises.check_e\n')
    assert grading.check_calls(source) == ["check_c", "check_d"]
    assert grading.check_calls("!pip list\nexercises.check_f(1)\n") == ["check_f"]
    assert grading.check_calls('"""unterminated\nexercises.check_g(1)') == ["check_g"]  # regex fallback


def test_cli_writes_the_csv(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    write_notebook(folder / "carol.ipynb", IMPORT, RIGHT_P, WRONG_APPLY)
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "grades.csv"
    result = subprocess.run([sys.executable, "-m", "lmbook_utils.grading", str(folder), "--out", str(out),
                             "--timeout", "30"], capture_output=True, text=True, cwd=ROOT, timeout=120,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["carol.ipynb: 1/2 checks passed (1 not yet)",
                                          f"wrote {out}: 2 checks of 1 submission"]
    with open(out, encoding="utf-8", newline="") as f:
        table = list(csv.reader(f))
    assert table == [
        ["submission", "cell", "check", "status", "message"],
        ["carol.ipynb", "2", "check_toy_probability", "passed", verdicts_here(RIGHT_P)[0][1]],
        ["carol.ipynb", "3", "check_apply_merges", "not yet", verdicts_here(WRONG_APPLY)[0][1]],
    ]
    assert sorted(p.name for p in folder.iterdir()) == ["carol.ipynb"]  # --out elsewhere: folder untouched


def test_write_csv_leaves_the_cell_of_an_unreadable_file_empty(tmp_path):
    grading.write_csv([Row("eve.ipynb", None, "", "unreadable", "NotJSONError: x")], tmp_path / "g.csv")
    assert (tmp_path / "g.csv").read_text(encoding="utf-8").splitlines() == [
        "submission,cell,check,status,message", "eve.ipynb,,,unreadable,NotJSONError: x"]


# --- bad arguments: clear errors that name the argument, before any kernel starts ----------------

@pytest.fixture
def one_notebook(tmp_path):
    write_notebook(tmp_path / "a.ipynb", IMPORT)
    return tmp_path


def test_grade_folder_rejects_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^folder '.*nowhere' does not exist"):
        grading.grade_folder(tmp_path / "nowhere")


def test_grade_folder_rejects_a_file(one_notebook):
    with pytest.raises(NotADirectoryError, match=r"^folder '.*a\.ipynb' is not a folder"):
        grading.grade_folder(one_notebook / "a.ipynb")


def test_grade_folder_rejects_a_folder_without_notebooks(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "._a.ipynb").write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.ipynb").write_text("x")
    with pytest.raises(ValueError, match=r"^folder '.*' holds no notebook \(\*\.ipynb\) to grade"):
        grading.grade_folder(tmp_path)


@pytest.mark.parametrize("timeout", [0, -1, math.nan, math.inf, True, "5", None])
def test_grade_folder_rejects_a_bad_timeout(one_notebook, timeout):
    with pytest.raises(ValueError, match=r"^timeout must be a positive number of seconds, got "):
        grading.grade_folder(one_notebook, timeout=timeout)


def test_grade_folder_rejects_an_unknown_kernel(one_notebook):
    with pytest.raises(ValueError, match=r"^kernel: there is no Jupyter kernel named 'no-such-kernel'"):
        grading.grade_folder(one_notebook, kernel="no-such-kernel")


def test_grade_notebook_rejects_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^path '.*missing\.ipynb' is not a file"):
        grading.grade_notebook(tmp_path / "missing.ipynb", timeout=5)
    with pytest.raises(ValueError, match=r"^timeout must be"):
        grading.grade_notebook(tmp_path / "missing.ipynb", timeout=0)


@pytest.mark.parametrize("args, says", [
    (["{nowhere}"], "SUBMISSIONS_DIR '{nowhere}' does not exist"),
    (["{folder}", "--timeout", "0"], "--timeout must be a positive number of seconds, got 0.0"),
    (["{folder}", "--timeout", "soon"], "argument --timeout: invalid float value: 'soon'"),
    (["{folder}", "--out", "{nowhere}/grades.csv"],
     "--out '{nowhere}/grades.csv': its folder does not exist"),
    (["{folder}", "--kernel", "no-such-kernel"],
     "--kernel: there is no Jupyter kernel named 'no-such-kernel'"),
    ([], "the following arguments are required: SUBMISSIONS_DIR"),
])
def test_cli_rejects_bad_arguments(one_notebook, capsys, args, says):
    names = {"folder": str(one_notebook), "nowhere": str(one_notebook / "nowhere")}
    with pytest.raises(SystemExit) as info:
        grading.main([a.format(**names) for a in args])
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert says.format(**names) in captured.err
    assert captured.out == ""
