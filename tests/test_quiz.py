"""Self-check quizzes (lmbook_utils.quiz): every chapter has one, well-formed, shown in the chapter,
stored identically on every run, and quoting only figures the chapter shows. That they render and
answer clicks in a browser, offline, is checked in tests/test_browser.py."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from lmbook_utils import quiz
from test_prose_numbers import FIGURE, IN_OUTPUT

CHAPTERS = Path(__file__).resolve().parents[1] / "book" / "chapters"
NOTEBOOKS = sorted(CHAPTERS.glob("*.ipynb"))
SHOW = re.compile(r"""quiz\.show\(\s*["'](ch[0-9]{2}[a-z]?)["']\s*\)""")
# A notebook's name starts with its chapter's two digits, then, for a chapter's second notebook,
# one lowercase letter: 08_electra.ipynb is "ch08", 08b_electra_ablations.ipynb "ch08b".
NOTEBOOK_NAME = re.compile(r"([0-9]{2}[a-z]?)(?:_|\.ipynb$)")


def chapter_key(path: Path) -> str:
    found = NOTEBOOK_NAME.match(path.name)
    if not found:
        raise ValueError(f"{path.name}: a chapter notebook's name starts with two digits and at most "
                         "one lowercase letter, then '_' (08_electra.ipynb, 08b_electra_ablations.ipynb)")
    return "ch" + found.group(1)


def good_question() -> dict:
    return {"question": "Why?", "type": "multiple_choice", "answers": [
        {"answer": "A", "correct": True, "feedback": "Right, because."},
        {"answer": "B", "correct": False, "feedback": "No: B confuses x with y."},
        {"answer": "C", "correct": False, "feedback": "No: C forgets z."}]}


def test_every_chapter_has_a_quiz_and_every_quiz_a_chapter():
    assert quiz.chapters() == [chapter_key(p) for p in NOTEBOOKS]


@pytest.mark.parametrize("chapter", quiz.chapters())
def test_quiz_is_well_formed(chapter):
    questions = quiz.load(chapter)  # raises on any problem
    assert len(questions) >= quiz.MIN_QUESTIONS
    texts = [q["question"] for q in questions]
    assert len(set(texts)) == len(texts), "a question is asked twice"


def test_problems_are_found():
    good = [good_question() for _ in range(quiz.MIN_QUESTIONS)]
    assert quiz.problems(good) == []
    assert "at least" in " ".join(quiz.problems(good[:-1]))

    two_right = copy.deepcopy(good)
    two_right[2]["answers"][1]["correct"] = True
    assert quiz.problems(two_right) == ["the quiz, question 3 has 2 correct answers; exactly 1 is expected"]

    unexplained = copy.deepcopy(good)
    unexplained[0]["answers"][2]["feedback"] = "  "
    assert quiz.problems(unexplained) == ["the quiz, question 1: answers [3] have no feedback explaining them"]

    too_few = copy.deepcopy(good)
    del too_few[4]["answers"][2]
    assert "question 5 has 2 answers" in quiz.problems(too_few)[0]

    wrong_type = copy.deepcopy(good)
    wrong_type[1]["type"] = "numeric"
    assert "type must be 'multiple_choice'" in quiz.problems(wrong_type)[0]

    assert quiz.problems({"question": "?"}) == ["the quiz must be a list of questions, got dict"]


def test_chapter_key_of_a_file_name():
    assert chapter_key(Path("book/chapters/08_electra.ipynb")) == "ch08"
    assert chapter_key(Path("08b_x.ipynb")) == "ch08b"
    assert chapter_key(Path("10c_more.ipynb")) == "ch10c"
    for bad in ("8_x.ipynb", "08bb_x.ipynb", "08B_x.ipynb", "080_x.ipynb", "intro.ipynb", "08-x.ipynb"):
        with pytest.raises(ValueError, match="starts with two digits"):
            chapter_key(Path(bad))


def test_a_second_part_is_keyed_with_a_letter():
    # The day 08b_electra_ablations.ipynb and ch08b.json both exist: both orders agree.
    names = ["09_x.ipynb", "08b_electra_ablations.ipynb", "00_introduction.ipynb", "08_electra.ipynb"]
    assert [chapter_key(Path(n)) for n in sorted(names)] == ["ch00", "ch08", "ch08b", "ch09"]
    assert sorted(["ch09", "ch08b", "ch00", "ch08"]) == ["ch00", "ch08", "ch08b", "ch09"]
    assert SHOW.findall('quiz.show("ch08b")\nquiz.show( \'ch08\' )') == ["ch08b", "ch08"]
    assert SHOW.findall('quiz.show("ch08B") quiz.show("ch08bb") quiz.show("ch8")') == []


def test_quizzes_of_a_two_part_chapter(tmp_path, monkeypatch):
    questions = [good_question() for _ in range(quiz.MIN_QUESTIONS)]
    for key in ("ch00", "ch08", "ch08b", "ch09", "ch8", "ch08bb", "ch08B", "notes"):
        (tmp_path / f"{key}.json").write_text(json.dumps(questions), encoding="utf-8")
    monkeypatch.setattr(quiz, "QUIZ_DIR", tmp_path)
    notebooks = [tmp_path / n for n in ("08b_electra_ablations.ipynb", "09_x.ipynb", "08_electra.ipynb",
                                        "00_introduction.ipynb")]
    assert quiz.chapters() == [chapter_key(p) for p in sorted(notebooks)] == ["ch00", "ch08", "ch08b", "ch09"]
    assert quiz.load("ch08b") == questions
    (tmp_path / "ch08b.json").unlink()
    with pytest.raises(ValueError,
                       match=r"chapter 'ch08b' has no quiz; quizzes exist for \['ch00', 'ch08', 'ch09'\]"):
        quiz.load("ch08b")


@pytest.mark.parametrize("bad", ["ch8", "ch08bb", "ch08B", "ch080", "CH08", "ch08_", "08b",
                                 "ch\u0660\u0668", " ch08", "ch08\n"])
def test_malformed_chapter_keys_are_refused(bad):
    with pytest.raises(ValueError, match="chapter must be a string like 'ch03' or 'ch08b'"):
        quiz.load(bad)
    with pytest.raises(ValueError, match="chapter must be a string like 'ch03' or 'ch08b'"):
        quiz.container_id(bad)


def test_container_ids_are_valid_distinct_and_name_their_chapter():
    keys = ["ch00", "ch03", "ch08", "ch08b", "ch08c", "ch09", "ch10", "ch10a"]
    ids = [quiz.container_id(k) for k in keys]
    assert quiz.container_id("ch08") == "lmbookQuizCh08"  # unchanged: the stored outputs stay valid
    assert quiz.container_id("ch08b") == "lmbookQuizCh08b" != quiz.container_id("ch08")
    assert len(set(ids)) == len(ids)
    for key, div in zip(keys, ids):
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", div)  # an HTML id and a JavaScript name
        assert div.removeprefix("lmbookQuiz").lower() == key  # as tests/test_browser.py reads it back


def test_render_of_a_second_parts_quiz(tmp_path, monkeypatch):
    (tmp_path / "ch08b.json").write_text(json.dumps([good_question() for _ in range(quiz.MIN_QUESTIONS)]),
                                         encoding="utf-8")
    monkeypatch.setattr(quiz, "QUIZ_DIR", tmp_path)
    html, script = quiz.render("ch08b")
    assert '<div id="lmbookQuizCh08b"' in html
    assert "lmbookQuizCh08b" in script and "lmbookQuizCh08\"" not in html + script


def test_bad_chapter_names_the_argument():
    with pytest.raises(ValueError, match="chapter must be a string like 'ch03'"):
        quiz.load("03")
    with pytest.raises(ValueError, match=r"chapter 'ch99' has no quiz; quizzes exist for \['ch00'"):
        quiz.load("ch99")


def test_render_is_deterministic_and_self_contained():
    html, script = quiz.render("ch03")
    assert quiz.render("ch03") == (html, script)  # nbval compares the stored output byte for byte
    div = quiz.container_id("ch03")
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", div)  # jupyterquiz uses it as a JavaScript name
    assert f'<div id="{div}"' in html
    for q in quiz.load("ch03"):
        assert json.dumps(q["question"]) in script  # the questions travel inside the output
    # jupyterquiz's only address, a MathJax fallback on a CDN, is taken out: nothing to fetch.
    assert re.findall(r"https?://", html + script) == []


def _cells_showing(nb: dict) -> list[tuple[int, str]]:
    return [(i, m) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
            for m in SHOW.findall("".join(c["source"]))]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_shows_its_own_quiz_with_stored_output(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    shown = _cells_showing(nb)
    assert [m for _, m in shown] == [chapter_key(path)], f"{path.name} shows quizzes {shown}"
    html, script = quiz.render(chapter_key(path))
    outputs = nb["cells"][shown[0][0]]["outputs"]
    stored = ["".join(o["data"].get("text/html", o["data"].get("application/javascript", "")))
              for o in outputs if o["output_type"] == "display_data"]
    assert stored == [html, script], f"{path.name}: the stored quiz is not the current one; rerun the chapter"


def _quiz_text(questions) -> str:
    return "\n".join([q["question"] for q in questions]
                     + [a[k] for q in questions for a in q["answers"] for k in ("answer", "feedback")])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_quiz_quotes_only_figures_the_chapter_shows(path):
    # The same rule as the prose (tests/test_prose_numbers.py): a measured figure a question quotes
    # must appear in the chapter's text or its outputs (the quiz's own output left out).
    nb = json.loads(path.read_text(encoding="utf-8"))
    quiz_cells = {i for i, _ in _cells_showing(nb)}
    parts = []
    for i, cell in enumerate(nb["cells"]):
        if i in quiz_cells:
            continue
        parts.append("".join(cell["source"]) if cell["cell_type"] == "markdown" else "")
        for out in cell.get("outputs", []):
            parts.append("".join(out.get("text", "")))
            for mime in ("text/plain", "text/html", "text/markdown"):
                parts.append("".join(out.get("data", {}).get(mime, "")))
    numbers = set(IN_OUTPUT.findall("\n".join(parts)))
    text = re.sub(r"<code>.*?</code>", " ", _quiz_text(quiz.load(chapter_key(path))))
    missing = [m.group(0) for m in FIGURE.finditer(text) if m.group(0).rstrip("%x×") not in numbers]
    assert not missing, f"{path.name}'s quiz quotes figures the chapter does not show: {missing}"
