"""Attention views and kernel-free controls that work offline and store stable outputs.

The one public entry point the chapters use (``from lmbook_utils import viz``); the
code lives in two modules:

* `lmbook_utils.attention_views`: bertviz's head, model and encoder-decoder views,
  deterministic and CDN-free, each view carrying the d3 and jQuery it needs
  (from node_modules, loaded once per page). Introduced in chapter 03_attention.
* `lmbook_utils.html_views`: `frame_switcher`, the kernel-free partner of an
  ipywidgets control (results precomputed in Python, switched by a plain HTML
  slider or menu, so the static book offers the same exploration without a
  kernel), and `figure_html` / `heatmap_html` / `red_shade`. Introduced in chapter 01_ngram.

Every function is pure: a view's HTML depends only on its arguments, not on which
cells ran before, so a stored output is the same whatever the execution order.
"""

from __future__ import annotations

from .attention_views import AttentionView, encoder_decoder_view, head_view, model_view
from .html_views import FrameView, figure_html, frame_switcher, heatmap_html, red_shade

__all__ = ["AttentionView", "FrameView", "head_view", "model_view", "encoder_decoder_view", "figure_html",
           "heatmap_html", "frame_switcher", "red_shade"]
