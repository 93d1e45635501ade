"""Shared fixtures: the book built once per test session, from stored outputs.

tests/test_book_build.py and tests/test_browser.py both use `real_book` and
`fixture_book`, so the (slow) Jupyter Book builds happen once per session.

* real_book: book/ as the table of contents lists it, built from the notebooks'
  stored outputs (execution off; nbval has already checked that the stored
  outputs equal a fresh run), with warnings as errors and nitpicky links.
* fixture_book: tests/fixtures/widgets_book, built with the real book's
  _config.yml and _ext/. Its notebook is executed here first (so it shows what
  lmbook_utils.viz produces today) and holds math, the three attention views,
  an ipywidgets slider with stored widget state and two frame switchers. It
  proves the offline machinery before any chapter has an attention view.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hypothesis import settings

# Property tests draw the same examples on every run and every machine: a CI failure can be
# reproduced, and a green run stays green.
settings.register_profile("lmbook", derandomize=True, database=None)
settings.load_profile("lmbook")

# The fixture book's notebook has no stored outputs (the tests execute it): keep
# `pytest --nbval` from collecting it.
collect_ignore_glob = ["fixtures/*"]

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
FIXTURE_BOOK = Path(__file__).parent / "fixtures" / "widgets_book"
NODE_MODULES = Path(os.environ.get("LMBOOK_NODE_MODULES", ROOT / "node_modules"))
BUILD_TIMEOUT = 600  # seconds


@dataclass
class BuiltBook:
    source: Path  # the copy of the book that was built
    html: Path  # its HTML output folder
    result: subprocess.CompletedProcess

    @property
    def log(self) -> str:
        return self.result.stdout + self.result.stderr


def toc_files(toc: Path) -> list[str]:
    """Every document the table of contents lists (root first), without suffix."""
    data = yaml.safe_load(toc.read_text(encoding="utf-8"))
    found = [data["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                found.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in data.items() if k != "root"})
    return found


def source_of(book: Path, doc: str) -> Path | None:
    for suffix in (".ipynb", ".md"):
        if (book / (doc + suffix)).is_file():
            return book / (doc + suffix)
    return None


def copy_book(src: Path, dest: Path) -> Path:
    """Copy a book's sources (not its _build) and turn notebook execution off."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("_build", ".ipynb_checkpoints",
                                                             "__pycache__", ".jupyter_cache"))
    execution_off(dest)
    return dest


def execution_off(book: Path) -> None:
    """Build from stored outputs: nbval has already checked them against a fresh run."""
    config = book / "_config.yml"
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data.setdefault("execute", {})["execute_notebooks"] = "off"
    config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def build_book(source: Path, output: Path, node_modules: Path = NODE_MODULES) -> BuiltBook:
    """`jupyter-book build` with warnings as errors and nitpicky cross-references."""
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(source), "--all",
           "--path-output", str(output), "--warningiserror", "--nitpick", "--keep-going",
           "--builder", "html"]
    env = dict(os.environ, LMBOOK_NODE_MODULES=str(node_modules), PYTHONHASHSEED="0")
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=BUILD_TIMEOUT,
                            cwd=source)
    return BuiltBook(source, output / "_build" / "html", result)


def execute_notebook(path: Path) -> None:
    """Run a notebook in place and store its widget state.

    Chapter authors: store widget state so widgets render in the built book. In
    JupyterLab use Settings > "Save Widget State Automatically" before saving; from
    a script, `nbclient.NotebookClient(nb, store_widget_state=True).execute()`
    (this function), which writes metadata.widgets
    ["application/vnd.jupyter.widget-state+json"].
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    nbformat.write(nb, path)


def require_assets() -> None:
    if not (NODE_MODULES / "mathjax").is_dir():
        pytest.fail(f"{NODE_MODULES} has no JavaScript assets: run `make assets` (npm ci) first; "
                    "the offline book needs them.")


@pytest.fixture(scope="session")
def real_book(tmp_path_factory) -> BuiltBook:
    require_assets()
    missing = [doc for doc in toc_files(BOOK / "_toc.yml") if source_of(BOOK, doc) is None]
    if missing:
        pytest.fail(f"book/_toc.yml lists {missing}, which do not exist under book/")
    tmp = tmp_path_factory.mktemp("real_book")
    source = copy_book(BOOK, tmp / "book")
    built = build_book(source, tmp / "out")
    if built.result.returncode != 0:
        pytest.fail(f"the book build failed:\n{built.log[-6000:]}")
    return built


def fixture_source(dest: Path) -> Path:
    """tests/fixtures/widgets_book with the real book's _config.yml, _ext/ and bibliography."""
    shutil.copytree(FIXTURE_BOOK, dest, ignore=shutil.ignore_patterns("_build", "__pycache__"))
    for name in ("_config.yml", "references.bib"):
        shutil.copy2(BOOK / name, dest / name)
    shutil.copytree(BOOK / "_ext", dest / "_ext", ignore=shutil.ignore_patterns("__pycache__"))
    execution_off(dest)
    return dest


@pytest.fixture(scope="session")
def fixture_book(tmp_path_factory) -> BuiltBook:
    require_assets()
    tmp = tmp_path_factory.mktemp("fixture_book")
    source = fixture_source(tmp / "book")
    execute_notebook(source / "views.ipynb")
    built = build_book(source, tmp / "out")
    if built.result.returncode != 0:
        pytest.fail(f"the fixture book build failed:\n{built.log[-6000:]}")
    return built
