"""Benchmark: lmbook_utils.ngram.NGramLM against nltk.lm on the same trigram counts.

Run as `python benchmarks/ngram_vs_nltk.py [zipf|toyworld]` (under a minute on 2 CPU cores).
Not a test: it prints figures.

What is compared, and how we made it apples to apples:
- Same events. nltk's `padded_everygram_pipeline` pads both ends with n-1 markers and also
  counts n-grams made only of padding, so its counts differ from ours. Instead we feed nltk
  exactly our events: for every predicted token (each word and one </s> per sentence) the
  trigram ending there and its bigram and unigram suffixes.
- Same vocabulary size. `<s>` is left out of nltk's vocabulary, so nltk maps it to its own
  `<UNK>` (in training and scoring alike). With min_count=1 and a held-out set without
  out-of-vocabulary words, nltk's `<UNK>` stands for `<s>` only, and its len(vocab) equals our
  V (words + </s> + <unk>). Laplace must then agree to rounding.
- Kneser-Ney. nltk's top and middle orders are the same interpolated KN as ours (one
  discount D, continuation counts below the top). The one difference is the unigram level:
  nltk uses N1+(. w) / N1+(. .) undiscounted, so a word never seen has probability 0; we follow
  Chen & Goodman (1998) and discount it too, spreading D * types / N1+(. .) uniformly over
  the vocabulary (every token, <unk> included, gets p > 0). To show that this is the only
  difference we also score an nltk model whose unigram_score is patched to the same formula.
- nltk's KN recomputes continuation counts by scanning every stored n-gram for each query, so
  it is scored on a fixed subset of the held-out sentences; times are reported per token.
"""

from __future__ import annotations

import math
import time

import numpy as np
from nltk.lm import KneserNeyInterpolated, Laplace
from nltk.lm.models import InterpolatedLanguageModel
from nltk.lm.smoothing import KneserNey

from lmbook_utils.ngram import NGramLM

ORDER, DISCOUNT, TRAIN_TOKENS = 3, 0.75, 200_000


def load_corpus(n_tokens: int, seed: int = 0, kind: str = "zipf") -> tuple[list[list[str]], str]:
    """Sentences of about `n_tokens` words, and a description of where they come from.

    kind="zipf" (default): a deterministic synthetic corpus with a vocabulary like real text's,
    5,000 words with Zipfian frequencies (exponent 1.1), where each word has 8 favourite
    successors chosen 70% of the time. kind="toyworld": toy-world stories (only ~90 word
    types, so far fewer distinct n-grams: an easier case for nltk's Kneser-Ney).
    """
    if kind == "toyworld":
        from lmbook_utils import toyworld

        stories = toyworld.generate_corpus(n_chars=int(n_tokens * 4.0), seed=seed).tokens()
        return stories, "toy-world stories (lmbook_utils.toyworld)"
    if kind != "zipf":
        raise ValueError(f"kind must be 'zipf' or 'toyworld', got {kind!r}")
    rng = np.random.default_rng(seed)
    V = 5000
    zipf = np.cumsum(1.0 / np.arange(1, V + 1) ** 1.1)
    zipf /= zipf[-1]
    favourites = rng.integers(0, V, size=(V, 8))
    fav_cdf = np.cumsum(1.0 / np.arange(1, 9))
    fav_cdf /= fav_cdf[-1]
    words = [f"w{i}" for i in range(V)]
    sents, total = [], 0
    while total < n_tokens:
        length = int(rng.integers(5, 21))
        u, choose_fav, v = rng.random(length), rng.random(length), rng.random(length)
        ids = [int(np.searchsorted(zipf, u[0]))]
        for t in range(1, length):
            if choose_fav[t] < 0.7:
                ids.append(int(favourites[ids[-1], np.searchsorted(fav_cdf, v[t])]))
            else:
                ids.append(int(np.searchsorted(zipf, u[t])))
        sents.append([words[i] for i in ids])
        total += length
    return sents, "synthetic Zipfian bigram-chain corpus, 5,000 word types"


def our_events(sentences: list[list[str]], n: int) -> list[list[tuple[str, ...]]]:
    """Per sentence, the n-gram ending at each predicted token and all its shorter suffixes."""
    out = []
    for s in sentences:
        padded = ["<s>"] * (n - 1) + s + ["</s>"]
        grams = [tuple(padded[i - n + 1:i + 1]) for i in range(n - 1, len(padded))]
        out.append([g[len(g) - m:] for g in grams for m in range(1, n + 1)])
    return out


class ChenGoodmanKN(KneserNey):
    """nltk's KneserNey with our unigram level: discounted, interpolated with uniform."""

    def unigram_score(self, word):
        cont, total = self._continuation_counts(word)
        types = len(self.counts.unigrams)  # predicted word types = types with a left context
        return (max(cont - self.discount, 0) + self.discount * types / len(self.vocab)) / total


def nltk_logprobs(lm, sentences: list[list[str]], n: int) -> np.ndarray:
    out = []
    for s in sentences:
        padded = ["<s>"] * (n - 1) + s + ["</s>"]
        for i in range(n - 1, len(padded)):
            p = lm.score(padded[i], padded[i - n + 1:i])
            out.append(math.log2(p) if p > 0 else -math.inf)
    return np.array(out)


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def main() -> None:
    import sys

    kind = sys.argv[1] if len(sys.argv) > 1 else "zipf"  # python benchmarks/ngram_vs_nltk.py toyworld
    sents, source = load_corpus(int(TRAIN_TOKENS * 1.1), kind=kind)
    split = int(len(sents) * 0.9)
    train, held = sents[:split], sents[split:]
    vocab = {w for s in train for w in s}
    held = [s for s in held if all(w in vocab for w in s)]  # no OOV: nltk and we treat it alike
    subset = held[:30]  # for nltk's slow KN scoring
    n_train = sum(map(len, train))
    n_held = sum(len(s) + 1 for s in held)
    n_sub = sum(len(s) + 1 for s in subset)
    print(f"corpus: {source}")
    print(f"train {n_train} tokens, {len(vocab)} types; held-out {n_held} predicted tokens "
          f"(no OOV), nltk KN subset {n_sub}; order {ORDER}, discount {DISCOUNT}\n")

    events = our_events(train, ORDER)
    rows = []
    for name, ours_kw, make_nltk, nltk_subset in [
        ("Laplace (add-1)", dict(smoothing="add_k", k=1.0), lambda: Laplace(ORDER), False),
        ("Kneser-Ney", dict(smoothing="kneser_ney", discount=DISCOUNT),
         lambda: KneserNeyInterpolated(ORDER, discount=DISCOUNT), True),
        ("KN, nltk unigram patched", dict(smoothing="kneser_ney", discount=DISCOUNT),
         lambda: InterpolatedLanguageModel(ChenGoodmanKN, ORDER,
                                           params={"discount": DISCOUNT, "order": ORDER}), True),
    ]:
        ours, t_fit_ours = timed(lambda: NGramLM(ORDER, **ours_kw).fit(train))
        lp_ours, t_score_ours = timed(lambda: ours.log_prob_sequences(held))
        lm = make_nltk()
        vocab_text = [w for s in train for w in s] + ["</s>"]  # no <s>: nltk maps it to <UNK>
        _, t_fit_nltk = timed(lambda: lm.fit(events, vocabulary_text=vocab_text))
        scored = subset if nltk_subset else held
        lp_nltk, t_score_nltk = timed(lambda: nltk_logprobs(lm, scored, ORDER))
        assert len(lm.vocab) == len(ours.vocab), (len(lm.vocab), len(ours.vocab))
        lp_ours_sub = lp_ours[: len(lp_nltk)]
        rows.append((name, 2 ** -lp_ours.mean(), 2 ** -lp_ours_sub.mean(), 2 ** -lp_nltk.mean(),
                     np.abs(lp_ours_sub - lp_nltk).max(), t_fit_ours, t_fit_nltk,
                     t_score_ours / len(lp_ours) * 1e6, t_score_nltk / len(lp_nltk) * 1e6))

    print(f"{'model':26s} {'PPL ours':>9s} {'PPL ours':>9s} {'PPL nltk':>9s} {'max|dlog2p|':>11s} "
          f"{'fit ours':>8s} {'fit nltk':>8s} {'us/tok ours':>11s} {'us/tok nltk':>11s} {'speed-up':>8s}")
    print(f"{'':26s} {'(all)':>9s} {'(same)':>9s} {'(same)':>9s}")
    for r in rows:
        print(f"{r[0]:26s} {r[1]:9.2f} {r[2]:9.2f} {r[3]:9.2f} {r[4]:11.2e} {r[5]:7.2f}s {r[6]:7.2f}s "
              f"{r[7]:11.2f} {r[8]:11.1f} {r[8] / r[7]:7.0f}x")
    print("\n(same) = the tokens nltk scored: all held-out for Laplace, the subset for KN.")
    print("fit = counting (ours includes building the vocabulary and int64 keys).")


if __name__ == "__main__":
    main()
