"""Exercise checks of chapter 05_bert: BERT's input embeddings, the 80/10/10 masking decision,
and Clark et al.'s head score.

Introduced in chapter 05_bert.
"""

from __future__ import annotations

from typing import Callable

import torch

from ._common import _as_cpu, _call, _report

__all__ = ["check_bert_input", "check_mask_decision", "check_head_score"]


def check_bert_input(fn: Callable) -> bool:
    """Check ``fn(tok_emb, seg_emb, pos_emb, ids, segments) -> (T, d)`` summed embeddings.

    Introduced in chapter 05_bert (exercise 1): token + segment + position embeddings.
    The embeddings are drawn from a private generator: the check is the same on every call
    and leaves the reader's global random state (torch, random, numpy) as it was.
    """
    gen = torch.Generator().manual_seed(0)  # the same weights as torch.manual_seed(0) + nn.Embedding
    tok_emb, seg_emb, pos_emb = (torch.nn.Embedding.from_pretrained(torch.randn(n, 4, generator=gen), freeze=False)
                                 for n in (20, 2, 10))
    ids, segments = torch.tensor([2, 7, 8, 3, 9, 3]), torch.tensor([0, 0, 0, 0, 1, 1])
    with torch.no_grad():
        want = tok_emb(ids) + seg_emb(segments) + pos_emb(torch.arange(6))
        got, error = _call(fn, tok_emb, seg_emb, pos_emb, ids.clone(), segments.clone())
        if error:
            return _report(False, error)
        got, error = _as_cpu(got)
        if error:
            return _report(False, error)
        if got.shape != want.shape:
            return _report(False, f"the answer needs shape {tuple(want.shape)} (tokens, d), yours has {tuple(got.shape)}")
        pitfall = tok_emb(ids + segments) + pos_emb(torch.arange(6))
        if torch.allclose(got, pitfall, atol=1e-6):
            return _report(False, "you embedded input_ids + segment_ids: token 8 in segment 1 becomes token 9. "
                                  "Look the segment up in its own segment embedding and add the vectors")
        if not torch.allclose(got, want, atol=1e-6):
            i = int(((got - want).abs().amax(-1)).argmax())
            return _report(False, f"token {i} (id {int(ids[i])}, segment {int(segments[i])}) is wrong: it should be "
                                  "tok_emb(id) + seg_emb(segment) + pos_emb(position)")
    return _report(True, "token + segment + position embeddings, right")


def check_mask_decision(fn: Callable[[float], str]) -> bool:
    """Check ``fn(u) -> "mask" | "random" | "keep"`` for u uniform in [0, 1): 80% / 10% / 10%.

    Introduced in chapter 05_bert (exercise 2).
    """
    grid = [(i + 0.5) / 1000 for i in range(1000)]
    answers = []
    for u in grid:
        got, error = _call(fn, u)
        if error:
            return _report(False, error)
        if got not in ("mask", "random", "keep"):
            return _report(False, f"for u={u} return 'mask', 'random' or 'keep', got {got!r}")
        answers.append(got)
    shares = {k: answers.count(k) / len(grid) for k in ("mask", "random", "keep")}
    want = {"mask": 0.8, "random": 0.1, "keep": 0.1}
    if any(abs(shares[k] - want[k]) > 1e-9 for k in want):
        return _report(False, "the shares should be 80% mask, 10% random, 10% keep; yours are "
                              + ", ".join(f"{shares[k]:.0%} {k}" for k in want))
    return _report(True, "80% [MASK], 10% random token, 10% unchanged")


def _head_case():
    """One head over 6 tokens, [CLS] a b c d [SEP], built so that each wrong reading shows."""
    att = torch.full((6, 6), 0.02)
    att[1, 3], att[2, 4], att[3, 5], att[4, 1], att[5, 0] = 0.6, 0.5, 0.7, 0.4, 0.9
    att[2, 5] = 0.55  # query 2 rests on [SEP] first: right only if [SEP] is excluded
    att[3, 1] = 0.05
    att[1, 0] = 0.1
    att = att / att.sum(-1, keepdim=True)
    links = [(1, 3), (2, 4), (4, 1), (3, 2)]  # three hits once [CLS], [SEP] are excluded: 0.75
    return att, links, [0, 5]


def check_head_score(fn: Callable) -> bool:
    """Check ``fn(att, links, exclude) -> float``: the share of links (query, target) whose
    query's strongest attention, among keys not in `exclude`, is the target.

    Introduced in chapter 05_bert (exercise 3): Clark et al.'s head test for one head.
    """
    att, links, exclude = _head_case()
    kept = att.clone()
    kept[:, exclude] = -1.0
    want = sum(int(kept[q].argmax()) == t for q, t in links) / len(links)
    got, error = _call(fn, att.clone(), list(links), list(exclude))
    if error:
        return _report(False, error)
    try:
        got = float(got)
    except (TypeError, ValueError, RuntimeError):  # RuntimeError: a meta tensor, which has no value
        return _report(False, f"return one number, the share of links the head gets right; got {type(got).__name__}")
    if abs(got - want) < 1e-9:
        return _report(True, f"{want:.2f}: the head's strongest attention hits 3 of the 4 targets")
    if abs(got - want * len(links)) < 1e-9:
        return _report(False, f"you returned the number of hits ({got:g}); return the fraction of the "
                              f"{len(links)} links instead")
    plain = sum(int(att[q].argmax()) == t for q, t in links) / len(links)
    if abs(got - plain) < 1e-9:
        return _report(False, "query 2 looks hardest at [SEP] (position 5), which is in exclude: leave the "
                              "excluded keys out of the argmax, then take the strongest of the rest")
    cols = att.clone()
    cols[exclude, :] = -1.0
    transposed = sum(int(cols[:, q].argmax()) == t for q, t in links) / len(links)
    if abs(got - transposed) < 1e-9 or abs(got - sum(int(att[:, q].argmax()) == t for q, t in links) / len(links)) < 1e-9:
        return _report(False, "you read column q (who attends to the query); the query's attention is row q, "
                              "att[q], one weight per key")
    return _report(False, f"expected {want:.2f} on this head, got {got:.4g}: for each (query, target) take "
                          "att[query], ignore the excluded keys, and check whether the largest weight is at target")
