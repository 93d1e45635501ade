"""What a reader of the built book can take away, and the one colour mode it is made for.

- **Student edition downloads.** Every notebook page's download menu offers, beside the
  theme's ``.ipynb`` (the chapter with its solutions), ``.ipynb (student edition)``: the same
  notebook without the solutions (``lmbook_utils.student.strip_solutions``, as ``make student``
  writes it). They are written into ``_downloads/student/`` with the same relative path as the
  chapter, and zipped together into ``_downloads/student/lmbook-student-notebooks.zip``, which
  the teachers' page links to.
- **Light mode, held on purpose.** The book's pictures are drawn for a white page: Matplotlib
  figures, attention views and the quiz's colours are dark ink on white, and stored outputs
  cannot follow a theme switch. So the theme's colour-mode button is removed (the template
  ``theme-switcher.html`` in ``_ext/templates`` is empty) and ``lmbook-light.js`` sets the
  light theme before the page is drawn, whatever another book opened from the same disk
  stored in the browser.
- **Readable links.** ``lmbook-reader.css`` darkens the theme's link colour, whose contrast on
  the light blue of notes and exercises is under WCAG AA's 4.5:1.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

STUDENT_DIR = "_downloads/student"
STUDENT_ZIP = "lmbook-student-notebooks.zip"
HERE = Path(__file__).parent


def _notebook_docs(app: Sphinx) -> list[str]:
    """Docnames whose source is a notebook, in order."""
    return sorted(doc for doc in app.env.found_docs
                  if Path(app.env.doc2path(doc, base=True)).suffix == ".ipynb")


def write_student_notebooks(app: Sphinx, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    import nbformat

    from lmbook_utils.student import strip_solutions

    out = Path(app.outdir) / STUDENT_DIR
    written = []
    for doc in _notebook_docs(app):
        source = Path(app.env.doc2path(doc))
        student = strip_solutions(nbformat.read(source, as_version=4), str(source))
        target = out / f"{doc}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(student, target)
        written.append(target)
    with zipfile.ZipFile(out / STUDENT_ZIP, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in written:
            archive.write(path, Path("lmbook-student") / path.name)
    logger.info("lmbook_reader: wrote %d student notebooks and %s into %s", len(written), STUDENT_ZIP, out)


def add_student_download(app: Sphinx, pagename: str, templatename: str, context: dict,
                         doctree) -> None:
    """Add the student edition to the download menu of a notebook page."""
    if pagename not in app.env.found_docs:
        return
    if Path(app.env.doc2path(pagename, base=True)).suffix != ".ipynb":
        return
    for button in context.get("header_buttons", []):
        if button.get("label") == "download-buttons":
            button["buttons"].insert(1, {
                "type": "link",
                "url": context["pathto"](f"{STUDENT_DIR}/{pagename}.ipynb", 1),
                "text": ".ipynb (student edition)",
                "tooltip": "Download the notebook without the exercises' solutions",
                "icon": "fas fa-user-graduate",
                "label": "download-student-notebook-button",
            })


def hold_light_mode(app: Sphinx, config) -> None:
    config.templates_path = [str(HERE / "templates"), *config.templates_path]
    config.html_static_path = [*config.html_static_path, str(HERE / "static")]


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", hold_light_mode)
    app.connect("html-page-context", add_student_download, priority=600)  # after the theme's buttons
    app.connect("build-finished", write_student_notebooks)
    app.add_js_file("lmbook-light.js", priority=1)  # first: before the page is drawn
    app.add_css_file("lmbook-reader.css", priority=900)  # after the theme's
    return {"parallel_read_safe": True, "parallel_write_safe": True}
