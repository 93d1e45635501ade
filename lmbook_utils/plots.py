"""The book's plot style and the two plots every chapter needs: loss curves and heatmaps.

Introduced in chapter 00_introduction. ``use_book_style()`` is called once at the top of a
notebook: readable sizes, a colour-blind-safe palette (Okabe & Ito 2008), and SVG output that
is byte-for-byte the same on every run (fixed hash salt, no date), so stored notebook outputs
stay stable. Plot helpers return the figure and never write files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

# Okabe-Ito colours, distinguishable with every common colour-vision deficiency.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
SVG_HASH_SALT = "lmbook"
_CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei",
              "WenQuanYi Micro Hei", "SimHei", "PingFang SC", "Microsoft YaHei")

BOOK_RC: dict[str, Any] = {
    "figure.figsize": (6.4, 3.8),
    "figure.dpi": 100,
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=list(PALETTE)),
    "lines.linewidth": 1.8,
    "image.cmap": "viridis",
    "svg.hashsalt": SVG_HASH_SALT,  # element ids from a fixed salt, not a random one
    "svg.fonttype": "path",  # glyphs as paths: same drawing whatever fonts the reader has
}


def _in_ipython_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def use_book_style() -> None:
    """Apply the book's matplotlib style; in Jupyter, also switch inline figures to SVG.

    Introduced in chapter 00_introduction. Chinese labels work when a CJK font is installed
    (it is added as a fall-back font only if present, so no "font not found" warnings).
    """
    matplotlib.rcParams.update(BOOK_RC)
    installed = {f.name for f in matplotlib.font_manager.fontManager.ttflist}
    cjk = [name for name in _CJK_FONTS if name in installed]
    matplotlib.rcParams["font.family"] = ["DejaVu Sans", *cjk[:1]]
    if _in_ipython_kernel():
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        # metadata={"Date": None}: no time stamp inside the SVG, so outputs do not change.
        set_matplotlib_formats("svg", metadata={"Date": None})


def _new_axes(ax: Any) -> tuple[Figure, Any]:
    if ax is None:
        fig, ax = plt.subplots()
        return fig, ax
    if not isinstance(ax, matplotlib.axes.Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    return ax.figure, ax


def _series_from(curves: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Normalise a History or a {name: ys | (xs, ys)} mapping to {name: (xs, ys)}."""
    if hasattr(curves, "train_loss") and hasattr(curves, "eval_loss"):  # a train.History
        out = {"train": (curves.steps, curves.train_loss)}
        if len(curves.eval_loss):
            out["held-out"] = (curves.eval_steps, curves.eval_loss)
        curves = out
    if not isinstance(curves, Mapping) or not curves:
        raise TypeError("curves must be a train.History or a non-empty dict mapping a name to "
                        f"ys or (xs, ys), got {type(curves).__name__}")
    series = {}
    for name, value in curves.items():
        if isinstance(value, tuple) and len(value) == 2:
            xs, ys = np.asarray(value[0], float), np.asarray(value[1], float)
        else:
            ys = np.asarray(value, float)
            xs = np.arange(1, len(ys) + 1, dtype=float)
        if ys.ndim != 1 or xs.shape != ys.shape:
            raise ValueError(f"curves[{name!r}] must be 1-D ys or (xs, ys) of equal length, got "
                             f"xs shape {xs.shape} and ys shape {ys.shape}")
        series[str(name)] = (xs, ys)
    return series


def plot_losses(curves: Any, ax: Any = None, title: str | None = None, logy: bool = False,
                xlabel: str = "step", ylabel: str = "loss (nats per token)") -> Figure:
    """Loss curves: a `train.History` (train vs held-out) or a dict of named series.

    Introduced in chapter 03_attention (`History.plot`). A dict maps a name to ys (x = 1, 2, ...) or to (xs, ys).
    A series with a single point is drawn as a marker. `logy` puts the loss on a log scale,
    which shows the late, slow part of training.
    """
    series = _series_from(curves)
    fig, ax = _new_axes(ax)
    for name, (xs, ys) in series.items():
        noisy = name == "train" and len(series) > 1
        ax.plot(xs, ys, label=name, marker="o" if len(xs) < 30 and not noisy else None,
                markersize=4, alpha=0.6 if noisy else 1.0, linewidth=1.2 if noisy else None)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    ax.legend()
    return fig


def heatmap(matrix: Any, row_labels: Sequence[str] | None = None,
            col_labels: Sequence[str] | None = None, ax: Any = None, title: str | None = None,
            cmap: str = "viridis", annotate: bool = False, vmin: float | None = None,
            vmax: float | None = None, colorbar: bool = True) -> Figure:
    """Draw a 2-D matrix (rows x columns), e.g. attention weights (queries x keys).

    Introduced in chapter 03_attention. `matrix` is a 2-D torch tensor or array-like; labels,
    when given, must have one entry per row / column. `annotate` prints each value (2 decimals).
    """
    if hasattr(matrix, "detach"):
        matrix = matrix.detach().cpu().float().numpy()
    values = np.asarray(matrix, dtype=float)
    if values.ndim != 2 or 0 in values.shape:
        raise ValueError(f"matrix must be a non-empty 2-D array (rows x columns), got shape "
                         f"{values.shape}")
    for name, labels, size in (("row_labels", row_labels, values.shape[0]),
                               ("col_labels", col_labels, values.shape[1])):
        if labels is not None and len(labels) != size:
            raise ValueError(f"{name} must have {size} entries (one per "
                             f"{'row' if name == 'row_labels' else 'column'} of matrix with "
                             f"shape {values.shape}), got {len(labels)}")
    fig, ax = _new_axes(ax)
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto",
                      interpolation="nearest")
    ax.grid(False)
    if row_labels is not None:
        ax.set_yticks(range(values.shape[0]), [str(x) for x in row_labels])
    if col_labels is not None:
        ax.set_xticks(range(values.shape[1]), [str(x) for x in col_labels], rotation=45,
                      ha="right", rotation_mode="anchor")
    if annotate:
        low, high = image.get_clim()
        middle = (low + high) / 2
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if v < middle else "black")
    if colorbar:
        fig.colorbar(image, ax=ax)
    if title is not None:
        ax.set_title(title)
    return fig
