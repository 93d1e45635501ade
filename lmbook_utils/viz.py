"""Attention views (bertviz) and kernel-free controls that work offline and store stable outputs.

bertviz (Vig, 2019, "A Multiscale Visualization of Attention in the Transformer
Model", ACL demo, arXiv:1906.05714) draws attention with d3 and jQuery, which its
HTML loads from public CDNs through require.js, and it names each view's element
with a random uuid. Here we keep bertviz's Python (which turns attention into the
view's parameters) and its JavaScript (read from the installed bertviz package),
and change three things:

* The element id is a hash of the view's content (plus a counter if the same view
  is shown twice in one kernel), so the stored output is the same on every run
  and nbval compares it strictly.
* No require.js and no CDN. d3 5.7.0 and jQuery 2.1.0 come from node_modules/
  (pinned in package.json, installed by `make assets`, i.e. `npm ci`). The first
  view of a kernel session carries both inline (~330 KB, once per notebook);
  later views wait for them. Inline, because a live kernel has no web folder of
  ours to load files from: JupyterLab and classic Notebook serve only the
  notebook's directory tree, and the book's `_static/` exists only after a
  build. Inline is also what the built book then shows, so one output works in
  JupyterLab, classic Notebook and the book, online and offline. The libraries
  are evaluated with AMD/CommonJS hidden and jQuery in no-conflict mode, so they
  neither clash with the require.js of classic Notebook and the widget manager
  nor replace the page's own `$`.
* Attention is validated (shapes, token counts, finite weights in [0, 1]) with
  errors that name the argument, and rounded to 3 decimals: enough for an
  opacity, and it keeps the stored output small and stable across machines.

Without node_modules (no npm) a view loads d3 and jQuery from the CDN bertviz
uses and warns: it works online only.

`frame_switcher` is the kernel-free partner of an ipywidgets control: results
precomputed in Python, switched by a plain HTML slider or menu, so the static
book offers the same exploration without a kernel.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import os
import re
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["AttentionView", "FrameView", "head_view", "model_view", "encoder_decoder_view", "figure_html",
           "heatmap_html",
           "frame_switcher"]

DECIMALS = 3  # attention weights are rounded to this many decimals
_LIBS = {"jquery": "jquery/dist/jquery.min.js", "d3": "d3/dist/d3.min.js"}
_CDN = {"jquery": "https://cdnjs.cloudflare.com/ajax/libs/jquery/2.0.0/jquery.min.js",
        "d3": "https://cdnjs.cloudflare.com/ajax/libs/d3/5.7.0/d3.min.js"}
_SEEN: Counter[str] = Counter()  # ids handed out in this kernel, to keep repeated views apart
_STATE = {"libs_sent": False}

# Defines window.__lmbookViz once per page: a queue of views waiting for d3 and jQuery.
_LOADER_JS = """(function () {
  if (window.__lmbookViz) return;
  var waiting = [];
  var api = window.__lmbookViz = {
    ready: false,
    run: function (fn) { if (api.ready) fn(api.$, api.d3); else waiting.push(fn); },
    provide: function ($, d3) {
      if (api.ready) return;
      api.$ = $; api.d3 = d3; api.ready = true;
      waiting.splice(0).forEach(function (fn) { fn($, d3); });
    }
  };
})();"""

# Evaluates jQuery and d3 with AMD/CommonJS hidden; d3 goes into a private object.
_LIBS_JS = """(function () {
  if (window.__lmbookViz.ready) return;
  var holder = {};
  (function (define, module, exports) {
%(jquery)s
  }).call(window);
  var jq = window.jQuery.noConflict(true);
  (function (define, module, exports) {
%(d3)s
  }).call(holder);
  window.__lmbookViz.provide(jq, holder.d3);
})();"""

_CDN_LIBS_JS = """(function () {
  if (window.__lmbookViz.ready || window.__lmbookVizCdn) return;
  window.__lmbookVizCdn = true;
  function load(src, done) {
    var s = document.createElement("script"); s.src = src; s.onload = done;
    document.head.appendChild(s);
  }
  var define = window.define; window.define = undefined;  // load as globals, not AMD
  load(%(jquery)s, function () {
    var jq = window.jQuery.noConflict(true);
    load(%(d3)s, function () { window.define = define; window.__lmbookViz.provide(jq, window.d3); });
  });
})();"""


def _node_modules() -> Path:
    env = os.environ.get("LMBOOK_NODE_MODULES")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "node_modules"


def _library_script() -> str:
    """The script that makes d3 and jQuery available: inline from node_modules, else CDN."""
    root = _node_modules()
    paths = {name: root / rel for name, rel in _LIBS.items()}
    if all(p.is_file() for p in paths.values()):
        code = {}
        for name, path in paths.items():
            text = path.read_text(encoding="utf-8")
            text = re.sub(r"^//# sourceMappingURL=.*$", "", text, flags=re.M)
            code[name] = text.replace("</", "<\\/")  # cannot end the <script> early
        return _LIBS_JS % code
    warnings.warn(
        f"lmbook_utils.viz: d3 and jQuery not found under {root}; run `make assets` (npm ci). "
        "Attention views will load them from a CDN and work online only.",
        stacklevel=3,
    )
    return _CDN_LIBS_JS % {k: json.dumps(v) for k, v in _CDN.items()}


def _unique_id(prefix: str, content: str) -> str:
    digest = hashlib.sha256(content.encode("utf-8")).hexdigest()[:12]
    base = f"{prefix}-{digest}"
    _SEEN[base] += 1
    return base if _SEEN[base] == 1 else f"{base}-{_SEEN[base] - 1}"


@dataclass(frozen=True)
class AttentionView:
    """A bertviz view as self-contained, deterministic HTML. Introduced in chapter 03_attention."""

    kind: str  # "head" or "model"
    html: str

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return f"<bertviz {self.kind} view>"


def _layers(attention: Any, name: str, n_rows: int, n_cols: int) -> list[torch.Tensor]:
    """Accept (L, 1, h, R, C) / (L, h, R, C) or a list of (1, h, R, C) / (h, R, C) tensors."""
    if isinstance(attention, (torch.Tensor, np.ndarray)):
        t = torch.as_tensor(attention)
        if t.dim() == 5:
            if t.shape[1] != 1:
                raise ValueError(f"{name} must have batch size 1, got shape {tuple(t.shape)}; "
                                 "pick one example, e.g. attention[:, i:i+1]")
            t = t[:, 0]
        if t.dim() != 4:
            raise ValueError(f"{name} must have shape (layers, 1, heads, {n_rows}, {n_cols}) or "
                             f"(layers, heads, {n_rows}, {n_cols}), got {tuple(t.shape)}")
        layers = list(t.unbind(0))
    elif isinstance(attention, Sequence) and not isinstance(attention, (str, bytes)):
        layers = []
        for i, a in enumerate(attention):
            if not isinstance(a, (torch.Tensor, np.ndarray)):
                raise TypeError(f"{name}[{i}] must be a tensor or array, got {type(a).__name__}")
            a = torch.as_tensor(a)
            if a.dim() == 4:
                if a.shape[0] != 1:
                    raise ValueError(f"{name}[{i}] must have batch size 1, got shape "
                                     f"{tuple(a.shape)}; pick one example, e.g. a[i:i+1]")
                a = a[0]
            if a.dim() != 3:
                raise ValueError(f"{name}[{i}] must have shape (1, heads, {n_rows}, {n_cols}) or "
                                 f"(heads, {n_rows}, {n_cols}), got {tuple(a.shape)}")
            layers.append(a)
    else:
        raise TypeError(f"{name} must be a tensor/array or a list of per-layer tensors, "
                        f"got {type(attention).__name__}")
    if not layers:
        raise ValueError(f"{name} must hold at least one layer")
    heads = layers[0].shape[0]
    for i, a in enumerate(layers):
        if tuple(a.shape) != (heads, n_rows, n_cols):
            raise ValueError(f"{name} layer {i} has shape (heads, rows, cols) = {tuple(a.shape)}, "
                             f"expected ({heads}, {n_rows}, {n_cols}) from the tokens and layer 0")
    t = torch.stack([a.detach().to("cpu", torch.float64) for a in layers])
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite weights")
    if t.min() < -1e-6 or t.max() > 1 + 1e-6:
        raise ValueError(f"{name} weights must lie in [0, 1] (softmax probabilities), "
                         f"got min {t.min().item():.4g}, max {t.max().item():.4g}")
    t = torch.round(t.clamp(0.0, 1.0), decimals=DECIMALS)
    return [layer.unsqueeze(0) for layer in t]  # bertviz's shape: (1, h, R, C) per layer


def _tokens(tokens: Any, name: str) -> list[str]:
    if isinstance(tokens, str) or not isinstance(tokens, Sequence):
        raise TypeError(f"{name} must be a list of strings, got {type(tokens).__name__}")
    bad = [t for t in tokens if not isinstance(t, str)]
    if bad:
        raise TypeError(f"{name} must be a list of strings, found {type(bad[0]).__name__}")
    if not tokens:
        raise ValueError(f"{name} must not be empty")
    return list(tokens)


_UUID = re.compile(r"bertviz-[0-9a-f]{32}")
_CDN_REQUIRE = re.compile(r'<script src="https://cdnjs\.cloudflare\.com/ajax/libs/require\.js/[^"]+"></script>')
_REQUIRE_HEAD = re.compile(r"require\.config\(\{.*?\}\);\s*requirejs\(\['jquery', 'd3'\],\s*function\s*\(\$, d3\)\s*\{",
                           re.S)


def _render(kind: str, bertviz_html: str) -> AttentionView:
    """Turn bertviz's returned HTML into deterministic, CDN-free HTML."""
    if len(set(_UUID.findall(bertviz_html))) != 1 or not _CDN_REQUIRE.search(bertviz_html) \
            or len(_REQUIRE_HEAD.findall(bertviz_html)) != 1:
        raise RuntimeError("bertviz's HTML is not the shape lmbook_utils.viz expects; "
                           "is bertviz pinned to 1.4.1?")
    body = _CDN_REQUIRE.sub("", bertviz_html)
    body = _REQUIRE_HEAD.sub("window.__lmbookViz.run(function ($, d3) {", body)
    body = re.sub(r"[ \t]+\n", "\n", body).strip()
    # Only the script part can contain "</" inside strings (tokens); escape it there.
    head, sep, script = body.partition('<script type="text/javascript">')
    script, end, tail = script.rpartition("</script>")
    body = head + sep + script.replace("</", "<\\/") + end + tail
    view_id = _unique_id(f"lmbook-{kind}", _UUID.sub("ID", body))
    body = _UUID.sub(view_id, body)
    # overflow-x: the model view is wider than a book page's text column.
    parts = [f'<div class="lmbook-attention" data-view="{kind}" style="overflow-x:auto">',
             f"<script>{_LOADER_JS}</script>"]
    if not _STATE["libs_sent"]:
        parts.append(f"<script>{_library_script()}</script>")
        _STATE["libs_sent"] = True
    parts += [body, "</div>"]
    return AttentionView(kind, "\n".join(parts))


def head_view(attention: Any, tokens: Sequence[str], *, sentence_b_start: int | None = None,
              layer: int | None = None, heads: Sequence[int] | None = None) -> AttentionView:
    """bertviz head view of self-attention: lines from each token to the ones it attends to.

    attention: a tuple/list of per-layer (1, heads, T, T) tensors or arrays (what
    Hugging Face and our models return with output_attentions; (heads, T, T) also
    works), or one (layers, heads, T, T) or (layers, 1, heads, T, T) tensor. Weights
    must be finite and in [0, 1]; they are rounded to 3 decimals.
    Introduced in chapter 03_attention.
    """
    from bertviz import head_view as bv_head_view

    tokens = _tokens(tokens, "tokens")
    attn = _layers(attention, "attention", len(tokens), len(tokens))
    _check_b_start(sentence_b_start, len(tokens))
    if layer is not None and not (isinstance(layer, int) and 0 <= layer < len(attn)):
        raise ValueError(f"layer must be an integer in [0, {len(attn)}), got {layer!r}")
    if heads is not None:
        heads = list(heads)
        if not heads or any(not isinstance(h, int) or not 0 <= h < attn[0].shape[1] for h in heads):
            raise ValueError(f"heads must be a non-empty list of integers in [0, {attn[0].shape[1]}), "
                             f"got {heads!r}")
    out = bv_head_view(attn, tokens, sentence_b_start=sentence_b_start, layer=layer, heads=heads,
                       html_action="return")
    return _render("head", out.data)


def model_view(attention: Any, tokens: Sequence[str], *, sentence_b_start: int | None = None,
               display_mode: str = "light") -> AttentionView:
    """bertviz model view: every head of every layer at a glance; click one to enlarge it.

    Same attention shapes as `head_view`. Introduced in chapter 03_attention.
    """
    from bertviz import model_view as bv_model_view

    tokens = _tokens(tokens, "tokens")
    attn = _layers(attention, "attention", len(tokens), len(tokens))
    _check_b_start(sentence_b_start, len(tokens))
    _check_mode(display_mode)
    out = bv_model_view(attn, tokens, sentence_b_start=sentence_b_start,
                        display_mode=display_mode, html_action="return")
    return _render("model", out.data)


def encoder_decoder_view(encoder_attention: Any, decoder_attention: Any, cross_attention: Any,
                         encoder_tokens: Sequence[str], decoder_tokens: Sequence[str], *,
                         view: str = "head", display_mode: str = "light") -> AttentionView:
    """Head or model view of an encoder-decoder: encoder, decoder and cross attention.

    Shapes per layer: encoder (1, h, S, S), decoder (1, h, T, T), cross (1, h, T, S),
    with S source and T target tokens. Introduced in chapter 04_transformer.
    """
    from bertviz import head_view as bv_head_view, model_view as bv_model_view

    src = _tokens(encoder_tokens, "encoder_tokens")
    tgt = _tokens(decoder_tokens, "decoder_tokens")
    enc = _layers(encoder_attention, "encoder_attention", len(src), len(src))
    dec = _layers(decoder_attention, "decoder_attention", len(tgt), len(tgt))
    cross = _layers(cross_attention, "cross_attention", len(tgt), len(src))
    if not len(enc) == len(dec) == len(cross):
        raise ValueError(f"encoder_attention, decoder_attention and cross_attention must have the "
                         f"same number of layers, got {len(enc)}, {len(dec)}, {len(cross)}")
    kwargs = dict(encoder_attention=enc, decoder_attention=dec, cross_attention=cross,
                  encoder_tokens=src, decoder_tokens=tgt, html_action="return")
    if view == "head":
        return _render("head", bv_head_view(**kwargs).data)
    if view == "model":
        _check_mode(display_mode)
        return _render("model", bv_model_view(display_mode=display_mode, **kwargs).data)
    raise ValueError(f"view must be 'head' or 'model', got {view!r}")


def _check_b_start(sentence_b_start: int | None, n: int) -> None:
    if sentence_b_start is not None and not (isinstance(sentence_b_start, int)
                                             and 0 < sentence_b_start < n):
        raise ValueError(f"sentence_b_start must be an integer in (0, {n}), got {sentence_b_start!r}")


def _check_mode(display_mode: str) -> None:
    if display_mode not in ("light", "dark"):
        raise ValueError(f"display_mode must be 'light' or 'dark', got {display_mode!r}")


# ---------------------------------------------------------------- kernel-free controls

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


def heatmap_html(matrix: Any, row_labels: Sequence[str], col_labels: Sequence[str], *,
                 title: str = "", vmin: float = 0.0, vmax: float = 1.0) -> str:
    """A heat map as an HTML table: the browser draws the labels, so Chinese (or any script)
    shows whatever fonts matplotlib has, and the stored output is the same on every machine.

    Cell colours come from matplotlib's viridis, values are rounded to 3 decimals and shown
    on hover. Introduced in chapter 04_transformer.
    """
    import matplotlib

    m = np.asarray(torch.as_tensor(matrix).detach().cpu().double() if isinstance(matrix, torch.Tensor)
                   else matrix, dtype=float)
    if m.ndim != 2:
        raise ValueError(f"matrix must be 2-D, got shape {m.shape}")
    rows, cols = _tokens(row_labels, "row_labels"), _tokens(col_labels, "col_labels")
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


def frame_switcher(frames: Mapping[Any, Any], *, label: str, initial: Any = None,
                   control: str = "slider") -> FrameView:
    """Show one of several precomputed results, chosen by a slider or menu that runs in the page.

    frames maps each parameter value to a matplotlib Figure (closed after use), an
    HTML string, or an object with `_repr_html_`; the order of the mapping is the
    order on the control. Introduced in chapter 01_ngram.
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
    fid = _unique_id("lmbook-frames", label + "\n" + content)
    if control == "slider":
        widget = (f'<input type="range" min="0" max="{len(keys) - 1}" step="1" value="{start}" '
                  f'aria-label="{html.escape(label)}">')
    else:
        options = "".join(f'<option value="{i}"{" selected" if i == start else ""}>{html.escape(n)}</option>'
                          for i, n in enumerate(names))
        widget = f'<select aria-label="{html.escape(label)}">{options}</select>'
    script = f"""(function () {{
  var root = document.getElementById({json.dumps(fid)});
  var control = root.querySelector("input, select"), out = root.querySelector("output");
  var frames = root.querySelectorAll(".lmbook-frame");
  function show() {{
    var k = +control.value;
    frames.forEach(function (f, i) {{ f.hidden = i !== k; }});
    out.textContent = frames[k].getAttribute("data-value");
  }}
  control.addEventListener("input", show);
  control.addEventListener("change", show);
}})();"""
    page = (f'<div class="lmbook-frames" id="{fid}">\n'
            f'<label style="display:flex;gap:.5em;align-items:center;font-family:sans-serif">'
            f"{html.escape(label)} {widget} <output>{html.escape(names[start])}</output></label>\n"
            f"{content}\n<script>{script}</script>\n</div>")
    return FrameView(page)
