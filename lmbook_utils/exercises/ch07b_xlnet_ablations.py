"""Exercise checks of chapter 07b_xlnet_ablations (XLNet's ablations in miniature, Yang et al.
2019 Table 6): the span lengths of span-based prediction, Transformer-XL's segments of a text
stream, and how far back the memory reaches.

Introduced in chapter 07b_xlnet_ablations.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterator
from fractions import Fraction
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ._common import _call, _report

__all__ = ["check_span_length_probs", "check_segments", "check_memory_reach"]


def _meta(raw: Any) -> bool:
    return isinstance(raw, torch.Tensor) and raw.device.type == "meta"


_META = "your answer is on the meta device, which holds no values: compute it on real tensors"


# --- exercise 1: the span lengths, p(n) proportional to 1/n -------------------------------------

_SPAN_CASES = (5, 1, 2, 3, 8, 20)  # 5 as in the original code; 1, where the only length is 1
_REL, _ABS = 1e-6, 1e-9  # float32 answers are fine


def _span_rule(max_span: int) -> list[Fraction]:
    """p(n) = (1/n) / (1 + 1/2 + ... + 1/max_span), exactly."""
    weights = [Fraction(1, n) for n in range(1, max_span + 1)]
    total = sum(weights)
    return [w / total for w in weights]


def _as_floats(raw: Any) -> tuple[list[float] | None, str | None]:
    """The learner's probabilities as a list of floats, or a message saying why they are not."""
    if _meta(raw):
        return None, _META
    if isinstance(raw, (bool, np.bool_)) or isinstance(raw, (int, float, Fraction, np.number)):
        return None, (f"your function returned one number ({raw!r}); return a list of max_span probabilities, "
                      "[p(1), p(2), ..., p(max_span)]")
    if isinstance(raw, torch.Tensor):
        raw = raw.detach().cpu().numpy()
    if isinstance(raw, np.ndarray):
        if raw.ndim != 1:
            return None, (f"your function returned an array of shape {raw.shape}; return a flat list, one "
                          "probability per span length")
        raw = raw.tolist()
    if isinstance(raw, Iterator):
        raw = list(raw)
    if not isinstance(raw, (list, tuple)):
        return None, (f"your function returned {type(raw).__name__}; return a list of max_span probabilities, "
                      "[p(1), p(2), ..., p(max_span)]")
    values = []
    for i, v in enumerate(raw, 1):
        if isinstance(v, torch.Tensor) and v.numel() == 1 and not _meta(v):
            v = v.item()
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, Fraction, np.number)):
            return None, (f"entry {i} of your list, p({i}), is {v!r} ({type(v).__name__}), not a number")
        values.append(float(v))
    return values, None


def _fmt_probs(values: Sequence[float]) -> str:
    shown = [f"{v:.4g}" for v in values[:8]] + (["..."] if len(values) > 8 else [])
    return "[" + ", ".join(shown) + "]"


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=_REL, abs_tol=_ABS)


def _all_close(got: Sequence[float], want: Sequence[float]) -> bool:
    return len(got) == len(want) and all(_close(g, float(w)) for g, w in zip(got, want))


def _part_of(n: int) -> str:
    return {2: "half", 3: "a third", 4: "a quarter"}.get(n, f"1/{n}")


def _span_mistake(m: int, got: list[float]) -> str:
    want = [float(p) for p in _span_rule(m)]
    where = f"for max_span={m}"
    weights = [1 / n for n in range(1, m + 1)]
    total = sum(got)
    if not _close(total, 1.0):
        if _all_close(got, weights):
            return (f"{where} your probabilities sum to {total:.4g}, not 1: you returned the weights 1/n "
                    f"themselves. Divide each by their sum, 1 + 1/2 + ... + 1/{m}, so that they sum to 1")
        if _all_close(got, [w / m for w in weights]):
            return (f"{where} your probabilities sum to {total:.4g}, not 1: you divided the weights 1/n by "
                    f"max_span = {m}. Divide them by their own sum, 1 + 1/2 + ... + 1/{m}")
        ratios_right = total > 0 and _all_close([g / total for g in got], want)
        return (f"{where} your probabilities sum to {total:.4g}, not 1"
                + (": their ratios are right (p(n) proportional to 1/n), so divide each by their sum"
                   if ratios_right else
                   ". They are p(n) = (1/n) / (1 + 1/2 + ... + 1/max_span), for n = 1 .. max_span"))
    if m > 1 and all(_close(g, got[0]) for g in got):
        return (f"{where} p(2) should be half of p(1); yours are all equal ({got[0]:.4g} each), a uniform "
                "choice of the length. p(n) is proportional to 1/n: short spans are the likeliest")
    if _all_close(got, want[::-1]):
        return (f"{where} your list is reversed: its first entry must be p(1), the likeliest length, and its "
                f"last p({m}), the least likely")
    if got[0] <= 0:
        return (f"{where} your p(1) is {got[0]:.4g}, but the length 1 is the likeliest: p(1) = 1 / (1 + 1/2 + "
                f"... + 1/{m})")
    for n in range(2, m + 1):
        ratio = got[n - 1] / got[0]
        if not _close(ratio, 1 / n):
            trend = " (yours grow with n)" if got[-1] > got[0] else ""
            return (f"{where} p({n}) should be {_part_of(n)} of p(1), since p(n) is proportional to 1/n; yours "
                    f"is {ratio:.4g} times p(1){trend}: your probabilities are {_fmt_probs(got)}")
    return f"{where} your probabilities {_fmt_probs(got)} are not proportional to 1/n"  # not reached


def check_span_length_probs(fn: Callable[[int], Sequence[float]]) -> bool:
    """Check ``fn(max_span) -> [p(1), ..., p(max_span)]``: the probabilities of the span lengths
    of span-based prediction, p(n) proportional to 1/n for n = 1 .. max_span (summing to 1), as
    the original code's `_sample_mask` draws them. A list, a tuple, a 1-D NumPy array or tensor
    is accepted.

    Introduced in chapter 07b_xlnet_ablations (exercise 1).
    """
    for m in _SPAN_CASES:
        raw, error = _call(fn, m)
        if error:
            if "ZeroDivisionError" in error or "division by zero" in error:
                error += ". The lengths start at n = 1 (range(1, max_span + 1)): n = 0 would divide by 0"
            return _report(False, f"for max_span={m} {error}")
        if raw is None:
            return _report(False, f"for max_span={m} your function returned None: return the list of "
                                  f"{m} probabilit{'ies' if m > 1 else 'y'}, p(1) first")
        got, error = _as_floats(raw)
        if error:
            return _report(False, f"for max_span={m} {error}")
        if len(got) != m:
            need = (f"return {m} probabilities, one per span length n = 1 .. {m}" if m > 1 else
                    "the only span length is 1, so return one probability, [p(1)]")
            if m != _SPAN_CASES[0] and len(got) == len(_span_rule(_SPAN_CASES[0])):
                hint = f" (does your function use max_span? It returned as many as for max_span={_SPAN_CASES[0]})"
            elif len(got) == m - 1:
                hint = (": range(1, max_span) stops before max_span, range(1, max_span + 1) does not")
            elif len(got) == m + 1:
                hint = ": a span is 1 to max_span tokens long, no length 0 and none above max_span"
            else:
                hint = ""
            return _report(False, f"for max_span={m} your function returned {len(got)} "
                                  f"probabilit{'ies' if len(got) != 1 else 'y'}; {need}{hint}")
        if not all(math.isfinite(g) for g in got):
            return _report(False, f"for max_span={m} your probabilities {_fmt_probs(got)} are not all finite "
                                  "numbers")
        negative = [n for n, g in enumerate(got, 1) if g < 0]
        if negative:
            n = negative[0]
            return _report(False, f"for max_span={m} your p({n}) is {got[n - 1]:.4g}; a probability is never "
                                  "negative")
        if not _all_close(got, [float(p) for p in _span_rule(m)]):
            return _report(False, _span_mistake(m, got))
    cases = ", ".join(str(m) for m in sorted(_SPAN_CASES))
    return _report(True, f"the span-length probabilities are right for max_span = {cases}: p(n) proportional "
                         "to 1/n, summing to 1, so a span of 1 token is twice as likely as one of 2")


# --- exercise 2: Transformer-XL's segments of a text stream --------------------------------------

def _segments_rule(tokens: Sequence[int], batch_size: int, seg_len: int) -> list[list[list[int]]]:
    """The stream cut into batch_size rows of L tokens (L the largest multiple of seg_len with
    batch_size * L <= len(tokens): the last len(tokens) - batch_size * L tokens are dropped), row r
    = tokens r*L .. r*L + L - 1, read seg_len tokens at a time; `segment_streams`' segments."""
    per_row = len(tokens) // batch_size // seg_len * seg_len
    rows = [list(tokens[r * per_row:(r + 1) * per_row]) for r in range(batch_size)]
    return [[row[i:i + seg_len] for row in rows] for i in range(0, per_row, seg_len)]


def _blocks(tokens: Sequence[int], batch_size: int, seg_len: int) -> list[list[list[int]]]:
    """A mistake: consecutive blocks of batch_size * seg_len tokens, one block per segment."""
    size = batch_size * seg_len
    return [[list(tokens[i + r * seg_len:i + (r + 1) * seg_len]) for r in range(batch_size)]
            for i in range(0, len(tokens) // size * size, size)]


def _interleaved(tokens: Sequence[int], batch_size: int, seg_len: int) -> list[list[list[int]]]:
    """A mistake: row r = tokens r, r + batch_size, r + 2 batch_size, ... (view(-1, batch_size).T)."""
    per_row = len(tokens) // batch_size // seg_len * seg_len
    rows = [list(tokens[r:batch_size * per_row:batch_size]) for r in range(batch_size)]
    return [[row[i:i + seg_len] for row in rows] for i in range(0, per_row, seg_len)]


def _own_tails(tokens: Sequence[int], batch_size: int, seg_len: int) -> list[list[list[int]]]:
    """Another convention: rows of len(tokens) // batch_size tokens, each dropping its own tail."""
    step = len(tokens) // batch_size
    per_row = step // seg_len * seg_len
    rows = [list(tokens[r * step:r * step + per_row]) for r in range(batch_size)]
    return [[row[i:i + seg_len] for row in rows] for i in range(0, per_row, seg_len)]


def _with_tail(tokens: Sequence[int], batch_size: int, seg_len: int) -> list[list[list[int]]]:
    """A mistake: rows of len(tokens) // batch_size tokens, and a last, shorter segment."""
    step = len(tokens) // batch_size
    rows = [list(tokens[r * step:(r + 1) * step]) for r in range(batch_size)]
    return [[row[i:i + seg_len] for row in rows] for i in range(0, step, seg_len)]


def _segment_cases() -> list[tuple[list[int], int, int]]:
    """(tokens, batch_size, seg_len). The first streams are 0, 1, 2, ..., so a token is its own
    position; the first case has no tail, the second one a tail of 2 (and rows whose length
    len(tokens) // batch_size is not a multiple of seg_len); then one row, segments of one token,
    a single segment, and token ids with repeats."""
    gen = torch.Generator().manual_seed(707)  # a private generator: the same cases on every call
    ids = torch.randint(4, 30, (50,), generator=gen).tolist()
    return [(list(range(24)), 2, 4), (list(range(20)), 2, 3), (list(range(10)), 1, 4), (list(range(7)), 3, 1),
            (list(range(9)), 2, 4), (ids, 4, 5)]


def _describe(tokens: list[int], batch_size: int, seg_len: int) -> str:
    n = len(tokens)
    if tokens == list(range(n)):
        stream = f"the tokens 0, 1, ..., {n - 1} ({n} tokens)"
    else:
        stream = f"{n} tokens [{', '.join(str(t) for t in tokens[:6])}, ...]"
    return f"for {stream}, batch_size={batch_size}, seg_len={seg_len}"


def _grid(segment: Any, i: int) -> tuple[list[list[int]] | None, str | None]:
    """One segment of the learner's answer as rows of ints, or a message."""
    if _meta(segment):
        return None, _META
    if isinstance(segment, torch.Tensor):
        if segment.dtype.is_floating_point or segment.dtype.is_complex or segment.dtype == torch.bool:
            return None, (f"segment {i} holds {segment.dtype} values; token ids are ints (torch.long, what an "
                          "embedding reads)")
        segment = segment.detach().cpu().numpy()
    if isinstance(segment, np.ndarray):
        if segment.dtype.kind not in "iu":
            return None, f"segment {i} holds {segment.dtype} values; token ids are ints"
        if segment.ndim != 2:
            return None, (f"segment {i} has shape {segment.shape}; each segment is a (batch_size, seg_len) grid, "
                          "one row per stream")
        return segment.tolist(), None
    if not isinstance(segment, (list, tuple)):
        return None, (f"segment {i} is {type(segment).__name__}, not a (batch_size, seg_len) grid: return each "
                      "segment as a list of rows (lists of token ids) or a 2-D tensor")
    rows = []
    for row in segment:
        if isinstance(row, (torch.Tensor, np.ndarray)) and row.ndim == 1 and not _meta(row):
            row = row.tolist()
        if not isinstance(row, (list, tuple)):
            return None, (f"segment {i} holds {row!r} ({type(row).__name__}) where a row should be: each segment "
                          "is a list of batch_size rows, each a list of seg_len token ids")
        values = []
        for v in row:
            if isinstance(v, torch.Tensor) and v.numel() == 1 and not _meta(v):
                v = v.item()
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                return None, f"segment {i} holds {v!r} ({type(v).__name__}); token ids are ints"
            values.append(int(v))
        rows.append(values)
    return rows, None


def _as_segments(raw: Any) -> tuple[list[list[list[int]]] | None, str | None]:
    if raw is None:
        return None, ("your function returned None: return the list of segments, each a (batch_size, seg_len) "
                      "grid of token ids")
    if _meta(raw):
        return None, _META
    if isinstance(raw, (torch.Tensor, np.ndarray)):
        if raw.ndim != 3:
            return None, (f"your function returned one array of shape {tuple(raw.shape)}; return a list of "
                          "segments, each of shape (batch_size, seg_len) (or one tensor of shape "
                          "(number of segments, batch_size, seg_len))")
        raw = list(raw)
    if isinstance(raw, Iterator):
        raw = list(raw)
    if not isinstance(raw, (list, tuple)):
        return None, (f"your function returned {type(raw).__name__}; return a list of segments, each a "
                      "(batch_size, seg_len) grid of token ids")
    if raw and all(isinstance(t, (int, np.integer)) and not isinstance(t, (bool, np.bool_)) for t in raw):
        return None, ("your function returned a flat list of token ids; return a list of segments, each a "
                      "(batch_size, seg_len) grid of token ids")
    out = []
    for i, segment in enumerate(raw):
        if (isinstance(segment, tuple) and len(segment) == 2 and isinstance(segment[0], torch.Tensor)
                and segment[0].dim() == 2):
            return None, ("each entry of your list is a pair (segment, starts), as segment_streams gives them: "
                          "return the segments only")
        grid, error = _grid(segment, i)
        if error:
            return None, error
        out.append(grid)
    return out, None


def _shape(grid: list[list[int]]) -> tuple[int, int] | None:
    """(rows, tokens per row), or None when the rows differ in length."""
    lengths = {len(row) for row in grid}
    return (len(grid), lengths.pop()) if len(lengths) == 1 else None


def _segments_mistake(tokens: list[int], b: int, s: int, got: list[list[list[int]]]) -> str | None:
    """What is wrong with `got`, or None when it is right."""
    want = _segments_rule(tokens, b, s)
    n, per_row = len(tokens), len(tokens) // b // s * s
    where = _describe(tokens, b, s)
    dropped = n - b * per_row
    layout = (f"each of the {b} row{'s' * (b != 1)} holds {per_row} tokens, the largest multiple of seg_len={s} "
              f"in {n} // {b} = {n // b}")
    if dropped:
        layout += f", and the stream's last {dropped} token{'s are' if dropped != 1 else ' is'} dropped"
    if len(got) != len(want):
        if len(got) == len(want) + 1 and got[:-1] == want:
            return (f"{where}: your last segment is the tail: {layout}, so there are "
                    f"{len(want)} segment{'s' * (len(want) != 1)}. Drop the tokens that do not fill a whole "
                    "segment in every row")
        if got == _with_tail(tokens, b, s):
            return (f"{where}: you kept a last, shorter segment of each row's leftover tokens; {layout}, so "
                    f"there are {len(want)} segments of {s} tokens per row. Drop the tail")
        return (f"{where}: there are {len(want)} segment{'s' * (len(want) != 1)} ({layout}); yours has "
                f"{len(got)}")
    for i, grid in enumerate(got):
        shape = _shape(grid)
        if shape is None:
            return (f"{where}: the rows of segment {i} have lengths {[len(row) for row in grid]}; every "
                    f"segment is (batch_size, seg_len) = ({b}, {s}), every row {s} tokens")
        if shape != (b, s):
            transposed = " (transposed? one row per stream, seg_len tokens each)" if shape == (s, b) else ""
            return (f"{where}: segment {i} has shape {shape}; every segment is (batch_size, seg_len) = ({b}, {s})"
                    f"{transposed}")
    if got == want:
        return None
    hints = [(_blocks, "You cut the stream into consecutive blocks of batch_size x seg_len tokens, one block per "
                       "segment, so row r of the next segment is not the text that follows row r: cut the stream "
                       f"into batch_size long rows first (here row r is tokens r*{per_row} to r*{per_row} + "
                       f"{per_row - 1}), then read every row seg_len tokens at a time. Then the memory of a row, "
                       "its previous segment's states, is the text just before it"),
             (_interleaved, "Your rows interleave the stream: row 0 takes every "
                            f"{'other' if b == 2 else str(b) + 'th'} token. A row is one contiguous piece of the "
                            "text, read in order (view(batch_size, -1), not view(-1, batch_size).T)"),
             (_own_tails, f"Your row r starts at token r * {n // b} (len(tokens) // batch_size), as if each row "
                          "dropped its own tail. Here, as in xlnet_pretraining.segment_streams, the rows split "
                          f"the first {b} x {per_row} = {b * per_row} tokens, so row r starts at token "
                          f"r * {per_row} and only the stream's end is dropped")]
    hint = next((" " + text for alternative, text in hints if got == alternative(tokens, b, s)), "")
    for r in range(b):
        for i in range(len(want)):
            if got[i][r] != want[i][r]:
                if i == 0:
                    first = (f"the stream's first {s} tokens" if r == 0 else
                             f"where row {r} starts, at token {r * per_row} of the stream ({layout})")
                    return (f"{where}: row {r} of segment 0 should be {first}: expected {want[0][r]}, got "
                            f"{got[0][r]}.{hint}")
                return (f"{where}: row {r} of segment {i} should continue row {r} of segment {i - 1}: expected "
                        f"{want[i][r]}, got {got[i][r]}.{hint}")
    return None  # not reached: got != want differs somewhere


def check_segments(fn: Callable[[list[int], int, int], Sequence]) -> bool:
    """Check ``fn(tokens, batch_size, seg_len) -> [segment, ...]``: a token stream as
    Transformer-XL batches it, each segment a (batch_size, seg_len) grid (nested lists, a 2-D
    tensor or array; or one (number of segments, batch_size, seg_len) tensor). The stream is cut
    into batch_size rows of L tokens each, L the largest multiple of seg_len with batch_size * L
    <= len(tokens) (row r is tokens r*L .. r*L + L - 1; the stream's last tokens are dropped), and
    segment i holds tokens i*seg_len .. (i+1)*seg_len - 1 of every row, so row r of segment i+1
    continues row r of segment i: the segments of `xlnet_pretraining.segment_streams`.

    Introduced in chapter 07b_xlnet_ablations (exercise 2).
    """
    cases = _segment_cases()
    for tokens, b, s in cases:
        raw, error = _call(fn, list(tokens), b, s)
        where = _describe(tokens, b, s)
        if error:
            return _report(False, f"{where} {error}")
        got, error = _as_segments(raw)
        if error:
            return _report(False, f"{where}: {error}")
        mistake = _segments_mistake(tokens, b, s, got)
        if mistake:
            return _report(False, mistake)
    return _report(True, f"the segments are right on all {len(cases)} streams, with and without a tail, one row "
                         "or several: each row a contiguous piece of the text, each segment continuing the one "
                         "before it row by row")


# --- exercise 3: how far back the memory reaches -------------------------------------------------

# (3, 24) first: there one memory (24), one too few (48) and one too many (96) all differ
_REACH_CASES = ((3, 24), (2, 24), (1, 24), (4, 24), (3, 5), (6, 1), (1, 1), (24, 384))

_TWO_LAYERS = ("Take 2 layers, a memory of 3 and segments of 3 tokens. A state of layer 2 attends to its "
               "memory, the previous segment's 3 states of layer 1 (at tokens -3 to -1, counting back from the "
               "start of the current segment). Each of those states, when its segment was current, attended to "
               "layer 1's memory, the embeddings of the segment before (tokens -6 to -4). So layer 2 depends on "
               "token -6: each layer adds one memory's length")


def _reach_rule(n_layers: int, mem_len: int) -> int:
    """Each layer's memory holds the previous segment's mem_len states of its input, computed from
    the memory of the layer below one segment earlier: n_layers hops of mem_len tokens."""
    return n_layers * mem_len


def _reach_mistake(n_layers: int, mem_len: int, got: int) -> str:
    want = _reach_rule(n_layers, mem_len)
    where = f"for n_layers={n_layers} and mem_len={mem_len} your function returned {got}"
    if got == mem_len and n_layers > 1:
        why = ("you counted one memory, the last layer's. But the states in that memory read the memory of the "
               "layer below when they were computed")
    elif got == (n_layers - 1) * mem_len:
        why = ("one memory short: every layer reads a memory of its own input, the first layer too (the "
               "previous segment's embeddings)")
    elif got == (n_layers + 1) * mem_len:
        why = ("one memory too many: there are n_layers memories, one per layer (its input's states), and "
               "the current segment adds no distance before its own start")
    elif got == n_layers + mem_len:
        why = "you added the number of layers to the memory length, but each layer adds a whole memory"
    elif got in (want - 1, want + 1):
        why = "off by one: the farthest token is exactly n_layers memories before the current segment's start"
    elif mem_len > 1 and n_layers > 1 and got == mem_len ** n_layers:
        why = "the reach grows linearly with the layers, not exponentially: each layer adds one memory's length"
    else:
        why = "that is not how far the memories chain back"
    return f"{where}: {why}. {_TWO_LAYERS}"


def check_memory_reach(fn: Callable[[int, int], int]) -> bool:
    """Check ``fn(n_layers, mem_len) -> int``: the farthest distance back, in tokens before the
    current segment starts, that a state of the last layer can depend on through Transformer-XL's
    memory, each of the n_layers layers reading the previous segment's mem_len states of its
    input (segments mem_len tokens long, as in the chapter): n_layers * mem_len, the dependency
    "linear w.r.t. the number of layers as well as the segment length" of Dai et al. (2019).

    Introduced in chapter 07b_xlnet_ablations (exercise 3).
    """
    for n_layers, mem_len in _REACH_CASES:
        want = _reach_rule(n_layers, mem_len)
        raw, error = _call(fn, n_layers, mem_len)
        if error:
            return _report(False, f"for n_layers={n_layers} and mem_len={mem_len} {error}")
        if isinstance(raw, torch.Tensor) and raw.numel() == 1 and not raw.dtype.is_floating_point \
                and raw.dtype != torch.bool and not _meta(raw):
            raw = int(raw.item())
        if isinstance(raw, (bool, np.bool_)) or raw is None:
            return _report(False, f"for n_layers={n_layers} and mem_len={mem_len} your function returned {raw!r}; "
                                  "return a number of tokens, an int")
        as_float = isinstance(raw, (float, np.floating)) and math.isfinite(raw) and float(raw).is_integer()
        try:
            got = int(raw) if as_float else operator.index(raw)
        except TypeError:
            return _report(False, f"for n_layers={n_layers} and mem_len={mem_len} your function returned "
                                  f"{raw!r} ({type(raw).__name__}); return a number of tokens, an int")
        if got != want:
            return _report(False, _reach_mistake(n_layers, mem_len, got))
        if as_float:
            return _report(False, f"for n_layers={n_layers} and mem_len={mem_len} the value is right, but your "
                                  f"function returned {raw!r}, a float: return the number of tokens as an int")
    return _report(True, f"the reach is right for all {len(_REACH_CASES)} pairs: each layer reads one memory of "
                         "the layer below, so the memories chain n_layers * mem_len tokens back")
