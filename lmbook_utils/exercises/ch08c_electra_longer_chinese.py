"""Exercise checks of chapter 08c_electra_longer_chinese (ELECTRA trained longer, and extractive
question answering in Chinese): CMRC 2018's character F1, the AUC of a discriminator's scores
(replaced tokens ranked above original ones), and the token positions of an answer when every
character is one token.

Introduced in chapter 08c_electra_longer_chinese.
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..qa import char_f1 as _char_f1_reference
from ._common import _call, _report

__all__ = ["check_char_f1", "check_auc", "check_answer_tokens"]


def _as_number(raw: Any) -> tuple[float | None, str | None]:
    """The learner's answer as one float, or a message saying why it is not one number."""
    if isinstance(raw, torch.Tensor):
        if raw.device.type == "meta":
            return None, "your answer is on the meta device, which holds no values: compute it on real tensors"
        if raw.dtype == torch.bool or raw.numel() != 1:
            kind = "a bool tensor" if raw.dtype == torch.bool else "a tensor"
            return None, f"your function returned {kind} of shape {tuple(raw.shape)}; return one number"
        return float(raw.detach().cpu().reshape(()).item()), None
    if isinstance(raw, np.ndarray):
        if raw.dtype == np.bool_ or raw.size != 1:
            kind = "a bool array" if raw.dtype == np.bool_ else "an array"
            return None, f"your function returned {kind} of shape {raw.shape}; return one number"
        raw = raw.reshape(()).item()
    if isinstance(raw, (bool, np.bool_)):
        return None, f"your function returned {raw!r}, a bool; return one number"
    if isinstance(raw, (int, float, np.integer, np.floating)):
        return float(raw), None
    return None, f"your function returned {raw!r} ({type(raw).__name__}); return one number"


def _close(a: float, b: float, tol: float) -> bool:
    return math.isclose(a, b, rel_tol=0.0, abs_tol=tol)


# --- exercise 1: CMRC 2018's character F1 ---------------------------------------------------------

_MARKS = "。，？！、；：“”（）"  # the punctuation the exercise asks to remove; qa.char_f1 removes more
_F1_TOL = 1e-6  # float32 arithmetic is fine; two answers here differ by far more


def _clean(s: str, marks: bool = True, spaces: bool = True) -> str:
    return "".join(ch for ch in s if not (marks and ch in _MARKS) and not (spaces and ch.isspace()))


def _longest_run(a: str, b: str) -> str:
    """The first longest common substring (a contiguous run found in both), scanning a."""
    best = ""
    for i in range(len(a)):
        for j in range(i + len(best) + 1, len(a) + 1):
            if a[i:j] in b:
                best = a[i:j]
            else:
                break
    return best


def _subsequence(a: str, b: str) -> int:
    """The length of the longest common subsequence (characters in order, gaps allowed)."""
    previous = [0] * (len(b) + 1)
    for ca in a:
        current = [0]
        for j, cb in enumerate(b):
            current.append(previous[j] + 1 if ca == cb else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def _f1(overlap: int, n_pred: int, n_truth: int) -> float:
    return 0.0 if overlap == 0 else 2 * overlap / (n_pred + n_truth)  # = 2PR / (P + R)


def _f1_cases() -> list[tuple[str, str]]:
    """(prediction, truth): Chinese characters and the marks of _MARKS only, where qa.char_f1 and
    CMRC's script agree. Hand-made first (each mistake shows on one of them), then spans of
    toyworld's Chinese stories around the gold answer, as a reader predicts them."""
    from ..toyworld import qa_examples_zh

    cases = [
        ("一本书", "一本书"),
        ("一块蛋糕", "一块大蛋糕"),  # runs 一块 and 蛋糕: 2 characters, not 4
        ("一本书。", "一本书"),  # the full stop is not part of the answer
        ("北大", "北京大学"),
        ("他读了一本书", "一本书"),
        ("公园", "花园"),  # a wrong answer sharing a character gets credit
        ("图书馆；市场", "市场、图书馆"),
        ("“一封信”", "一封信"),
        ("他 去了 火车站", "火车站"),  # whitespace goes too
        ("大大", "大"),
        ("火车站", "图书馆"),  # nothing in common
        ("", "火车站"),  # an empty prediction
        ("。", "火车站"),  # empty once its punctuation is gone
        ("", ""),
        ("（花园）", "花园！"),
    ]
    for k, e in enumerate(qa_examples_zh(12, seed=2018)):
        a, b, c = e.answer_start, e.answer_end, e.context
        sentence = (c.rfind("。", 0, a) + 1, c.find("。", b) + 1 or len(c))
        a2, b2 = [(max(a - 2, 0), b), (a, b + 1), (a + 1, b), sentence][k % 4]
        cases.append((c[a2:b2], e.answer))
    return cases


def _f1_mistake(pred: str, truth: str, got: float, want: float) -> str:
    p, t = _clean(pred), _clean(truth)
    run = _longest_run(p, t)
    k = len(run)
    head = f"for prediction {pred!r} and truth {truth!r} your F1 is {got:.4f}"
    rule = (f"after removing whitespace and punctuation they are {p!r} and {t!r}, their longest common run of "
            f"characters is {run!r} ({k} of {len(p)} and {len(t)} characters), so P = {k}/{len(p)}, "
            f"R = {k}/{len(t)} and F1 = 2PR/(P+R) = {want:.4f}" if k else "")
    if not math.isfinite(got):
        if k == 0:
            return (f"{head}: nothing overlaps here ({p!r} and {t!r} after removing whitespace and punctuation), "
                    "so precision and recall are 0 and 2PR/(P+R) is 0/0. When the overlap is 0, return 0.0 "
                    "before dividing")
        return f"{head}, not a number; {rule}"
    if k == 0:
        if not p and not t:
            return (f"{head}, but both are empty once whitespace and punctuation are removed: nothing overlaps, "
                    "so F1 = 0.0, as in CMRC's script (a precision 0/0 is not 1)")
        if not p:
            return (f"{head}, but the prediction is empty once whitespace and punctuation are removed "
                    f"({pred!r} becomes ''): it overlaps nothing, so F1 = 0.0")
        return (f"{head}, but the two share no character ({p!r} and {t!r} after removing whitespace and "
                f"punctuation): no overlap gives F1 = 0.0")
    bag = sum((Counter(p) & Counter(t)).values())
    sub = _subsequence(p, t)
    counted = [w for w, n in (("a bag of characters", bag), ("a common subsequence with gaps", sub)) if n != k
               and _close(got, _f1(n, len(p), len(t)), _F1_TOL)]
    if counted:
        n = bag if counted[0].startswith("a bag") else sub
        return (f"{head}, that of an overlap of {n} characters counted wherever they stand "
                f"({' or '.join(counted)}); CMRC's overlap is the longest run of consecutive characters found "
                f"in both: {rule}. Find the longest common substring (dynamic programming over the two strings), "
                "not the shared characters")
    with_marks = [s for s in (pred, truth) if any(ch in _MARKS for ch in s)]
    with_spaces = [s for s in (pred, truth) if any(ch.isspace() for ch in s)]
    variants = [
        (_clean(pred, marks=False), _clean(truth, marks=False),
         f"as if the punctuation were part of the answers: remove {_MARKS} from both strings before comparing "
         f"({', '.join(f'{s!r} becomes {_clean(s)!r}' for s in with_marks)}); {rule}"),
        (_clean(pred, spaces=False), _clean(truth, spaces=False),
         f"as if the spaces were characters of the answer: remove whitespace too before comparing "
         f"({', '.join(f'{s!r} becomes {_clean(s)!r}' for s in with_spaces)}); {rule}"),
        (_clean(pred, False, False), _clean(truth, False, False),
         f"as if whitespace and punctuation were part of the answers: remove both before comparing; {rule}"),
    ]
    for vp, vt, why in variants:
        value = _f1(len(_longest_run(vp, vt)), len(vp), len(vt))
        if _close(got, value, _F1_TOL) and not _close(value, want, _F1_TOL):
            return f"{head}, {why}"
    precision, recall = k / len(p), k / len(t)
    mistakes = [
        (precision, f"{head}, the precision {k}/{len(p)}; F1 combines it with the recall {k}/{len(t)}: "
                    f"2PR/(P+R). {rule[0].upper()}{rule[1:]}"),
        (recall, f"{head}, the recall {k}/{len(t)}; F1 combines it with the precision {k}/{len(p)}: 2PR/(P+R). "
                 f"{rule[0].upper()}{rule[1:]}"),
        ((precision + recall) / 2, f"{head}, the arithmetic mean of P and R; F1 is their harmonic mean, "
                                   f"2PR/(P+R): {rule}"),
        (100 * want, f"{head}, a percentage: return a fraction in [0, 1] (the chapter multiplies the average "
                     f"by 100 when it reports it); {rule}"),
        (float(p == t), f"{head}, the exact match; the character F1 gives partial credit: {rule}"),
    ]
    for value, message in mistakes:
        if _close(got, value, _F1_TOL) and not _close(value, want, _F1_TOL):
            return message
    return f"{head}; {rule}"


def check_char_f1(fn: Callable[[str, str], float]) -> bool:
    """Check ``fn(prediction, truth) -> float``: CMRC 2018's character F1 for Chinese answers.
    Both strings lose their whitespace and the punctuation 。，？！、；：“”（）; the overlap is the
    length of the longest common substring (a contiguous run of characters, not a bag of them);
    precision = overlap / len(prediction), recall = overlap / len(truth), F1 = 2PR/(P+R); no
    overlap (empty strings included) gives 0.0. The reference is lmbook_utils.qa.char_f1, on
    answers written in Chinese characters and those marks only.

    Introduced in chapter 08c_electra_longer_chinese (exercise 1).
    """
    for pred, truth in _f1_cases():
        want = _char_f1_reference(pred, truth)
        desc = f"for prediction {pred!r} and truth {truth!r}"
        raw, error = _call(fn, pred, truth)
        if error:
            if "ZeroDivisionError" in error and len(_longest_run(_clean(pred), _clean(truth))) == 0:
                error += (f". Nothing overlaps here ({_clean(pred)!r} and {_clean(truth)!r} after removing "
                          "whitespace and punctuation): when the overlap is 0, return 0.0 before dividing")
            return _report(False, f"{desc} {error}")
        got, error = _as_number(raw)
        if error:
            return _report(False, f"{desc} {error}: the F1, a fraction in [0, 1]")
        if not _close(got, want, _F1_TOL):
            return _report(False, _f1_mistake(pred, truth, got, want))
    return _report(True, "the character F1 is right: whitespace and punctuation removed, the longest common "
                         "run of characters as the overlap (一块蛋糕 against 一块大蛋糕 overlaps by 2, F1 4/9), "
                         "and 0.0 when nothing overlaps, empty answers included")


# --- exercise 2: the AUC of the discriminator's scores -----------------------------------------

_AUC_TOL = 1e-6  # float32 arithmetic is fine; two answers here differ by at least 1/8000


def _auc_cases() -> list[tuple[str, Any, Any]]:
    """(description, replaced_scores, original_scores): lists, NumPy arrays and a torch tensor,
    without ties, with some, with nothing but ties (a constant discriminator), perfect and
    inverted rankings, and discriminator-like probabilities rounded to 2 decimals."""
    rng = np.random.default_rng(2020)  # a private generator: the same cases on every call

    def probs(n, mean):
        return np.round(1 / (1 + np.exp(-rng.normal(mean, 1.5, n))), 2)

    many_r, many_o = probs(40, 1.0), probs(200, -1.0)
    few_r, few_o = probs(7, 0.3), probs(11, -0.3)
    return [
        ("replaced scores [0.9, 0.8, 0.3] and original scores [0.1, 0.4, 0.2, 0.7] (Python lists, no ties)",
         [0.9, 0.8, 0.3], [0.1, 0.4, 0.2, 0.7]),
        ("replaced scores [0.6, 0.6, 0.2] and original scores [0.6, 0.1, 0.2] (NumPy arrays, with ties)",
         np.array([0.6, 0.6, 0.2]), np.array([0.6, 0.1, 0.2])),
        ("replaced scores [0.3, 0.3, 0.3, 0.3] and original scores [0.3, 0.3, 0.3, 0.3, 0.3] (a discriminator "
         "that scores every token alike)", [0.3] * 4, [0.3] * 5),
        ("replaced scores [0.99, 0.95] and original scores [0.01, 0.2, 0.5] (a perfect ranking)",
         [0.99, 0.95], [0.01, 0.2, 0.5]),
        ("replaced scores [0.1, 0.2] and original scores [0.8, 0.9, 0.7] (every replaced token below every "
         "original one)", np.array([0.1, 0.2]), np.array([0.8, 0.9, 0.7])),
        ("replaced scores [0.7] and original scores [0.4] (one token each)", [0.7], [0.4]),
        (f"{len(few_r)} replaced scores {few_r.tolist()} and {len(few_o)} original scores {few_o.tolist()} "
         "(NumPy float32 arrays)", few_r.astype(np.float32), few_o.astype(np.float32)),
        (f"{len(many_r)} replaced and {len(many_o)} original scores, probabilities rounded to 2 decimals, so with "
         "ties (NumPy float64 arrays)", many_r, many_o),
        (f"{len(many_r)} replaced and {len(many_o)} original scores, probabilities rounded to 2 decimals (torch "
         "float32 tensors, as the chapter's discriminator returns them)",
         torch.tensor(many_r, dtype=torch.float32), torch.tensor(many_o, dtype=torch.float32)),
    ]


def _auc_rule(r: np.ndarray, o: np.ndarray) -> float:
    """The reference: scikit-learn's ROC AUC with the replaced tokens as the positive class."""
    from sklearn.metrics import roc_auc_score

    labels = np.r_[np.ones(len(r)), np.zeros(len(o))]
    return float(roc_auc_score(labels, np.r_[r, o]))


def _pair_counts(r: np.ndarray, o: np.ndarray) -> tuple[int, int, int, int]:
    """(replaced higher, tied, replaced lower, all pairs) over every (replaced, original) pair."""
    above, tied = int((r[:, None] > o[None, :]).sum()), int((r[:, None] == o[None, :]).sum())
    n = len(r) * len(o)
    return above, tied, n - above - tied, n


def _auc_mistake(desc: str, got: float, want: float, r: np.ndarray, o: np.ndarray) -> str:
    above, tied, below, n = _pair_counts(r, o)
    head = f"for {desc} your AUC is {got:.4f}, the right one {want:.4f}"
    pairs = (f"({above} of the {n} pairs have the replaced score higher and {tied} are tied: "
             f"({above} + {tied}/2) / {n})")
    if not math.isfinite(got) or not 0.0 <= got <= 1.0:
        count = above + tied / 2
        undivided = (f" You returned the count of pairs, {count:g}, undivided." if _close(got, count, 1e-6)
                     else "")
        shown = f"{got:.4f}" if math.isfinite(got) else str(got)
        return (f"for {desc} your AUC is {shown}, outside [0, 1]; it is a probability: the number of (replaced, "
                f"original) pairs where the replaced score is higher, a tie counting one half, divided by the "
                f"number of pairs, {len(r)} x {len(o)} = {n}.{undivided}")
    tie_zero = (f"; a tie (the same score for a replaced and an original token, {tied} of the {n} pairs here) "
                "counts one half, as if a coin decided their order, so that a discriminator that scores every "
                "token alike gets 0.5, a coin's AUC, whatever its loss")
    mistakes = [
        (1 - want, f"{head} = 1 - {want:.4f}: the probability that an original token scores above a replaced "
                   "one. The arguments come as (replaced_scores, original_scores), in this order: count the "
                   "pairs where the replaced token's score is the higher one"),
        (above / n, f"{head}: you counted a tie as 0 (only replaced > original){tie_zero}"),
        ((above + tied) / n, f"{head}: you counted a tie as 1 (replaced >= original){tie_zero}"),
        (below / n, f"{head}: you swapped the two arguments (this counts the pairs where the original token "
                    f"scores higher) and counted a tie as 0; the replaced score must be the higher one{tie_zero}"),
        ((below + tied) / n, f"{head}: you swapped the two arguments (original >= replaced) and counted a tie "
                             f"as 1; the replaced score must be the higher one{tie_zero}"),
        ((int((r > 0.5).sum()) + int((o <= 0.5).sum())) / (len(r) + len(o)),
         f"{head}: that is the accuracy of thresholding the scores at 0.5, which depends on the threshold and "
         "on how many tokens are replaced. The AUC compares scores pairwise, with no threshold: the fraction "
         "of (replaced, original) pairs where the replaced score is higher, a tie counting one half " + pairs),
    ]
    for value, message in mistakes:
        if _close(got, value, _AUC_TOL) and not _close(value, want, _AUC_TOL):
            return message
    return (f"{head}: it is the fraction of (replaced, original) pairs where the replaced token's score is "
            f"the higher one, a tie counting one half {pairs}")


def check_auc(fn: Callable[[Sequence[float], Sequence[float]], float]) -> bool:
    """Check ``fn(replaced_scores, original_scores) -> float``: the AUC of a discriminator's
    scores, the probability that a randomly chosen replaced token gets a higher score than a
    randomly chosen original one, a tie counting one half. The scores come as 1-D Python lists,
    NumPy arrays or torch tensors of floats; the reference is scikit-learn's roc_auc_score with
    the replaced tokens as the positive class.

    Introduced in chapter 08c_electra_longer_chinese (exercise 2).
    """
    for desc, replaced, original in _auc_cases():
        r = np.asarray(replaced, dtype=np.float64)
        o = np.asarray(original, dtype=np.float64)
        want = _auc_rule(r, o)
        given = [x.clone() if isinstance(x, torch.Tensor) else x.copy() if isinstance(x, np.ndarray) else list(x)
                 for x in (replaced, original)]
        raw, error = _call(fn, *given)
        if error:
            return _report(False, f"for {desc} {error}")
        got, error = _as_number(raw)
        if error:
            return _report(False, f"for {desc} {error}: the AUC, a probability in [0, 1]")
        if not _close(got, want, _AUC_TOL):
            return _report(False, _auc_mistake(desc, got, want, r, o))
    return _report(True, "the AUC is right: the fraction of (replaced, original) pairs where the replaced "
                         "token scores higher, a tie counting one half (0.5 for a discriminator that scores "
                         "every token alike), on lists, NumPy arrays and torch tensors")


# --- exercise 3: the answer's token positions, one token per character ---------------------------

def _answer_cases() -> list[tuple[str, str, int, int]]:
    """(question, context, answer_start, answer_end): hand-made ones (the answer at the start and
    at the very end of the context, one character long, also in the question, twice in the
    context), then the chapter's kind of examples, toyworld's Chinese questions."""
    from ..toyworld import qa_examples_zh

    cases = [
        ("鲍勃读了什么？", "鲍勃读了一本书。", 4, 7),
        ("谁去了花园？", "格蕾丝去了花园。", 0, 3),  # the answer opens the context
        ("莉莉看见了什么？", "莉莉看见了一只白猫", 5, 9),  # ... ends it, right before the last [SEP]
        ("格蕾丝看见了什么动物？", "格蕾丝看见了猫。", 6, 7),  # one character
        ("亨利去了市场还是花园？", "亨利去了花园。", 4, 6),  # the answer is in the question too
        ("她去了哪里？", "他在公园看见了她。她去了公园。", 12, 14),  # ... twice in the context: the second
    ]
    examples = qa_examples_zh(300, seed=2018)
    chosen = examples[:6] + [next(e for e in examples if e.context.find(e.answer) != e.answer_start)]
    return cases + [(e.question, e.context, e.answer_start, e.answer_end) for e in chosen]


def _answer_rule(question: str, context: str, start: int, end: int) -> tuple[list[str], int, int]:
    """The reference: the input's tokens, each with the context offset it comes from, and the
    positions of the tokens from offsets start and end - 1."""
    tokens = ["[CLS]", *question, "[SEP]", *context, "[SEP]"]
    offsets = [None] * (len(question) + 2) + list(range(len(context))) + [None]
    first, last = offsets.index(start), offsets.index(end - 1)
    assert "".join(tokens[first:last + 1]) == context[start:end]
    return tokens, first, last


def _as_pair(raw: Any) -> tuple[tuple[int, int] | None, str | None]:
    """The learner's (first, last) as two ints, or a message saying why it is not a pair of them."""
    what = f"{raw!r} ({type(raw).__name__})"
    if isinstance(raw, torch.Tensor):
        if raw.device.type == "meta":
            return None, "your answer is on the meta device, which holds no values"
        raw = raw.tolist()
    elif isinstance(raw, np.ndarray):
        raw = raw.tolist()
    if isinstance(raw, (str, bytes, dict)) or not isinstance(raw, Sequence) or len(raw) != 2:
        return None, (f"your function returned {what}; return a pair (first, last), the token positions of "
                      "the answer's first and last characters")
    out = []
    for x in raw:
        if isinstance(x, (bool, np.bool_)):
            return None, f"your function returned {what}; first and last are token positions, ints"
        try:
            out.append(operator.index(x))
        except TypeError:
            if isinstance(x, float) and x.is_integer():
                return None, f"your function returned {what}: return the positions as ints, not floats"
            return None, f"your function returned {what}; first and last are token positions, ints"
    return (out[0], out[1]), None


def _occurrence(tokens: list[str], answer: str) -> int | None:
    """The first position where the answer's characters appear as consecutive tokens, or None."""
    n = len(answer)
    return next((i for i in range(len(tokens) - n + 1) if "".join(tokens[i:i + n]) == answer), None)


def _answer_mistake(desc: str, got: tuple[int, int], question: str, context: str, start: int, end: int) -> str:
    tokens, wf, wl = _answer_rule(question, context, start, end)
    gf, gl = got
    offset = len(question) + 2
    answer = context[start:end]
    layout = (f"the input is [CLS], the question's {len(question)} characters, [SEP], then the context, so the "
              f"context's character i is token {len(question)} + 2 + i = {offset} + i, and the answer is tokens "
              f"{wf} to {wl}")
    read = (f", which read {''.join(tokens[gf:gl + 1])!r}" if 0 <= gf <= gl < len(tokens) else "")
    head = f"{desc}: your positions are ({gf}, {gl}){read}"
    inclusive = (f"last is inclusive, the position of the answer's last character, answer_end - 1 in the "
                 f"context (answer_end is one past it)")
    d = (gf - wf, gl - wl)
    if d == (-1, -1):
        return (f"{head}, one token too early: {layout}. Did you forget [CLS] at position 0, or the [SEP] "
                "after the question?")
    if d == (-2, -2):
        return (f"{head}, two tokens too early: you forgot both [CLS] at position 0 and the [SEP] after the "
                f"question; {layout}")
    if d == (0, 1):
        return f"{head}: your last is one past the answer; {inclusive}: ({wf}, {wl})"
    if d in ((-1, 0), (-2, -1)):
        missing = "one token" if d == (-1, 0) else "two tokens"
        return (f"{head}: two mistakes. Your first is {missing} too early ([CLS] or the question's [SEP] "
                f"forgotten): {layout}. And {inclusive}")
    if d == (1, 1):
        return (f"{head}, one token too late: {layout}. One [SEP] separates the question from the context, and "
                "[CLS] comes once")
    if (gf, gl) == (start, end - 1) or (gf, gl) == (start, end):
        exclusive = "" if gl == end - 1 else f"; and {inclusive}"
        return (f"{head}: those are offsets in the context, not positions in the input; {layout}: add "
                f"{offset}{exclusive}")
    if (gf, gl) == (wl, wf):
        return f"{head}: first and last are swapped; return (first, last) = ({wf}, {wl})"
    found = _occurrence(tokens, answer)
    if found is not None and found != wf and (gf, gl) in ((found, found + len(answer) - 1),
                                                         (found, found + len(answer))):
        where = "in the question" if found < offset else "earlier in the context"
        return (f"{head}: you searched for the answer {answer!r} and found it {where}, at token {found}; the "
                f"answer is the occurrence at context offset {start} (answer_start says which one), and no "
                f"search is needed: {layout}")
    context_found = context.find(answer)
    if context_found != start and (gf, gl) in ((offset + context_found, offset + context_found + len(answer) - 1),
                                               (offset + context_found, offset + context_found + len(answer))):
        return (f"{head}: you searched the context for {answer!r} and took its first occurrence, at offset "
                f"{context_found}; the answer is the one at offset {start} (answer_start says which one), and no "
                f"search is needed: {layout}")
    return f"{head}; {layout}"


def check_answer_tokens(fn: Callable[[str, str, int, int], tuple[int, int]]) -> bool:
    """Check ``fn(question, context, answer_start, answer_end) -> (first, last)``: the positions,
    in the input ``[CLS] question [SEP] context [SEP]`` with one token per character (Chinese, no
    whitespace), of the answer's first and last characters. answer_start and answer_end are
    character offsets into the context, context[answer_start:answer_end] the answer (end
    exclusive); last is inclusive.

    Introduced in chapter 08c_electra_longer_chinese (exercise 3).
    """
    for question, context, start, end in _answer_cases():
        _, wf, wl = _answer_rule(question, context, start, end)
        desc = (f"for question {question!r}, context {context!r} and the answer {context[start:end]!r} "
                f"(answer_start={start}, answer_end={end})")
        raw, error = _call(fn, question, context, start, end)
        if error:
            return _report(False, f"{desc} {error}")
        got, error = _as_pair(raw)
        if error:
            return _report(False, f"{desc} {error}: ({wf}, {wl}) here")
        if got != (wf, wl):
            return _report(False, _answer_mistake(desc, got, question, context, start, end))
    return _report(True, "the answer's token positions are right: the context's character i is token "
                         "len(question) + 2 + i ([CLS], the question, [SEP] before it), and last is the "
                         "answer's last character, answer_end - 1 shifted the same way; no search needed")
