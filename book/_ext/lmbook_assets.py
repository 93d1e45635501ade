"""Serve the book's JavaScript from its own folder: no CDN, so the book works offline.

`make assets` runs `npm ci`, which installs the versions pinned in package.json and
package-lock.json into node_modules/. This Sphinx extension copies the files a page
needs from there into `_static/lmbook/` at build time (nothing third-party is
committed), and `_config.yml` points MathJax and the Jupyter widgets manager at
those copies. If node_modules is missing (no npm), the build says so and falls back
to the public CDNs, so the book still works online.

It also removes sphinx-thebe (which Jupyter Book always adds) from the pages
unless launch_buttons.thebe is on: its inline configuration names a CDN and, being
added twice, is a JavaScript error on every page.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.util import logging

logger = logging.getLogger(__name__)

STATIC_SUBDIR = "lmbook"  # everything lands in _static/lmbook/

# destination under _static/lmbook  ->  source under node_modules
COPY = {
    "require.js": "requirejs/require.js",
    "requirejs.package.json": "requirejs/package.json",  # names version and license
    "html-manager": "@jupyter-widgets/html-manager/dist",
    "html-manager/package.json": "@jupyter-widgets/html-manager/package.json",
    "mathjax/tex-mml-chtml.js": "mathjax/es5/tex-mml-chtml.js",
    # MathJax loads these on demand: TeX extensions (autoload), fonts, the menu,
    # accessibility (explorer, speech rules).
    "mathjax/input/tex/extensions": "mathjax/es5/input/tex/extensions",
    "mathjax/output/chtml/fonts/woff-v2": "mathjax/es5/output/chtml/fonts/woff-v2",
    "mathjax/ui": "mathjax/es5/ui",
    "mathjax/a11y": "mathjax/es5/a11y",
    "mathjax/sre": "mathjax/es5/sre",
    "mathjax/LICENSE": "mathjax/LICENSE",
}
# Our own glue between require.js and the widget manager, beside this file.
OWN = {"lmbook-widgets.js": "lmbook-widgets.js"}
# Not needed by a page: source maps, the non-AMD bundle, the library build.
SKIP_SUFFIXES = (".map",)
SKIP_NAMES = {"embed.js", "libembed-amd.js", "embed.js.LICENSE.txt"}

# Where myst-nb and Sphinx look when the local copies are missing (their defaults).
CDN_MATHJAX = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"


def node_modules(app: Sphinx) -> Path:
    """LMBOOK_NODE_MODULES, else node_modules/ beside the book folder."""
    env = os.environ.get("LMBOOK_NODE_MODULES")
    return Path(env) if env else Path(app.srcdir).resolve().parent / "node_modules"


def missing_assets(root: Path) -> list[str]:
    return [src for src in COPY.values() if not (root / src).exists()]


def _ignore(_dir: str, names: list[str]) -> set[str]:
    return {n for n in names if n.endswith(SKIP_SUFFIXES) or n in SKIP_NAMES}


def _copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst, ignore=_ignore, dirs_exist_ok=True)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)


def on_config_inited(app: Sphinx, config: Config) -> None:
    root = node_modules(app)
    missing = missing_assets(root)
    app.lmbook_assets_ok = not missing  # type: ignore[attr-defined]
    if not missing:
        return
    logger.info(
        "lmbook_assets: %s lacks %s. Run `make assets` (npm ci) for a book that works "
        "offline; this build loads MathJax and the widget manager from public CDNs.",
        root,
        ", ".join(missing),
    )
    from myst_nb.core.config import ipywidgets_js_factory

    config.mathjax_path = CDN_MATHJAX
    config.nb_ipywidgets_js = ipywidgets_js_factory()


def on_builder_inited(app: Sphinx) -> None:
    if app.builder.format != "html" or not app.lmbook_assets_ok:  # type: ignore[attr-defined]
        return
    root = node_modules(app)
    out = Path(app.outdir) / "_static" / STATIC_SUBDIR
    for dst, src in COPY.items():
        _copy(root / src, out / dst)
    for dst, src in OWN.items():
        _copy(Path(__file__).parent / src, out / dst)
    logger.info("lmbook_assets: copied JavaScript assets from %s to %s", root, out)


def _is_thebe(asset) -> bool:
    name = os.fspath(getattr(asset, "filename", "") or "")
    body = getattr(asset, "attributes", {}).get("body", "")
    return "sphinx-thebe" in name or "THEBE_JS_URL" in body


def thebe_wanted(app: Sphinx) -> bool:
    """Only if launch_buttons.thebe is switched on in _config.yml (it needs a server)."""
    options = app.config.html_theme_options or {}
    return bool(options.get("launch_buttons", {}).get("thebe"))


def fix_page_assets(app: Sphinx, pagename: str, templatename: str, context: dict,
                    doctree) -> None:
    """Remove sphinx-thebe from the page, drop repeated <script>s, and give the
    widget manager a widget-module folder relative to this page.

    Jupyter Book always loads sphinx-thebe, whose inline config names a CDN
    (unpkg.com) and is registered twice: the second `const THEBE_JS_URL` is a
    JavaScript error on every page. Launch buttons are off (they need a server),
    so the book needs none of it.
    """
    from sphinx.builders.html._assets import _JavaScript

    drop_thebe = not thebe_wanted(app)
    seen, scripts = set(), []
    for script in context.get("script_files", []):
        if drop_thebe and _is_thebe(script):
            continue
        attributes = dict(getattr(script, "attributes", {}))
        if "data-jupyter-widgets-cdn" in attributes and app.lmbook_assets_ok:  # type: ignore[attr-defined]
            attributes["data-jupyter-widgets-cdn"] = context["pathto"](
                f"_static/{STATIC_SUBDIR}/widget-modules/", 1)
            script = _JavaScript(script.filename, priority=script.priority, **attributes)
        key = (os.fspath(getattr(script, "filename", script) or ""), tuple(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            scripts.append(script)
    context["script_files"] = scripts
    if drop_thebe:
        context["css_files"] = [css for css in context.get("css_files", []) if not _is_thebe(css)]


def drop_thebe_config(app: Sphinx, doctree, docname: str) -> None:
    """Remove the per-page thebe configuration sphinx-thebe appends to the page."""
    if thebe_wanted(app):
        return
    for node in list(doctree.findall(nodes.raw)):
        text = node.astext()
        if "text/x-thebe-config" in text or text.startswith("<script>kernelName ="):
            node.parent.remove(node)


def drop_thebe_files(app: Sphinx, exception) -> None:
    """No page loads sphinx-thebe's files any more; do not ship them."""
    if exception is None and app.builder.format == "html" and not thebe_wanted(app):
        for path in (Path(app.outdir) / "_static").glob("sphinx-thebe.*"):
            path.unlink()


def setup(app: Sphinx) -> dict:
    # Before myst-nb reads nb_ipywidgets_js (it does so at builder-inited).
    app.connect("config-inited", on_config_inited, priority=100)
    app.connect("builder-inited", on_builder_inited)
    app.connect("doctree-resolved", drop_thebe_config, priority=900)  # after sphinx-thebe's
    app.connect("html-page-context", fix_page_assets, priority=900)  # after the others add theirs
    app.connect("build-finished", drop_thebe_files)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
