"""The training loop's progress line, kept out of the stored notebook outputs.

Part of the training loop introduced in chapter 03_attention (see `train`). In Jupyter one
line is displayed and updated in place (nbval does not record update messages); when training
ends it is reset to its first content (empty) and one final line without timings is printed.
Outside Jupyter one line is printed per evaluation.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable

def _in_notebook() -> bool:
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return bool(shell) and hasattr(shell, "kernel")


class _Text:
    """Shows as plain text (no quotes) in Jupyter."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


class _Progress:
    """One live line in Jupyter, a few printed lines elsewhere; the final line has no timings."""

    def __init__(self, max_steps: int, enabled: bool, window: int, notebook: bool | None = None,
                 display: Callable | None = None, write: Callable[[str], None] = print) -> None:
        self.max_steps, self.enabled, self.write = max_steps, enabled, write
        self.notebook = _in_notebook() if notebook is None else notebook
        self.every = max(1, max_steps // 50)
        self.pending: deque[float] = deque(maxlen=window)  # the last `window` train losses
        self.handle = None
        if enabled and self.notebook:
            if display is None:
                from IPython.display import display
            self.handle = display(_Text(""), display_id=True)

    def line(self, step: int, eval_loss: float | None) -> str:
        text = f"step {step}/{self.max_steps}"
        if self.pending:
            text += f" · train loss {sum(self.pending) / len(self.pending):.3f}"
        if eval_loss is not None:
            text += f" · held-out loss {eval_loss:.3f}"
        return text

    def resume(self, losses: list[float]) -> None:
        """Continue a resumed run: the train losses of the steps before it count as shown."""
        self.pending.extend(losses)

    def step(self, step: int, loss: float) -> None:
        self.pending.append(loss)
        if self.handle is not None and (step % self.every == 0):
            filled = round(20 * step / self.max_steps)
            bar = "[" + "#" * filled + "-" * (20 - filled) + "] "
            self.handle.update(_Text(bar + self.line(step, None)))

    def eval(self, step: int, eval_loss: float, final: bool) -> None:
        if self.enabled and not self.notebook and not final:
            self.write(self.line(step, eval_loss))

    def end(self, step: int, eval_loss: float | None) -> None:
        if not self.enabled:
            return
        if self.handle is not None:
            self.handle.update(_Text(""))  # back to what nbval recorded when it was displayed
        self.write(self.line(step, eval_loss))
