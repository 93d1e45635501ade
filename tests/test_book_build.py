"""The book builds from its stored outputs, checks its links, and loads nothing from a CDN.

The builds themselves are session fixtures in conftest.py (`real_book`,
`fixture_book`), shared with tests/test_browser.py. Both are `jupyter-book build`
with execution off, --warningiserror and --nitpick, into a temporary folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import BOOK, NODE_MODULES, build_book, fixture_source, source_of, toc_files

pytestmark = pytest.mark.slow

# Hosts that serve JavaScript, style sheets or fonts, or run code on a server.
CDN_HOSTS = [
    "cdn.jsdelivr.net", "cdnjs.cloudflare.com", "unpkg.com", "requirejs.org",
    "fonts.googleapis.com", "fonts.gstatic.com", "ajax.googleapis.com", "code.jquery.com",
    "cdn.mathjax.org", "stackpath.bootstrapcdn.com", "maxcdn.bootstrapcdn.com",
    "use.fontawesome.com", "cdn.plot.ly", "mybinder.org", "colab.research.google.com",
    "widgets.jupyter.org",
]
HOST_RE = re.compile("|".join(re.escape(h) for h in CDN_HOSTS))
ANCHOR_HREF = re.compile(r"""(<a\b[^>]*?\bhref=)("[^"]*"|'[^']*')""", re.I)

# Third-party files (installed by npm ci, copied by book/_ext/lmbook_assets.py) that
# name a CDN host in their code without loading from it in the book. The browser
# test proves that no request leaves the book.
VENDOR_MENTIONS = {
    # Default base URL for widget modules it does not bundle; every page overrides
    # it with data-jupyter-widgets-cdn (checked below). Also a commented-out @import.
    "_static/lmbook/html-manager/embed-amd.js": {"cdn.jsdelivr.net", "fonts.googleapis.com"},
    # A documentation link in require.js' error messages.
    "_static/lmbook/require.js": {"requirejs.org"},
    # speech-rule-engine's locations of its maps when run outside MathJax.
    "_static/lmbook/mathjax/tex-mml-chtml.js": {"cdn.jsdelivr.net"},
    "_static/lmbook/mathjax/a11y/sre.js": {"cdn.jsdelivr.net"},
    "_static/lmbook/mathjax/ui/menu.js": {"cdn.jsdelivr.net"},
}


def cdn_mentions(html_root: Path) -> list[str]:
    """CDN hosts named anywhere in the built HTML, JS and CSS, except in <a href>."""
    found = []
    for path in sorted(html_root.rglob("*")):
        if path.suffix not in (".html", ".js", ".css", ".json") or not path.is_file():
            continue
        rel = path.relative_to(html_root).as_posix()
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".html":
            text = ANCHOR_HREF.sub(r'\1""', text)  # a plain hyperlink is fine
        hosts = set(HOST_RE.findall(text)) - VENDOR_MENTIONS.get(rel, set())
        found += [f"{rel}: {host}" for host in sorted(hosts)]
    return found


def test_cdn_scan_can_fail():
    assert HOST_RE.findall('<script src="https://cdn.jsdelivr.net/x.js">') == ["cdn.jsdelivr.net"]
    assert ANCHOR_HREF.sub(r'\1""', '<a class="r" href="https://unpkg.com/">x</a>') \
        == '<a class="r" href="">x</a>'


def test_real_book_builds_every_toc_page(real_book):
    for doc in toc_files(BOOK / "_toc.yml"):
        assert source_of(BOOK, doc) is not None
        assert (real_book.html / f"{doc}.html").is_file(), f"{doc}.html was not built"
    assert (real_book.html / "_static/lmbook/mathjax/tex-mml-chtml.js").is_file()
    assert "lmbook_assets: copied JavaScript assets" in real_book.log


def test_real_book_loads_nothing_from_a_cdn(real_book):
    assert cdn_mentions(real_book.html) == []


def test_widget_module_folder_is_inside_the_book_on_every_page(real_book, fixture_book):
    """The widget manager's module base (its CDN otherwise) is this book's folder."""
    checked = 0
    for book in (real_book, fixture_book):
        for page in book.html.rglob("*.html"):
            for base in re.findall(r'data-jupyter-widgets-cdn="([^"]*)"', page.read_text(encoding="utf-8")):
                assert (page.parent / base).resolve() == (book.html / "_static/lmbook/widget-modules").resolve(), page
                checked += 1
    assert checked >= 1


def test_fixture_book_loads_nothing_from_a_cdn(fixture_book):
    assert cdn_mentions(fixture_book.html) == []
    page = (fixture_book.html / "views.html").read_text(encoding="utf-8")
    assert 'data-jupyter-widgets-cdn="_static/lmbook/widget-modules/"' in page
    assert "application/vnd.jupyter.widget-state+json" in page  # state stored by the run
    assert page.count('class="lmbook-attention"') == 3
    assert "thebe" not in page.lower()  # launch machinery that needs a server is gone


def test_the_assets_copied_are_the_pinned_versions(fixture_book):
    import json

    lock = json.loads((BOOK.parent / "package-lock.json").read_text(encoding="utf-8"))
    packages = lock["packages"]
    assert packages["node_modules/mathjax"]["version"] == "3.2.2"
    assert packages["node_modules/@jupyter-widgets/html-manager"]["version"] == "1.0.15"
    copied = json.loads((fixture_book.html / "_static/lmbook/html-manager/package.json")
                        .read_text(encoding="utf-8"))
    assert copied["version"] == "1.0.15"
    mathjax = (fixture_book.html / "_static/lmbook/mathjax/tex-mml-chtml.js").read_text(encoding="utf-8")
    assert '"3.2.2"' in mathjax


BROKEN_LINKS = {
    "doc role": "See {doc}`no_such_page`.",
    "markdown link": "See [the missing page](no_such_page.md).",
    "ref role": "See {ref}`no-such-label`.",
    "term role": "See {term}`no such term`.",
}


@pytest.mark.parametrize("kind", list(BROKEN_LINKS))
def test_a_broken_internal_link_fails_the_build(tmp_path, kind):
    source = fixture_source(tmp_path / "book")
    page = source / "intro.md"
    page.write_text(page.read_text(encoding="utf-8") + "\n" + BROKEN_LINKS[kind] + "\n",
                    encoding="utf-8")
    built = build_book(source, tmp_path / "out")
    assert built.result.returncode != 0, f"a broken {kind} did not fail the build"
    assert re.search(r"intro\.md:\d+: (WARNING|ERROR)", built.log), built.log[-3000:]


def test_the_unbroken_fixture_builds(tmp_path):
    """Control for the test above: the same copy without the broken link builds."""
    built = build_book(fixture_source(tmp_path / "book"), tmp_path / "out")
    assert built.result.returncode == 0, built.log[-3000:]


def test_without_npm_the_book_builds_for_online_use(tmp_path):
    built = build_book(fixture_source(tmp_path / "book"), tmp_path / "out",
                       node_modules=tmp_path / "no_node_modules")
    assert built.result.returncode == 0, built.log[-3000:]
    assert "Run `make assets` (npm ci)" in built.log
    page = (built.html / "intro.html").read_text(encoding="utf-8")
    assert "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js" in page
    assert not (built.html / "_static/lmbook").exists()


def test_node_modules_is_where_the_tests_look():
    assert (NODE_MODULES / "mathjax/package.json").is_file(), "run `make assets` (npm ci)"
