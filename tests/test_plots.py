from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from lmbook_utils.plots import heatmap, plot_losses, use_book_style  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    with matplotlib.rc_context():
        yield
    plt.close("all")


def test_plot_losses_from_dict_returns_figure_with_curves():
    fig = plot_losses({"train": [3.0, 2.0, 1.5], "held-out": ([1, 3], [2.9, 1.8])},
                      title="losses", logy=True)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"train", "held-out"}
    np.testing.assert_array_equal(lines["train"].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(lines["held-out"].get_ydata(), [2.9, 1.8])
    assert ax.get_yscale() == "log"
    assert ax.get_title() == "losses"


def test_plot_losses_from_history_like_object():
    class H:
        steps, train_loss = [1, 2, 3, 4], [4.0, 3.0, 2.0, 1.0]
        eval_steps, eval_loss = [2, 4], [3.5, 1.5]

    fig = plot_losses(H())
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["train", "held-out"]


def test_plot_losses_draws_on_given_axes():
    fig, ax = plt.subplots(1, 2)
    assert plot_losses({"a": [1.0, 0.5]}, ax=ax[1]) is fig
    assert len(ax[1].get_lines()) == 1 and len(ax[0].get_lines()) == 0


def test_plot_losses_bad_input():
    with pytest.raises(TypeError, match="curves"):
        plot_losses([1.0, 2.0])
    with pytest.raises(ValueError, match=r"curves\['x'\]"):
        plot_losses({"x": ([1, 2, 3], [1.0, 2.0])})
    with pytest.raises(TypeError, match="ax"):
        plot_losses({"x": [1.0]}, ax="left")


def test_heatmap_from_tensor_with_labels_and_annotations():
    m = torch.tensor([[0.1, 0.9], [0.6, 0.4], [0.5, 0.5]])
    fig = heatmap(m, row_labels=["a", "b", "c"], col_labels=["x", "y"], annotate=True,
                  title="attention")
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.images[0].get_array(), m.numpy())
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert sorted(t.get_text() for t in ax.texts) == sorted(
        ["0.10", "0.90", "0.60", "0.40", "0.50", "0.50"])
    assert len(fig.axes) == 2  # the colour bar


def test_heatmap_label_mismatch_names_the_argument():
    m = np.zeros((2, 3))
    with pytest.raises(ValueError, match="row_labels must have 2 entries"):
        heatmap(m, row_labels=["a"])
    with pytest.raises(ValueError, match="col_labels must have 3 entries"):
        heatmap(m, col_labels=["a", "b"])
    with pytest.raises(ValueError, match="matrix must be a non-empty 2-D"):
        heatmap(np.zeros((2, 2, 2)))


def test_book_style_svg_is_deterministic():
    use_book_style()
    assert matplotlib.rcParams["svg.hashsalt"] == "lmbook"
    assert matplotlib.rcParams["axes.grid"] is True

    def render() -> str:
        fig = heatmap(np.arange(6).reshape(2, 3), row_labels=["a", "b"], title="t")
        plot_losses({"train": [2.0, 1.0]}, ax=fig.axes[0])
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
        plt.close(fig)
        return buf.getvalue()

    first = render()
    assert "<dc:date>" not in first
    assert render() == first
