"""Extractive question answering: the SQuAD v1.1 metric, a character F1 for Chinese, span decoding.

Introduced in chapter 08_electra. An extractive reader (ELECTRA's, BERT's) scores every token as
the start and as the end of the answer; `best_spans` turns the two score vectors into the best
(start, end) spans, and the metrics compare the text of a span with the gold answers.

The metric is SQuAD v1.1's (Rajpurkar et al. 2016, "SQuAD: 100,000+ Questions for Machine
Comprehension of Text", EMNLP), re-implemented here because the `evaluate` library downloads its
metric scripts and the book works offline. `normalize_answer`, `exact_match`, `f1_score`,
`max_over_truths` and `squad_scores` follow the official evaluation script (evaluate-v1.1.py)
step for step, so the numbers are the ones papers report for SQuAD v1.1. `char_f1` scores Chinese
answers the way CMRC 2018's script does (Cui et al. 2019, "A Span-Extraction Dataset for Chinese
Machine Reading Comprehension", EMNLP): Chinese has no spaces, so words are not the unit.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .modeling import ModelOutput, check_targets

__all__ = ["normalize_answer", "exact_match", "f1_score", "max_over_truths", "squad_scores",
           "char_f1", "CHINESE_PUNCTUATION", "best_spans", "QAOutput", "span_output"]

_ASCII_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# Full-width punctuation found in Chinese text; a superset of the list in CMRC 2018's script.
CHINESE_PUNCTUATION = "，。！？、；：“”‘’（）《》【】…—·「」『』－～"
_CHAR_F1_REMOVED = _ASCII_PUNCTUATION | frozenset(CHINESE_PUNCTUATION)


def normalize_answer(s: str) -> str:
    """SQuAD v1.1's normalization, in its order: lower case, drop string.punctuation, replace the
    words a/an/the by a space, collapse whitespace. The order matters: "the-cat" loses its hyphen
    first and becomes the word "thecat", which keeps its "the"."""
    text = s.lower()
    text = "".join(ch for ch in text if ch not in _ASCII_PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, truth: str) -> float:
    """1.0 if the two answers are equal after `normalize_answer`, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(truth))


def f1_score(prediction: str, truth: str) -> float:
    """Token-overlap F1 of the normalized answers, tokens counted with multiplicity (a Counter
    intersection: a token twice in the prediction and once in the truth overlaps once).

    No common token gives 0.0. That includes the case where both answers normalize to the empty
    string (say "The" against ""): the official v1.1 script returns 0 there, because it tests
    num_same == 0 before anything else, and we keep its choice so that our numbers are its numbers
    (while `exact_match` gives 1.0 for the same pair). SQuAD v2's script returns 1.0 instead: in v2
    an empty answer means "unanswerable" and two of them agree; v1.1 has no unanswerable question.
    """
    pred_tokens = normalize_answer(prediction).split()
    truth_tokens = normalize_answer(truth).split()
    num_same = sum((Counter(pred_tokens) & Counter(truth_tokens)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def max_over_truths(metric: Callable[[str, str], float], prediction: str, truths: Iterable[str]) -> float:
    """The best score of the prediction against any gold answer: a question has several, and a
    prediction matching any one of them is right (the official script's rule)."""
    truths = list(truths)
    if not truths:
        raise ValueError("truths must hold at least one gold answer, got none")
    return max(metric(prediction, truth) for truth in truths)


def squad_scores(predictions: dict[str, str], references: dict[str, list[str]]) -> dict[str, float]:
    """{"exact_match", "f1"} in percent (0-100), averaged over the questions of `references`, and
    "n", their number. `predictions` maps a question id to the predicted text; `references` maps it
    to the gold answers. The official script scores a question without prediction 0 and warns; we
    raise instead, because in this book a missing prediction is a bug. Ids of `predictions` that
    are not in `references` are ignored, as there."""
    if not references:
        raise ValueError("references is empty: there is no question to score")
    if not predictions:
        raise ValueError("predictions is empty: there is no answer to score")
    missing = sorted(set(references) - set(predictions))
    if missing:
        raise ValueError(f"predictions has no answer for {len(missing)} id(s) of references: {missing[:5]}")
    em = f1 = 0.0
    for qid, truths in references.items():
        if not truths:
            raise ValueError(f"references[{qid!r}] has no gold answer")
        em += max_over_truths(exact_match, predictions[qid], truths)
        f1 += max_over_truths(f1_score, predictions[qid], truths)
    n = len(references)
    return {"exact_match": 100.0 * em / n, "f1": 100.0 * f1 / n, "n": n}


def _chars(s: str) -> str:
    """The characters char_f1 compares: lower case, without whitespace and punctuation."""
    return "".join(ch for ch in s.lower() if not ch.isspace() and ch not in _CHAR_F1_REMOVED)


def _longest_common_substring(a: str, b: str) -> int:
    """The length of the longest run of characters found in both strings (dynamic programming)."""
    best, previous = 0, [0] * (len(b) + 1)
    for ca in a:
        current = [0] * (len(b) + 1)
        for j, cb in enumerate(b):
            if ca == cb:
                current[j + 1] = previous[j] + 1
                best = max(best, current[j + 1])
        previous = current
    return best


def char_f1(prediction: str, truth: str) -> float:
    """Character-level F1 for Chinese answers, as CMRC 2018's script computes it.

    Both strings are lower-cased (Latin letters) and lose their whitespace, ASCII punctuation
    (string.punctuation) and `CHINESE_PUNCTUATION` (，。！？、；：“”‘’（）《》【】…—·「」『』－～).
    The overlap is the longest common substring, a contiguous run, not a bag of characters:
    precision = overlap / len(prediction), recall = overlap / len(truth). So "北大" against
    "北京大学" overlaps by one character, not two. No overlap (both empty included) gives 0.0, as
    in CMRC's script and `f1_score`. Two deliberate differences from CMRC's script: it removes
    fewer marks (no ASCII , . ! ? ( ) nor … 【】 ‘), and it splits Latin runs into nltk words
    where we compare characters; on Chinese answers without those marks the two agree.
    """
    pred, gold = _chars(prediction), _chars(truth)
    overlap = _longest_common_substring(pred, gold)
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(gold)
    return 2 * precision * recall / (precision + recall)


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def best_spans(start_logits: torch.Tensor, end_logits: torch.Tensor, max_answer_len: int, n_best: int = 1,
               allowed: torch.Tensor | None = None) -> list[tuple[int, int, float]]:
    """The n_best answer spans of one example, as (start, end, score), best first.

    start_logits and end_logits are the reader's 1-D scores over the same T tokens. A span is valid
    when start <= end, end - start + 1 <= max_answer_len, and `allowed` (a (T,) bool tensor, True
    means an answer may start or end there, i.e. a context token; None allows every position) is
    True at both ends. Its score is start_logits[start] + end_logits[end]: the log of the span's
    probability up to a constant when start and end are independent softmaxes. Every valid pair is
    scored at once, on the T x T matrix with a band mask, so the answer is exact (Hugging Face's
    example keeps only the top-20 starts and ends). Equal scores are ordered by (start, end)
    ascending, so the result does not depend on the sort's implementation. Returns fewer than
    n_best spans when fewer are valid.
    """
    for name, t in (("start_logits", start_logits), ("end_logits", end_logits)):
        if not isinstance(t, torch.Tensor) or t.dim() != 1 or not t.is_floating_point():
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a 1-D float tensor, got {shape}")
    if start_logits.shape != end_logits.shape:
        raise ValueError(f"start_logits and end_logits must have the same shape, "
                         f"got {tuple(start_logits.shape)} and {tuple(end_logits.shape)}")
    _check_positive_int("max_answer_len", max_answer_len)
    _check_positive_int("n_best", n_best)
    device, n = start_logits.device, start_logits.shape[0]
    if allowed is None:
        allowed = torch.ones(n, dtype=torch.bool, device=device)
    elif not isinstance(allowed, torch.Tensor) or allowed.dtype != torch.bool or allowed.shape != (n,):
        is_tensor = isinstance(allowed, torch.Tensor)
        got = f"{allowed.dtype} {tuple(allowed.shape)}" if is_tensor else type(allowed).__name__
        raise ValueError(f"allowed must be a bool tensor of shape ({n},), like start_logits, got {got}")
    allowed = allowed.to(device)
    if not bool(allowed.any()):
        raise ValueError("allowed has no True position: no span can be an answer")
    # valid[i, j]: j - i in [0, max_answer_len - 1], and both ends allowed
    ones = torch.ones(n, n, dtype=torch.bool, device=device)
    valid = torch.triu(ones) & ~torch.triu(ones, diagonal=max_answer_len)
    valid &= allowed[:, None] & allowed[None, :]
    scores = (start_logits.detach()[:, None] + end_logits.detach()[None, :]).flatten()
    flat = valid.flatten().nonzero().squeeze(1)  # ascending i * T + j, i.e. (start, end) ascending
    order = torch.sort(scores[flat], descending=True, stable=True).indices[:n_best]
    best = flat[order]
    return [(int(i), int(j), float(s)) for i, j, s in zip((best // n).tolist(), (best % n).tolist(),
                                                          scores[best].tolist())]


# ---- the reader's head, shared by ELECTRA's and BERT's ----------------------------------------
@dataclass
class QAOutput(ModelOutput):
    """What an extractive reader (`electra.ElectraForQA`, `bert.BertForQA`) returns: `logits`
    (batch, T, 2) holds both; the loss is the mean of the start and end cross-entropies."""

    start_logits: torch.Tensor | None = None  # (batch, T)
    end_logits: torch.Tensor | None = None  # (batch, T)


def span_output(logits: torch.Tensor, keep: torch.Tensor, start_positions: torch.Tensor | None,
                end_positions: torch.Tensor | None, attentions: list | None = None,
                last_hidden_state: torch.Tensor | None = None) -> QAOutput:
    """A QAOutput from a reader's (batch, T, 2) start/end logits, with Hugging Face's loss
    (mean of the start and end cross-entropies) when the answer's token positions are given.
    keep: (batch, T) bool, True at real tokens. A span outside the input, ending before it
    starts or touching padding is an error (Hugging Face clamps and ignores it)."""
    start, end = logits.unbind(-1)
    out = QAOutput(logits=logits, start_logits=start, end_logits=end, attentions=attentions,
                   last_hidden_state=last_hidden_state)
    if (start_positions is None) != (end_positions is None):
        raise ValueError("give both start_positions and end_positions, or neither")
    if start_positions is None:
        return out
    batch, n = logits.shape[:2]
    s = check_targets(start_positions, (batch,), "start_positions")
    e = check_targets(end_positions, (batch,), "end_positions")
    if s.device.type != "meta":
        if bool(((s < 0) | (s >= n) | (e < 0) | (e >= n)).any()):
            raise ValueError(f"start_positions and end_positions must be token indices in [0, {n}), got "
                             f"{s.tolist()} and {e.tolist()}: the answer span lies outside the input")
        if bool((e < s).any()):
            raise ValueError(f"end_positions must be >= start_positions, got {s.tolist()} and {e.tolist()}")
        rows = torch.arange(batch, device=s.device)
        if not bool((keep[rows, s] & keep[rows, e]).all()):
            raise ValueError("an answer span starts or ends on padding (attention_mask False)")
    out.loss = (F.cross_entropy(start, s) + F.cross_entropy(end, e)) / 2
    return out
