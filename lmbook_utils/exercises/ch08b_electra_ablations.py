"""Exercise checks of chapter 08b_electra_ablations (ELECTRA's ablations in miniature, Clark et
al. 2020 Table 5): where each objective's loss is averaged, All-Tokens MLM's copy-mechanism
loss, and how many steps of differing cost fill a compute budget.

Introduced in chapter 08b_electra_ablations.
"""

from __future__ import annotations

import operator
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ._common import _as_cpu, _call, _report

__all__ = ["check_scored_positions", "check_copy_loss", "check_steps_at_budget"]

# --- exercise 1: the positions each objective's loss covers ------------------------------------

# objective -> does its loss (of the model one keeps) cover every real token? and why
_OBJECTIVES = {
    "ELECTRA": (True, "ELECTRA's discriminator labels every real token original or replaced, so its loss "
                      "covers every real token"),
    "ELECTRA 15%": (False, "this ablation's discriminator still reads and labels every token, but its loss, what "
                           "it learns from, covers only the masked positions"),
    "Replace MLM": (False, "Replace MLM is BERT's loss with the generator's samples in place of [MASK], so the "
                           "model predicts, and its loss covers, only the masked positions"),
    "All-Tokens MLM": (True, "All-Tokens MLM predicts every token's identity, not only the masked ones (the copy "
                             "mechanism lets it copy the unmasked ones), so its loss covers every real token"),
    "BERT": (False, "BERT's MLM loss covers only the masked positions"),
}


def _scored_cases() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(keep, masked): padding at the ends of rows; masked a subset of keep. The first case has
    a full row, a padded row, and a row with no masked position."""
    lengths = torch.tensor([14, 9, 6])
    keep = torch.arange(14)[None, :] < lengths[:, None]
    masked = torch.zeros(3, 14, dtype=torch.bool)
    masked[0, [2, 7, 11]] = True
    masked[1, [1, 6]] = True  # row 2: none masked
    cases = [(keep, masked)]
    gen = torch.Generator().manual_seed(88)  # a private generator: the same cases on every call
    lengths = torch.tensor([10, 4, 7, 10])
    keep = torch.arange(10)[None, :] < lengths[:, None]
    masked = (torch.rand(4, 10, generator=gen) < 0.3) & keep
    masked[:, 0] = True  # every row has one
    cases.append((keep, masked))
    return cases


def _positions(row: torch.Tensor) -> list[int]:
    return [int(i) for i in torch.nonzero(row).flatten()]


def _scored_mistake(objective: str, got: torch.Tensor, keep: torch.Tensor, masked: torch.Tensor) -> str:
    """What is wrong in the first row where `got` differs from the objective's positions."""
    every, why = _OBJECTIVES[objective]
    want = keep if every else masked
    b = int(torch.nonzero((got != want).any(1))[0])
    g, k, m = got[b], keep[b], masked[b]
    n_real, n_masked, n_got = int(k.sum()), int(m.sum()), int(g.sum())
    head = f"for {objective!r} your function scores {n_got} position{'s' * (n_got != 1)} of row {b}"
    if bool((g & ~k).any()):
        i = _positions(g & ~k)[0]
        return (f"{head}, position {i} among them, which is padding (row {b} has {n_real} real tokens): no "
                "loss counts padding. Every objective scores real tokens only (keep)")
    if every and torch.equal(g, m):
        return f"{head}, only its masked ones; {why}: all {n_real} of row {b}, keep"
    if not every and torch.equal(g, k):
        if n_masked == 0:
            return (f"{head}, every real token, but row {b} has no masked position, so {objective!r} scores "
                    f"none of it: {why}")
        return f"{head}, every real token; {why}: in row {b} the {n_masked} at {_positions(m)}"
    if torch.equal(g, k & ~m):
        return (f"{head}: its unmasked real tokens, the complement of the right answer; {why}")
    if not every and n_masked == 0:
        return (f"{head} ({_positions(g)}), but row {b} has no masked position, so {objective!r} scores "
                f"none of it: {why}")
    i = _positions(g != want)[0]
    state = "masked" if m[i] else "a real token, not masked"
    verb = "count" if want[i] else "leave out"
    return (f"for {objective!r} at row {b}, position {i} ({state}) the loss should {verb} it, yours does the "
            f"opposite; {why}")


def check_scored_positions(fn: Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor]) -> bool:
    """Check ``fn(objective, keep, masked) -> (batch, T) bool``: the positions where the loss of
    the model one keeps is averaged, for each objective of Table 5: every real token (keep) for
    "ELECTRA" and "All-Tokens MLM", the masked positions for "ELECTRA 15%", "Replace MLM" and
    "BERT". keep and masked are (batch, T) bool, masked a subset of keep. 0/1 numbers are
    accepted in place of bools.

    Introduced in chapter 08b_electra_ablations (exercise 1).
    """
    numbers = None
    for keep, masked in _scored_cases():
        for objective, (every, _) in _OBJECTIVES.items():
            want = keep if every else masked
            got, error = _call(fn, objective, keep.clone(), masked.clone())
            if error:
                return _report(False, f"for objective {objective!r} {error}")
            if got is None:
                return _report(False, f"for objective {objective!r} your function returned None: return the "
                                      "(batch, T) bool tensor of the positions its loss covers")
            got, error = _as_cpu(got)
            if error:
                return _report(False, f"for objective {objective!r} {error}")
            if tuple(got.shape) != tuple(want.shape):
                return _report(False, f"for objective {objective!r} and a batch of {want.shape[0]} sequences of "
                                      f"{want.shape[1]} positions the answer needs shape {tuple(want.shape)}, "
                                      f"the shape of keep and masked, one per position; yours has "
                                      f"{tuple(got.shape)}")
            if got.dtype != torch.bool:
                if not bool(((got == 0) | (got == 1)).all()):
                    return _report(False, f"for objective {objective!r} the answer must be True/False (or 1/0) "
                                          f"at every position; yours holds the values "
                                          f"{sorted(set(got.flatten().tolist()))[:6]}")
                numbers, got = got.dtype, got != 0
            if not torch.equal(got, want):
                return _report(False, _scored_mistake(objective, got, keep, masked))
    note = (f" (you returned {numbers} 0/1 values; a bool tensor is what masks the loss in the chapter)"
            if numbers is not None else "")
    return _report(True, "the scored positions are right for all five objectives: every real token for ELECTRA "
                         "and All-Tokens MLM, the masked ones for ELECTRA 15%, Replace MLM and BERT, padding "
                         "never" + note)


# --- exercise 2: All-Tokens MLM's loss with the copy mechanism -----------------------------------

_RTOL = _ATOL = 1e-5


def _copy_terms(logits, copy_logit, original, shown):
    """float64 per-token pieces: log p_mlm(original), log D, log(1 - D), and whether copying is right."""
    log_mlm = torch.log_softmax(logits.double(), -1).gather(-1, original.unsqueeze(-1)).squeeze(-1)
    c = copy_logit.double()
    return log_mlm, F.logsigmoid(c), F.logsigmoid(-c), shown == original


def _mean_over(nll: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    return nll.masked_fill(~keep, 0.0).sum() / keep.sum()


def _copy_rule(logits, copy_logit, original, shown, keep) -> torch.Tensor:
    """The reference, in log space: -log(D [original == shown] + (1 - D) softmax(logits)(original)),
    the mean over real tokens, computed in float64."""
    log_mlm, log_d, log_not_d, copy_right = _copy_terms(logits, copy_logit, original, shown)
    log_copy = log_d.masked_fill(~copy_right, float("-inf"))
    return _mean_over(-torch.logaddexp(log_copy, log_not_d + log_mlm), keep)


def _copy_mistakes(logits, copy_logit, original, shown, keep) -> list[tuple[torch.Tensor, str]]:
    log_mlm, log_d, log_not_d, copy_right = _copy_terms(logits, copy_logit, original, shown)
    nll = -torch.logaddexp(log_d.masked_fill(~copy_right, float("-inf")), log_not_d + log_mlm)
    with_d = -torch.logaddexp(log_d, log_not_d + log_mlm)  # as if copying were always right
    return [
        (_mean_over(-log_mlm, keep),
         "you left out the copy mechanism: the loss is the cross-entropy of the MLM alone. All-Tokens MLM's "
         "p(original) = D [original == shown] + (1 - D) softmax(logits)(original), with D = "
         "sigmoid(copy_logit)"),
        (_mean_over(-(log_not_d + log_mlm), keep),
         "you kept the (1 - D) weight on the MLM's softmax but dropped the copy term D [original == shown]: "
         "where the model was shown the original token, copying it is right and adds D to p(original)"),
        (_mean_over(-torch.logaddexp(log_d.masked_fill(~copy_right, float("-inf")), log_mlm), keep),
         "you forgot to weigh the MLM's softmax by (1 - D): p(y) = D [y == shown] + (1 - D) softmax(logits)(y), "
         "a mixture of the copy and the MLM, so that it sums to 1 over the vocabulary"),
        (_mean_over(with_d, keep),
         "you put the copy probability D on the original token, so copying always counts as right: the copy "
         "mechanism copies the token the model was shown (its input), and D adds to p(original) only where "
         "shown == original. The model never sees the original where it was replaced"),
        (_mean_over(-torch.logaddexp(log_not_d.masked_fill(~copy_right, float("-inf")), log_d + log_mlm), keep),
         "you swapped D and 1 - D: D = sigmoid(copy_logit) is the probability of copying the shown token, "
         "1 - D = sigmoid(-copy_logit) weighs the MLM's softmax"),
        (nll.mean(), "you averaged over every position, padding included: average over the real tokens "
                     "only (keep True), dividing by their number"),
        (nll.masked_fill(~keep, 0.0).mean(), "you zeroed the padding but divided by all positions: divide by "
                                             "the number of real tokens, keep.sum()"),
        (nll.masked_fill(~keep, 0.0).sum(), "you summed the losses: take their mean over the real tokens, so "
                                            "that the loss does not grow with the batch and the length"),
    ]


def _copy_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(description, logits, copy_logit, original, shown, keep), float32. About half the shown
    tokens are the original; padding (id 0) at the ends of rows, where the logits are garbage."""
    gen = torch.Generator().manual_seed(808)
    cases = []
    for batch, t, vocab, lengths, scale in ((2, 5, 7, (5, 5), 1.0), (3, 6, 9, (6, 4, 2), 2.0),
                                            (2, 7, 6, (7, 5), 1.0)):
        keep = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]
        original = torch.randint(1, vocab, (batch, t), generator=gen)
        other = torch.randint(1, vocab, (batch, t), generator=gen)
        shown = torch.where(torch.rand(batch, t, generator=gen) < 0.5, original, other)
        shown[0, 0], shown[0, 1] = original[0, 0], original[0, 1] % (vocab - 1) + 1  # one copied, one replaced
        logits = scale * torch.randn(batch, t, vocab, generator=gen)
        copy_logit = 2 * torch.randn(batch, t, generator=gen)
        original, shown = original.masked_fill(~keep, 0), shown.masked_fill(~keep, 0)
        logits = torch.where(keep[..., None], logits, 30 * torch.randn(batch, t, vocab, generator=gen))
        copy_logit = torch.where(keep, copy_logit, 30 * torch.randn(batch, t, generator=gen))
        sizes = f"{batch} sequences of {t} positions, real lengths {list(lengths)}, a vocabulary of {vocab}"
        if batch == 2 and t == 7:  # extreme copy logits: the model sure it should copy, or sure it should not
            copy_logit = torch.tensor([[40.0, 40.0, -40.0, -40.0, 40.0, -40.0, 40.0],
                                       [-40.0, 40.0, 40.0, -40.0, 40.0, 0.0, 0.0]])
            sizes = f"copy logits of +-40 ({sizes})"
        cases.append((sizes, logits, copy_logit, original, shown, keep))
    return cases


def check_copy_loss(fn: Callable[..., torch.Tensor]) -> bool:
    """Check ``fn(logits, copy_logit, original, shown, keep) -> scalar``: All-Tokens MLM's loss
    with the copy mechanism, the mean over real tokens (keep True) of -log p(original), where
    p(y) = D [y == shown] + (1 - D) softmax(logits)(y) and D = sigmoid(copy_logit). logits
    (batch, T, vocab), copy_logit (batch, T), original and shown (batch, T) ids, keep (batch, T)
    bool. The inputs are float32; the answer must be within 1e-5 (relative or absolute) of a
    float64 reference, stay finite for copy logits of +-40 (work in log space), and keep a
    gradient back to the logits.

    Introduced in chapter 08b_electra_ablations (exercise 2).
    """
    for sizes, logits, copy_logit, original, shown, keep in _copy_cases():
        want = _copy_rule(logits, copy_logit, original, shown, keep)
        given, given_c = logits.clone().requires_grad_(True), copy_logit.clone().requires_grad_(True)
        raw, error = _call(fn, given, given_c, original.clone(), shown.clone(), keep.clone())
        if error:
            if "in-place" in error or "inplace" in error:
                error += (". logits and copy_logit carry gradients: build new tensors (torch.where, masked_fill "
                          "without the underscore) instead of changing them in place")
            return _report(False, f"for {sizes}: {error}")
        got, error = _as_cpu(raw, dtype=torch.float64)
        if error:
            return _report(False, f"for {sizes}: {error}")
        if got.numel() != 1:
            per_token = "you returned a loss per token; " if tuple(got.shape) == tuple(keep.shape) else ""
            return _report(False, f"for {sizes}: {per_token}the loss is one number, the mean over real tokens; "
                                  f"yours has shape {tuple(got.shape)}")
        got = got.reshape(())
        if not bool(torch.isfinite(got)):
            if sizes.startswith("copy logits"):
                return _report(False, f"for {sizes} your loss is {got.item()}, the right one is "
                                      f"{want.item():.6f}. In float32 sigmoid(40) rounds to 1, so 1 - D is 0 and "
                                      "a replaced token the model copies gets probability 0 (log 0 = -inf). Work "
                                      "in log space: log D = F.logsigmoid(c), log(1 - D) = F.logsigmoid(-c), "
                                      "log softmax with log_softmax, and add the two terms' probabilities with "
                                      "torch.logaddexp (-inf where shown != original)")
            return _report(False, f"for {sizes} your loss is {got.item()}, the right one is {want.item():.6f}: "
                                  "are padding positions (garbage logits) or log(0) leaking in? Work in log "
                                  "space (F.logsigmoid, log_softmax, torch.logaddexp) and leave padding out")
        if bool(torch.isclose(got, want, rtol=_RTOL, atol=_ATOL)):
            if not (isinstance(raw, torch.Tensor) and raw.requires_grad):
                return _report(False, "the value is right, but it carries no gradient back to the logits (a "
                                      "Python number, or .item(), .detach() or numpy on the way): training "
                                      "could not use it. Keep it a tensor computed from logits and copy_logit")
            continue
        for value, message in _copy_mistakes(logits, copy_logit, original, shown, keep):
            if bool(torch.isclose(got, value, rtol=_RTOL, atol=_ATOL)) and not bool(
                    torch.isclose(value, want, rtol=_RTOL, atol=_ATOL)):
                return _report(False, f"for {sizes}: {message}")
        extreme = (" With copy logits this large, clamping a probability or adding an epsilon before the log "
                   "changes the loss: work in log space (F.logsigmoid, log_softmax, torch.logaddexp)"
                   if sizes.startswith("copy logits") else "")
        return _report(False, f"for {sizes}: the loss should be {want.item():.6f}, yours is {got.item():.6f} "
                              "(the check allows 1e-5, relative or absolute, on float32 inputs). It is the mean "
                              "over real tokens of -log(D [original == shown] + (1 - D) "
                              "softmax(logits)(original))." + extreme)
    return _report(True, "the copy-mechanism loss is right: the copy on the shown token, the MLM weighed by "
                         "1 - D, averaged over real tokens, and finite even for copy logits of +-40")


# --- exercise 3: the number of steps that fills a compute budget ---------------------------------

def _fmt(x: float) -> str:
    return f"{x:_}"  # exact, as Python writes it: two sums a few FLOPs apart must not print the same


def _float32_hint(flops: list, got: int, want: int) -> str:
    if abs(got - want) != 1 or max(flops) <= 2**24:
        return ""
    return (" Summed in float32? FLOPs this large are rounded there, by more than the gap between the sum "
            "and the budget: keep them Python ints, or use float64.")


def _fmt_list(values: Sequence) -> str:
    shown = [_fmt(v) for v in values] if len(values) <= 8 else [_fmt(v) for v in values[:6]] + ["..."]
    return "[" + ", ".join(shown) + "]"


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _sums(step_flops: Sequence) -> list:
    out, total = [], 0
    for f in step_flops:
        total += f
        out.append(total)
    return out


def _steps_rule(step_flops: Sequence, budget: float) -> int:
    for n, total in enumerate(_sums(step_flops), start=1):
        if total >= budget:
            return n
    raise ValueError("the budget is never reached")


def _steps_mistake(flops: list, budget, got: int, want: int) -> str:
    sums = _sums(flops)
    where = f"for step FLOPs {_fmt_list(flops)} and a budget of {_fmt(budget)}"
    reached = sums[want - 1]
    if got > want:
        tie = (" A sum equal to the budget reaches it: the test is sum >= budget, not >."
               if reached == budget else "")
        if _float32_hint(flops, got, want):  # the small cases before passed: the logic is right
            tie = _float32_hint(flops, got, want)
        beyond = f" (there are only {len(flops)} steps)" if got > len(flops) else ""
        return (f"{where}: after {want} step{'s' * (want != 1)} the sum is {_fmt(reached)}, which reaches the "
                f"budget of {_fmt(budget)}: {want} steps, not {got}{beyond}.{tie}")
    if got <= 0:
        steps = f"{want} step{'s' * (want != 1)}"
        none = ("0 steps train nothing (the sum of no steps is 0, below the budget)" if got == 0
                else f"a number of steps is at least 1, yours is {got}")
        return (f"{where}: {none}; after {steps} the sum is {_fmt(reached)}, which reaches it: {steps}."
                + (" Counting from 0? The number of steps is the index of the last one plus 1."
                   if got == want - 1 else ""))
    below = sums[got - 1]
    hint = ""
    if got == want - 1:
        hint = " Counting from 0? The number of steps is the index of the last one plus 1."
        if reached > budget:
            hint += (" Or did you stop before the sum passes the budget? The budget is the compute each objective "
                     "must reach, not a cap to stay under: the step that crosses it counts.")
    return (f"{where}: after {got} step{'s' * (got != 1)} the sum is {_fmt(below)}, still below the budget of "
            f"{_fmt(budget)}; the {_ordinal(want)} step brings it to {_fmt(reached)}: {want} steps, not {got}."
            f"{_float32_hint(flops, got, want) or hint}")


def check_steps_at_budget(fn: Callable[[Sequence, float], int]) -> bool:
    """Check ``fn(step_flops, budget) -> int``: the smallest number of steps n such that the FLOPs
    of steps 1..n (step_flops, in order; a list or 1-D sequence) sum to at least `budget`, how
    chapter 08b gives two objectives the same compute. A budget the steps never reach must raise
    ValueError.

    Introduced in chapter 08b_electra_ablations (exercise 3).
    """
    import numpy as np

    big = [3_141_592_653_589, 2_718_281_828_459, 3_316_624_790_355, 2_645_751_311_064, 3_605_551_275_463]
    cases = [
        ([30, 20, 40, 10, 25], 90),    # exactly the sum after 3 steps: 3, not 4
        ([30, 20, 40, 10, 25], 95),    # between the sums after 3 and 4 steps
        ([30, 20, 40, 10, 25], 10),    # reached at step 1
        ([30, 20, 40, 10, 25], 125),   # exactly the total: the last step, no error
        ([12, 15, 11, 15, 9, 14, 13], 52.5),
        (np.array(big, dtype=np.int64), sum(big[:4])),  # realistic sizes, a NumPy array, a tie again
        (tuple(big), sum(big[:3]) + 1),  # one FLOP above the sum after 3 steps: 4 steps
    ]
    for flops, budget in cases:
        want = _steps_rule(list(flops), budget)
        given = flops.copy() if isinstance(flops, np.ndarray) else type(flops)(flops)
        raw, error = _call(fn, given, budget)
        plain = [int(f) if isinstance(f, (int, np.integer)) else f for f in flops]
        if error:
            return _report(False, f"for step FLOPs {_fmt_list(plain)} and a budget of {_fmt(budget)} "
                                  f"{error}")
        if isinstance(raw, (bool, np.bool_)) or (isinstance(raw, torch.Tensor) and raw.dtype == torch.bool):
            return _report(False, f"your function returned {raw!r}; return the number of steps, an int")
        try:
            got = operator.index(raw)
        except TypeError:
            if isinstance(raw, float) and raw.is_integer():
                return _report(False, f"your function returned {raw!r}, a float: return the number of steps as "
                                      f"an int ({int(raw)})")
            return _report(False, f"your function returned {raw!r} ({type(raw).__name__}); return the number of "
                                  "steps, an int")
        if got != want:
            return _report(False, _steps_mistake(plain, budget, got, want))
    flops, budget = [30, 20, 40, 10, 25], 200
    try:
        raw = fn(list(flops), budget)
    except ValueError:
        pass
    except Exception as exc:  # the learner's bug, reported, not raised
        return _report(False, f"for step FLOPs {flops} (sum 125) and a budget of 200 the steps never reach the "
                              f"budget: raise ValueError; yours raised {type(exc).__name__}: {exc}")
    else:
        return _report(False, f"for step FLOPs {flops} (sum 125) and a budget of 200 your function returned "
                              f"{raw!r}, but the steps never reach the budget: raise ValueError, so that a "
                              "comparison never runs one objective on less compute than the other")
    return _report(True, "the number of steps is right: the first step at which the running sum of FLOPs "
                         "reaches the budget (a tie counts), and ValueError when it never does")
