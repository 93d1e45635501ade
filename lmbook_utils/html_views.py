"""Kernel-free HTML controls: results precomputed in Python, shown and switched by the page.

Why this module exists: an ipywidgets control needs a running kernel, so the static
book cannot offer it. `frame_switcher` is its kernel-free partner: every result is
computed in Python, stored in the cell's output, and a plain HTML slider or menu
shows one at a time, in JupyterLab, classic Notebook and the built book alike.
`figure_html` and `heatmap_html` turn a plot or a matrix into HTML that is the
same bytes on every run, so nbval can compare stored outputs strictly.

Every function here is pure: its HTML depends only on its arguments. Element ids
are a hash of the content; if the same control is shown twice on one page, each
copy's script wires the first copy not yet wired, so both work. Nothing here needs
bertviz or torch; `lmbook_utils.viz` is the public entry point.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FrameView", "figure_html", "heatmap_html", "frame_switcher", "red_shade"]


def _content_id(prefix: str, content: str) -> str:
    """An element id that is a hash of what the element shows: the same on every run."""
    return f"{prefix}-{hashlib.sha256(content.encode('utf-8')).hexdigest()[:12]}"


def _strings(values: Any, name: str) -> list[str]:
    """A non-empty list of strings (tokens, labels), or an error that names the argument."""
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a list of strings, got {type(values).__name__}")
    bad = [v for v in values if not isinstance(v, str)]
    if bad:
        raise TypeError(f"{name} must be a list of strings, found {type(bad[0]).__name__}")
    if not values:
        raise ValueError(f"{name} must not be empty")
    return list(values)


@dataclass(frozen=True)
class FrameView:
    """Precomputed results switched by a control that needs no kernel. Introduced in chapter 01_ngram."""

    html: str

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return "<frame switcher>"


def figure_html(fig: Any, alt: str = "figure") -> str:
    """A matplotlib Figure as an <img> of its SVG, the same bytes on every run; closes it.

    For an ipywidgets.HTML value: a widget that redraws a plot this way keeps its output in
    the widget state (so the static book shows it) instead of printing into an Output widget,
    whose captured output nbval would see as the cell's own. Introduced in chapter 03_attention.
    """
    from matplotlib.figure import Figure

    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    import matplotlib
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "lmbook", "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)  # the inline backend would show it a second time
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img src="data:image/svg+xml;base64,{data}" alt="{html.escape(alt)}" style="max-width:100%">'


def red_shade(value: float) -> str:
    """CSS for a table cell whose red is as strong as `value` in [0, 1] (white at 0, dark red
    at 1), with the text colour, black or white, that contrasts with it most: at least 4.6:1
    over the whole range, above WCAG AA's 4.5:1. Introduced in chapter 08_electra."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"value must be a number in [0, 1], got {value!r}")
    rgb = [255 - value * (255 - c) for c in (165, 15, 21)]
    lin = [(c / 255) / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
    lum = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    text = "black" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "white"
    return f"background: rgb({rgb[0]:.0f}, {rgb[1]:.0f}, {rgb[2]:.0f}); color: {text}"


def heatmap_html(matrix: Any, row_labels: Sequence[str], col_labels: Sequence[str], *,
                 title: str = "", vmin: float = 0.0, vmax: float = 1.0) -> str:
    """A heat map as an HTML table: the browser draws the labels, so Chinese (or any script)
    shows whatever fonts matplotlib has, and the stored output is the same on every machine.

    Cell colours come from matplotlib's viridis, values are rounded to 3 decimals and shown
    on hover. Introduced in chapter 04_transformer.
    """
    import matplotlib

    if hasattr(matrix, "detach"):  # a torch tensor, on any device and of any dtype
        matrix = matrix.detach().cpu().double().numpy()
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2:
        raise ValueError(f"matrix must be 2-D, got shape {m.shape}")
    rows, cols = _strings(row_labels, "row_labels"), _strings(col_labels, "col_labels")
    if m.shape != (len(rows), len(cols)):
        raise ValueError(f"matrix has shape {m.shape}, but there are {len(rows)} row_labels and "
                         f"{len(cols)} col_labels")
    if not np.isfinite(m).all():
        raise ValueError("matrix must hold finite numbers")
    if not vmax > vmin:
        raise ValueError(f"vmax must be > vmin, got vmin={vmin}, vmax={vmax}")
    cmap = matplotlib.colormaps["viridis"]
    cell = "width:1.6em;height:1.6em;padding:0"
    head = "".join(f'<th style="writing-mode:vertical-rl;font-weight:normal;padding:2px">'
                   f"{html.escape(c)}</th>" for c in cols)
    body = []
    for label, row in zip(rows, m):
        tds = "".join(
            f'<td title="{html.escape(label)} → {html.escape(c)}: {v:.3f}" style="{cell};'
            f'background:{matplotlib.colors.to_hex(cmap(float(np.clip((v - vmin) / (vmax - vmin), 0, 1))))}"></td>'
            for c, v in zip(cols, np.round(row, 3)))
        body.append(f'<tr><th style="text-align:right;font-weight:normal;padding:0 4px">'
                    f"{html.escape(label)}</th>{tds}</tr>")
    caption = f'<caption style="caption-side:top;font-weight:bold">{html.escape(title)}</caption>' if title else ""
    return (f'<table class="lmbook-heatmap" style="border-collapse:collapse;font-family:sans-serif;'
            f'font-size:0.85em">{caption}<tr><th></th>{head}</tr>{"".join(body)}</table>')


def _frame_html(frame: Any, label: str) -> str:
    """A figure becomes an <img> of its SVG (its own document: no id clashes between frames)."""
    from matplotlib.figure import Figure

    if isinstance(frame, Figure):
        return figure_html(frame, label)
    if isinstance(frame, str):
        return frame
    if hasattr(frame, "_repr_html_"):
        return frame._repr_html_()
    raise TypeError(f"frames values must be matplotlib Figures, HTML strings or objects with "
                    f"_repr_html_, got {type(frame).__name__} for {label!r}")


# Wires the first element with this id that is not wired yet: the same switcher may be on a
# page twice (shown twice in a notebook), and both copies carry the same content-derived id.
_SWITCHER_JS = """(function () {
  var root = null, copies = document.querySelectorAll('[id="' + %(id)s + '"]');
  for (var i = 0; i < copies.length && !root; i++) {
    if (!copies[i].hasAttribute("data-lmbook-wired")) root = copies[i];
  }
  if (!root) return;
  root.setAttribute("data-lmbook-wired", "");
  var control = root.querySelector("input, select"), out = root.querySelector("output");
  var frames = root.querySelectorAll(".lmbook-frame");
  function show() {
    var k = +control.value;
    frames.forEach(function (f, i) { f.hidden = i !== k; });
    out.textContent = frames[k].getAttribute("data-value");
  }
  control.addEventListener("input", show);
  control.addEventListener("change", show);
})();"""


def frame_switcher(frames: Mapping[Any, Any], *, label: str, initial: Any = None,
                   control: str = "slider") -> FrameView:
    """Show one of several precomputed results, chosen by a slider or menu that runs in the page.

    frames maps each parameter value to a matplotlib Figure (closed after use), an
    HTML string, or an object with `_repr_html_`; the order of the mapping is the
    order on the control. The HTML depends only on the arguments: the same call
    gives the same bytes, in any kernel, at any point of it. Introduced in chapter 01_ngram.
    """
    if not isinstance(frames, Mapping) or not frames:
        raise ValueError("frames must be a non-empty mapping {value: figure or HTML}")
    if not isinstance(label, str) or not label:
        raise ValueError(f"label must be a non-empty string, got {label!r}")
    if control not in ("slider", "dropdown"):
        raise ValueError(f"control must be 'slider' or 'dropdown', got {control!r}")
    keys = list(frames)
    names = [str(k) for k in keys]
    if initial is None:
        initial = keys[0]
    if initial not in keys:
        raise ValueError(f"initial must be one of the frames' keys {names}, got {initial!r}")
    start = keys.index(initial)
    bodies = [
        f'<div class="lmbook-frame" data-value="{html.escape(n)}"{"" if i == start else " hidden"}>'
        f"{_frame_html(frames[k], f'{label} = {n}')}</div>"
        for i, (k, n) in enumerate(zip(keys, names))
    ]
    content = "\n".join(bodies)
    if control == "slider":
        widget = (f'<input type="range" min="0" max="{len(keys) - 1}" step="1" value="{start}" '
                  f'aria-label="{html.escape(label)}">')
    else:
        options = "".join(f'<option value="{i}"{" selected" if i == start else ""}>{html.escape(n)}</option>'
                          for i, n in enumerate(names))
        widget = f'<select aria-label="{html.escape(label)}">{options}</select>'
    fid = _content_id("lmbook-frames", f"{control}\n{start}\n{label}\n{content}")
    script = _SWITCHER_JS % {"id": json.dumps(fid)}
    page = (f'<div class="lmbook-frames" id="{fid}">\n'
            f'<label style="display:flex;gap:.5em;align-items:center;font-family:sans-serif">'
            f"{html.escape(label)} {widget} <output>{html.escape(names[start])}</output></label>\n"
            f"{content}\n<script>{script}</script>\n</div>")
    return FrameView(page)
