"""Self-check quizzes: concept questions at the end of each chapter, every choice explained.

The questions live in ``lmbook_utils/quizzes/chNN.json``, in jupyterquiz's format: a list of
``{"question", "type": "multiple_choice", "answers": [{"answer", "correct", "feedback"}]}``.
A chapter told in two notebooks, ``08_electra.ipynb`` and ``08b_electra_ablations.ipynb``, has a
quiz for each: ``ch08.json`` and ``ch08b.json`` (two digits, then at most one lowercase letter,
as the notebook's name starts). ``show("ch03")`` displays a chapter's quiz with jupyterquiz.
The questions and jupyterquiz's JavaScript and CSS are embedded in the cell's output, so the quiz
works in Jupyter and in the static book with no network.

jupyterquiz's own ``display_quiz`` names the quiz's container with random letters; here the name
comes from the chapter, so that a rerun stores byte-identical outputs (nbval compares them) and
two quizzes on one page never share a name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

QUIZ_DIR = Path(__file__).parent / "quizzes"
MIN_QUESTIONS = 5
MIN_ANSWERS, MAX_ANSWERS = 3, 5
# "ch03", or "ch08b" for a chapter's second notebook (08b_....ipynb). ASCII only: the key is also
# the quiz container's HTML id and JavaScript name (container_id).
_CHAPTER = re.compile(r"ch[0-9]{2}[a-z]?")


def chapters() -> list[str]:
    """The chapters that have a quiz ("ch00", "ch01", ..., "ch08", "ch08b", ...), in order: the
    order of the notebooks' names, since "ch08" sorts before "ch08b" as "08_" before "08b_"."""
    return sorted(p.stem for p in QUIZ_DIR.glob("ch*.json") if _CHAPTER.fullmatch(p.stem))


def problems(questions, source: str = "the quiz") -> list[str]:
    """What is wrong with `questions` as a self-check quiz (empty when nothing is): at least
    MIN_QUESTIONS multiple-choice questions, each with MIN_ANSWERS to MAX_ANSWERS distinct answers,
    exactly one of them correct, and an explanation ("feedback") for every answer."""
    if not isinstance(questions, list):
        return [f"{source} must be a list of questions, got {type(questions).__name__}"]
    found = []
    if len(questions) < MIN_QUESTIONS:
        found.append(f"{source} has {len(questions)} questions; at least {MIN_QUESTIONS} are expected")
    for i, q in enumerate(questions, 1):
        where = f"{source}, question {i}"
        if not isinstance(q, dict):
            found.append(f"{where} must be a dict, got {type(q).__name__}")
            continue
        if not isinstance(q.get("question"), str) or not q["question"].strip():
            found.append(f"{where} has no question text")
        if q.get("type") != "multiple_choice":
            found.append(f"{where}: type must be 'multiple_choice', got {q.get('type')!r}")
        answers = q.get("answers")
        if not isinstance(answers, list) or not MIN_ANSWERS <= len(answers) <= MAX_ANSWERS:
            n = len(answers) if isinstance(answers, list) else "no list of"
            found.append(f"{where} has {n} answers; {MIN_ANSWERS} to {MAX_ANSWERS} are expected")
            continue
        texts = [a.get("answer") for a in answers if isinstance(a, dict)]
        if len(texts) != len(answers) or not all(isinstance(t, str) and t.strip() for t in texts):
            found.append(f"{where}: every answer needs a non-empty 'answer' text")
        elif len(set(texts)) != len(texts):
            found.append(f"{where} has two identical answers")
        correct = [a for a in answers if isinstance(a, dict) and a.get("correct") is True]
        if len(correct) != 1:
            found.append(f"{where} has {len(correct)} correct answers; exactly 1 is expected")
        if any(not isinstance(a, dict) or a.get("correct") not in (True, False) for a in answers):
            found.append(f"{where}: every answer's 'correct' must be true or false")
        unexplained = [j for j, a in enumerate(answers, 1)
                       if not isinstance(a, dict) or not isinstance(a.get("feedback"), str)
                       or not a["feedback"].strip()]
        if unexplained:
            found.append(f"{where}: answers {unexplained} have no feedback explaining them")
    return found


def _check_chapter(chapter) -> None:
    if not isinstance(chapter, str) or not _CHAPTER.fullmatch(chapter):
        raise ValueError(f"chapter must be a string like 'ch03' or 'ch08b', got {chapter!r}")


def load(chapter: str) -> list[dict]:
    """The questions of `chapter` ("ch03", "ch08b"); ValueError when there is no such quiz or it
    is malformed (every problem listed)."""
    _check_chapter(chapter)
    path = QUIZ_DIR / f"{chapter}.json"
    if not path.is_file():
        raise ValueError(f"chapter {chapter!r} has no quiz; quizzes exist for {chapters()}")
    questions = json.loads(path.read_text(encoding="utf-8"))
    found = problems(questions, path.name)
    if found:
        raise ValueError("; ".join(found))
    return questions


def container_id(chapter: str) -> str:
    """The quiz container's HTML id ("lmbookQuizCh03", "lmbookQuizCh08b"). jupyterquiz also uses
    it as a JavaScript name, so it is ASCII letters and digits only; one chapter, one id, and the
    chapter reads back from it (tests/test_browser.py: the id without "lmbookQuiz", lowercased).
    ValueError for a malformed `chapter`."""
    _check_chapter(chapter)
    return f"lmbookQuiz{chapter.capitalize()}"


def render(chapter: str) -> tuple[str, str]:
    """(HTML, JavaScript) of `chapter`'s quiz: the container and its styles, then the script that
    holds the questions and jupyterquiz's code and fills the container."""
    from jupyterquiz.dynamic.loader import load_questions_script
    from jupyterquiz.dynamic.renderer import build_script, build_styles, render_div

    questions = load(chapter)
    div_id = container_id(chapter)
    prefix, static, url = load_questions_script(questions, div_id)
    html = render_div(div_id, shuffle_questions=False, shuffle_answers=True,
                      preserve_responses=False, num=1_000_000, max_width=600,
                      border_radius=10, question_alignment="left")
    html += build_styles(div_id, _COLORS)
    script = build_script(prefix, static, url, div_id, load_js=True)
    # jupyterquiz loads MathJax from a CDN when a page's MathJax 3 cannot typeset; the book's can,
    # and an offline book names no CDN at all (tests/test_book_build.py), so that branch stops.
    if script.count(_CDN_MATHJAX) != 2:
        raise RuntimeError("jupyterquiz's JavaScript is not the shape lmbook_utils.quiz expects; "
                           "is jupyterquiz pinned to 2.9.6.4?")
    script = script.replace(_CDN_MATHJAX, "return;  // no MathJax from a CDN: the book works offline")
    return html, script


_CDN_MATHJAX = "script.src = 'https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-svg.js';"


# jupyterquiz's default palette, except its green for a right answer (#009113): white on it, and it
# on white, fall short of the 4.5:1 contrast WCAG AA asks for (3.98 and 4.15); #007a10 gives 5.3.
_COLORS = {
    "--jq-multiple-choice-bg": "#392061",
    "--jq-mc-button-bg": "#fafafa",
    "--jq-mc-button-border": "#e0e0e0e0",
    "--jq-mc-button-inset-shadow": "#555555",
    "--jq-many-choice-bg": "#f75c03ff",
    "--jq-numeric-bg": "#392061ff",
    "--jq-numeric-input-bg": "#c0c0c0",
    "--jq-numeric-input-label": "#101010",
    "--jq-numeric-input-shadow": "#999999",
    "--jq-string-bg": "#4c1a57",
    "--jq-incorrect-color": "#c80202",
    "--jq-correct-color": "#007a10",
    "--jq-text-color": "#fafafa",
    "--jq-link-color": "#9abafa",
}


def show(chapter: str) -> None:
    """Display `chapter`'s quiz ("ch03") in the notebook: questions with shuffled choices; a
    click on a choice says whether it is right and why."""
    from IPython.display import HTML, Javascript, display

    html, script = render(chapter)
    display(HTML(html))
    display(Javascript(script))
