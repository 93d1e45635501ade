"""The built book works with no internet, proven in a real browser.

Headless Chromium (Debian's /usr/bin/chromium, driven by playwright-python; never
a browser that a tool downloads) opens every HTML page of the built book with
every request outside the book's folder blocked, and checks on each page: no
request left the book and no file of the book is missing, no JavaScript error,
the math is typeset, every widget is visible, every frame switcher switches and
every attention view draws its tokens and lines and reacts to the mouse, every
self-check quiz shows all its questions and explains the choice a reader clicks
(or selects with the keyboard), and axe-core finds no serious or critical
accessibility violation (A11Y_ALLOWED lists any left, each with its reason).
Further tests check what a reader can take away and find: each chapter's
download menu (the notebook, and its student edition without solutions), the
student notebooks' zip on the teachers' page, full-text search, and the light
mode the book holds on purpose. It runs over the real book (book/_toc.yml) and over tests/fixtures/widgets_book, which
holds every kind of output (math, head/model/encoder-decoder views, a stored
ipywidget, frame switchers) so the machinery is proven before any chapter has
them. Screenshots of each page land in tests/artifacts/ for a person to look at.

Without /usr/bin/chromium these tests skip, or fail when LMBOOK_REQUIRE_BROWSER=1
(as .ci/run sets).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from conftest import BOOK, FIXTURE_BOOK, source_of, toc_files

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
EXTRA_PAGES = ["index", "genindex", "search"]  # Sphinx's own pages, beside the toc's
SETTLE_MS = 300  # after the page reports ready, let late scripts run
QUIZ = 'div[id^="lmbookQuiz"]'  # lmbook_utils.quiz.container_id

# axe-core violations of impact "serious" or "critical" that remain: (rule id, the element's CSS
# selector as axe reports it) -> why. Any other one fails the page.
A11Y_ALLOWED: dict[tuple[str, str], str] = {
    ("aria-required-children", ".citation-list"):
        "the bibliography page: docutils writes the citations as <div role=\"list\" "
        "class=\"citation-list\"> around entries whose role is doc-biblioentry, which ARIA does "
        "not count as list items; a screen reader still reads every entry, in order",
}
A11Y_FAILING_IMPACTS = ("serious", "critical")


def pages_of(toc: Path) -> list[str]:
    return toc_files(toc) + EXTRA_PAGES


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        message = (f"{CHROMIUM} is missing: install Debian's chromium "
                   "(apt-get install -y chromium); never use `playwright install`")
        if os.environ.get("LMBOOK_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - playwright is pinned in the dev extra
        if os.environ.get("LMBOOK_REQUIRE_BROWSER") == "1":
            pytest.fail("playwright is not installed (pip install -e '.[dev]')")
        pytest.skip("playwright is not installed")
    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start;
        # the pages are the book's own files.
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


class PageRun:
    """One page opened with the network fenced off, and what went wrong on it."""

    def __init__(self, browser, html_root: Path, name: str):
        self.root = html_root.resolve()
        self.path = self.root / f"{name}.html"
        self.problems: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900},
                                           service_workers="block")
        self.page = self.context.new_page()
        self.page.route("**/*", self._route)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda err: self.problems.append(f"page error: {err}"))
        self.page.on("requestfailed", self._failed)

    def _inside(self, url: str) -> bool:
        if url.startswith(("data:", "blob:", "about:")):
            return True
        prefix = self.root.as_uri() + "/"
        return url.startswith(prefix) and ".." not in url[len(prefix):]

    def _route(self, route):
        url = route.request.url
        if self._inside(url):
            route.continue_()
        else:
            self.problems.append(f"request outside the book (blocked): {url}")
            route.abort("blockedbyclient")

    def _failed(self, request):
        if self._inside(request.url):  # a file of the book that is missing
            self.problems.append(f"request failed: {request.url} ({request.failure})")

    def _console(self, message):
        if message.type == "error":
            self.problems.append(f"console error: {message.text} at {message.location}")

    def open(self):
        assert self.path.is_file(), f"{self.path} was not built"
        if 'http-equiv="Refresh"' in self.path.read_text(encoding="utf-8"):
            # index.html only redirects to the root page: follow it, check that page.
            self.page.goto(self.path.as_uri())
            self.page.wait_for_url(lambda url: url != self.path.as_uri(), wait_until="load")
        else:
            self.page.goto(self.path.as_uri(), wait_until="load")
        # MathJax 3 resolves startup.promise once the page is typeset.
        self.page.evaluate("""async () => {
            if (window.MathJax && MathJax.startup && MathJax.startup.promise)
                await MathJax.startup.promise;
        }""")
        self.page.wait_for_function(
            """() => [...document.querySelectorAll(
                    'script[type="application/vnd.jupyter.widget-view+json"]')]
                 .every(s => s.previousElementSibling &&
                             s.previousElementSibling.querySelector('.jupyter-widgets'))""",
            timeout=15000)
        self.page.wait_for_function(
            """() => [...document.querySelectorAll('.lmbook-attention')]
                 .every(v => v.querySelectorAll('svg text').length > 0)""", timeout=15000)
        # jupyterquiz draws its questions from a script, then asks MathJax to typeset them.
        self.page.wait_for_function(
            f"""() => [...document.querySelectorAll('{QUIZ}')].every(q =>
                 q.querySelector('.Quiz') && !q.innerText.includes('\\\\('))""", timeout=15000)
        self.page.wait_for_timeout(SETTLE_MS)
        return self.page

    def close(self):
        self.context.close()


def check_math(page) -> list[str]:
    info = page.evaluate("""() => {
        const math = [...document.querySelectorAll('.math, .MathJax_Preview')];
        const untypeset = math.filter(m => !m.querySelector('mjx-container'))
                              .map(m => m.textContent.trim().slice(0, 60));
        const body = document.querySelector('main') || document.body;
        const copy = body.cloneNode(true);
        copy.querySelectorAll('pre, code, script, style, textarea, mjx-container, .highlight')
            .forEach(e => e.remove());
        return {math: math.length, untypeset,
                containers: document.querySelectorAll('mjx-container').length,
                text: copy.innerText || copy.textContent};
    }""")
    problems = [f"math not typeset: {t!r}" for t in info["untypeset"]]
    if info["math"] and not info["containers"]:
        problems.append("the page has math but no MathJax output")
    for raw in (r"\(", r"\[", "$$"):
        if raw in info["text"]:
            i = info["text"].index(raw)
            problems.append(f"raw math delimiter {raw!r} visible: {info['text'][max(0, i - 40):i + 40]!r} "
                            "(in MyST, a $$ display block needs a blank line before and after it)")
    return problems


def check_widgets(page) -> list[str]:
    sizes = page.evaluate("""() => [...document.querySelectorAll(
            'script[type="application/vnd.jupyter.widget-view+json"]')].map(s => {
        const w = s.previousElementSibling && s.previousElementSibling.querySelector('.jupyter-widgets');
        if (!w) return null;
        const r = w.getBoundingClientRect();
        return [r.width, r.height, getComputedStyle(w).visibility];
    })""")
    problems = []
    for i, size in enumerate(sizes):
        if size is None:
            problems.append(f"widget {i} was not rendered")
        elif size[0] <= 0 or size[1] <= 0 or size[2] == "hidden":
            problems.append(f"widget {i} is not visible: width, height, visibility = {size}")
    return problems


def visible_frames(switcher) -> list[tuple[str, str]]:
    return [tuple(pair) for pair in switcher.evaluate("""root => [...root.querySelectorAll('.lmbook-frame')]
        .filter(f => !f.hidden && f.getBoundingClientRect().height > 0)
        .map(f => [f.dataset.value, root.querySelector('output').textContent])""")]


def check_frame_switchers(page) -> list[str]:
    problems = []
    switchers = page.locator(".lmbook-frames")
    for i in range(switchers.count()):
        sw = switchers.nth(i)
        values = sw.evaluate("r => [...r.querySelectorAll('.lmbook-frame')].map(f => f.dataset.value)")
        images = sw.evaluate("r => [...r.querySelectorAll('img')].map(im => im.naturalWidth)")
        if any(w == 0 for w in images):
            problems.append(f"frame switcher {i}: an image did not load")
        control = sw.locator("input, select").first
        kind = control.evaluate("c => c.tagName.toLowerCase()")
        seen = []
        for k, value in enumerate(values):
            if kind == "select":
                control.select_option(index=k)
            else:  # a range input: the keyboard, as a reader would
                control.focus()
                control.press("Home")
                for _ in range(k):
                    control.press("ArrowRight")
            shown = visible_frames(sw)
            if len(shown) != 1 or shown[0] != (value, value):
                problems.append(f"frame switcher {i}: after choosing {value!r} the visible frames "
                                f"(value, label) are {shown}")
            seen.append(tuple(shown))
        if len(values) > 1 and len(set(seen)) != len(values):
            problems.append(f"frame switcher {i}: the control does not change the frame: {seen}")
    return problems


def check_attention_views(page) -> list[str]:
    problems = []
    views = page.locator(".lmbook-attention")
    for i in range(views.count()):
        view = views.nth(i)
        kind = view.get_attribute("data-view")
        stats = view.evaluate("""v => {
            const box = v.getBoundingClientRect();
            const visible = e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
            return {width: box.width, height: box.height,
                    texts: [...v.querySelectorAll('svg text')].filter(t => t.textContent.trim() && visible(t)).length,
                    marks: [...v.querySelectorAll('svg line, svg rect, svg path')].filter(visible).length};
        }""")
        if stats["width"] <= 0 or stats["height"] <= 0:
            problems.append(f"attention view {i} ({kind}) has no size")
        if stats["texts"] == 0:
            problems.append(f"attention view {i} ({kind}) draws no tokens")
        if stats["marks"] == 0:
            problems.append(f"attention view {i} ({kind}) draws no lines or boxes")
        if problems:
            continue
        before = view.inner_html()
        if kind == "head":  # hovering a token highlights what it attends to
            view.locator("svg text").filter(has_text=re.compile(r"\S")).first.hover()
        else:  # clicking a head of the model view opens it large
            head = view.locator("svg .attn_background").first
            head.scroll_into_view_if_needed()
            box = head.bounding_box()
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_timeout(200)
        if view.inner_html() == before:
            problems.append(f"attention view {i} ({kind}) does not react to the mouse")
    return problems


def check_quizzes(page) -> list[str]:
    """Every question of the chapter's quiz is shown; choosing a wrong and then the right answer
    marks each and shows its own explanation (the first question by keyboard: Tab, Space)."""
    from lmbook_utils import quiz

    problems = []
    quizzes = page.locator(QUIZ)
    for i in range(quizzes.count()):
        box = quizzes.nth(i)
        chapter = box.get_attribute("id").removeprefix("lmbookQuiz").lower()
        questions = quiz.load(chapter)
        blocks = box.locator(".Quiz")
        if blocks.count() != len(questions):
            problems.append(f"quiz {chapter}: {blocks.count()} questions shown, {len(questions)} written")
            continue
        for k in range(blocks.count()):
            block = blocks.nth(k)
            for correct, verdict in (("false", "incorrect"), ("true", "correct")):
                label = block.locator(f'label.MCButton[data-correct="{correct}"]').first
                answer = label.locator("span").first.inner_text().strip()
                if k == 0 and correct == "false":
                    label.locator("input").focus()
                    page.keyboard.press("Space")
                else:
                    label.click()
                feedback = block.locator(".Feedback")
                classes = feedback.get_attribute("class") or ""
                written = [a["feedback"] for a in questions[k]["answers"] if str(a["correct"]).lower() == correct]
                chosen = label.get_attribute("data-feedback")
                plain = re.split(r"[$<&]", chosen or "")[0].strip()[:25]
                shown = feedback.inner_text().strip()
                if verdict not in classes.split():
                    problems.append(f"quiz {chapter}, question {k + 1}: a {verdict} choice shows "
                                    f"feedback of class {classes!r}")
                if chosen not in written or not shown or not shown.startswith(plain):
                    problems.append(f"quiz {chapter}, question {k + 1}: choosing {answer[:40]!r} shows "
                                    f"{shown[:60]!r}, not its own explanation")
                if "\\(" in shown:
                    problems.append(f"quiz {chapter}, question {k + 1}: math in the feedback not typeset")
    # A chosen answer fades to green or red (a CSS animation); let it end before colours are judged.
    page.wait_for_function(f"""() => document.getAnimations().filter(a => a.effect && a.effect.target
        && a.effect.target.closest('{QUIZ}')).every(a => a.playState === 'finished')""", timeout=5000)
    return problems


def check_accessibility(page) -> list[str]:
    """axe-core (bundled by axe-playwright-python, run inside the page: nothing is fetched)."""
    from axe_playwright_python.sync_playwright import Axe

    # No preload: axe would fetch the style sheets again, which a file:// page may not do.
    results = Axe().run(page, options={"resultTypes": ["violations"], "preload": False})
    problems = []
    for violation in results.response["violations"]:
        if violation["impact"] not in A11Y_FAILING_IMPACTS:
            continue
        targets = [" ".join(map(str, node["target"])) for node in violation["nodes"]]
        targets = [t for t in targets if (violation["id"], t) not in A11Y_ALLOWED]
        if not targets:
            continue
        problems.append(f"accessibility ({violation['impact']}): {violation['id']}: {violation['help']}; "
                        f"{len(targets)} elements, e.g. {targets[:3]}")
    return problems


def run_checks(browser, html_root: Path, name: str, shot: str | None) -> None:
    run = PageRun(browser, html_root, name)
    try:
        page = run.open()
        problems = check_math(page)
        problems += check_widgets(page)
        problems += check_frame_switchers(page)
        problems += check_attention_views(page)
        problems += check_quizzes(page)
        problems += check_accessibility(page)
        if shot:
            ARTIFACTS.mkdir(exist_ok=True)
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)
        problems = run.problems + problems  # requests and errors, also those the checks caused
    finally:
        run.close()
    assert not problems, f"{name}.html:\n  " + "\n  ".join(problems)


def shot_name(prefix: str, name: str) -> str | None:
    return None if name in EXTRA_PAGES else prefix + name.replace("/", "-")


@pytest.mark.parametrize("name", pages_of(BOOK / "_toc.yml"))
def test_book_page_works_offline(browser, real_book, name):
    run_checks(browser, real_book.html, name, shot_name("", name))


FIXTURE_PAGES = pages_of(FIXTURE_BOOK / "_toc.yml")


@pytest.mark.parametrize("name", FIXTURE_PAGES)
def test_fixture_page_works_offline(browser, fixture_book, name):
    run_checks(browser, fixture_book.html, name, shot_name("fixture-", name))


def test_fixture_book_has_every_kind_of_output(browser, fixture_book):
    """The fixture is only a proof if its pages really hold what the checks look for."""
    run = PageRun(browser, fixture_book.html, "views")
    try:
        page = run.open()
        counts = page.evaluate("""() => ({
            math: document.querySelectorAll('mjx-container').length,
            widgets: document.querySelectorAll('.jupyter-widgets.widget-slider').length,
            switchers: document.querySelectorAll('.lmbook-frames').length,
            views: [...document.querySelectorAll('.lmbook-attention')].map(v => v.dataset.view)})""")
    finally:
        run.close()
    assert counts["math"] >= 2
    assert counts["widgets"] == 1
    assert counts["switchers"] == 2
    assert sorted(counts["views"]) == ["head", "head", "model"]


def test_a_cdn_request_is_caught(browser, fixture_book, tmp_path):
    """The fence works: a page that loads a script from a CDN fails the checks."""
    page_path = fixture_book.html / "cdn_probe.html"
    page_path.write_text('<html><body><p>probe</p>'
                         '<script src="https://cdn.jsdelivr.net/npm/d3@5.7.0/dist/d3.min.js"></script>'
                         '</body></html>', encoding="utf-8")
    try:
        with pytest.raises(AssertionError, match=r"request outside the book \(blocked\): https://cdn"):
            run_checks(browser, fixture_book.html, "cdn_probe", None)
    finally:
        page_path.unlink()


def test_the_checks_catch_raw_math_errors_and_dead_switchers(browser, fixture_book):
    """The page checks can fail: untypeset math, a script error, a control that does nothing, a
    control without a name."""
    page_path = fixture_book.html / "broken_probe.html"
    page_path.write_text(
        '<html><body><main><p>Raw: <span class="math">\\(x^2\\)</span> and $$y$$</p>'
        '<div class="lmbook-frames"><label>k <input type="range" min="0" max="1" value="0">'
        '<output>a</output></label><div class="lmbook-frame" data-value="a">A</div>'
        '<div class="lmbook-frame" data-value="b" hidden>B</div></div>'
        '<select><option>unnamed</option></select>'
        '<script>undefinedFunction();</script></main></body></html>', encoding="utf-8")
    try:
        with pytest.raises(AssertionError) as caught:
            run_checks(browser, fixture_book.html, "broken_probe", None)
    finally:
        page_path.unlink()
    message = str(caught.value)
    assert "math not typeset: '\\\\(x^2\\\\)'" in message
    assert "raw math delimiter '$$' visible" in message
    assert "page error: undefinedFunction is not defined" in message
    assert "frame switcher 0: after choosing 'b'" in message
    assert "accessibility (critical): select-name" in message


# --- what a reader can take away and find ---------------------------------------------------

CHAPTER_PAGES = [name for name in toc_files(BOOK / "_toc.yml")
                 if (source := source_of(BOOK, name)) is not None and source.suffix == ".ipynb"]


def links_on(browser, html_root: Path, name: str, selector: str) -> dict[str, Path]:
    """The links `selector` finds on page `name`, text -> the file they point to (as the browser
    resolves them); the page must open without a problem."""
    from urllib.parse import unquote, urlparse

    run = PageRun(browser, html_root, name)
    try:
        page = run.open()
        links = page.evaluate("""selector => [...document.querySelectorAll(selector)]
            .map(a => [a.textContent.trim(), a.href])""", selector)
        problems = run.problems
    finally:
        run.close()
    assert not problems, problems
    return {text: Path(unquote(urlparse(href).path)) for text, href in links}


@pytest.mark.parametrize("name", CHAPTER_PAGES)
def test_chapter_downloads_with_and_without_solutions(browser, real_book, name):
    import nbformat

    from lmbook_utils.student import solution_gates, strip_solutions

    links = links_on(browser, real_book.html, name, ".dropdown-download-buttons a")
    assert set(links) == {".ipynb", ".ipynb (student edition)"}, links
    source = source_of(real_book.source, name)
    assert links[".ipynb"].read_bytes() == source.read_bytes()  # the chapter as it is in the book
    original = nbformat.read(source, as_version=4)
    student = nbformat.read(links[".ipynb (student edition)"], as_version=4)
    assert solution_gates(original), f"{name} has no solutions to remove"
    assert solution_gates(student) == []
    assert student.cells == strip_solutions(original).cells
    exercises = [c.source for c in original.cells if c.source.startswith(":::{exercise}")]
    assert [c.source for c in student.cells if c.source.startswith(":::{exercise}")] == exercises


def test_teachers_page_offers_every_student_notebook(browser, real_book):
    import zipfile

    links = links_on(browser, real_book.html, "teachers", "article a[href$='.zip']")
    assert len(links) == 1, links
    (archive,) = links.values()
    with zipfile.ZipFile(archive) as z:
        names = sorted(Path(n).name for n in z.namelist())
    assert names == sorted(f"{Path(n).name}.ipynb" for n in CHAPTER_PAGES)


def test_search_finds_a_chapter_offline(browser, real_book):
    """Typed into the theme's search box, a word found in one chapter lists that chapter."""
    run = PageRun(browser, real_book.html, "intro")
    try:
        page = run.open()
        page.locator("button.search-button__button:visible").first.click()
        box = page.locator("input[name='q']:visible")
        box.fill("Kneser")
        box.press("Enter")
        page.wait_for_url(re.compile(r"search\.html\?q=Kneser"))
        page.wait_for_selector("#search-results li a", timeout=15000)
        found = page.evaluate("() => [...document.querySelectorAll('#search-results li a')].map(a => a.href)")
        problems = run.problems
    finally:
        run.close()
    assert not problems, problems
    assert any(href.split("?")[0].endswith("chapters/01_ngram.html") for href in found), found


def test_light_mode_is_held(browser, real_book):
    """A dark mode stored by another book opened from the same disk does not apply, and there is
    no colour-mode button (book/_ext/lmbook_reader.py says why)."""
    probe = real_book.html / "mode_probe.html"
    # The theme's own first step, alone: it applies the stored mode.
    probe.write_text('<html><head><script>document.documentElement.dataset.theme = '
                     'localStorage.getItem("theme") || "light";</script></head><body></body></html>',
                     encoding="utf-8")
    modes = {}
    try:
        for name in ("mode_probe", CHAPTER_PAGES[0]):
            run = PageRun(browser, real_book.html, name)
            run.context.add_init_script('localStorage.setItem("mode", "dark"); '
                                        'localStorage.setItem("theme", "dark");')
            try:
                page = run.open()
                modes[name] = page.evaluate("() => document.documentElement.dataset.theme")
                switches = page.locator(".theme-switch-button").count()
            finally:
                run.close()
    finally:
        probe.unlink()
    assert modes["mode_probe"] == "dark"  # the stored dark mode is there to be ignored
    assert modes[CHAPTER_PAGES[0]] == "light"
    assert switches == 0
