"""Tests for lmbook_utils.ngram (chapter 01_ngram).

Expected values are worked out by hand (with Fractions) or by a slow pure-Python reference
written here from the textbook formulas, independent of the vectorized code under test.
"""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction as F

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmbook_utils.ngram import SMOOTHING_METHODS, NGramLM

# Jurafsky & Martin's toy corpus (Speech and Language Processing, ch. 3).
SAM = [["I", "am", "Sam"], ["Sam", "I", "am"], ["I", "do", "not", "like", "green", "eggs", "and", "ham"]]
# Vocabulary: 10 words + </s> + <unk> = 12. Predicted tokens: 3 + 3 + 8 words + 3 </s> = 17.
V, N = 12, 17
# Bigram types: <s> I, I am, am Sam, Sam </s>, <s> Sam, Sam I, am </s>, I do, do not, not like,
# like green, green eggs, eggs and, and ham, ham </s>  -> 15. Word types with a left context: 11.
BIGRAM_TYPES, TYPES = 15, 11
D = F(3, 4)


def close(a: float, b: F | float, tol: float = 1e-12) -> bool:
    return abs(a - float(b)) < tol


# ---- hand-worked examples ------------------------------------------------------------------
def test_bigram_mle_and_add_one_by_hand():
    mle = NGramLM(2, "mle").fit(SAM)
    assert close(mle.prob("am", ["I"]), F(2, 3))  # c(I am)=2, c(I .)=3
    assert close(mle.prob("I", ["<s>"]), F(2, 3))
    assert close(mle.prob("</s>", ["Sam"]), F(1, 2))
    assert mle.prob("Sam", ["I"]) == 0.0
    assert mle.prob("Sam", ["zebra"]) == 0.0  # unseen context: the n-gram is unseen, p = 0
    with pytest.raises(ValueError, match="never occurred"):  # ... and P(. | zebra) is undefined
        mle.next_token_distribution(["zebra"])
    add1 = NGramLM(2, "add_k", k=1).fit(SAM)
    assert len(add1.vocab) == V
    assert close(add1.prob("am", ["I"]), F(2 + 1, 3 + V))
    assert close(add1.prob("Sam", ["I"]), F(0 + 1, 3 + V))
    add_half = NGramLM(2, "add_k", k=0.5).fit(SAM)
    assert close(add_half.prob("am", ["I"]), (2 + F(1, 2)) / (3 + F(1, 2) * V))


def test_bigram_absolute_discounting_by_hand():
    lm = NGramLM(2, "absolute", discount=0.75).fit(SAM)
    p_uni_am = (2 - D) / N + D * TYPES / N * F(1, V)  # raw unigram counts, then uniform
    p_uni_sam = (2 - D) / N + D * TYPES / N * F(1, V)
    # context "I": c=3, followed by {am, do} -> 2 types
    assert close(lm.prob("am", ["I"]), (2 - D) / 3 + D * 2 / 3 * p_uni_am)
    assert close(lm.prob("Sam", ["I"]), D * 2 / 3 * p_uni_sam)
    assert close(lm.prob("<unk>", ["I"]), D * 2 / 3 * (D * TYPES / N * F(1, V)))


def test_kneser_ney_by_hand_bigram_and_trigram():
    lm = NGramLM(2, "kneser_ney", discount=0.75).fit(SAM)
    # continuation counts: "am" follows only "I"; "Sam" follows "am" and "<s>"
    assert lm.continuation_count(("am",)) == 1 and lm.continuation_count(("Sam",)) == 2
    kn1 = lambda cc: (max(cc - D, 0)) / BIGRAM_TYPES + D * TYPES / BIGRAM_TYPES * F(1, V)  # noqa: E731
    assert close(lm.prob("am", ["I"]), (2 - D) / 3 + D * 2 / 3 * kn1(1))
    assert close(lm.prob("Sam", ["I"]), D * 2 / 3 * kn1(2))
    assert close(lm.prob("ham", ["green"]), D * 1 / 1 * kn1(1))  # c(green ham)=0; green -> {eggs}

    tri = NGramLM(3, "kneser_ney", discount=0.75).fit(SAM)
    # P(Sam | I am): c(I am Sam)=1, c(I am .)=2 with 2 types {Sam, </s>}.
    # Middle order, context "am": continuation counts N1+(. am Sam)=|{I}|=1, N1+(. am </s>)=|{I}|=1.
    p2 = (1 - D) / 2 + D * 2 / 2 * kn1(2)
    assert close(tri.prob("Sam", ["I", "am"]), (1 - D) / 2 + D * 2 / 2 * p2)
    assert close(tri.prob("Sam", ["<s>", "I", "am"]), tri.prob("Sam", ["I", "am"]))  # only n-1 used


def test_kneser_ney_san_francisco():
    """'Francisco' is frequent but only after 'San'; 'glasses' is rarer but follows many words."""
    corpus = [["San", "Francisco"]] * 6 + [[w, "glasses"] for w in ["red", "my", "new", "old"]]
    kn = NGramLM(2, "kneser_ney").fit(corpus)
    ab = NGramLM(2, "absolute").fit(corpus)
    assert kn.count(("Francisco",)) == 6 and kn.continuation_count(("Francisco",)) == 1
    assert kn.count(("glasses",)) == 4 and kn.continuation_count(("glasses",)) == 4
    # After an unseen context (it backs off to the unigram level) KN prefers "glasses", absolute "Francisco".
    assert kn.prob("glasses", ["zebra"]) > kn.prob("Francisco", ["zebra"])
    assert ab.prob("glasses", ["zebra"]) < ab.prob("Francisco", ["zebra"])


# ---- a slow pure-Python reference -----------------------------------------------------------
def reference_prob(corpus, n, smoothing, word, context, k=1.0, d=0.75, lambdas=None):
    vocab = {t for s in corpus for t in s} | {"</s>", "<unk>"}
    events = []
    for s in corpus:
        padded = ["<s>"] * (n - 1) + list(s) + ["</s>"]
        events += [tuple(padded[i - n + 1:i + 1]) for i in range(n - 1, len(padded))]
    counts = Counter(g[len(g) - m:] for g in events for m in range(1, n + 1))
    types = {m: {g for g in counts if len(g) == m} for m in range(1, n + 1)}
    ctx = tuple((["<s>"] * (n - 1) + [t if t in vocab or t == "<s>" else "<unk>" for t in context])
                [-(n - 1):] if n > 1 else [])

    def cnt(g, kn):  # count used by the estimator for m-gram g
        if kn and len(g) < n:
            return sum(1 for h in types[len(g) + 1] if h[1:] == g)
        return counts[g]

    def ctx_stats(h, m, kn):  # total and number of distinct followers of context h at order m
        follow = [g for g in types[m] if g[:-1] == h]
        return sum(cnt(g, kn) for g in follow), len(follow)

    if smoothing in ("mle", "add_k"):
        tot, _ = ctx_stats(ctx, n, False)
        kk = k if smoothing == "add_k" else 0
        return (counts[ctx + (word,)] + kk) / (tot + kk * len(vocab)) if tot + kk * len(vocab) else 0.0
    if smoothing == "interpolated":
        lam = lambdas if lambdas is not None else [1 / n] * n
        est, total = None, 0.0
        for m in range(1, n + 1):
            h = ctx[len(ctx) - (m - 1):] if m > 1 else ()
            tot, _ = ctx_stats(h, m, False)
            est = counts[h + (word,)] / tot if tot else est
            total += lam[m - 1] * est
        return total
    kn = smoothing == "kneser_ney"
    p = 1 / len(vocab)
    for m in range(1, n + 1):
        h = ctx[len(ctx) - (m - 1):] if m > 1 else ()
        tot, nty = ctx_stats(h, m, kn)
        if tot:
            p = (max(cnt(h + (word,), kn) - d, 0) + d * nty * p) / tot
    return p


TRAIN = [["a", "b", "a", "c"], ["b", "a", "b"], ["c", "c", "a", "b", "a"], ["a"], []]
TEST = [["a", "b", "c"], ["c", "a", "zz", "b"], []]


@pytest.mark.parametrize("smoothing", SMOOTHING_METHODS)
@pytest.mark.parametrize("n", [1, 2, 3])
def test_vectorized_matches_reference_and_prob_loop(smoothing, n):
    lm = NGramLM(n, smoothing, k=0.5, discount=0.6).fit(TRAIN)
    for ctx in [[], ["a"], ["b", "a"], ["c", "zz"], ["<s>", "c"], ["a", "a", "a"]]:
        for w in lm.vocab:
            want = reference_prob(TRAIN, n, smoothing, w, ctx, k=0.5, d=0.6)
            assert math.isclose(lm.prob(w, ctx), want, rel_tol=1e-12, abs_tol=1e-15), (w, ctx)
    loop = []
    for s in TEST:
        history = []
        for w in s + ["</s>"]:
            loop.append(math.log2(p) if (p := lm.prob(w, history)) > 0 else -math.inf)
            history.append(w)
    np.testing.assert_allclose(lm.log_prob_sequences(TEST), loop, rtol=1e-12)


# ---- properties -----------------------------------------------------------------------------
corpora = st.lists(st.lists(st.sampled_from("abcde"), max_size=6), min_size=1, max_size=6)
contexts = st.lists(st.sampled_from(["a", "b", "c", "d", "e", "x", "<s>"]), max_size=4)


@settings(max_examples=60, deadline=None)
@given(corpus=corpora, context=contexts, n=st.integers(1, 4), smoothing=st.sampled_from(SMOOTHING_METHODS),
       min_count=st.integers(1, 2))
def test_distribution_sums_to_one(corpus, context, n, smoothing, min_count):
    lm = NGramLM(n, smoothing, k=0.3, discount=0.5, min_count=min_count).fit(corpus)
    # Is the (n-1)-token context seen in training? (rare/unknown words count as <unk>)
    keep = {t for t, c in Counter(t for s in corpus for t in s).items() if c >= min_count}
    pad = ["<s>"] * (n - 1)
    mapped = [t if t in keep or t == "<s>" else "<unk>" for t in context]
    h = tuple((pad + mapped)[len(mapped):])
    seen = any(tuple((pad + [t if t in keep else "<unk>" for t in s] + ["</s>"])[i:i + n - 1]) == h
               for s in corpus for i in range(len(s) + 1))
    if smoothing == "mle" and not seen:
        with pytest.raises(ValueError, match="never occurred"):
            lm.next_token_distribution(context)
        return
    p = lm.next_token_distribution(context)
    assert p.shape == (len(lm.vocab),)
    assert abs(p.sum() - 1) < 1e-9 and (p >= 0).all()
    if smoothing in ("add_k", "kneser_ney", "absolute"):
        assert (p > 0).all()


def test_perplexity_is_two_to_the_cross_entropy_and_mle_inf():
    for s in SMOOTHING_METHODS:
        lm = NGramLM(2, s).fit(SAM)
        h = lm.cross_entropy(SAM)
        assert math.isclose(lm.perplexity(SAM), 2**h, rel_tol=1e-12)
    mle = NGramLM(2, "mle").fit(SAM)
    # every sentence counts its </s>: 17 predictions, product of bigram MLE probabilities
    logp = [2 / 3, 2 / 3, 1 / 2, 1 / 2] + [1 / 3, 1 / 2, 2 / 3, 1 / 2] + [2 / 3, 1 / 3] + [1] * 7
    assert math.isclose(mle.cross_entropy(SAM), -sum(map(math.log2, logp)) / N, rel_tol=1e-12)
    assert mle.perplexity([["Sam", "am"]]) == math.inf  # "Sam am" never seen
    assert mle.cross_entropy([["I", "am"], ["Sam", "am"]]) == math.inf


def test_em_lambdas_beat_uniform():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)]
    follow = {w: rng.choice(words, 3) for w in words}  # a sparse bigram chain

    def sentences(k):
        out = []
        for _ in range(k):
            s = [str(rng.choice(words))]
            while len(s) < 8:
                s.append(str(rng.choice(follow[s[-1]])) if rng.random() < 0.8 else str(rng.choice(words)))
            out.append(s)
        return out

    train, held, test = sentences(300), sentences(100), sentences(100)
    lm = NGramLM(3, "interpolated", min_count=2).fit(train)
    uniform = lm.perplexity(held)
    lam = lm.tune_lambdas(held)
    assert lam.shape == (3,) and math.isclose(lam.sum(), 1, rel_tol=1e-12) and (lam >= 0).all()
    assert np.array_equal(lm.lambdas, lam)
    assert lm.perplexity(held) < uniform - 0.1
    assert lm.perplexity(test) < NGramLM(3, "interpolated", min_count=2).fit(train).perplexity(test)


def test_sampling_deterministic_and_in_vocab():
    lm = NGramLM(3, "kneser_ney").fit(TRAIN)
    a, b = lm.sample(max_len=30, seed=7), lm.sample(max_len=30, seed=7)
    assert a == b and len(a) <= 30
    samples = [lm.sample(max_len=30, seed=s) for s in range(20)]
    assert len({tuple(s) for s in samples}) > 1
    assert all(t in lm.vocab and t != "</s>" for s in samples for t in s)
    mle = NGramLM(2, "mle").fit(SAM)
    assert mle.sample(seed=0, context=["green"], temperature=0.01) == ["eggs", "and", "ham"]


def test_unknown_words_and_characters():
    lm = NGramLM(2, "kneser_ney", min_count=2).fit(SAM)  # words seen once become <unk>
    assert lm.vocab == ["</s>", "<unk>", "I", "Sam", "am"]
    assert lm.count(("<unk>",)) == 7 and lm.prob("zebra", ["I"]) == lm.prob("<unk>", ["I"])
    strict = NGramLM(2, "add_k", unknown="error").fit(SAM)
    assert "<unk>" not in strict.vocab
    with pytest.raises(ValueError, match="word holds the unknown token 'zebra'"):
        strict.prob("zebra", ["I"])
    with pytest.raises(ValueError, match="sequences holds the unknown token 'zebra'"):
        strict.perplexity([["I", "zebra"]])
    chars = NGramLM(2, "kneser_ney").fit([list("我爱北京"), list("我爱你")])
    assert chars.count(("我", "爱")) == 2 and chars.prob("爱", ["我"]) > 0.5


@pytest.mark.parametrize("kwargs, arg", [
    (dict(n=0), "n must"), (dict(n=2.5), "n must"), (dict(n="3"), "n must"), (dict(n=True), "n must"),
    (dict(smoothing="witten_bell"), "smoothing must be one of .*kneser_ney"),
    (dict(k=-1), "k must"), (dict(discount=0.0), "discount"), (dict(discount=1.5), "discount"),
    (dict(lambdas=[0.5, 0.5]), "lambdas"), (dict(lambdas=[0.5, 0.2, 0.2]), "lambdas"),
    (dict(lambdas=[1.5, -0.25, -0.25]), "lambdas"), (dict(min_count=0), "min_count"),
    (dict(unknown="ignore"), "unknown"), (dict(unknown="error", min_count=2), "min_count"),
])
def test_bad_constructor_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        NGramLM(**{"n": 3, **kwargs})


def test_bad_data_and_calls():
    with pytest.raises(ValueError, match="sequences must hold at least one"):
        NGramLM(2).fit([])
    with pytest.raises(TypeError, match="sequences"):
        NGramLM(2).fit("I am Sam")
    with pytest.raises(TypeError, match=r"sequences\[0\]"):
        NGramLM(2).fit(["I am Sam"])
    with pytest.raises(ValueError, match="reserved marker"):
        NGramLM(2).fit([["<s>", "I"]])
    with pytest.raises(RuntimeError, match="fit"):
        NGramLM(2).prob("I")
    lm = NGramLM(2, "kneser_ney").fit(SAM)
    with pytest.raises(ValueError, match="tune_lambdas needs smoothing='interpolated'"):
        lm.tune_lambdas(SAM)
    with pytest.raises(ValueError, match="temperature"):
        lm.sample(temperature=0)
    with pytest.raises(TypeError, match="context"):
        lm.prob("am", "I")
    with pytest.raises(ValueError, match="word"):
        lm.prob("<s>", ["I"])
    with pytest.raises(ValueError, match="ngram"):
        lm.count(("I", "am", "Sam"))
