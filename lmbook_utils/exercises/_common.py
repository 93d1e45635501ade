"""What every chapter's checks share: one printed verdict, the learner's code run safely, and
the learner's tensor read back on the CPU.

Kept apart so that each chapter's module imports only the models and libraries its own checks
need; importing this module costs nothing (torch is imported only by `_as_cpu`, when it runs).
"""

from __future__ import annotations

import traceback
from typing import Any, Callable


def _report(ok: bool, message: str) -> bool:
    print(("✅ " if ok else "❌ ") + message)
    return ok


def _call(fn: Callable, *args):
    """Run the learner's function; turn an exception into a readable message."""
    if not callable(fn):
        raise TypeError(f"fn must be a function, got {type(fn).__name__}")
    try:
        return fn(*args), None
    except Exception as exc:  # the learner's bug, reported, not raised
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return None, f"your function raised {type(exc).__name__}: {exc} (line {where.lineno})"


def _as_cpu(got: Any, dtype: Any = None):
    """The learner's answer as a CPU tensor, or a message saying why it cannot be one.

    The reference answers are CPU tensors. A reader with a GPU or Apple silicon may build the
    answer there (``device=device``), so it is moved to the CPU before it is compared."""
    import torch

    try:
        return torch.as_tensor(got, dtype=dtype).detach().cpu(), None
    except (TypeError, ValueError, RuntimeError) as exc:  # NotImplementedError is a RuntimeError
        return None, f"your answer could not be read as a tensor of numbers ({type(exc).__name__}: {exc})"
