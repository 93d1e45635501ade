"""Exercise checks of chapter 07_xlnet: the two attention masks of a factorization order (query
stream and content stream), and Transformer-XL's relative shift.

Introduced in chapter 07_xlnet.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..xlnet import rel_shift_direct
from ._common import _as_cpu, _call, _report

__all__ = ["check_query_mask", "check_content_mask", "check_rel_shift"]


# Orders the chapter does not use. Every one but [0] differs from its own inverse (order != rank),
# so reading order[i] as "the step of position i" shows; none is the text's left-to-right order.
_ORDERS = ([2, 0, 1], [0], [3, 1, 0, 2], [4, 0, 5, 2, 1, 3])


def _ranks(order: list[int]) -> list[int]:
    """rank[p] = the step at which position p is predicted (the inverse of the order)."""
    rank = [0] * len(order)
    for step, position in enumerate(order):
        rank[position] = step
    return rank


def _mask_from_ranks(rank: list[int], itself: bool) -> torch.Tensor:
    """may_see[i, j]: j comes strictly before i in the order (or j == i, when `itself`)."""
    t = len(rank)
    return torch.tensor([[rank[j] < rank[i] or (itself and i == j) for j in range(t)] for i in range(t)],
                        dtype=torch.bool)


def _positions(row: torch.Tensor) -> str:
    seen = torch.nonzero(row).flatten().tolist()
    return str(seen) if seen else "no position"


def _check_mask(fn: Callable, itself: bool) -> bool:
    """The query stream's mask (itself=False) or the content stream's (itself=True)."""
    stream = "content" if itself else "query"
    for order in _ORDERS:
        t = len(order)
        got, error = _call(fn, list(order))
        if error:
            return _report(False, error)
        got, error = _as_cpu(got)
        if error:
            return _report(False, error)
        if got.shape != (t, t):
            return _report(False, f"for the order {order} ({t} positions) the mask needs shape ({t}, {t}), "
                                  f"yours has {tuple(got.shape)}")
        if got.dtype != torch.bool:
            return _report(False, f"return a bool tensor (True where position i may see position j); yours has "
                                  f"dtype {got.dtype}")
        rank = _ranks(order)
        want = _mask_from_ranks(rank, itself)
        if torch.equal(got, want):
            continue
        other = _mask_from_ranks(rank, not itself)  # the other stream's mask
        if torch.equal(got, other):
            if itself:
                return _report(False, "the content stream carries the position's own token, so a position always "
                                      "sees itself: may_see[i, i] must be True (you built the query stream's mask)")
            return _report(False, "a position's query stream must not see itself: its own token is the one it "
                                  "predicts. may_see[i, i] must be False (you built the content stream's mask)")
        if torch.equal(got, ~want):
            return _report(False, "yours is True where position i may NOT see position j, the convention of "
                                  "perm_mask; here True means may see")
        if torch.equal(got, want.T):
            return _report(False, "yours is transposed: row i should list the positions that position i may "
                                  "look at (may_see[i, j], j the key), not those that may look at i")
        as_rank = _mask_from_ranks(list(order), itself)
        if torch.equal(got, as_rank):
            return _report(False, "you read order[i] as the step of position i; order[s] is the position "
                                  "predicted at step s, so position i's step is where i appears in the order")
        text_order = torch.ones(t, t, dtype=torch.bool).tril(0 if itself else -1)
        if torch.equal(got, text_order):
            return _report(False, "you built the left-to-right mask of the text; position j must come before i "
                                  "in the factorization order, wherever it sits in the text")
        i = int(torch.nonzero((got != want).any(1))[0])
        rule = ("the positions before it in the order, and itself" if itself
                else "the positions before it in the order, never itself")
        extra, missing = got[i] & ~want[i], want[i] & ~got[i]
        wrong = "; ".join(part for part in (
            f"it should not see {_positions(extra)}" if bool(extra.any()) else "",
            f"it should see {_positions(missing)}" if bool(missing.any()) else "") if part)
        return _report(False, f"row {i} (position {i}, step {rank[i]} of the order {order}): {wrong}. "
                              f"The {stream} stream sees {rule}")
    return _report(True, f"the {stream} stream's mask is right for every order tried, "
                         f"from 1 to {max(map(len, _ORDERS))} positions")


def check_query_mask(fn: Callable[[list[int]], torch.Tensor]) -> bool:
    """Check ``fn(order) -> (T, T) bool tensor may_see``: the query stream's attention mask for a
    factorization order, every position a target. order[s] is the position predicted at step s;
    may_see[i, j] is True when position j comes strictly before position i in the order (a
    position never sees itself).

    Introduced in chapter 07_xlnet (exercise 1).
    """
    return _check_mask(fn, itself=False)


def check_content_mask(fn: Callable[[list[int]], torch.Tensor]) -> bool:
    """Check ``fn(order) -> (T, T) bool tensor may_see``: the content stream's attention mask for
    a factorization order: may_see[i, j] is True when position j comes before position i in the
    order or j == i (the content stream carries its own token).

    Introduced in chapter 07_xlnet (exercise 2).
    """
    return _check_mask(fn, itself=True)


# (qlen, klen): two without memory (klen = qlen), two with memory (klen = memory + qlen)
_SHIFT_CASES = ((3, 3), (5, 5), (4, 6), (1, 3))


def check_rel_shift(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> bool:
    """Check ``fn(x, klen) -> (qlen, klen)``: scores "query x relative distance" to scores
    "query x key". x has shape (qlen, klen + qlen) and its column c holds the score for the
    distance klen - c (XLNet's and Hugging Face's layout; klen = memory length + qlen, and
    klen = qlen without memory). Query i sits at position mlen + i (mlen = klen - qlen), so
    out[i, j] must be the score for the distance mlen + i - j, that is x[i, qlen - i + j]: what
    `xlnet.rel_shift_direct` (and `rel_shift_bnij`) computes for one head.

    Introduced in chapter 07_xlnet (exercise 3).
    """
    gen = torch.Generator().manual_seed(7)  # distinct scores, the same on every call
    passed_without_memory = False
    for qlen, klen in _SHIFT_CASES:
        mlen, rlen = klen - qlen, klen + qlen
        x = torch.randn(qlen, rlen, generator=gen)
        want = rel_shift_direct(x[None, None], klen)[0, 0]
        sizes = f"qlen={qlen}, klen={klen}" + (f" ({mlen} memory positions)" if mlen else " (no memory)")
        got, error = _call(fn, x.clone(), klen)
        if error:
            if mlen and passed_without_memory:
                error += (f". Your function works without memory but not for {sizes}: query i sits at "
                          f"position {mlen} + i, after the memory, and x has {rlen} columns")
            return _report(False, error)
        got, error = _as_cpu(got, dtype=x.dtype)
        if error:
            return _report(False, error)
        if got.shape != want.shape:
            return _report(False, f"for {sizes} the answer needs shape ({qlen}, {klen}) (queries, keys), "
                                  f"yours has {tuple(got.shape)}")
        if torch.allclose(got, want, atol=1e-6):
            passed_without_memory = passed_without_memory or mlen == 0
            continue
        if torch.allclose(got, x[:, :klen], atol=1e-6):
            return _report(False, "you kept the first klen columns as they are, but column c holds the score of "
                                  "distance klen - c, not of key c: each query row must be read from its own offset")
        i, j = (int(v) for v in torch.nonzero(~torch.isclose(got, want, atol=1e-6))[0])
        d = mlen + i - j
        where = (f"query {i}, which sits at position {mlen + i} after the memory, and key {j}" if mlen
                 else f"query {i} and key {j}")
        value = got[i, j]
        in_row = torch.nonzero(torch.isclose(x[i], value, atol=1e-6)).flatten().tolist()
        elsewhere = torch.nonzero(torch.isclose(x, value, atol=1e-6))
        if in_row:
            yours = f"yours holds query {i}'s score for distance {klen - in_row[0]}"
        elif len(elsewhere):
            yours = (f"yours comes from row {int(elsewhere[0, 0])} of x, another query's scores: output row i "
                     "reads only row i of x")
        else:
            yours = f"yours is none of query {i}'s scores (row {i} of x)"
        return _report(False, f"for {sizes}, entry [{i}, {j}] ({where}: distance {d}) is wrong: {yours}. "
                              "Column c of x holds the score of distance klen - c")
    return _report(True, "the relative shift is right, without memory and with it")
