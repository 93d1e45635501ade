"""Exercise checks of chapter 02c_encoder_decoder: reversing each source's real tokens (Sutskever
et al.'s trick), the decoder input and targets of teacher forcing, and BLEU's brevity penalty.

Introduced in chapter 02c_encoder_decoder.
"""

from __future__ import annotations

import copy
import math
from typing import Callable

import torch

from ..modeling import IGNORE_INDEX
from ..seq2seq import reverse_real_tokens
from ._common import _as_cpu, _call, _report

__all__ = ["check_reverse_source", "check_teacher_forcing", "check_brevity_penalty"]


def _first_difference(got: torch.Tensor, want: torch.Tensor) -> int:
    """The first row where two (batch, T) tensors of the same shape differ."""
    return int(torch.nonzero((got != want).any(1))[0])


# --- exercise 1: reverse each source's real tokens, padding left at the end ----------------------


def _reverse_cases() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(ids, lengths): right-padded sources of different lengths, one full row and one of a single
    token; padded with 0 in the first case and with 1 in the second, so that padding rebuilt as
    zeros is seen. No real row reads the same both ways."""
    return [
        (torch.tensor([[5, 8, 3, 9, 4, 7],
                       [6, 2, 9, 0, 0, 0],
                       [4, 0, 0, 0, 0, 0],
                       [3, 7, 5, 8, 0, 0]]), torch.tensor([6, 3, 1, 4])),
        (torch.tensor([[12, 7, 1, 1, 1],
                       [9, 4, 11, 6, 3],
                       [8, 10, 5, 1, 1]]), torch.tensor([2, 5, 3])),
    ]


def check_reverse_source(fn: Callable) -> bool:
    """Check ``fn(ids, lengths) -> reversed_ids``: ids (batch, T) torch.long, right-padded; lengths
    (batch,) the number of real tokens of each row. The answer is a tensor of ids' shape and dtype
    whose row i holds row i's first lengths[i] tokens in reverse order, then row i's padding,
    unchanged, at the end: [a, b, c, pad] -> [c, b, a, pad]. ids itself must not change. The
    reference is ``lmbook_utils.seq2seq.reverse_real_tokens``, which ``Seq2Seq.encode`` uses when
    ``reverse_source=True``.

    Introduced in chapter 02c_encoder_decoder (exercise 1).
    """
    for ids, lengths in _reverse_cases():
        batch, t = ids.shape
        want = reverse_real_tokens(ids, lengths)
        case = f"for ids {ids.tolist()} and lengths {lengths.tolist()}"
        given_ids, given_lengths = ids.clone(), lengths.clone()
        got, error = _call(fn, given_ids, given_lengths)
        if error:
            return _report(False, f"{case}: {error}")
        if not torch.equal(given_ids, ids):
            return _report(False, f"{case}: your function changed ids in place (it is now {given_ids.tolist()}): "
                                  "the batch is still needed as it was, for the loss and for the next epoch. "
                                  "Build a new tensor: start from ids.clone(), or use torch.gather")
        if not torch.equal(given_lengths, lengths):
            return _report(False, f"{case}: your function changed lengths in place (it is now "
                                  f"{given_lengths.tolist()}): leave it as it was")
        if not isinstance(got, torch.Tensor):
            return _report(False, f"{case}: return a tensor like ids, of shape {tuple(ids.shape)}; you returned a "
                                  f"{type(got).__name__}")
        if got.dtype != ids.dtype:
            return _report(False, f"{case}: your answer has dtype {got.dtype}; keep ids' dtype, {ids.dtype}: they "
                                  "are token ids, which an embedding table is indexed with (ids.clone(), "
                                  "torch.flip and torch.gather keep it)")
        got, error = _as_cpu(got)
        if error:
            return _report(False, f"{case}: {error}")
        if tuple(got.shape) != (batch, t):
            hint = ""
            if tuple(got.shape) == (t, batch):
                hint = ": it is transposed, (T, batch); keep the batch in dim 0"
            elif tuple(got.shape) == (int(lengths.sum()),):
                hint = (": you returned the real tokens alone, one after another; keep each row, with its "
                        "padding at the end")
            return _report(False, f"{case}: your answer has shape {tuple(got.shape)}, it needs ids' shape "
                                  f"{(batch, t)}{hint}")
        if torch.equal(got, want):
            continue
        keep = torch.arange(t)[None, :] < lengths[:, None]
        mistakes = [
            (ids.flip(1), "you reversed whole rows, padding included (ids.flip(1)): a short row's padding now "
                          "comes first, and the encoder would read it before the real tokens. Reverse only "
                          "each row's first lengths[i] tokens and leave the padding at the end"),
            (ids, "you returned the rows unchanged: reverse each row's first lengths[i] tokens"),
            (ids.flip(0), "you reversed the order of the rows (dim 0), not the order of the tokens in each row"),
            (reverse_real_tokens(ids, (lengths - 1).clamp(min=0)),
             "you reversed one token too few in each row (lengths[i] - 1): the last real token stays in place. "
             "Row i has lengths[i] real tokens, at positions 0 .. lengths[i] - 1; reverse all of them"),
            (reverse_real_tokens(ids, (lengths + 1).clamp(max=t)),
             "you reversed one token too many in each row (lengths[i] + 1): a padding token moves in front of "
             "the real ones. Row i's real tokens are at positions 0 .. lengths[i] - 1"),
        ]
        for value, message in mistakes:
            if torch.equal(got, value) and not torch.equal(value, want):
                return _report(False, f"{case}: {message}")
        if torch.equal(got[keep], want[keep]):
            b = _first_difference(got, want)
            return _report(False, f"{case}: the real tokens are right, but row {b}'s padding should stay as it "
                                  f"was, {ids[b, int(lengths[b]):].tolist()}; yours is "
                                  f"{got[b, int(lengths[b]):].tolist()}. Start from ids.clone() and rewrite "
                                  "only the real positions")
        b = _first_difference(got, want)
        return _report(False, f"{case}: row {b} (lengths[{b}] = {int(lengths[b])}) should be {want[b].tolist()}, "
                              f"yours is {got[b].tolist()}: its first lengths[{b}] tokens reversed, then its "
                              "padding")
    return _report(True, "each row's real tokens are reversed and its padding stays at the end, as "
                         "Seq2Seq.encode feeds the source (reverse_real_tokens)")


# --- exercise 2: the decoder input and the targets of teacher forcing ----------------------------

# (target_ids, bos_id, eos_id, pad_id, max_len): rows of different lengths; in the first case every
# row is padded (max_len is beyond the longest row + 1), in the second the longest fills max_len
# exactly, and pad_id is not 0, so padding written as a literal 0 is seen.
_TF_CASES = [
    ([[5, 9, 4], [7, 3], [8, 6, 10, 11, 5]], 1, 2, 0, 8),
    ([[9, 7], [11, 8, 10, 12], [6], [13, 9, 7, 6, 8]], 5, 4, 3, 6),
]


def _is(name: str) -> str:
    return "are" if name == "targets" else "is"


def _rows(seqs: list[list[int]], width: int, pad: int, left: bool = False) -> torch.Tensor:
    return torch.tensor([[pad] * (width - len(s)) + s if left else s + [pad] * (width - len(s)) for s in seqs])


def _tf_diagnose(got: torch.Tensor, rows: list[list[int]], candidates: list, pad: int, width: int,
                 name: str, padding_message: Callable[[int], str]) -> str:
    """What is wrong with `got`, the learner's decoder input or targets, against the right
    unpadded `rows`: one of the `candidates` (unpadded rows, message), padded on the right with pad;
    or the right rows padded on the left; or the right tokens with the wrong padding; or the first
    row that differs."""
    want = _rows(rows, width, pad)
    for seqs, message in candidates:
        if max(len(s) for s in seqs) <= width and torch.equal(got, _rows(seqs, width, pad)):
            return message
    if torch.equal(got, _rows(rows, width, pad, left=True)):
        return (f"your {name} {_is(name)} padded on the left: pad on the right, as the sources are, so that position t "
                f"of every row is token t (and the decoder reads the real tokens before any padding)")
    keep = torch.tensor([[j < len(r) for j in range(width)] for r in rows])
    if torch.equal(got[keep], want[keep]):
        values = sorted(set(got[~keep].tolist()) - {pad})
        return padding_message(values[0])
    b = _first_difference(got, want)
    return f"row {b} of your {name} should be {want[b].tolist()}, yours is {got[b].tolist()}"


def check_teacher_forcing(fn: Callable) -> bool:
    """Check ``fn(target_ids, bos_id, eos_id, pad_id, max_len) -> (decoder_input_ids, targets)``:
    target_ids a list of target sentences, each a list of token ids y_1 .. y_T (of different
    lengths, all with T + 1 <= max_len); the answer two torch.long tensors of shape
    (batch, max_len), right-padded with pad_id:

    - decoder_input_ids, row i: bos_id y_1 .. y_T, what the decoder reads;
    - targets, row i: y_1 .. y_T eos_id, what it must predict at each of those positions.

    This is the convention of ``lmbook_utils.seq2seq.Seq2Seq.forward``: its loss skips the
    targets equal to pad_id (``model.ignore_index`` is ``config.pad_id``, as in
    ``transformer.Transformer``), so the targets' padding is pad_id there, not ``IGNORE_INDEX``
    (-100), which that loss would refuse as a class out of range. target_ids must not change.

    Introduced in chapter 02c_encoder_decoder (exercise 2).
    """
    for target_ids, bos, eos, pad, max_len in _TF_CASES:
        batch, longest = len(target_ids), max(len(y) for y in target_ids)
        dec_rows = [[bos] + y for y in target_ids]
        tgt_rows = [y + [eos] for y in target_ids]
        want_dec, want_tgt = _rows(dec_rows, max_len, pad), _rows(tgt_rows, max_len, pad)
        case = f"for target_ids {target_ids}, bos_id={bos}, eos_id={eos}, pad_id={pad}, max_len={max_len}"
        given = copy.deepcopy(target_ids)
        raw, error = _call(fn, given, bos, eos, pad, max_len)
        if error:
            return _report(False, f"{case}: {error}")
        if given != target_ids:
            return _report(False, f"{case}: your function changed target_ids (it is now {given}): the sentences "
                                  "are still needed as they were. Build new lists, [bos_id] + y and y + [eos_id], "
                                  "rather than y.insert or y.append")
        if not isinstance(raw, (tuple, list)) or len(raw) != 2:
            n = f" of {len(raw)}" if isinstance(raw, (tuple, list)) else ""
            return _report(False, f"{case}: return two tensors, (decoder_input_ids, targets); you returned a "
                                  f"{type(raw).__name__}{n}")
        got = []
        for value, name in zip(raw, ("decoder input", "targets")):
            if not isinstance(value, torch.Tensor):
                return _report(False, f"{case}: your {name} {_is(name)} a {type(value).__name__}; return a tensor, "
                                      "torch.tensor(rows, dtype=torch.long): Seq2Seq reads tensors")
            if value.dtype != torch.long:
                return _report(False, f"{case}: your {name} has dtype {value.dtype}; token ids are torch.long "
                                      "(nn.Embedding reads them, and F.cross_entropy wants its targets long)")
            value, error = _as_cpu(value)
            if error:
                return _report(False, f"{case}: your {name}: {error}")
            if tuple(value.shape) != (batch, max_len):
                if value.dim() == 2 and value.shape[0] == batch and value.shape[1] == longest + 1:
                    hint = (f": you padded to the longest sentence + 1 ({longest + 1}); pad every row to "
                            "max_len")
                elif tuple(value.shape) == (max_len, batch):
                    hint = ": it is transposed, (max_len, batch); one sentence per row"
                else:
                    hint = ""
                return _report(False, f"{case}: your {name} has shape {tuple(value.shape)}; it needs "
                                      f"(batch, max_len) = {(batch, max_len)}{hint}")
            got.append(value)
        dec, tgt = got
        if torch.equal(dec, want_dec) and torch.equal(tgt, want_tgt):
            continue
        if torch.equal(dec, tgt):
            return _report(False, f"{case}: your decoder input and your targets are the same: not shifted, the "
                                  "decoder would learn to copy the token it has just read. The targets are the "
                                  "decoder input shifted left by one: it reads bos_id y_1 .. y_T and predicts "
                                  "y_1 .. y_T eos_id, the next token at every position")
        if torch.equal(dec, want_tgt) and torch.equal(tgt, want_dec):
            return _report(False, f"{case}: you returned (targets, decoder_input_ids), the wrong way round: "
                                  "return the decoder input (bos_id y_1 .. y_T) first")
        swap = "you swapped bos_id and eos_id: a target sentence starts with bos_id and ends with eos_id"
        if not torch.equal(dec, want_dec):
            candidates = [
                ([[bos] + y + [eos] for y in target_ids],
                 "your decoder input ends with eos_id: the decoder never reads eos_id, it is the last token it "
                 "predicts. The decoder input is bos_id y_1 .. y_T, as long as the targets y_1 .. y_T eos_id"),
                (target_ids, "your decoder input does not start with bos_id: the decoder's first input is bos_id, "
                             "from which it predicts y_1. The decoder input is bos_id y_1 .. y_T"),
                ([[bos] + y[:-1] for y in target_ids],
                 "you left the last word y_T out of the decoder input: it reads bos_id y_1 .. y_T, one token for "
                 "each target y_1 .. y_T eos_id; only eos_id is never read"),
                (tgt_rows, "your decoder input is the targets (y_1 .. y_T eos_id): the decoder reads the "
                           "sentence shifted right by one, bos_id y_1 .. y_T"),
                ([[eos] + y for y in target_ids], swap),
            ]
            message = _tf_diagnose(dec, dec_rows, candidates, pad, max_len, "decoder input", lambda v: (
                f"your decoder input is padded with {v}, not with pad_id={pad}: "
                + ("nn.Embedding has no row -100; " if v == IGNORE_INDEX else "")
                + "pad it with pad_id, which the decoder reads only after the real tokens"))
            return _report(False, f"{case}: {message}")
        candidates = [
            ([[bos] + y + [eos] for y in target_ids],
             "your targets start with bos_id: the decoder reads bos_id, it never has to predict it. The targets "
             "are y_1 .. y_T eos_id, one step ahead of the decoder input"),
            (dec_rows, "your targets are the decoder input (bos_id y_1 .. y_T): they start with bos_id, which is "
                       "never predicted, and lack eos_id. The targets are y_1 .. y_T eos_id"),
            (target_ids, "your targets have no eos_id: the model would never learn to stop. The targets are "
                         "y_1 .. y_T eos_id, as long as the decoder input bos_id y_1 .. y_T"),
            ([y + [bos] for y in target_ids], swap),
        ]

        def padding(v: int) -> str:
            if v == IGNORE_INDEX:
                return (f"your targets are padded with -100: Seq2Seq's loss skips the targets equal to pad_id "
                        f"(its ignore_index is config.pad_id, here {pad}), and -100 is not a class it can read "
                        "(IndexError: Target -100 is out of bounds). Pad the targets with pad_id")
            what = " (eos_id)" if v == eos else " (bos_id)" if v == bos else ""
            return (f"your targets are padded with {v}{what}, not with pad_id={pad}: the loss skips only the "
                    f"targets equal to pad_id, so it would train the model to predict {v} at every padding "
                    "position. Pad the targets with pad_id")

        return _report(False, f"{case}: " + _tf_diagnose(tgt, tgt_rows, candidates, pad, max_len, "targets",
                                                         padding))
    return _report(True, "teacher forcing is right: the decoder reads bos_id y_1 .. y_T and predicts "
                         "y_1 .. y_T eos_id, both padded on the right with pad_id, which Seq2Seq's loss skips")


# --- exercise 3: BLEU's brevity penalty ---------------------------------------------------------

# (hyp_len, ref_len): shorter, longer and equal hypotheses; an empty one last
_BP_CASES = [(9, 12), (12, 9), (10, 10), (4, 11), (20, 21), (30, 17), (1, 6), (0, 7)]


def _bp(h: int, r: int) -> float:
    """BLEU's brevity penalty (Papineni et al. 2002), written out: the reference."""
    if h >= r:
        return 1.0
    return math.exp(1 - r / h) if h > 0 else 0.0


def _sacrebleu_bp(h: int, r: int) -> float:
    """sacrebleu's own brevity penalty, from its sufficient statistics (no n-gram matched)."""
    import sacrebleu  # imported here: only this check needs it

    return sacrebleu.BLEU.compute_bleu([0] * 4, [0] * 4, sys_len=h, ref_len=r).bp


def _number(raw) -> tuple[float | None, str | None]:
    if isinstance(raw, bool):
        return None, f"you returned {raw!r}: return the penalty, a number between 0 and 1"
    got, error = _as_cpu(raw, torch.float64)
    if error:
        return None, error
    if got.numel() != 1:
        return None, f"your answer has shape {tuple(got.shape)}; return one number"
    return float(got.reshape(())), None


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def check_brevity_penalty(fn: Callable[[int, int], float]) -> bool:
    """Check ``fn(hyp_len, ref_len) -> float``: BLEU's brevity penalty for a hypothesis (a corpus of
    them) of hyp_len tokens against references of ref_len tokens: 1 when hyp_len >= ref_len, else
    exp(1 - ref_len / hyp_len), and 0 when hyp_len == 0. A number between 0 and 1 (not a
    percentage); Python numbers, NumPy numbers and one-element tensors are accepted. The reference
    is written out here and equals sacrebleu's own (``sacrebleu.BLEU.compute_bleu(...).bp``).

    Introduced in chapter 02c_encoder_decoder (exercise 3).
    """
    answers, wants, cases = [], [], [c for c in _BP_CASES if c[0] > 0]
    for h, r in cases:  # the empty hypothesis after the others: it has its own message
        want = _bp(h, r)
        assert _close(want, _sacrebleu_bp(h, r))  # the check's own consistency
        raw, error = _call(fn, h, r)
        if not error:
            got, error = _number(raw)
        if error:
            return _report(False, f"for hyp_len={h}, ref_len={r}: {error}")
        answers.append(got)
        wants.append(want)

    def short(f: Callable[[int, int], float]) -> list[float]:  # f for the short hypotheses, 1 for the others
        return [f(h, r) if h < r else 1.0 for h, r in cases]

    mistakes = [
        (short(lambda h, r: math.exp(1 - h / r)),
         "you inverted the ratio, exp(1 - hyp_len/ref_len), which is above 1 for a short hypothesis: the "
         "penalty is exp(1 - ref_len/hyp_len), below 1, and the smaller the shorter the hypothesis"),
        ([math.exp(1 - r / h) for h, r in cases],
         "you applied the penalty to hypotheses longer than the reference too: there exp(1 - ref_len/hyp_len) is "
         "above 1, a bonus for length. The penalty is 1 when hyp_len >= ref_len: only short outputs are "
         "penalized (the n-gram precisions already punish extra words)"),
        ([math.exp(1 - max(h, r) / min(h, r)) for h, r in cases],
         "you penalized hypotheses longer than the reference too: the brevity penalty is 1 when hyp_len >= "
         "ref_len; only short outputs are penalized (the n-gram precisions already punish extra words)"),
        (short(lambda h, r: math.exp(r / h - 1)),
         "you computed exp(ref_len/hyp_len - 1), which is above 1 for a short hypothesis, a reward: the "
         "exponent is 1 - ref_len/hyp_len, negative when the hypothesis is shorter, so the penalty is below 1"),
        ([math.exp(r / h - 1) for h, r in cases],
         "you computed exp(ref_len/hyp_len - 1): the exponent is 1 - ref_len/hyp_len, and the penalty is 1 "
         "when hyp_len >= ref_len"),
        ([100 * w for w in wants],
         "your penalty is a percentage: return a factor between 0 and 1; BLEU multiplies the geometric mean of "
         "the precisions by it (sacrebleu reports the score, not the penalty, times 100)"),
        (short(lambda h, r: 1 - r / h),
         "you forgot the exp: 1 - ref_len/hyp_len is the log of the penalty; the penalty is "
         "exp(1 - ref_len/hyp_len)"),
        (short(lambda h, r: h / r),
         "you returned hyp_len/ref_len: BLEU's penalty is exp(1 - ref_len/hyp_len), which falls faster than "
         "the ratio for a short hypothesis"),
        (short(lambda h, r: math.exp(1 - r // h)),
         "you used integer division, ref_len // hyp_len: divide with /, exp(1 - ref_len/hyp_len)"),
    ]
    if not all(_close(a, w) for a, w in zip(answers, wants)):
        i = next(j for j, (a, w) in enumerate(zip(answers, wants)) if not _close(a, w))
        h, r = cases[i]
        head = f"for hyp_len={h}, ref_len={r} the brevity penalty is {wants[i]:.4f}, yours is {answers[i]:.4f}"
        for values, message in mistakes:
            if all(_close(a, v) for a, v in zip(answers, values)):
                return _report(False, f"{head}: {message}")
        return _report(False, f"{head}: it is 1 when hyp_len >= ref_len, else exp(1 - ref_len/hyp_len)")
    for h, r in _BP_CASES:
        if h > 0:
            continue
        assert _bp(h, r) == _sacrebleu_bp(h, r) == 0.0
        empty = ("the penalty of an empty hypothesis is 0 (exp(1 - ref_len/hyp_len) tends to 0 as hyp_len "
                 "shrinks to 0; sacrebleu returns 0): handle hyp_len == 0 before dividing by it")
        raw, error = _call(fn, h, r)
        if error:
            return _report(False, f"for hyp_len={h}, ref_len={r}: {error}; {empty}")
        got, error = _number(raw)
        if error:
            return _report(False, f"for hyp_len={h}, ref_len={r}: {error}")
        if not _close(got, 0.0):
            return _report(False, f"for hyp_len={h}, ref_len={r} you returned {got!r}: {empty}")
    return _report(True, "the brevity penalty is right: 1 for a hypothesis at least as long as the reference, "
                         "exp(1 - ref_len/hyp_len) for a shorter one, 0 for an empty one; it equals sacrebleu's")
