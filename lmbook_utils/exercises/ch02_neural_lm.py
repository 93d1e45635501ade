"""Exercise checks of chapter 02_neural_lm: a language model's metrics over padded batches
(cross-entropy, perplexity, accuracy), one Elman RNN step, and an LSTM language model's
parameter count, tied and untied.

Introduced in chapter 02_neural_lm.
"""

from __future__ import annotations

import math
import operator
from typing import Callable

import torch
import torch.nn.functional as F

from ..modeling import IGNORE_INDEX
from ..neural_lm import RNNLM, RNNLMConfig
from ._common import _as_cpu, _call, _report

__all__ = ["check_lm_metrics", "check_elman_step", "check_lstm_lm_parameters"]

_LN2 = math.log(2.0)

# --- exercise 1: cross-entropy, perplexity and accuracy over the real tokens -------------------


def _metric_cases() -> list[tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]]:
    """(logits, targets, real lengths): padded on the right with -100, rows of different real
    lengths (so a mean of per-row means differs from the mean per token), T != vocab (so
    F.cross_entropy on 3-D logits raises), and the target the argmax at about half the real
    positions (so accuracy is neither 0 nor 1)."""
    gen = torch.Generator().manual_seed(20)  # a private generator: the same cases on every call
    cases = []
    for batch, t, vocab, lengths in ((3, 6, 7, (6, 4, 1)), (2, 5, 9, (5, 2)), (4, 3, 5, (3, 3, 2, 1))):
        keep = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]
        targets = torch.randint(0, vocab, (batch, t), generator=gen)
        logits = 1.5 * torch.randn(batch, t, vocab, generator=gen)
        boost = (torch.rand(batch, t, generator=gen) < 0.5).float() * 3.0
        logits.scatter_add_(-1, targets[..., None], boost[..., None])
        cases.append((logits, targets.masked_fill(~keep, IGNORE_INDEX), lengths))
    return cases


def _per_row_mean(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    return ((values * keep).sum(1) / keep.sum(1)).mean()


def _close(got: torch.Tensor, value: torch.Tensor) -> bool:
    return bool(torch.isclose(got.double(), value.double(), rtol=1e-4, atol=1e-5))


def _scalar(raw, name: str, batch: int, t: int) -> tuple[torch.Tensor | None, str | None]:
    got, error = _as_cpu(raw, torch.float64)
    if error:
        return None, f"your {name}: {error}"
    if got.numel() != 1:
        what = {(batch, t): "one per position; ", (batch,): "one per row; "}.get(tuple(got.shape), "")
        return None, (f"your {name} has shape {tuple(got.shape)} ({what}it is one number, over all the real "
                      "positions of the batch)")
    return got.reshape(()), None


def check_lm_metrics(fn: Callable) -> bool:
    """Check ``fn(logits, targets) -> (cross_entropy, perplexity, accuracy)`` of a language model
    on a padded batch: logits (batch, T, vocab) already aligned with targets (batch, T), where
    -100 marks a position that is not predicted (padding). The cross-entropy is the mean over the
    real positions of -log softmax(logits)[target], in nats, as
    ``F.cross_entropy(..., ignore_index=-100)`` gives it; the perplexity is e to that power; the
    accuracy is the share of real positions whose argmax is the target. Python numbers and
    one-element tensors are both accepted.

    Introduced in chapter 02_neural_lm (exercise 1).
    """
    for logits, targets, lengths in _metric_cases():
        batch, t, vocab = logits.shape
        keep = targets != IGNORE_INDEX
        want_ce = F.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1), ignore_index=IGNORE_INDEX)
        want_ppl = want_ce.exp()
        pred = logits.argmax(-1)
        right = pred == targets
        want_acc = right[keep].float().mean()
        sizes = (f"for {batch} sequences of {t} positions, real lengths {list(lengths)} (then -100), a "
                 f"vocabulary of {vocab}")

        raw, error = _call(fn, logits.clone(), targets.clone())
        if error:
            if "Expected target size" in error:
                error += (". F.cross_entropy reads the classes from dim 1: flatten to logits.reshape(-1, vocab) "
                          "and targets.reshape(-1), or pass logits.transpose(1, 2)")
            elif "-100" in error:
                error += (". -100 is not a class: it marks a position that is not predicted; leave those "
                          "positions out (targets != -100), or let F.cross_entropy skip them (ignore_index=-100)")
            return _report(False, error)
        if not isinstance(raw, (tuple, list)) or len(raw) != 3:
            n = f" of {len(raw)}" if isinstance(raw, (tuple, list)) else ""
            return _report(False, "return three numbers, (cross_entropy, perplexity, accuracy); you returned a "
                                  f"{type(raw).__name__}{n}")
        got = []
        for value, name in zip(raw, ("cross-entropy", "perplexity", "accuracy")):
            value, error = _scalar(value, name, batch, t)
            if error:
                return _report(False, f"{sizes}: {error}")
            got.append(value)
        ce, ppl, acc = got

        # per-token losses, padding read as class 0: what a hand-written loss that forgot the padding gives
        nll = F.cross_entropy(logits.reshape(-1, vocab), targets.clamp(min=0).reshape(-1),
                              reduction="none").view(batch, t)
        shifted = F.cross_entropy(logits[:, :-1].reshape(-1, vocab), targets[:, 1:].reshape(-1))
        loss_mistakes = [
            (want_ce / _LN2, "your cross-entropy is in bits (log base 2): return it in nats (natural log), as "
                             "F.cross_entropy computes it"),
            (nll.mean(), "you averaged over every position, padding included: average over the real positions "
                         "only (targets != -100), or let F.cross_entropy skip them (ignore_index=-100)"),
            ((nll * keep).sum() / keep.numel(), "you zeroed the padding but divided by all positions: divide by "
                                                "the number of real positions, (targets != -100).sum()"),
            (_per_row_mean(nll, keep), "you took each row's mean loss, then the mean of the rows: a row with one "
                                       "real token then weighs as much as a row with six. Average over all the "
                                       "real tokens at once, per token (sum of their losses / their number)"),
            ((nll * keep).sum(), "you summed the losses: the cross-entropy is their mean over the real tokens"),
            (-want_ce, "your cross-entropy is negative: it is the mean of -log p(target), minus the "
                       "log-probability, so it is >= 0"),
            (shifted, "you shifted the targets by one: logits[:, t] already scores targets[:, t] (the targets "
                      "are the inputs shifted by one, done for you)"),
        ]
        if not _close(ce, want_ce):
            for value, message in loss_mistakes:
                if _close(ce, value) and not _close(value, want_ce):
                    if message.startswith("your cross-entropy is in bits"):
                        if _close(ppl, want_ppl):
                            message += " (your perplexity, 2^bits = e^nats, is right)"
                        elif _close(ppl, value.exp()):
                            message += ("; and your perplexity is e^loss where the loss is in bits: use 2^bits "
                                        "or e^nats")
                    return _report(False, f"{sizes}: {message}")
            return _report(False, f"{sizes}: the cross-entropy should be {want_ce.item():.4f} nats, yours is "
                                  f"{ce.item():.4f}. It is the mean over the real positions (targets != -100) of "
                                  "-log softmax(logits)[target]")

        if not _close(ppl, want_ppl):
            ppl_mistakes = [
                (2.0 ** want_ce, "your perplexity is 2^loss where the loss is in nats: use e^nats (or 2^bits)"),
                (want_ce.exp() ** (1 / _LN2), "your perplexity is e^loss where the loss is in bits: use 2^bits "
                                              "or e^nats"),
                (want_ce, "your perplexity is the cross-entropy itself: perplexity is e^(cross-entropy in nats)"),
                ((-want_ce).exp(), "your perplexity is e^(-loss), the geometric mean of the target's "
                                   "probabilities; perplexity is its inverse, e^loss"),
                (nll.exp()[keep].mean(), "you averaged each token's e^loss; perplexity is e to the mean loss, "
                                         "e^(mean over the real tokens of -log p)"),
                (((nll * keep).sum(1) / keep.sum(1)).exp().mean(),
                 "you averaged each row's perplexity; perplexity is e to the mean loss over all real tokens"),
            ] + [(value.exp(), f"your perplexity is e^ of a wrong cross-entropy: {message}")
                 for value, message in loss_mistakes[1:]]
            for value, message in ppl_mistakes:
                if _close(ppl, value) and not _close(value, want_ppl):
                    return _report(False, f"{sizes}: {message}")
            return _report(False, f"{sizes}: your cross-entropy is right, {want_ce.item():.4f} nats, but the "
                                  f"perplexity should be e^{want_ce.item():.4f} = {want_ppl.item():.4f}, yours is "
                                  f"{ppl.item():.4f}")

        if not _close(acc, want_acc):
            probs = logits.softmax(-1).gather(-1, targets.clamp(min=0)[..., None])[..., 0]
            acc_shift = (pred[:, :-1] == targets[:, 1:])[keep[:, 1:]].float().mean()
            acc_mistakes = [
                (right.float().mean(), "your accuracy counts the padding positions, as wrong predictions: count "
                                       "the real positions only (targets != -100)"),
                ((right | ~keep).float().mean(), "your accuracy counts the padding positions as right: count the "
                                                 "real positions only (targets != -100)"),
                (_per_row_mean(right.float(), keep), "you took each row's accuracy, then the mean of the rows: "
                                                     "count per token, over all the real positions at once"),
                (want_acc * 100, "your accuracy is a percentage: return a fraction between 0 and 1"),
                (right[keep].sum(), "you returned the number of right predictions: return their share of the "
                                    "real positions"),
                (probs[keep].mean(), "you averaged the probability of the target: accuracy is the share of real "
                                     "positions where the target is the argmax of the logits"),
                (acc_shift, "you shifted the targets by one: logits[:, t] already scores targets[:, t]"),
            ]
            for value, message in acc_mistakes:
                if _close(acc, value) and not _close(value, want_acc):
                    return _report(False, f"{sizes}: {message}")
            return _report(False, f"{sizes}: the accuracy should be {want_acc.item():.4f} ({int(right[keep].sum())} "
                                  f"of {int(keep.sum())} real positions have the target as their argmax), yours "
                                  f"is {acc.item():.4f}")
    return _report(True, "cross-entropy (nats), perplexity (e^nats) and accuracy are right, per real token, "
                         "padding left out")


# --- exercise 2: one step of an Elman RNN -----------------------------------------------------


def _elman_cases() -> list[tuple[torch.Tensor, ...]]:
    """(x, h, W_ih, W_hh, b_ih, b_hh) in torch's nn.RNNCell convention: batch, d_in and d_hidden
    all different, so a transposed W_ih raises and a column-vector answer has the wrong shape."""
    gen = torch.Generator().manual_seed(21)
    cases = []
    for batch, d_in, d_hidden in ((3, 5, 4), (2, 3, 6)):
        cases.append((torch.randn(batch, d_in, generator=gen), 0.8 * torch.randn(batch, d_hidden, generator=gen),
                      0.5 * torch.randn(d_hidden, d_in, generator=gen),
                      0.5 * torch.randn(d_hidden, d_hidden, generator=gen),
                      0.5 * torch.randn(d_hidden, generator=gen), 0.5 * torch.randn(d_hidden, generator=gen)))
    return cases


def _rnn_cell(x, h, w_ih, w_hh, b_ih, b_hh) -> torch.Tensor:
    """torch's own nn.RNNCell with these weights: the reference."""
    with torch.random.fork_rng(devices=[]):  # the cell's random init must not move the reader's RNG
        cell = torch.nn.RNNCell(w_ih.shape[1], w_ih.shape[0])
    with torch.no_grad():
        for p, w in ((cell.weight_ih, w_ih), (cell.weight_hh, w_hh), (cell.bias_ih, b_ih), (cell.bias_hh, b_hh)):
            p.copy_(w)
        return cell(x, h)


def check_elman_step(fn: Callable) -> bool:
    """Check ``fn(x, h, W_ih, W_hh, b_ih, b_hh) -> h_new``, one step of an Elman RNN in the
    convention of torch's ``nn.RNNCell``: h_new = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh), with x
    (batch, d_in), h (batch, d_hidden), W_ih (d_hidden, d_in), W_hh (d_hidden, d_hidden), b_ih and
    b_hh (d_hidden,). The reference is ``nn.RNNCell`` with these weights copied in.

    Introduced in chapter 02_neural_lm (exercise 2).
    """
    for x, h, w_ih, w_hh, b_ih, b_hh in _elman_cases():
        batch, d_in = x.shape
        d_hidden = h.shape[1]
        want = _rnn_cell(x, h, w_ih, w_hh, b_ih, b_hh)
        inp, rec = x @ w_ih.T, h @ w_hh.T
        assert torch.allclose(want, torch.tanh(inp + b_ih + rec + b_hh), atol=1e-6)  # the check's own consistency
        sizes = f"for x of shape {tuple(x.shape)} and h of shape {tuple(h.shape)}"
        got, error = _call(fn, x.clone(), h.clone(), w_ih.clone(), w_hh.clone(), b_ih.clone(), b_hh.clone())
        if error:
            if "cannot be multiplied" in error or "must match the size" in error:
                error += (f". In torch's convention W_ih is (d_hidden, d_in) = {tuple(w_ih.shape)} and W_hh "
                          f"(d_hidden, d_hidden) = {tuple(w_hh.shape)}, and x and h are batches of rows: "
                          "x @ W_ih.T + b_ih (F.linear(x, W_ih, b_ih)), and the same for h with W_hh")
            return _report(False, error)
        got, error = _as_cpu(got, torch.float32)
        if error:
            return _report(False, error)
        if tuple(got.shape) != (batch, d_hidden):
            hint = (": you computed column vectors, W_ih x; the batch is in rows, so use x @ W_ih.T (or "
                    "transpose your answer)" if tuple(got.shape) == (d_hidden, batch) else "")
            return _report(False, f"{sizes} the new state needs shape (batch, d_hidden) = {(batch, d_hidden)}, "
                                  f"yours has {tuple(got.shape)}{hint}")
        if torch.allclose(got, want, atol=1e-5):
            continue
        pre = inp + b_ih + rec + b_hh
        mistakes = [
            (pre, "you forgot the tanh: h_new = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)"),
            (torch.sigmoid(pre), "nn.RNNCell's Elman cell squashes with tanh, not the sigmoid"),
            (torch.relu(pre), "nn.RNNCell's Elman cell squashes with tanh, not ReLU (nonlinearity='relu' is an "
                              "option, not the default)"),
            (torch.tanh(inp + b_ih + h @ w_hh + b_hh),
             "you multiplied h by W_hh, not by its transpose: torch stores W_hh[i, j] as the weight from old "
             "unit j to new unit i, so the recurrent term is h @ W_hh.T"),
            (torch.tanh(pre - b_ih), "you left out b_ih: nn.RNNCell adds two biases, b_ih and b_hh"),
            (torch.tanh(pre - b_hh), "you left out b_hh: nn.RNNCell adds two biases, b_ih and b_hh"),
            (torch.tanh(pre - b_ih - b_hh), "you left out both biases, b_ih and b_hh"),
            (torch.tanh(inp + b_ih + b_hh), "your new state ignores the old state h: add the recurrent term "
                                            "h @ W_hh.T"),
            (h, "you returned the old state h unchanged"),
            (torch.tanh(inp + b_ih) + torch.tanh(rec + b_hh),
             "you applied tanh to the input term and the recurrent term separately: add them, then one tanh"),
            (h + torch.tanh(pre), "you added the new state to the old one: an Elman cell replaces h, "
                                  "h_new = tanh(...), with no residual"),
        ]
        for value, message in mistakes:
            if torch.allclose(got, value, atol=1e-5) and not torch.allclose(value, want, atol=1e-5):
                return _report(False, f"{sizes}: {message}")
        b, i = (int(v) for v in torch.nonzero(~torch.isclose(got, want, atol=1e-5))[0])
        return _report(False, f"{sizes}: at row {b}, unit {i} the new state should be {want[b, i].item():.4f}, "
                              f"yours is {got[b, i].item():.4f}; h_new = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)")
    return _report(True, "the Elman step is right and equals torch.nn.RNNCell: "
                         "h_new = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)")


# --- exercise 3: an LSTM language model's parameters --------------------------------------------

_PARAM_CASES = [(v, d, tied) for tied in (False, True) for v, d in ((23, 8), (1000, 32), (7, 12))]

# what a count may get wrong: name -> (the right setting, the other settings' messages)
_PARAM_MISTAKES = {
    "gates": (4, {3: "you counted 3 gates' worth of weights; an LSTM has 4 blocks, the input, forget and output "
                     "gates and the candidate cell g, so W_ih and W_hh each have 4d rows",
                  1: "you counted an Elman cell (one block of weights); an LSTM has 4 blocks, the input, forget "
                     "and output gates and the candidate cell g, so W_ih and W_hh each have 4d rows"}),
    "lstm_biases": (2, {1: "you counted one LSTM bias of 4d; torch's nn.LSTM keeps two, b_ih and b_hh (only "
                           "their sum matters, but both are parameters)",
                        0: "you left out the LSTM's biases: nn.LSTM keeps two, b_ih and b_hh, of 4d each"}),
    "out_bias": (True, {False: "you forgot the output layer's bias: nn.Linear(d, vocab_size) has vocab_size of "
                               "them, and tying shares only the weight matrix, not the bias"}),
    "tie": ("right", {"none": "with tied=True the output layer's weight is the embedding table itself, one "
                              "(vocab_size, d) matrix: count it once (model.parameters() yields a shared tensor "
                              "once); you counted it twice",
                      "twice": "with tied=True you subtracted the shared (vocab_size, d) matrix twice: it is "
                               "still there once, as the embedding table",
                      "inverted": "you have tied and untied the wrong way round: tying (tied=True) removes one "
                                  "(vocab_size, d) matrix, the output layer's own weight"}),
}


def _param_count(vocab: int, d: int, tied: bool, gates: int = 4, lstm_biases: int = 2, out_bias: bool = True,
                 tie: str = "right") -> int:
    embed = vocab * d
    lstm = gates * (d * d + d * d) + lstm_biases * gates * d  # W_ih (4d, d), W_hh (4d, d), b_ih, b_hh (4d,)
    out = vocab * d + (vocab if out_bias else 0)
    shared = {"right": vocab * d * tied, "none": 0, "twice": 2 * vocab * d * tied,
              "inverted": vocab * d * (not tied)}[tie]
    return embed + lstm + out - shared


def _model_count(vocab: int, d: int, tied: bool) -> int:
    config = RNNLMConfig(vocab_size=vocab, cell="lstm", d_embed=d, d_hidden=d, n_layers=1, tie_weights=tied)
    with torch.random.fork_rng(devices=[]):  # the model's random init must not move the reader's RNG
        model = RNNLM(config)
    return sum(p.numel() for p in model.parameters())  # a shared tensor is yielded once


def _settings():
    """Every combination of the settings in _PARAM_MISTAKES but the right one, fewest mistakes first."""
    combos = [{}]
    for name, (right, others) in _PARAM_MISTAKES.items():
        combos = [{**c, name: value} for c in combos for value in (right, *others)]
    wrong = [c for c in combos if any(c[n] != _PARAM_MISTAKES[n][0] for n in c)]
    return sorted(wrong, key=lambda c: sum(c[n] != _PARAM_MISTAKES[n][0] for n in c))


def check_lstm_lm_parameters(fn: Callable[[int, int, bool], int]) -> bool:
    """Check ``fn(vocab_size, d, tied) -> int``: the number of parameters of
    ``RNNLM(RNNLMConfig(vocab_size, cell="lstm", d_embed=d, d_hidden=d, n_layers=1,
    tie_weights=tied))``: the embedding table, one ``nn.LSTM`` layer (W_ih and W_hh with 4
    gates' rows, and its two bias vectors b_ih and b_hh) and the output layer with its bias; with
    tied=True the output layer's weight is the embedding table, counted once. The reference is the
    model's own ``sum(p.numel() for p in model.parameters())``.

    Introduced in chapter 02_neural_lm (exercise 3).
    """
    answers, wants = [], []
    for vocab, d, tied in _PARAM_CASES:
        want = _model_count(vocab, d, tied)
        assert want == _param_count(vocab, d, tied)  # the check's own consistency
        case = f"for vocab_size={vocab}, d={d}, tied={tied}"
        got, error = _call(fn, vocab, d, tied)
        if error:
            return _report(False, f"{case}: {error}")
        if isinstance(got, float) and got.is_integer():
            return _report(False, f"{case} you returned a float ({got!r}): return the number of parameters as an "
                                  "int")
        try:
            if isinstance(got, bool):
                raise TypeError
            got = operator.index(got)
        except (TypeError, RuntimeError):  # RuntimeError: a meta tensor, which has no value
            return _report(False, f"{case} you returned {got!r} ({type(got).__name__}); return the number of "
                                  "parameters, an int")
        answers.append(got)
        wants.append(want)
    if answers == wants:
        v, d = _PARAM_CASES[1][:2]
        untied, tied = _param_count(v, d, False), _param_count(v, d, True)
        return _report(True, f"the parameter count is right, tied and untied (vocab_size={v}, d={d}: {untied:,} "
                             f"untied, {tied:,} tied; tying saves vocab_size * d = {untied - tied:,})")
    first = next(i for i, (a, w) in enumerate(zip(answers, wants)) if a != w)
    vocab, d, tied = _PARAM_CASES[first]
    head = (f"for vocab_size={vocab}, d={d}, tied={tied} the model has {wants[first]:,} parameters, yours is "
            f"{answers[first]:,}")
    for setting in _settings():
        if all(_param_count(v, dd, t, **setting) == a for (v, dd, t), a in zip(_PARAM_CASES, answers)):
            wrong = [_PARAM_MISTAKES[n][1][setting[n]] for n in setting if setting[n] != _PARAM_MISTAKES[n][0]]
            return _report(False, f"{head}: " + "; and ".join(wrong))
    return _report(False, f"{head}. Count each part: the embedding table, the LSTM's weight matrices and bias "
                          "vectors (print model.rnn.named_parameters() to see them), the output layer's weight "
                          "and bias; a tied matrix counts once")
