"""The exercise checks of notebook 07b_xlnet_ablations accept right answers and explain wrong ones
specifically; their references agree with the package the notebook trains with."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from lmbook_utils import exercises as ex
from lmbook_utils.exercises import ch07b_xlnet_ablations as ch07b


# --- exercise 1: span_length_probs ---------------------------------------------------------------

def span_length_probs_right(max_span):
    weights = [1 / n for n in range(1, max_span + 1)]
    return [w / sum(weights) for w in weights]


def _normalized(weights):
    return [w / sum(weights) for w in weights]


def test_span_length_probs_check(capsys):
    assert ex.check_span_length_probs(span_length_probs_right)
    assert "✅" in capsys.readouterr().out
    for other in (lambda m: torch.tensor(span_length_probs_right(m), dtype=torch.float32),
                  lambda m: np.array(span_length_probs_right(m)), lambda m: tuple(span_length_probs_right(m))):
        assert ex.check_span_length_probs(other)
        assert "✅" in capsys.readouterr().out

    assert not ex.check_span_length_probs(lambda m: [1 / n for n in range(1, m + 1)])
    assert ("for max_span=5 your probabilities sum to 2.283, not 1: you returned the weights 1/n themselves"
            in capsys.readouterr().out)
    assert not ex.check_span_length_probs(lambda m: [1 / n / m for n in range(1, m + 1)])
    assert "sum to 0.4567, not 1: you divided the weights 1/n by max_span = 5" in capsys.readouterr().out
    assert not ex.check_span_length_probs(lambda m: [p / 2 for p in span_length_probs_right(m)])
    assert "sum to 0.5, not 1: their ratios are right" in capsys.readouterr().out
    assert not ex.check_span_length_probs(lambda m: [1 / m] * m)
    assert ("for max_span=5 p(2) should be half of p(1); yours are all equal (0.2 each), a uniform choice"
            in capsys.readouterr().out)
    assert not ex.check_span_length_probs(lambda m: span_length_probs_right(m)[::-1])
    assert "your list is reversed: its first entry must be p(1)" in capsys.readouterr().out
    assert not ex.check_span_length_probs(lambda m: _normalized([1 / n ** 2 for n in range(1, m + 1)]))
    assert "p(2) should be half of p(1), since p(n) is proportional to 1/n; yours is 0.25 times p(1)" \
        in capsys.readouterr().out
    assert not ex.check_span_length_probs(lambda m: _normalized(list(range(1, m + 1))))
    assert "yours is 2 times p(1) (yours grow with n)" in capsys.readouterr().out
    # right ratios up to p(2), then 2^-n: the first wrong ratio is named
    assert not ex.check_span_length_probs(lambda m: _normalized([1, 1 / 2] + [2.0 ** -n for n in range(2, m)]))
    assert "p(3) should be a third of p(1)" in capsys.readouterr().out
    assert not ex.check_span_length_probs(lambda m: _normalized([1 / n for n in range(1, m)]))  # range(1, m)
    assert ("for max_span=5 your function returned 4 probabilities; return 5 probabilities, one per span length "
            "n = 1 .. 5: range(1, max_span) stops before max_span") in capsys.readouterr().out
    assert not ex.check_span_length_probs(lambda m: _normalized([1 / n for n in range(1, m + 2)]))
    assert "returned 6 probabilities" in capsys.readouterr().out
    assert not ex.check_span_length_probs(lambda m: _normalized([1 / n for n in range(0, m + 1)]))
    assert "raised ZeroDivisionError" in (out := capsys.readouterr().out) and "start at n = 1" in out
    assert not ex.check_span_length_probs(lambda m: span_length_probs_right(5))  # max_span ignored
    assert ("for max_span=1 your function returned 5 probabilities; the only span length is 1, so return one "
            "probability, [p(1)] (does your function use max_span?") in capsys.readouterr().out
    assert not ex.check_span_length_probs(lambda m: [0.5] if m == 1 else span_length_probs_right(m))
    assert "for max_span=1 your probabilities sum to 0.5, not 1" in capsys.readouterr().out
    assert not ex.check_span_length_probs(lambda m: [1.2, -0.2] if m == 2 else span_length_probs_right(m))
    assert "for max_span=2 your p(2) is -0.2; a probability is never negative" in capsys.readouterr().out
    assert not ex.check_span_length_probs(lambda m: None)
    assert "returned None: return the list of 5 probabilities, p(1) first" in capsys.readouterr().out
    assert not ex.check_span_length_probs(lambda m: 1.0)
    assert "returned one number (1.0)" in capsys.readouterr().out
    assert not ex.check_span_length_probs(lambda m: {n: p for n, p in enumerate(span_length_probs_right(m), 1)})
    assert "returned dict" in capsys.readouterr().out
    assert not ex.check_span_length_probs(lambda m: ["0.4"] * m)
    assert "entry 1 of your list, p(1), is '0.4' (str), not a number" in capsys.readouterr().out
    assert not ex.check_span_length_probs(lambda m: torch.tensor(span_length_probs_right(m), device="meta"))
    assert "meta" in capsys.readouterr().out


def test_span_length_reference_is_worked_out_by_hand():
    # 1 + 1/2 + 1/3 + 1/4 + 1/5 = 137/60, so p(n) = (60/n) / 137
    assert [float(p) for p in ch07b._span_rule(5)] == pytest.approx([60 / 137, 30 / 137, 20 / 137, 15 / 137,
                                                                    12 / 137], abs=1e-15)
    assert ch07b._span_rule(1) == [1]
    assert [float(p) for p in ch07b._span_rule(2)] == pytest.approx([2 / 3, 1 / 3])


def test_span_length_reference_is_the_packages(monkeypatch):
    """xlnet.sample_permutation(span=True) draws the span lengths by the cumulative
    probabilities it hands to _span_row (its `cdf` argument): they are the running sums of the
    check's reference."""
    from lmbook_utils import xlnet

    seen = []
    original = xlnet._span_row
    params = inspect.signature(original)

    def spy(*args, **kwargs):
        seen.append(list(params.bind(*args, **kwargs).arguments["cdf"]))
        return original(*args, **kwargs)

    monkeypatch.setattr(xlnet, "_span_row", spy)
    ids = torch.randint(2, 9, (2, 30), generator=torch.Generator().manual_seed(0))
    for max_span in (1, 3, 5, 8):
        seen.clear()
        xlnet.sample_permutation(ids, k=6, generator=torch.Generator().manual_seed(1), span=True,
                                 max_span=max_span)
        assert seen, "sample_permutation(span=True) no longer calls _span_row: find its span-length rule"
        want = np.cumsum([float(p) for p in ch07b._span_rule(max_span)])
        for cdf in seen:
            assert cdf == pytest.approx(want, abs=1e-12)


# --- exercise 2: segments ------------------------------------------------------------------------

def segments_right(tokens, batch_size, seg_len):
    per_row = len(tokens) // batch_size // seg_len * seg_len
    rows = torch.tensor(tokens[:batch_size * per_row]).view(batch_size, per_row)
    return [rows[:, i:i + seg_len] for i in range(0, per_row, seg_len)]


def segments_blocks(tokens, batch_size, seg_len):  # consecutive blocks, one per segment
    size = batch_size * seg_len
    return [torch.tensor(tokens[i:i + size]).view(batch_size, seg_len)
            for i in range(0, len(tokens) // size * size, size)]


def segments_interleaved(tokens, batch_size, seg_len):  # view(-1, batch_size).T
    per_row = len(tokens) // batch_size // seg_len * seg_len
    rows = torch.tensor(tokens[:batch_size * per_row]).view(per_row, batch_size).T
    return [rows[:, i:i + seg_len] for i in range(0, per_row, seg_len)]


def segments_own_tails(tokens, batch_size, seg_len):  # rows of len // batch_size, each dropping its tail
    step = len(tokens) // batch_size
    rows = torch.tensor(tokens[:batch_size * step]).view(batch_size, step)[:, :step // seg_len * seg_len]
    return [rows[:, i:i + seg_len] for i in range(0, rows.shape[1], seg_len)]


def segments_kept_tail(tokens, batch_size, seg_len):  # rows of len // batch_size, a last short segment
    step = len(tokens) // batch_size
    rows = torch.tensor(tokens[:batch_size * step]).view(batch_size, step)
    return [rows[:, i:i + seg_len] for i in range(0, step, seg_len)]


def test_segments_check(capsys):
    assert ex.check_segments(segments_right)
    assert "✅" in capsys.readouterr().out
    for other in (lambda t, b, s: [x.tolist() for x in segments_right(t, b, s)],  # nested lists
                  lambda t, b, s: torch.stack(segments_right(t, b, s)),  # one 3-D tensor
                  lambda t, b, s: [x.numpy() for x in segments_right(t, b, s)],
                  lambda t, b, s: (x for x in segments_right(t, b, s)),  # a generator
                  lambda t, b, s: [list(x) for x in segments_right(t, b, s)]):  # lists of 1-D tensors
        assert ex.check_segments(other)
        assert "✅" in capsys.readouterr().out

    assert not ex.check_segments(segments_blocks)
    out = capsys.readouterr().out
    assert ("for the tokens 0, 1, ..., 23 (24 tokens), batch_size=2, seg_len=4: row 0 of segment 1 should "
            "continue row 0 of segment 0: expected [4, 5, 6, 7], got [8, 9, 10, 11]. You cut the stream into "
            "consecutive blocks") in out
    assert not ex.check_segments(segments_interleaved)
    assert ("row 0 of segment 0 should be the stream's first 4 tokens: expected [0, 1, 2, 3], got [0, 2, 4, 6]. "
            "Your rows interleave the stream: row 0 takes every other token") in capsys.readouterr().out
    assert not ex.check_segments(segments_own_tails)  # right on 24 tokens in 2 rows of 12; not on 20 in 2 x 9
    out = capsys.readouterr().out
    assert ("for the tokens 0, 1, ..., 19 (20 tokens), batch_size=2, seg_len=3: row 1 of segment 0 should be "
            "where row 1 starts, at token 9 of the stream (each of the 2 rows holds 9 tokens, the largest "
            "multiple of seg_len=3 in 20 // 2 = 10, and the stream's last 2 tokens are dropped): expected "
            "[9, 10, 11], got [10, 11, 12]. Your row r starts at token r * 10") in out
    assert not ex.check_segments(segments_kept_tail)
    assert "you kept a last, shorter segment of each row's leftover tokens" in capsys.readouterr().out
    assert not ex.check_segments(lambda t, b, s: segments_right(t, b, s) + [torch.tensor([t[-2:]])]
                                 if len(t) % (b * s) else segments_right(t, b, s))
    assert "your last segment is the tail: each of the 2 rows holds 9 tokens" in capsys.readouterr().out
    assert not ex.check_segments(lambda t, b, s: segments_right(t, b, s)[:-1])
    assert ("batch_size=2, seg_len=4: there are 3 segments (each of the 2 rows holds 12 tokens, the largest "
            "multiple of seg_len=4 in 24 // 2 = 12); yours has 2") in capsys.readouterr().out
    assert not ex.check_segments(lambda t, b, s: [x.T for x in segments_right(t, b, s)])
    assert "segment 0 has shape (4, 2); every segment is (batch_size, seg_len) = (2, 4) (transposed?" \
        in capsys.readouterr().out
    assert not ex.check_segments(lambda t, b, s: [x.tolist()[:1] + [x.tolist()[1][:-1]] if b > 1 else x.tolist()
                                                  for x in segments_right(t, b, s)])
    assert "the rows of segment 0 have lengths [4, 3]" in capsys.readouterr().out
    assert not ex.check_segments(lambda t, b, s: [(x, torch.tensor(i == 0))
                                                  for i, x in enumerate(segments_right(t, b, s))])
    assert "a pair (segment, starts), as segment_streams gives them: return the segments only" \
        in capsys.readouterr().out
    assert not ex.check_segments(lambda t, b, s: [x.float() for x in segments_right(t, b, s)])
    assert "segment 0 holds torch.float32 values; token ids are ints" in capsys.readouterr().out
    assert not ex.check_segments(lambda t, b, s: t)
    assert "a flat list of token ids" in capsys.readouterr().out
    assert not ex.check_segments(lambda t, b, s: None)
    assert "returned None" in capsys.readouterr().out
    assert not ex.check_segments(lambda t, b, s: t[10 ** 6])
    assert "your function raised IndexError" in capsys.readouterr().out
    assert not ex.check_segments(lambda t, b, s: [x.to("meta") for x in segments_right(t, b, s)])
    assert "meta" in capsys.readouterr().out

    def last_row_off(t, b, s):  # right except in the case with repeated ids: a wrong continuation
        out = [x.clone() for x in segments_right(t, b, s)]
        if b == 4:
            out[1][3] = out[0][3]
        return out

    assert not ex.check_segments(last_row_off)
    out = capsys.readouterr().out
    assert "for 50 tokens [" in out and "row 3 of segment 1 should continue row 3 of segment 0" in out


@pytest.mark.parametrize("n, batch_size, seg_len", [(24, 2, 4), (20, 2, 3), (29, 2, 4), (10, 1, 4), (7, 3, 1),
                                                    (9, 2, 4), (50, 4, 5), (101, 3, 7), (64, 8, 8)])
def test_segments_reference_is_segment_streams(n, batch_size, seg_len):
    from lmbook_utils.xlnet_pretraining import segment_streams

    tokens = torch.randint(0, 40, (n,), generator=torch.Generator().manual_seed(n)).tolist()
    package = [segment.tolist() for segment, _ in segment_streams(tokens, batch_size, seg_len)]
    assert ch07b._segments_rule(tokens, batch_size, seg_len) == package
    assert [x.tolist() for x in segments_right(tokens, batch_size, seg_len)] == package


def test_segments_reference_by_hand():
    # 20 tokens in 2 rows: 20 // 2 = 10 per row, cut to 9 (3 segments of 3); the rows are 0..8 and 9..17
    assert ch07b._segments_rule(list(range(20)), 2, 3) == [[[0, 1, 2], [9, 10, 11]], [[3, 4, 5], [12, 13, 14]],
                                                          [[6, 7, 8], [15, 16, 17]]]


# --- exercise 3: memory_reach --------------------------------------------------------------------

def test_memory_reach_check(capsys):
    assert ex.check_memory_reach(lambda n_layers, mem_len: n_layers * mem_len)
    assert "✅" in capsys.readouterr().out
    assert ex.check_memory_reach(lambda n, m: np.int64(n * m))
    assert "✅" in capsys.readouterr().out

    for wrong, says in [
        (lambda n, m: m, "returned 24: you counted one memory, the last layer's"),
        (lambda n, m: (n - 1) * m, "returned 48: one memory short: every layer reads a memory of its own input"),
        (lambda n, m: (n + 1) * m, "returned 96: one memory too many"),
        (lambda n, m: n + m, "returned 27: you added the number of layers to the memory length"),
        (lambda n, m: n * m - 1, "returned 71: off by one"),
        (lambda n, m: m ** n, "returned 13824: the reach grows linearly with the layers, not exponentially"),
        (lambda n, m: 2 * n * m, "returned 144: that is not how far the memories chain back"),
    ]:
        assert not ex.check_memory_reach(wrong)
        out = capsys.readouterr().out
        assert "for n_layers=3 and mem_len=24 your function " + says in out, out
        assert "Take 2 layers, a memory of 3 and segments of 3 tokens" in out and "token -6" in out

    assert not ex.check_memory_reach(lambda n, m: n * m if n > 1 else 0)
    assert "for n_layers=1 and mem_len=24 your function returned 0: one memory short" in capsys.readouterr().out
    assert not ex.check_memory_reach(lambda n, m: float(n * m))
    assert "the value is right, but your function returned 72.0, a float" in capsys.readouterr().out
    assert not ex.check_memory_reach(lambda n, m: n * m + 0.5)
    assert "returned 72.5 (float); return a number of tokens, an int" in capsys.readouterr().out
    assert not ex.check_memory_reach(lambda n, m: None)
    assert "returned None" in capsys.readouterr().out
    assert not ex.check_memory_reach(lambda n, m: True)
    assert "returned True" in capsys.readouterr().out
    assert not ex.check_memory_reach(lambda n, m: str(n * m))
    assert "returned '72' (str)" in capsys.readouterr().out
    assert not ex.check_memory_reach(lambda n, m: n / 0)
    assert "raised ZeroDivisionError" in capsys.readouterr().out


@pytest.mark.parametrize("n_layers, mem_len", [(1, 3), (2, 3), (3, 2)])
def test_memory_reach_is_what_xlnet_depends_on(n_layers, mem_len):
    """A tiny XLNet reads a stream in segments of mem_len tokens with memory: the last layer's
    states of the current segment change when the token n_layers * mem_len before the segment's
    start changes, and are bit for bit the same when the one just before it changes."""
    from lmbook_utils.repro import set_seed
    from lmbook_utils.xlnet import XLNet, XLNetConfig

    set_seed(0)
    model = XLNet(XLNetConfig.tiny(vocab_size=13, n_layers=n_layers, mem_len=mem_len)).eval()
    with torch.no_grad():  # weights far from the initialization's 0.02: what three hops carry stays above rounding
        for p in model.parameters():
            p.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(p.numel()))
    reach = ch07b._reach_rule(n_layers, mem_len)  # the check's reference
    n_segments = n_layers + 2
    current = (n_segments - 1) * mem_len  # where the last segment starts
    stream = torch.randint(2, 13, (1, n_segments * mem_len), generator=torch.Generator().manual_seed(3))

    def last_segment_states(ids):
        mems = None
        with torch.no_grad():
            for i in range(n_segments):
                out = model(ids[:, i * mem_len:(i + 1) * mem_len], mems=mems, use_mems=True)
                mems = out.mems
        return out.last_hidden_state

    def changed_at(distance):
        ids = stream.clone()
        ids[0, current - distance] = 2 + (int(ids[0, current - distance]) - 1) % 11  # another token
        return ids

    base = last_segment_states(stream)
    assert (last_segment_states(changed_at(1)) - base).abs().max() > 1e-3
    assert (last_segment_states(changed_at(reach)) - base).abs().max() > 1e-6  # 3e-5 after three hops of 2
    assert torch.equal(last_segment_states(changed_at(reach + 1)), base)  # not read at all: the same bits
