"""Exercise checks: kind, specific feedback on a learner's answer.

Each ``check_*`` function runs the learner's code on cases the learner has not
seen, compares with an independent reference, and prints one message that says
what is wrong and where ("your probabilities for counts [3 0 1] with k=0.5 sum
to 1.7, not 1"). It returns True when the answer is right, so a teacher can
also grade a batch of submissions. Checks never raise on a wrong answer: an
exception in the learner's code is reported as a message too.
"""

from __future__ import annotations

import math
import traceback
from collections import Counter
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["check_bigram_mle", "check_add_k", "check_perplexity", "check_toy_probability",
           "check_most_frequent_pair", "check_merge_pair", "check_attention", "check_causal_mask",
           "check_positional_encoding", "check_label_smoothing", "check_bert_input",
           "check_mask_decision", "check_head_score", "check_top_k", "check_top_p", "check_few_shot_optimum"]


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


# --- chapter 01_ngram --------------------------------------------------------

_BIGRAM_CORPUS = [
    ["the", "cat", "sat"],
    ["the", "dog", "sat"],
    ["a", "cat", "ran"],
    ["the", "cat", "ran"],
    ["the", "dog"],
]
_BIGRAM_CASES = [("cat", "the"), ("dog", "the"), ("sat", "cat"), ("sat", "dog"), ("cat", "a")]


def check_bigram_mle(fn: Callable[[Sequence[Sequence[str]], str, str], float]) -> bool:
    """Check ``fn(sentences, word, previous) -> P_MLE(word | previous)``.

    Introduced in chapter 01_ngram (exercise 1). Sentence boundaries are not
    padded: only bigrams inside a sentence count.
    """
    pairs = Counter((s[i], s[i + 1]) for s in _BIGRAM_CORPUS for i in range(len(s) - 1))
    firsts = Counter(s[i] for s in _BIGRAM_CORPUS for i in range(len(s) - 1))
    for word, prev in _BIGRAM_CASES:
        expected = pairs[(prev, word)] / firsts[prev]
        got, error = _call(fn, _BIGRAM_CORPUS, word, prev)
        if error:
            return _report(False, error)
        if not isinstance(got, (int, float, np.floating)):
            return _report(False, f"P({word!r} | {prev!r}) should be a number, got {type(got).__name__}")
        if not math.isclose(float(got), expected, abs_tol=1e-9):
            hint = (
                f"count({prev!r} {word!r}) = {pairs[(prev, word)]} and "
                f"count({prev!r} followed by anything) = {firsts[prev]}"
            )
            return _report(False, f"P({word!r} | {prev!r}) should be {expected:.4f}, you gave {float(got):.4f}; hint: {hint}")
    return _report(True, f"all {len(_BIGRAM_CASES)} bigram probabilities are right")


def check_add_k(fn: Callable[[np.ndarray, float], np.ndarray]) -> bool:
    """Check ``fn(counts, k) -> probabilities`` for add-k smoothing of one context.

    Introduced in chapter 01_ngram (exercise 2): ``counts[w]`` is how often word
    ``w`` followed the context; the answer is ``(counts + k) / (N + k V)``.
    """
    rng = np.random.default_rng(1)
    cases = [(np.array([3, 0, 1]), 1.0), (np.array([3, 0, 1]), 0.5), (np.zeros(4, dtype=int), 1.0)]
    cases += [(rng.integers(0, 6, size=7), float(k)) for k in (0.1, 2.0)]
    for counts, k in cases:
        expected = (counts + k) / (counts.sum() + k * len(counts))
        got, error = _call(fn, counts.copy(), k)
        if error:
            return _report(False, error)
        try:
            got = np.asarray(got, dtype=float)
        except (TypeError, ValueError):
            return _report(False, f"for counts {counts} and k={k} you returned {got!r}, not an array of numbers")
        if got.shape != counts.shape:
            return _report(False, f"for counts {counts} the answer needs shape {counts.shape}, yours has shape {got.shape}")
        if not math.isclose(got.sum(), 1.0, abs_tol=1e-9):
            return _report(False, f"your probabilities for counts {counts} with k={k} sum to {got.sum():.4g}, not 1")
        if not np.allclose(got, expected, atol=1e-9):
            i = int(np.argmax(np.abs(got - expected)))
            return _report(
                False,
                f"for counts {counts} with k={k}, word {i} should get {expected[i]:.4f}, you gave {got[i]:.4f}",
            )
    return _report(True, f"add-k smoothing is right on all {len(cases)} cases, including an unseen context")


def check_perplexity(fn: Callable[[Sequence[float]], float]) -> bool:
    """Check ``fn(log2_probs) -> perplexity`` of a text from its per-token log2 probabilities.

    Introduced in chapter 01_ngram (exercise 3): perplexity = 2 ** (cross-entropy
    in bits per token), and one zero-probability token makes it infinite.
    """
    cases = [[-1.0, -1.0, -1.0], [-2.0, -0.5], [-3.3219280948873626] * 5, [-1.0, -math.inf]]
    for log2_probs in cases:
        expected = 2.0 ** (-sum(log2_probs) / len(log2_probs))
        got, error = _call(fn, list(log2_probs))
        if error:
            return _report(False, error)
        if got is None or not isinstance(got, (int, float, np.floating)):
            return _report(False, f"for log2 probabilities {log2_probs} you returned {got!r}, not a number")
        if math.isinf(expected):
            if not math.isinf(got):
                return _report(False, f"a token with probability 0 (log2 = -inf) makes perplexity infinite; you gave {got}")
            continue
        if not math.isclose(float(got), expected, rel_tol=1e-9):
            return _report(
                False,
                f"for log2 probabilities {log2_probs} perplexity is {expected:.4f}, you gave {float(got):.4f}; "
                "remember: average the negative log2 probabilities, then raise 2 to that power",
            )
    return _report(True, "perplexity is right, including the infinite case")


# --- chapter 00_introduction -------------------------------------------------------

def check_toy_probability(sentence: str, probability: float) -> bool:
    """Check a probability worked out by hand from the toy world's rule tables.

    Introduced in chapter 00_introduction (exercise 1). The reference is
    ``exp(toyworld.log_prob(sentence))``, computed by parsing with the grammar.
    """
    from . import toyworld

    if not isinstance(sentence, str) or not toyworld.is_grammatical(sentence):
        raise ValueError(f"sentence must be a sentence the toy grammar can write, got {sentence!r}")
    expected = math.exp(toyworld.log_prob(sentence))
    if not isinstance(probability, (int, float, np.floating)) or not 0 < float(probability) <= 1:
        return _report(False, f"a probability is a number between 0 and 1, you gave {probability!r}")
    ratio = float(probability) / expected
    if math.isclose(ratio, 1.0, rel_tol=1e-6):
        return _report(True, f"P({sentence!r}) = {expected:.6g} is right")
    side = "too large" if ratio > 1 else "too small"
    factor = ratio if ratio > 1 else 1 / ratio
    return _report(False, f"P({sentence!r}) is {expected:.6g}; yours is {side} by a factor of "
                          f"{factor:.4g}. Is one rule missing, or counted twice? Look for a rule "
                          "probability near that factor (or its inverse).")


_PAIR_CASES = [
    {("l", "o", "w"): 5, ("l", "o", "w", "e", "r"): 2, ("n", "e", "w", "e", "s", "t"): 6,
     ("w", "i", "d", "e", "s", "t"): 3},
    {("a", "b"): 1, ("c", "d"): 1},                       # a tie: the pair that sorts first wins
    {("q", "y", "z"): 1, ("y", "z"): 1, ("x", "y"): 5},   # counts matter, not word types
]


def _pair_counts(word_counts: dict) -> Counter:
    pairs: Counter = Counter()
    for word, c in word_counts.items():
        for a, b in zip(word, word[1:]):
            pairs[a, b] += c
    return pairs


def check_most_frequent_pair(fn: Callable[[dict], tuple]) -> bool:
    """Check ``fn(word_counts) -> (a, b)``: the adjacent symbol pair BPE merges next.

    Introduced in chapter 00_introduction (exercise 2). `word_counts` maps a word, as a tuple
    of symbols, to its frequency; each pair occurrence counts with its word's frequency, and a
    tie goes to the pair that sorts first.
    """
    for case in _PAIR_CASES:
        pairs = _pair_counts(case)
        best = max(pairs.values())
        expected = min(p for p, c in pairs.items() if c == best)
        got, error = _call(fn, dict(case))
        if error:
            return _report(False, error)
        if got is None or tuple(got) != expected:
            got_count = pairs.get(tuple(got), 0) if isinstance(got, (tuple, list)) else None
            hint = ("remember to weigh each pair by how often its word occurs"
                    if got_count is not None and got_count < best else
                    "on a tie, return the pair that sorts first" if got_count == best else
                    "return a tuple of two adjacent symbols")
            return _report(False, f"for {case} the most frequent pair is {expected} ({best} times); "
                                  f"you gave {got!r}: {hint}")
    return _report(True, f"the most frequent pair is right in all {len(_PAIR_CASES)} cases, ties included")


def _merge(word: tuple, pair: tuple) -> tuple:
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def check_merge_pair(fn: Callable[[dict, tuple], dict]) -> bool:
    """Check ``fn(word_counts, pair) -> new word_counts`` with every occurrence of `pair` merged.

    Introduced in chapter 00_introduction (exercise 3). Occurrences are merged left to right
    and never overlap: ("a", "a", "a") with pair ("a", "a") becomes ("aa", "a").
    """
    cases = [(_PAIR_CASES[0], ("e", "s")), (_PAIR_CASES[0], ("l", "o")),
             ({("a", "a", "a"): 2, ("b", "a", "a"): 1}, ("a", "a"))]
    for words, pair in cases:
        expected: dict = {}
        for w, c in words.items():
            expected[_merge(w, pair)] = expected.get(_merge(w, pair), 0) + c
        got, error = _call(fn, dict(words), pair)
        if error:
            return _report(False, error)
        if not isinstance(got, dict):
            return _report(False, f"return a dict from word tuples to counts, got {type(got).__name__}")
        for w, c in words.items():
            want = _merge(w, pair)
            if got.get(want) != expected[want]:
                found = [k for k in got if "".join(k) == "".join(w)]
                return _report(False, f"merging {pair} in {w} should give {want}, you have "
                                      f"{found[0] if found else 'no entry for that word'}")
        if len(got) != len(expected):
            return _report(False, f"after merging {pair} there should be {len(expected)} words, you have {len(got)}")
    return _report(True, f"merging is right in all {len(cases)} cases, overlapping pairs included")


# --- chapter 03_attention ----------------------------------------------------------


def _reference_attention(q, k, v, mask=None):
    import torch

    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def check_attention(fn: Callable) -> bool:
    """Check ``fn(q, k, v, mask=None) -> (output, weights)``: scaled dot-product attention.

    Introduced in chapter 03_attention (exercise 1). q: (n_q, d_k), k: (n_k, d_k), v: (n_k, d_v);
    mask: bool (n_q, n_k), True where a query may look. weights = softmax(q k^T / sqrt(d_k)).
    """
    import torch

    gen = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(4, 16, generator=gen), torch.randn(5, 16, generator=gen),
               torch.randn(5, 3, generator=gen))
    mask = torch.ones(4, 5, dtype=torch.bool).tril()
    for case_mask, label in ((None, "without a mask"), (mask, "with a causal mask")):
        (ref_out, ref_w) = _reference_attention(q, k, v, case_mask)
        got, error = _call(fn, q.clone(), k.clone(), v.clone(), None if case_mask is None else case_mask.clone())
        if error:
            return _report(False, error)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            return _report(False, f"return (output, weights), got {type(got).__name__}")
        (out, error), (w, error_w) = (_as_cpu(x, torch.float32) for x in got)
        if error or error_w:
            return _report(False, error or error_w)
        if w.shape != ref_w.shape or out.shape != ref_out.shape:
            return _report(False, f"{label}: weights should have shape {tuple(ref_w.shape)} and output "
                                  f"{tuple(ref_out.shape)}, yours have {tuple(w.shape)} and {tuple(out.shape)}")
        sums = w.sum(dim=-1)
        bad = torch.nonzero((sums - 1).abs() > 1e-4).flatten()
        if len(bad):
            r = int(bad[0])
            return _report(False, f"{label}: your attention rows do not sum to 1: row {r} sums to "
                                  f"{float(sums[r]):.4g}. Normalize with a softmax over the keys (last dim).")
        if case_mask is not None and (w[~case_mask].abs() > 1e-6).any():
            r, c = (int(x) for x in torch.nonzero(w * ~case_mask)[0])
            return _report(False, f"{label}: query {r} gives weight {float(w[r, c]):.3g} to key {c}, which "
                                  "the mask forbids; set masked scores to -inf before the softmax")
        if not torch.allclose(w, ref_w, atol=1e-5):
            unscaled = torch.softmax((q @ k.T).masked_fill(~case_mask, float("-inf"))
                                     if case_mask is not None else q @ k.T, dim=-1)
            if torch.allclose(w, unscaled, atol=1e-5):
                return _report(False, f"{label}: your weights are softmax(q k^T) without the scaling; "
                                      "divide the scores by sqrt(d_k) = 4 before the softmax")
            r = int(((w - ref_w).abs().amax(dim=-1)).argmax())
            return _report(False, f"{label}: row {r} of your weights is {w[r].numpy().round(3)}, "
                                  f"expected {ref_w[r].numpy().round(3)}")
        if not torch.allclose(out, ref_out, atol=1e-5):
            return _report(False, f"{label}: the weights are right but the output is not weights @ v")
    return _report(True, "scaled dot-product attention is right, with and without a mask")


def check_causal_mask(fn: Callable[[int], Any]) -> bool:
    """Check ``fn(n) -> bool tensor (n, n)``, True where query i may attend to key j (j <= i).

    Introduced in chapter 03_attention (exercise 2).
    """
    import torch

    for n in (1, 4, 7):
        got, error = _call(fn, n)
        if error:
            return _report(False, error)
        got, error = _as_cpu(got)
        if error:
            return _report(False, error)
        want = torch.ones(n, n, dtype=torch.bool).tril()
        if got.shape != (n, n):
            return _report(False, f"for n={n} the mask needs shape ({n}, {n}), yours has {tuple(got.shape)}")
        got = got.bool()
        if not torch.equal(got, want):
            i, j = (int(x) for x in torch.nonzero(got != want)[0])
            what = "may see the future" if j > i else "cannot see itself or the past"
            return _report(False, f"for n={n}, entry ({i}, {j}) is {bool(got[i, j])}: query {i} {what}; "
                                  "a causal mask is True on and below the diagonal (j <= i)")
    return _report(True, "the causal mask is right for n = 1, 4 and 7")


# --- chapter 04_transformer --------------------------------------------------------


def check_positional_encoding(fn: Callable[[int, int], Any]) -> bool:
    """Check ``fn(max_len, d_model) -> (max_len, d_model)`` sinusoidal positional encodings.

    Introduced in chapter 04_transformer (exercise 1): PE[p, 2i] = sin(p / 10000^(2i/d)),
    PE[p, 2i+1] = cos(p / 10000^(2i/d)).
    """
    import torch

    from .transformer import sinusoidal_positions

    for max_len, d in ((4, 2), (50, 16)):
        got, error = _call(fn, max_len, d)
        if error:
            return _report(False, error)
        got, error = _as_cpu(got, torch.float64)
        if error:
            return _report(False, error)
        want = sinusoidal_positions(max_len, d).double()
        if got.shape != want.shape:
            return _report(False, f"for max_len={max_len}, d_model={d} the answer needs shape "
                                  f"{tuple(want.shape)}, yours has {tuple(got.shape)}")
        if not torch.allclose(got[1, 0], torch.tensor(math.sin(1.0), dtype=torch.float64), atol=1e-5):
            return _report(False, f"PE[1, 0] should be sin(1) = {math.sin(1.0):.4f}, you have "
                                  f"{float(got[1, 0]):.4f}: even dimensions use sin, odd ones cos")
        if not torch.allclose(got, want, atol=1e-5):
            p, j = (int(x) for x in torch.nonzero((got - want).abs() > 1e-5)[0])
            return _report(False, f"PE[{p}, {j}] should be {float(want[p, j]):.5f}, you have "
                                  f"{float(got[p, j]):.5f}; the angle is p / 10000^(2i/d) with 2i = "
                                  f"{j - j % 2}, the same for dimensions {j - j % 2} and {j - j % 2 + 1}")
    return _report(True, "sinusoidal positional encodings are right")


def check_label_smoothing(fn: Callable[[Any, int, float], Any]) -> bool:
    """Check ``fn(target, n_classes, eps) -> (N, n_classes)`` smoothed target distributions.

    Introduced in chapter 04_transformer (exercise 2): every class gets eps / n_classes and the
    true class additionally 1 - eps (what torch.nn.functional.cross_entropy's
    label_smoothing uses).
    """
    import torch

    target, n, eps = torch.tensor([0, 3, 1]), 5, 0.1
    want = torch.full((3, n), eps / n)
    want[torch.arange(3), target] += 1 - eps
    got, error = _call(fn, target.clone(), n, eps)
    if error:
        return _report(False, error)
    got, error = _as_cpu(got, torch.float32)
    if error:
        return _report(False, error)
    if got.shape != want.shape:
        return _report(False, f"the answer needs shape {tuple(want.shape)}, yours has {tuple(got.shape)}")
    sums = got.sum(-1)
    if not torch.allclose(sums, torch.ones(3), atol=1e-5):
        return _report(False, f"each row is a distribution and must sum to 1; row 0 sums to {float(sums[0]):.4f}")
    if not torch.allclose(got, want, atol=1e-6):
        return _report(False, f"for target {int(target[0])} with eps={eps} and {n} classes row 0 should be "
                              f"{want[0].numpy().round(3)}, yours is {got[0].numpy().round(3)}: every class, the "
                              "true one included, gets eps / n_classes, and the true class 1 - eps more")
    logits = torch.randn(3, n, generator=torch.Generator().manual_seed(0))
    by_hand = -(got * logits.log_softmax(-1)).sum(-1).mean()
    torch_value = torch.nn.functional.cross_entropy(logits, target, label_smoothing=eps)
    assert torch.allclose(by_hand, torch_value, atol=1e-6)  # the check's own consistency
    return _report(True, "label smoothing is right, and matches cross_entropy(label_smoothing=eps)")


# --- chapter 05_bert ---------------------------------------------------------------


def check_bert_input(fn: Callable) -> bool:
    """Check ``fn(tok_emb, seg_emb, pos_emb, ids, segments) -> (T, d)`` summed embeddings.

    Introduced in chapter 05_bert (exercise 1): token + segment + position embeddings.
    """
    import torch

    torch.manual_seed(0)
    tok_emb, seg_emb, pos_emb = torch.nn.Embedding(20, 4), torch.nn.Embedding(2, 4), torch.nn.Embedding(10, 4)
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
    import torch

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
    import torch

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


# --- chapter 06_gpt ----------------------------------------------------------

_SAMPLING_LOGITS = [[2.0, -1.0, 0.5, 3.0, 0.0, 1.0], [0.1, 0.2, 0.3, 0.4, 5.0, -2.0]]


def _kept(logits) -> list[int]:
    return [i for i, x in enumerate(logits.tolist()) if x != float("-inf")]


def check_top_k(fn: Callable) -> bool:
    """Check ``fn(logits, k) -> logits`` with every entry outside the k largest set to -inf.

    Introduced in chapter 06_gpt (exercise 1).
    """
    import torch

    for row in _SAMPLING_LOGITS:
        logits = torch.tensor(row)
        for k in (1, 2, 4, 6):
            got, error = _call(fn, logits.clone(), k)
            if error:
                return _report(False, error)
            got, error = _as_cpu(got)
            if error:
                return _report(False, error)
            want = sorted(torch.topk(logits, k).indices.tolist())
            if got.shape != logits.shape:
                return _report(False, f"return logits of the same shape {tuple(logits.shape)}, got {tuple(got.shape)}")
            if _kept(got) != want:
                return _report(False, f"for logits {row} and k={k} you keep positions {_kept(got)}, "
                                      f"the {k} largest are {want}")
            if not torch.equal(got[want], logits[want]):
                return _report(False, f"for k={k} the kept logits changed value: keep them as they are")
    return _report(True, "top-k keeps the k largest logits and sets the rest to -inf")


def check_top_p(fn: Callable) -> bool:
    """Check ``fn(logits, p) -> logits`` keeping the smallest set of most likely tokens whose
    probability reaches p (Holtzman et al. 2020). Introduced in chapter 06_gpt (exercise 2).
    """
    import torch

    for row in _SAMPLING_LOGITS:
        logits = torch.tensor(row)
        probs = logits.softmax(-1)
        order = torch.argsort(probs, descending=True).tolist()
        for p in (0.1, 0.5, 0.8, 0.95, 1.0):
            cum, want = 0.0, []
            for i in order:  # add tokens, most likely first, until their mass reaches p
                want.append(i)
                cum += float(probs[i])
                if cum >= p:
                    break
            got, error = _call(fn, logits.clone(), p)
            if error:
                return _report(False, error)
            got, error = _as_cpu(got)
            if error:
                return _report(False, error)
            if got.shape != logits.shape:
                return _report(False, f"return logits of the same shape {tuple(logits.shape)}, got {tuple(got.shape)}")
            kept = _kept(got)
            if kept != sorted(want):
                mass = float(probs[kept].sum()) if kept else 0.0
                hint = ("that set is too small: its probability is below p" if mass < p - 1e-9
                        else "a smaller set of the most likely tokens already reaches p")
                return _report(False, f"for probabilities {[round(x, 3) for x in probs.tolist()]} and p={p} "
                                      f"you keep {kept} (mass {mass:.3f}); {hint}. The nucleus is {sorted(want)}")
    return _report(True, "top-p keeps the smallest set of most likely tokens reaching p")


def check_few_shot_optimum(fn: Callable[[int], float]) -> bool:
    """Check ``fn(k) -> best accuracy`` for the arbitrary-label game of `fewshot`.

    Introduced in chapter 06_gpt (exercise 3).
    """
    from .fewshot import optimal_accuracy

    for k in range(0, 10):
        got, error = _call(fn, k)
        if error:
            return _report(False, error)
        want = optimal_accuracy("arbitrary_labels", k)
        if not isinstance(got, (int, float)) or not math.isclose(float(got), want, abs_tol=1e-9):
            hint = (" With no example, nothing says which of the 4 labels is wanted." if k == 0 else
                    " Ask: when is the query's label not among the examples, and what is the best guess then?")
            return _report(False, f"for k={k} the best accuracy is {want:.4f}, yours is {got!r}.{hint}")
    return _report(True, "the ideal reader's accuracy, right for k = 0..9")
