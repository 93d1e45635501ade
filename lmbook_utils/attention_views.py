"""bertviz attention views that work offline, store stable outputs, and need nothing but their own HTML.

Why this module exists: bertviz (Vig, 2019, "A Multiscale Visualization of
Attention in the Transformer Model", ACL demo, arXiv:1906.05714) draws attention
with d3 and jQuery, which its HTML loads from public CDNs through require.js, and
it names each view's element with a random uuid. Here we keep bertviz's Python
(which turns attention into the view's parameters) and its JavaScript (read from
the installed bertviz package), and change three things:

* The element id is a hash of the view's content, so the stored output is the
  same on every run and nbval compares it strictly. The HTML depends only on the
  arguments, never on what ran before in the kernel. If the same view is on a page
  twice, each copy's script draws into the first copy not drawn yet (renaming it
  in the page if its id is taken), so both copies work.
* No require.js and no CDN. d3 5.7.0 and jQuery 2.1.0 come from node_modules/
  (pinned in package.json, installed by `make assets`, i.e. `npm ci`), and every
  view carries both inline (~330 KB), behind a guard: the first view on a page
  evaluates them, every later one sees `window.__lmbookViz.ready` and skips its
  copy, so loading twice is harmless and any one view works alone, whichever
  cells ran or were shown. Inline, because a live kernel has no web folder of
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
uses and warns: it works online only. `lmbook_utils.viz` is the public entry point.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .html_views import _content_id, _strings

__all__ = ["AttentionView", "head_view", "model_view", "encoder_decoder_view"]

DECIMALS = 3  # attention weights are rounded to this many decimals
_LIBS = {"jquery": "jquery/dist/jquery.min.js", "d3": "d3/dist/d3.min.js"}
_CDN = {"jquery": "https://cdnjs.cloudflare.com/ajax/libs/jquery/2.0.0/jquery.min.js",
        "d3": "https://cdnjs.cloudflare.com/ajax/libs/d3/5.7.0/d3.min.js"}

# Defines window.__lmbookViz once per page: a queue of views waiting for d3 and jQuery, and
# `claim`, which gives a view the element to draw into. Every view carries it; it is idempotent.
_LOADER_JS = """(function () {
  var api = window.__lmbookViz;
  if (!api) {
    var waiting = [];
    api = window.__lmbookViz = {
      ready: false,
      run: function (fn) { if (api.ready) fn(api.$, api.d3); else waiting.push(fn); },
      provide: function ($, d3) {
        if (api.ready) return;
        api.$ = $; api.d3 = d3; api.ready = true;
        waiting.splice(0).forEach(function (fn) { fn($, d3); });
      }
    };
  }
  // The first element with this id not drawn into yet. Two copies of one view share the id;
  // while both are on the page, the claimed one gets a page-unique id, so bertviz's
  // selectors ("#id #vis") reach one copy only.
  if (!api.claim) api.claim = function (id) {
    var copies = document.querySelectorAll('[id="' + id + '"]');
    for (var i = 0; i < copies.length; i++) {
      if (copies[i].hasAttribute("data-lmbook-drawn")) continue;
      copies[i].setAttribute("data-lmbook-drawn", "");
      if (copies.length > 1) copies[i].id = id + "-copy" + (api.copies = (api.copies || 0) + 1);
      return copies[i].id;
    }
    return id;
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


_UUID = re.compile(r"bertviz-[0-9a-f]{32}")
_CDN_REQUIRE = re.compile(r'<script src="https://cdnjs\.cloudflare\.com/ajax/libs/require\.js/[^"]+"></script>')
_REQUIRE_HEAD = re.compile(r"require\.config\(\{.*?\}\);\s*requirejs\(\['jquery', 'd3'\],\s*function\s*\(\$, d3\)\s*\{",
                           re.S)
_PARAMS = re.compile(r"^ *const params = \{.*\}; //[^\n]*\n", re.M)  # bertviz's parameters, one line
_CLAIM_JS = "    params.root_div_id = window.__lmbookViz.claim(params.root_div_id);\n"


def _render(kind: str, bertviz_html: str) -> AttentionView:
    """Turn bertviz's returned HTML into deterministic, CDN-free, self-sufficient HTML."""
    if len(set(_UUID.findall(bertviz_html))) != 1 or not _CDN_REQUIRE.search(bertviz_html) \
            or len(_REQUIRE_HEAD.findall(bertviz_html)) != 1 or len(_PARAMS.findall(bertviz_html)) != 1:
        raise RuntimeError("bertviz's HTML is not the shape lmbook_utils.attention_views expects; "
                           "is bertviz pinned to 1.4.1?")
    body = _CDN_REQUIRE.sub("", bertviz_html)
    body = _REQUIRE_HEAD.sub("window.__lmbookViz.run(function ($, d3) {", body)
    # The same view may be on a page twice: draw into the first copy not drawn yet.
    body = _PARAMS.sub(lambda m: m.group(0) + _CLAIM_JS, body)
    body = re.sub(r"[ \t]+\n", "\n", body).strip()
    # Only the script part can contain "</" inside strings (tokens); escape it there.
    head, sep, script = body.partition('<script type="text/javascript">')
    script, end, tail = script.rpartition("</script>")
    body = head + sep + script.replace("</", "<\\/") + end + tail
    view_id = _content_id(f"lmbook-{kind}", _UUID.sub("ID", body))
    body = _UUID.sub(view_id, body)
    # Named controls for screen readers (bertviz's selects have a text beside them, not a label).
    body = body.replace('<select id="layer">', '<select id="layer" aria-label="Layer">')
    body = body.replace('<select id="filter">', '<select id="filter" aria-label="Attention">')
    # overflow-x: the model view is wider than a book page's text column; a region that scrolls
    # is reachable and named for keyboard and screen-reader users.
    parts = [f'<div class="lmbook-attention" data-view="{kind}" style="overflow-x:auto" tabindex="0" '
             f'role="region" aria-label="attention {kind} view">',
             f"<script>{_LOADER_JS}</script>",
             f"<script>{_library_script()}</script>",  # skipped by the page once d3 and jQuery are there
             body, "</div>"]
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

    tokens = _strings(tokens, "tokens")
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

    tokens = _strings(tokens, "tokens")
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

    src = _strings(encoder_tokens, "encoder_tokens")
    tgt = _strings(decoder_tokens, "decoder_tokens")
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
