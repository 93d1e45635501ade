"""The exercise checks accept right answers and explain wrong ones specifically."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from lmbook_utils import exercises as ex


def bigram_right(sentences, word, prev):
    pairs = Counter((a, b) for s in sentences for a, b in zip(s, s[1:]))
    total = sum(c for (a, _), c in pairs.items() if a == prev)
    return pairs[(prev, word)] / total


def test_bigram_accepts_right_answer(capsys):
    assert ex.check_bigram_mle(bigram_right)
    assert "✅" in capsys.readouterr().out


def test_bigram_explains_a_wrong_denominator(capsys):
    # A classic mistake: dividing by all occurrences of the previous word, including sentence ends.
    def wrong(sentences, word, prev):
        pairs = Counter((a, b) for s in sentences for a, b in zip(s, s[1:]))
        unigrams = Counter(w for s in sentences for w in s)
        return pairs[(prev, word)] / unigrams[prev]

    assert not ex.check_bigram_mle(wrong)
    # "dog" ends one sentence ("the dog"), so it is followed by a word only once:
    # P(sat | dog) = 1/1, while dividing by its 2 occurrences gives 0.5.
    assert "P('sat' | 'dog') should be 1.0000, you gave 0.5000" in capsys.readouterr().out


def test_bigram_reports_exceptions_without_raising(capsys):
    assert not ex.check_bigram_mle(lambda s, w, p: 1 / 0)
    assert "ZeroDivisionError" in capsys.readouterr().out


def test_add_k_right_and_wrong(capsys):
    assert ex.check_add_k(lambda c, k: (c + k) / (c.sum() + k * len(c)))
    assert not ex.check_add_k(lambda c, k: (c + k) / (c.sum() + k))  # forgot the V
    out = capsys.readouterr().out
    # counts [3 0 1], k=1: numerators 4+1+2 = 7 over 4+1 = 5 instead of 4+3 = 7.
    assert "counts [3 0 1] with k=1.0 sum to 1.4, not 1" in out


def test_add_k_shape_message(capsys):
    assert not ex.check_add_k(lambda c, k: np.ones(2) / 2)
    assert "needs shape (3,)" in capsys.readouterr().out


def test_perplexity_right_and_infinite(capsys):
    def right(lp):
        return 2 ** (-sum(lp) / len(lp))

    assert ex.check_perplexity(right)

    def finite_only(lp):
        finite = [x for x in lp if math.isfinite(x)]
        return 2 ** (-sum(finite) / len(finite))

    assert not ex.check_perplexity(finite_only)
    assert "infinite" in capsys.readouterr().out


def test_non_callable_is_a_clear_error():
    with pytest.raises(TypeError, match="fn must be a function"):
        ex.check_perplexity(3)


# --- chapter 00_introduction ------------------------------------------------------------------

def test_toy_probability_accepts_the_product_of_rule_probabilities(capsys):
    # "Bob ate the cake." = S -> P_S ate FOOD_O . (0.10) * P_S -> bob (0.8/10)
    #   * FOOD_O -> FOOD_N (0.85) * FOOD_N -> the cake (0.4/4), worked out from the grammar's tables.
    p = 0.10 * 0.08 * 0.85 * 0.1
    assert ex.check_toy_probability("Bob ate the cake.", p)
    assert "✅" in capsys.readouterr().out


def test_toy_probability_names_the_factor_that_is_off_but_not_the_answer(capsys):
    p = 0.10 * 0.08 * 0.1  # forgot FOOD_O -> FOOD_N (0.85)
    assert not ex.check_toy_probability("Bob ate the cake.", p)
    out = capsys.readouterr().out
    assert "about 1.2" in out and "too large" in out  # 1 / 0.85 = 1.176...
    assert "0.00068" not in out and "6.8e-04" not in out  # the right answer is not given away
    assert not ex.check_toy_probability("Bob ate the cake.", p / 1.2)  # nor can it be rebuilt from the hint


def test_toy_probability_rejects_impossible_sentences_and_bad_numbers(capsys):
    with pytest.raises(ValueError, match="sentence"):
        ex.check_toy_probability("Bob ate Bob.", 0.1)
    assert not ex.check_toy_probability("Bob ate the cake.", 1.5)
    assert "between 0 and 1" in capsys.readouterr().out


# "low" x5, "lower" x2, "newest" x6, "widest" x3 (Sennrich et al.'s example), worked by hand:
# e s and s t occur 9 times (tie: e s sorts first), then es t 9, then l o 7 (before o w), lo w 7
HAND_MERGES = [("e", "s"), ("es", "t"), ("l", "o"), ("lo", "w")]
WORDS = {("l", "o", "w"): 5, ("l", "o", "w", "e", "r"): 2, ("n", "e", "w", "e", "s", "t"): 6,
         ("w", "i", "d", "e", "s", "t"): 3}


def apply_right(word, merges):
    symbols = list(word)
    for a, b in merges:
        out, i = [], 0
        while i < len(symbols):
            if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == (a, b):
                out.append(a + b)
                i += 2
            else:
                out.append(symbols[i])
                i += 1
        symbols = out
    return symbols


def learn_right(word_counts, n_merges):
    merges, words = [], dict(word_counts)
    for _ in range(n_merges):
        pairs = Counter()
        for w, c in words.items():
            for pair in zip(w, w[1:]):
                pairs[pair] += c
        if not pairs:
            break
        best = max(pairs.values())
        merges.append(min(p for p, c in pairs.items() if c == best))
        words = {tuple(apply_right(list(w), [merges[-1]])): c for w, c in words.items()}
    return merges


def test_hand_worked_bpe_example():
    assert learn_right(WORDS, 4) == HAND_MERGES
    assert apply_right("lowest", HAND_MERGES) == ["low", "est"]


def test_apply_merges_right_and_order_mistake(capsys):
    assert ex.check_apply_merges(apply_right)
    assert "✅" in capsys.readouterr().out

    def sorted_merges(word, merges):  # applies the merges in the wrong order
        return apply_right(word, sorted(merges, key=lambda p: -len(p[0] + p[1])))

    assert not ex.check_apply_merges(sorted_merges)
    assert "order" in capsys.readouterr().out
    assert not ex.check_apply_merges(lambda word, merges: list(word))  # no merge applied


def test_learn_bpe_right_and_unweighted_mistake(capsys):
    assert ex.check_learn_bpe(learn_right)
    assert "✅" in capsys.readouterr().out

    def ignores_counts(word_counts, n_merges):  # counts every word once
        return learn_right({w: 1 for w in word_counts}, n_merges)

    assert not ex.check_learn_bpe(ignores_counts)
    assert "merge 1 should be ('x', 'y'), you have ('y', 'z')" in capsys.readouterr().out
    assert not ex.check_learn_bpe(lambda words, n: learn_right(words, n)[:-1])  # one merge short
    assert "merges, you have" in capsys.readouterr().out


# --- chapter 02_neural_lm ---------------------------------------------------------------------

def lm_metrics_right(logits, targets):
    import torch.nn.functional as F
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
    keep = targets != -100
    return ce, ce.exp(), (logits.argmax(-1) == targets)[keep].float().mean()


def elman_step_right(x, h, W_ih, W_hh, b_ih, b_hh):
    import torch
    return torch.tanh(x @ W_ih.T + b_ih + h @ W_hh.T + b_hh)


def lstm_lm_parameters_right(vocab_size, d, tied):
    embed, lstm, out = vocab_size * d, 4 * (d * d + d * d) + 2 * 4 * d, d * vocab_size + vocab_size
    return embed + lstm + out - (vocab_size * d if tied else 0)


def _token_losses(logits, targets):  # per position, padding read as class 0
    import torch.nn.functional as F
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.clamp(min=0).reshape(-1),
                           reduction="none").view(targets.shape)


def test_lm_metrics_check_accepts_tensors_and_floats(capsys):
    import torch
    import torch.nn.functional as F

    assert ex.check_lm_metrics(lm_metrics_right)
    assert "✅" in capsys.readouterr().out
    assert ex.check_lm_metrics(lambda l, t: tuple(float(v) for v in lm_metrics_right(l, t)))  # Python floats
    assert ex.check_lm_metrics(lambda l, t: [v.numpy() for v in lm_metrics_right(l, t)])  # a list, NumPy
    assert "✅" in capsys.readouterr().out

    def by_hand(logits, targets):  # classes in dim 1, no flattening; the mean over the real tokens by hand
        keep = targets != -100
        nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # 0 at -100
        ce = nll.sum() / keep.sum()
        return ce.item(), torch.exp(ce).item(), ((logits.argmax(-1) == targets) & keep).sum().item() / keep.sum().item()

    assert ex.check_lm_metrics(by_hand)
    assert "✅" in capsys.readouterr().out


def test_lm_metrics_check_names_each_mistake(capsys):
    import math

    import torch
    import torch.nn.functional as F

    def with_ce(ce_of):  # a wrong cross-entropy, the perplexity e^ of it, the right accuracy
        def fn(logits, targets):
            ce = ce_of(logits, targets)
            return ce, ce.exp(), lm_metrics_right(logits, targets)[2]
        return fn

    def with_right(fn_of_right):  # the right cross-entropy, a wrong perplexity or accuracy
        return lambda l, t: fn_of_right(l, t, *lm_metrics_right(l, t))

    def per_row(values, targets):
        keep = targets != -100
        return ((values * keep).sum(1) / keep.sum(1)).mean()

    cases = [
        (with_ce(lambda l, t: _token_losses(l, t).mean()), "you averaged over every position, padding included"),
        (with_ce(lambda l, t: (_token_losses(l, t) * (t != -100)).mean()),
         "you zeroed the padding but divided by all positions"),
        (with_ce(lambda l, t: per_row(_token_losses(l, t), t)),
         "you took each row's mean loss, then the mean of the rows: a row with one real token then weighs as much "
         "as a row with six"),
        (with_ce(lambda l, t: (_token_losses(l, t) * (t != -100)).sum()), "you summed the losses"),
        (with_ce(lambda l, t: F.cross_entropy(l[:, :-1].reshape(-1, l.shape[-1]), t[:, 1:].reshape(-1))),
         "you shifted the targets by one: logits[:, t] already scores targets[:, t]"),
        (with_right(lambda l, t, ce, ppl, acc: (ce, 2 ** ce, acc)),
         "your perplexity is 2^loss where the loss is in nats: use e^nats (or 2^bits)"),
        (with_right(lambda l, t, ce, ppl, acc: (ce, torch.exp(ce / math.log(2)), acc)),
         "your perplexity is e^loss where the loss is in bits: use 2^bits or e^nats"),
        (with_right(lambda l, t, ce, ppl, acc: (ce / math.log(2), torch.exp(ce / math.log(2)), acc)),
         "your cross-entropy is in bits (log base 2): return it in nats (natural log), as F.cross_entropy "
         "computes it; and your perplexity is e^loss where the loss is in bits: use 2^bits or e^nats"),
        (with_right(lambda l, t, ce, ppl, acc: (ce / math.log(2), ppl, acc)),
         "your cross-entropy is in bits (log base 2): return it in nats (natural log), as F.cross_entropy "
         "computes it (your perplexity, 2^bits = e^nats, is right)"),
        (with_right(lambda l, t, ce, ppl, acc: (ce, ce, acc)), "your perplexity is the cross-entropy itself"),
        (with_right(lambda l, t, ce, ppl, acc: (ce, _token_losses(l, t).mean().exp(), acc)),
         "your perplexity is e^ of a wrong cross-entropy: you averaged over every position, padding included"),
        (with_right(lambda l, t, ce, ppl, acc: (ce, per_row(_token_losses(l, t), t).exp(), acc)),
         "your perplexity is e^ of a wrong cross-entropy: you took each row's mean loss"),
        (with_right(lambda l, t, ce, ppl, acc: (ce, ppl, (l.argmax(-1) == t).float().mean())),
         "your accuracy counts the padding positions, as wrong predictions: count the real positions only"),
        (with_right(lambda l, t, ce, ppl, acc: (ce, ppl, ((l.argmax(-1) == t) | (t == -100)).float().mean())),
         "your accuracy counts the padding positions as right"),
        (with_right(lambda l, t, ce, ppl, acc: (ce, ppl, per_row((l.argmax(-1) == t).float(), t))),
         "you took each row's accuracy, then the mean of the rows"),
        (with_right(lambda l, t, ce, ppl, acc: (ce, ppl, 100 * acc)),
         "your accuracy is a percentage: return a fraction between 0 and 1"),
        (with_right(lambda l, t, ce, ppl, acc: (ce, ppl, (l.argmax(-1) == t).sum())),
         "you returned the number of right predictions"),
    ]
    for fn, message in cases:
        assert not ex.check_lm_metrics(fn), message
        out = capsys.readouterr().out
        assert "for 3 sequences of 6 positions, real lengths [6, 4, 1] (then -100), a vocabulary of 7: " in out
        assert message in out, out


def test_lm_metrics_check_explains_shapes_types_and_errors(capsys):
    import torch.nn.functional as F

    assert not ex.check_lm_metrics(lambda l, t: F.cross_entropy(l, t))  # classes read from dim 1
    out = capsys.readouterr().out
    assert "RuntimeError" in out and "F.cross_entropy reads the classes from dim 1" in out
    assert not ex.check_lm_metrics(lambda l, t: l.log_softmax(-1).gather(-1, t[..., None]))
    assert "-100 is not a class: it marks a position that is not predicted" in capsys.readouterr().out
    assert not ex.check_lm_metrics(lambda l, t: lm_metrics_right(l, t)[:2])
    assert "return three numbers, (cross_entropy, perplexity, accuracy); you returned a tuple of 2" \
        in capsys.readouterr().out
    assert not ex.check_lm_metrics(lambda l, t: lm_metrics_right(l, t)[0])
    assert "you returned a Tensor" in capsys.readouterr().out
    assert not ex.check_lm_metrics(lambda l, t: (_token_losses(l, t), 1.0, 0.5))
    assert "your cross-entropy has shape (3, 6) (one per position; it is one number" in capsys.readouterr().out
    assert not ex.check_lm_metrics(lambda l, t: (*lm_metrics_right(l, t)[:2], "high"))
    assert "your accuracy: your answer could not be read as a tensor of numbers" in capsys.readouterr().out
    assert not ex.check_lm_metrics(lambda l, t: [v * 1.01 for v in lm_metrics_right(l, t)])
    assert "the cross-entropy should be" in capsys.readouterr().out
    assert not ex.check_lm_metrics(lambda l, t: 1 / 0)
    assert "ZeroDivisionError" in capsys.readouterr().out


def test_elman_step_check(capsys):
    import torch
    import torch.nn.functional as F

    assert ex.check_elman_step(elman_step_right)
    assert ex.check_elman_step(lambda x, h, Wi, Wh, bi, bh: torch.tanh(F.linear(x, Wi, bi) + F.linear(h, Wh, bh)))
    assert ex.check_elman_step(lambda x, h, Wi, Wh, bi, bh: torch.tanh(Wi @ x.T + bi[:, None] + Wh @ h.T
                                                                     + bh[:, None]).T)  # columns, transposed back
    assert "✅" in capsys.readouterr().out
    cases = [
        (lambda x, h, Wi, Wh, bi, bh: x @ Wi.T + bi + h @ Wh.T + bh, "you forgot the tanh"),
        (lambda x, h, Wi, Wh, bi, bh: torch.sigmoid(x @ Wi.T + bi + h @ Wh.T + bh),
         "nn.RNNCell's Elman cell squashes with tanh, not the sigmoid"),
        (lambda x, h, Wi, Wh, bi, bh: torch.tanh(x @ Wi.T + bi + h @ Wh + bh),
         "you multiplied h by W_hh, not by its transpose"),
        (lambda x, h, Wi, Wh, bi, bh: torch.tanh(x @ Wi.T + h @ Wh.T + bh),
         "you left out b_ih: nn.RNNCell adds two biases, b_ih and b_hh"),
        (lambda x, h, Wi, Wh, bi, bh: torch.tanh(x @ Wi.T + bi + h @ Wh.T),
         "you left out b_hh: nn.RNNCell adds two biases, b_ih and b_hh"),
        (lambda x, h, Wi, Wh, bi, bh: torch.tanh(x @ Wi.T + h @ Wh.T), "you left out both biases"),
        (lambda x, h, Wi, Wh, bi, bh: torch.tanh(x @ Wi.T + bi + bh), "your new state ignores the old state h"),
        (lambda x, h, Wi, Wh, bi, bh: h, "you returned the old state h unchanged"),
        (lambda x, h, Wi, Wh, bi, bh: torch.tanh(x @ Wi.T + bi) + torch.tanh(h @ Wh.T + bh),
         "you applied tanh to the input term and the recurrent term separately"),
        (lambda x, h, Wi, Wh, bi, bh: h + elman_step_right(x, h, Wi, Wh, bi, bh),
         "you added the new state to the old one: an Elman cell replaces h"),
    ]
    for fn, message in cases:
        assert not ex.check_elman_step(fn), message
        out = capsys.readouterr().out
        assert "for x of shape (3, 5) and h of shape (3, 4): " + message in out, out
    assert not ex.check_elman_step(lambda x, h, Wi, Wh, bi, bh: torch.tanh(x @ Wi + bi + h @ Wh + bh))  # W_ih
    out = capsys.readouterr().out
    assert "mat1 and mat2 shapes cannot be multiplied (3x5 and 4x5)" in out
    assert "W_ih is (d_hidden, d_in) = (4, 5)" in out and "x @ W_ih.T + b_ih" in out
    assert not ex.check_elman_step(lambda x, h, Wi, Wh, bi, bh: torch.tanh(Wi @ x.T + Wh @ h.T))  # columns
    assert "needs shape (batch, d_hidden) = (3, 4), yours has (4, 3): you computed column vectors" \
        in capsys.readouterr().out
    assert not ex.check_elman_step(lambda x, h, Wi, Wh, bi, bh: torch.tanh(Wi @ x.T + bi + Wh @ h.T + bh))
    assert "must match the size" in capsys.readouterr().out
    assert not ex.check_elman_step(lambda x, h, Wi, Wh, bi, bh: elman_step_right(x, h, Wi, Wh, bi, bh) + 0.01)
    assert "at row 0, unit 0 the new state should be" in capsys.readouterr().out
    assert not ex.check_elman_step(lambda x, h, Wi, Wh, bi, bh: 1 / 0)
    assert "ZeroDivisionError" in capsys.readouterr().out


def test_lstm_lm_parameters_check(capsys):
    import torch

    def count(vocab_size, d, tied, gates=4, biases=2, out_bias=True):
        lstm = gates * 2 * d * d + biases * gates * d
        return 2 * vocab_size * d + out_bias * vocab_size + lstm - (vocab_size * d if tied else 0)

    assert ex.check_lstm_lm_parameters(lstm_lm_parameters_right)
    out = capsys.readouterr().out
    assert "✅" in out and "73,448 untied, 41,448 tied; tying saves vocab_size * d = 32,000" in out
    assert ex.check_lstm_lm_parameters(lambda v, d, t: np.int64(lstm_lm_parameters_right(v, d, t)))
    assert ex.check_lstm_lm_parameters(lambda v, d, t: torch.tensor(lstm_lm_parameters_right(v, d, t)))
    assert "✅" in capsys.readouterr().out
    head = "for vocab_size=23, d=8, tied=False the model has 967 parameters, yours is"
    cases = [
        (lambda v, d, t: count(v, d, t, biases=1), f"{head} 935: you counted one LSTM bias of 4d; torch's "
                                                   "nn.LSTM keeps two, b_ih and b_hh"),
        (lambda v, d, t: count(v, d, t, biases=0), "you left out the LSTM's biases"),
        (lambda v, d, t: count(v, d, t, gates=3), f"{head} 823: you counted 3 gates' worth of weights; an LSTM "
                                                  "has 4 blocks"),
        (lambda v, d, t: count(v, d, t, gates=1), "you counted an Elman cell (one block of weights)"),
        (lambda v, d, t: count(v, d, t, out_bias=False), f"{head} 944: you forgot the output layer's bias"),
        (lambda v, d, t: count(v, d, t, gates=3, biases=1),
         "you counted 3 gates' worth of weights; an LSTM has 4 blocks, the input, forget and output gates and "
         "the candidate cell g, so W_ih and W_hh each have 4d rows; and you counted one LSTM bias of 4d"),
        (lambda v, d, t: count(v, d, False), "for vocab_size=23, d=8, tied=True the model has 783 parameters, "
                                             "yours is 967: with tied=True the output layer's weight is the "
                                             "embedding table itself"),
        (lambda v, d, t: count(v, d, False) - (2 * v * d if t else 0),
         "yours is 599: with tied=True you subtracted the shared (vocab_size, d) matrix twice"),
        (lambda v, d, t: count(v, d, not t), f"{head} 783: you have tied and untied the wrong way round"),
    ]
    for fn, message in cases:
        assert not ex.check_lstm_lm_parameters(fn), message
        out = capsys.readouterr().out
        assert message in out, out
    assert not ex.check_lstm_lm_parameters(lambda v, d, t: lstm_lm_parameters_right(v, d, t) + 1)
    assert f"{head} 968. Count each part" in capsys.readouterr().out
    assert not ex.check_lstm_lm_parameters(lambda v, d, t: float(lstm_lm_parameters_right(v, d, t)))
    assert "you returned a float (967.0): return the number of parameters as an int" in capsys.readouterr().out
    assert not ex.check_lstm_lm_parameters(lambda v, d, t: None)
    assert "you returned None (NoneType); return the number of parameters, an int" in capsys.readouterr().out
    assert not ex.check_lstm_lm_parameters(lambda v, d, t: True)
    assert "you returned True (bool)" in capsys.readouterr().out
    assert not ex.check_lstm_lm_parameters(lambda v, d, t: 1 / 0)
    assert "for vocab_size=23, d=8, tied=False: your function raised ZeroDivisionError" in capsys.readouterr().out


def test_neural_lm_checks_agree_with_the_package():
    """The references are the package's models: RNNLM's loss, one step of its Elman layer, and
    its own parameter count, tied and untied."""
    import torch

    from lmbook_utils.neural_lm import RNNLM, RNNLMConfig

    torch.manual_seed(0)
    model = RNNLM(RNNLMConfig.tiny(cell="rnn")).eval()
    ids = torch.randint(0, model.config.vocab_size, (2, 7))
    targets = ids.roll(-1, 1)
    targets[:, -1] = -100
    targets[1, 4:] = -100
    out = model(ids, targets=targets)
    assert torch.allclose(lm_metrics_right(out.logits, targets)[0], out.loss)
    rnn, x = model.rnn, model.embed(ids[:, 0])
    h1 = elman_step_right(x, torch.zeros(2, 8), rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)
    h2 = elman_step_right(model.embed(ids[:, 1]), h1, rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0,
                          rnn.bias_hh_l0)
    assert torch.allclose(h2, out.last_hidden_state[:, 1], atol=1e-6)
    for vocab, d, tied in ((23, 8, False), (23, 8, True), (50, 3, True)):
        lm = RNNLM(RNNLMConfig(vocab, cell="lstm", d_embed=d, d_hidden=d, n_layers=1, tie_weights=tied))
        assert sum(p.numel() for p in lm.parameters()) == lstm_lm_parameters_right(vocab, d, tied)


def test_neural_lm_checks_leave_the_global_rng_alone(capsys):
    """check_elman_step and check_lstm_lm_parameters build torch modules, whose initialization
    draws random numbers: the reader's torch stream goes on exactly where it was."""
    import torch

    torch.manual_seed(5)
    before = torch.get_rng_state()
    assert ex.check_lm_metrics(lm_metrics_right)
    assert ex.check_elman_step(elman_step_right)
    assert ex.check_lstm_lm_parameters(lstm_lm_parameters_right)
    assert torch.equal(before, torch.get_rng_state())


def test_neural_lm_checks_report_an_answer_on_the_meta_device(capsys):
    import torch

    meta = torch.device("meta")
    for check, answer in [(ex.check_lm_metrics, lambda l, t: tuple(v.to(meta) for v in lm_metrics_right(l, t))),
                          (ex.check_elman_step, lambda x, h, Wi, Wh, bi, bh: h.to(meta)),
                          (ex.check_lstm_lm_parameters, lambda v, d, t: torch.tensor(3, device=meta))]:
        assert check(answer) is False
        assert "meta" in capsys.readouterr().out


def test_neural_lm_checks_refuse_what_is_not_a_function():
    for check in (ex.check_lm_metrics, ex.check_elman_step, ex.check_lstm_lm_parameters):
        with pytest.raises(TypeError, match="fn must be a function"):
            check("F.cross_entropy")


# --- chapter 02b_word_vectors -----------------------------------------------------------------

def sgns_pair_gradients_right(v, u_pos, u_neg):
    import torch
    g_pos, g_neg = torch.sigmoid(u_pos @ v) - 1, torch.sigmoid(u_neg @ v)
    return g_pos * u_pos + g_neg @ u_neg, g_pos * v, g_neg[:, None] * v


def ppmi_right(counts):
    expected = counts.sum(1, keepdims=True) * counts.sum(0, keepdims=True) / counts.sum()
    with np.errstate(divide="ignore"):
        pmi = np.log(counts / expected)
    return np.where(counts > 0, np.maximum(pmi, 0.0), 0.0)


def procrustes_right(X, Y):
    u, _, vt = np.linalg.svd(X.T @ Y)
    return u @ vt


def test_sgns_gradients_check(capsys):
    import torch

    assert ex.check_sgns_gradients(sgns_pair_gradients_right)
    assert "✅" in capsys.readouterr().out
    assert ex.check_sgns_gradients(lambda v, u, n: [g.numpy() for g in sgns_pair_gradients_right(v, u, n)])
    capsys.readouterr()
    right = sgns_pair_gradients_right
    cases = [
        (lambda v, u, n: tuple(-g for g in right(v, u, n)), "the signs are reversed"),
        (lambda v, u, n: ((torch.sigmoid(u @ v) - 1) * u, *right(v, u, n)[1:]), "leaves out the noise words"),
        (lambda v, u, n: (right(v, u, n)[0], torch.sigmoid(u @ v) * v, right(v, u, n)[2]),
         "the derivative of -log σ(x) is σ(x) - 1, not σ(x)"),
        (lambda v, u, n: (*right(v, u, n)[:2], (torch.sigmoid(n @ v) - 1)[:, None] * v),
         "you treated it as a true context word"),
        (lambda v, u, n: (*right(v, u, n)[:2], right(v, u, n)[2].T), "has shape (4, 3); it has the shape of what it "
                                                                     "differentiates, (3, 4)"),
        (lambda v, u, n: right(v, u, n)[:2], "return three gradients"),
        (lambda v, u, n: (right(v, u, n)[0] * 1.1, *right(v, u, n)[1:]), "your grad_v is off, the largest difference"),
        (lambda v, u, n: 1 / 0, "raised ZeroDivisionError"),
    ]
    for answer, message in cases:
        assert not ex.check_sgns_gradients(answer)
        out = capsys.readouterr().out
        assert message in out and out.startswith("❌"), out


def test_sgns_gradients_check_agrees_with_the_package():
    """The reference of the check is the loss and closed-form gradients the package trains with."""
    import torch

    from lmbook_utils.word2vec import sgns_gradients, sgns_loss

    gen = torch.Generator().manual_seed(0)
    v, u = torch.randn(5, generator=gen, dtype=torch.float64), torch.randn(5, generator=gen, dtype=torch.float64)
    n = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    gv, gu, gn = sgns_pair_gradients_right(v, u, n)
    value, grad_h, grad_out = sgns_gradients(v[None], torch.cat([u[None], n]), torch.tensor([0]),
                                             torch.arange(1, 4)[None])
    assert value == pytest.approx(sgns_loss(v[None], u[None], n[None]).item())
    torch.testing.assert_close(grad_h[0], gv)
    torch.testing.assert_close(grad_out, torch.cat([gu[None], gn]))


def test_ppmi_check(capsys):
    import torch

    from lmbook_utils import word_vectors as wv

    assert ex.check_ppmi(ppmi_right) and "✅" in capsys.readouterr().out
    assert ex.check_ppmi(lambda c: wv.ppmi(c, alpha=1.0))              # the package's plain PPMI
    assert ex.check_ppmi(lambda c: torch.tensor(ppmi_right(c)))         # a tensor is accepted
    capsys.readouterr()
    with np.errstate(divide="ignore", invalid="ignore"):
        cases = [
            (lambda c: np.log(c * c.sum() / (c.sum(1, keepdims=True) * c.sum(0, keepdims=True))), "nan or inf"),
            (lambda c: np.where(c > 0, np.log(np.where(c > 0, c * c.sum(), 1) / (c.sum(1, keepdims=True)
                                                                               * c.sum(0, keepdims=True))), 0),
             "you did not clip at 0"),
            (lambda c: ppmi_right(c) / np.log(2), "in bits"),
            (lambda c: wv.ppmi(c), "you smoothed the context distribution"),
            (lambda c: ppmi_right(c)[:, :3], "has shape"),
            (lambda c: ppmi_right(c) + 0.1, "your PPMI is off"),
        ]
        for answer, message in cases:
            assert not ex.check_ppmi(answer)
            out = capsys.readouterr().out
            assert message in out and out.startswith("❌"), out


def test_procrustes_check(capsys):
    import scipy.linalg

    assert ex.check_procrustes(procrustes_right) and "✅" in capsys.readouterr().out
    assert ex.check_procrustes(lambda x, y: scipy.linalg.orthogonal_procrustes(x, y)[0])
    capsys.readouterr()
    cases = [
        (lambda x, y: procrustes_right(x, y).T, "you returned the transpose"),
        (lambda x, y: np.linalg.lstsq(x, y, rcond=None)[0], "the unconstrained least-squares map"),
        (lambda x, y: x.T @ y, "your W is not orthogonal"),
        (lambda x, y: np.eye(x.shape[1]), "your W is orthogonal, but"),
        (lambda x, y: procrustes_right(x, y)[:2], "your W has shape (2, 4)"),
        (lambda x, y: None, "could not be read as a tensor"),
    ]
    for answer, message in cases:
        assert not ex.check_procrustes(answer)
        out = capsys.readouterr().out
        assert message in out and out.startswith("❌"), out


def test_word_vectors_checks_refuse_what_is_not_a_function():
    for check in (ex.check_sgns_gradients, ex.check_ppmi, ex.check_procrustes):
        with pytest.raises(TypeError, match="fn must be a function"):
            check("np.linalg.svd")


# --- chapter 02c_encoder_decoder --------------------------------------------------------------

def reverse_source_right(ids, lengths):
    out = ids.clone()
    for i, n in enumerate(lengths.tolist()):
        out[i, :n] = ids[i, :n].flip(0)
    return out


def teacher_forcing_right(target_ids, bos_id, eos_id, pad_id, max_len):
    import torch

    def pad(row):
        return row + [pad_id] * (max_len - len(row))

    return (torch.tensor([pad([bos_id] + y) for y in target_ids]),
            torch.tensor([pad(y + [eos_id]) for y in target_ids]))


def brevity_penalty_right(hyp_len, ref_len):
    if hyp_len >= ref_len:
        return 1.0
    return math.exp(1 - ref_len / hyp_len) if hyp_len > 0 else 0.0


def test_reverse_source_check(capsys):
    import torch

    from lmbook_utils.seq2seq import reverse_real_tokens

    def by_gather(ids, lengths):  # an index per position: reversed inside the row, itself after it
        t = torch.arange(ids.shape[1])[None, :]
        n = lengths[:, None]
        return ids.gather(1, torch.where(t < n, n - 1 - t, t))

    assert ex.check_reverse_source(reverse_source_right)
    assert ex.check_reverse_source(reverse_real_tokens)
    assert ex.check_reverse_source(by_gather)
    assert ex.check_reverse_source(lambda ids, lengths: torch.stack(
        [torch.cat([row[:n].flip(0), row[n:]]) for row, n in zip(ids, lengths.tolist())]))
    assert "✅" in capsys.readouterr().out

    def in_place(ids, lengths):
        for i, n in enumerate(lengths.tolist()):
            ids[i, :n] = ids[i, :n].flip(0).clone()
        return ids

    def zeros_then_fill(ids, lengths):
        out = torch.zeros_like(ids)
        for i, n in enumerate(lengths.tolist()):
            out[i, :n] = ids[i, :n].flip(0)
        return out

    case = "for ids [[5, 8, 3, 9, 4, 7], [6, 2, 9, 0, 0, 0], [4, 0, 0, 0, 0, 0], [3, 7, 5, 8, 0, 0]] and " \
           "lengths [6, 3, 1, 4]: "
    cases = [
        (lambda ids, lengths: ids.flip(1), case + "you reversed whole rows, padding included (ids.flip(1))"),
        (lambda ids, lengths: ids.clone(), case + "you returned the rows unchanged"),
        (lambda ids, lengths: ids.flip(0), case + "you reversed the order of the rows (dim 0)"),
        (lambda ids, lengths: reverse_real_tokens(ids, lengths - 1),
         case + "you reversed one token too few in each row (lengths[i] - 1)"),
        (lambda ids, lengths: reverse_real_tokens(ids, (lengths + 1).clamp(max=ids.shape[1])),
         case + "you reversed one token too many in each row (lengths[i] + 1)"),
        (in_place, case + "your function changed ids in place (it is now [[7, 4, 9, 3, 8, 5], "),
        (lambda ids, lengths: (lengths.add_(1), reverse_source_right(ids, lengths - 1))[1],
         case + "your function changed lengths in place (it is now [7, 4, 2, 5])"),
        (lambda ids, lengths: reverse_source_right(ids, lengths).float(),
         case + "your answer has dtype torch.float32; keep ids' dtype, torch.int64"),
        (lambda ids, lengths: reverse_source_right(ids, lengths).T,
         case + "your answer has shape (6, 4), it needs ids' shape (4, 6): it is transposed"),
        (lambda ids, lengths: torch.cat([row[:n].flip(0) for row, n in zip(ids, lengths.tolist())]),
         case + "your answer has shape (14,), it needs ids' shape (4, 6): you returned the real tokens alone"),
        (lambda ids, lengths: reverse_source_right(ids, lengths).tolist(),
         case + "return a tensor like ids, of shape (4, 6); you returned a list"),
        (zeros_then_fill, "for ids [[12, 7, 1, 1, 1], [9, 4, 11, 6, 3], [8, 10, 5, 1, 1]] and lengths [2, 5, 3]: "
                          "the real tokens are right, but row 0's padding should stay as it was, [1, 1, 1]; "
                          "yours is [0, 0, 0]"),
        (lambda ids, lengths: reverse_source_right(ids, lengths) + (ids == 9),
         case + "row 0 (lengths[0] = 6) should be [7, 4, 9, 3, 8, 5], yours is [7, 4, 9, 4, 8, 5]"),
        (lambda ids, lengths: 1 / 0, case + "your function raised ZeroDivisionError"),
    ]
    for fn, message in cases:
        assert not ex.check_reverse_source(fn), message
        out = capsys.readouterr().out
        assert "❌" in out and message in out, out


def test_teacher_forcing_check(capsys):
    import torch

    def by_fill(target_ids, bos_id, eos_id, pad_id, max_len):  # tensors filled row by row
        dec = torch.full((len(target_ids), max_len), pad_id)
        tgt = torch.full((len(target_ids), max_len), pad_id)
        for i, y in enumerate(target_ids):
            dec[i, 0] = bos_id
            dec[i, 1:len(y) + 1] = torch.tensor(y)
            tgt[i, :len(y)] = torch.tensor(y)
            tgt[i, len(y)] = eos_id
        return dec, tgt

    assert ex.check_teacher_forcing(teacher_forcing_right)
    assert ex.check_teacher_forcing(by_fill)
    assert ex.check_teacher_forcing(lambda *a: list(teacher_forcing_right(*a)))  # a list of the two
    assert "✅" in capsys.readouterr().out

    def build(dec_row, tgt_row, dec_pad=None, tgt_pad=None, left=False):
        """Rows built by dec_row(y, bos, eos) and tgt_row(y, bos, eos), padded with dec_pad(pad, eos)
        and tgt_pad(pad, eos) (pad_id when None), on the left when left."""
        def fn(target_ids, bos, eos, pad, max_len):
            def padded(row, value):
                fill = [value] * (max_len - len(row))
                return (fill + row if left else row + fill)[:max_len]
            dp = pad if dec_pad is None else dec_pad(pad, eos)
            tp = pad if tgt_pad is None else tgt_pad(pad, eos)
            return (torch.tensor([padded(dec_row(y, bos, eos), dp) for y in target_ids]),
                    torch.tensor([padded(tgt_row(y, bos, eos), tp) for y in target_ids]))
        return fn

    def dec(y, bos, eos):
        return [bos] + y

    def tgt(y, bos, eos):
        return y + [eos]

    def appends(target_ids, bos, eos, pad, max_len):  # y.append(eos): the caller's lists change
        for y in target_ids:
            y.append(eos)
        return build(lambda y, b, e: [b] + y[:-1], lambda y, b, e: y)(target_ids, bos, eos, pad, max_len)

    case = "for target_ids [[5, 9, 4], [7, 3], [8, 6, 10, 11, 5]], bos_id=1, eos_id=2, pad_id=0, max_len=8: "
    case2 = "for target_ids [[9, 7], [11, 8, 10, 12], [6], [13, 9, 7, 6, 8]], bos_id=5, eos_id=4, pad_id=3, " \
            "max_len=6: "
    cases = [
        (build(dec, dec), case + "your decoder input and your targets are the same: not shifted"),
        (build(tgt, tgt), case + "your decoder input and your targets are the same: not shifted"),
        (build(tgt, dec), case + "you returned (targets, decoder_input_ids), the wrong way round"),
        (build(lambda y, b, e: [b] + y + [e], tgt), case + "your decoder input ends with eos_id: the decoder "
                                                           "never reads eos_id"),
        (build(lambda y, b, e: y, tgt), case + "your decoder input does not start with bos_id"),
        (build(lambda y, b, e: [b] + y[:-1], tgt), case + "you left the last word y_T out of the decoder input"),
        (build(lambda y, b, e: [e] + y, lambda y, b, e: y + [b]), case + "you swapped bos_id and eos_id"),
        (build(dec, lambda y, b, e: [b] + y + [e]), case + "your targets start with bos_id: the decoder reads "
                                                           "bos_id, it never has to predict it"),
        (build(dec, lambda y, b, e: y), case + "your targets have no eos_id: the model would never learn to stop"),
        (build(dec, tgt, tgt_pad=lambda pad, eos: -100),
         case + "your targets are padded with -100: Seq2Seq's loss skips the targets equal to pad_id (its "
                "ignore_index is config.pad_id, here 0)"),
        (build(dec, tgt, tgt_pad=lambda pad, eos: eos),
         case + "your targets are padded with 2 (eos_id), not with pad_id=0: the loss skips only the targets "
                "equal to pad_id, so it would train the model to predict 2 at every padding position"),
        (build(dec, tgt, tgt_pad=lambda pad, eos: 0), case2 + "your targets are padded with 0, not with pad_id=3"),
        (build(dec, tgt, dec_pad=lambda pad, eos: 0), case2 + "your decoder input is padded with 0, not with "
                                                              "pad_id=3"),
        (build(dec, tgt, dec_pad=lambda pad, eos: -100),
         case + "your decoder input is padded with -100, not with pad_id=0: nn.Embedding has no row -100"),
        (build(dec, tgt, left=True), case + "your decoder input is padded on the left: pad on the right"),
        (lambda *a: (teacher_forcing_right(*a)[0], build(dec, tgt, left=True)(*a)[1]),
         case + "your targets are padded on the left"),
        (lambda t, b, e, p, n: tuple(x[:, :6] for x in teacher_forcing_right(t, b, e, p, n)),
         case + "your decoder input has shape (3, 6); it needs (batch, max_len) = (3, 8): you padded to the "
                "longest sentence + 1 (6); pad every row to max_len"),
        (lambda *a: tuple(x.T for x in teacher_forcing_right(*a)),
         case + "your decoder input has shape (8, 3); it needs (batch, max_len) = (3, 8): it is transposed"),
        (lambda *a: tuple(x.int() for x in teacher_forcing_right(*a)),
         case + "your decoder input has dtype torch.int32; token ids are torch.long"),
        (lambda *a: (teacher_forcing_right(*a)[0], teacher_forcing_right(*a)[1].tolist()),
         case + "your targets are a list; return a tensor"),
        (lambda *a: teacher_forcing_right(*a)[0], case + "return two tensors, (decoder_input_ids, targets); you "
                                                         "returned a Tensor"),
        (appends, case + "your function changed target_ids (it is now [[5, 9, 4, 2], [7, 3, 2], "
                         "[8, 6, 10, 11, 5, 2]])"),
        (lambda *a: (teacher_forcing_right(*a)[0], teacher_forcing_right(*a)[1] + 1),
         case + "row 0 of your targets should be [5, 9, 4, 2, 0, 0, 0, 0], yours is [6, 10, 5, 3, 1, 1, 1, 1]"),
        (lambda *a: 1 / 0, case + "your function raised ZeroDivisionError"),
    ]
    for fn, message in cases:
        assert not ex.check_teacher_forcing(fn), message
        out = capsys.readouterr().out
        assert "❌" in out and message in out, out


def test_brevity_penalty_check(capsys):
    import numpy as np
    import sacrebleu
    import torch

    assert ex.check_brevity_penalty(brevity_penalty_right)
    assert ex.check_brevity_penalty(lambda h, r: sacrebleu.BLEU.compute_bleu([0] * 4, [0] * 4, h, r).bp)
    assert ex.check_brevity_penalty(lambda h, r: np.float32(min(1.0, np.exp(1 - r / h))) if h else 0)
    assert ex.check_brevity_penalty(  # a tensor; e^(1 - r/0) = e^-inf = 0 with no special case
        lambda h, r: torch.exp(torch.clamp(1 - torch.tensor(float(r)) / torch.tensor(float(h)), max=0)))
    assert "✅" in capsys.readouterr().out

    def short(f):  # f for a hypothesis shorter than the reference, 1 otherwise, 0 when empty
        return lambda h, r: 1.0 if h >= r else f(h, r) if h else 0.0

    head = "for hyp_len=9, ref_len=12 the brevity penalty is 0.7165, yours is "
    cases = [
        (short(lambda h, r: math.exp(1 - h / r)),
         head + "1.2840: you inverted the ratio, exp(1 - hyp_len/ref_len), which is above 1 for a short hypothesis"),
        (lambda h, r: math.exp(1 - r / h) if h else 0.0,
         "for hyp_len=12, ref_len=9 the brevity penalty is 1.0000, yours is 1.2840: you applied the penalty to "
         "hypotheses longer than the reference too"),
        (lambda h, r: math.exp(1 - max(h, r) / min(h, r)) if h else 0.0,
         "you penalized hypotheses longer than the reference too: the brevity penalty is 1 when hyp_len >= ref_len"),
        (short(lambda h, r: math.exp(r / h - 1)), head + "1.3956: you computed exp(ref_len/hyp_len - 1), which is "
                                                         "above 1 for a short hypothesis"),
        (lambda h, r: math.exp(r / h - 1) if h else 0.0, "you computed exp(ref_len/hyp_len - 1): the exponent is "
                                                        "1 - ref_len/hyp_len"),
        (lambda h, r: 100 * brevity_penalty_right(h, r), head + "71.6531: your penalty is a percentage: return a "
                                                              "factor between 0 and 1"),
        (short(lambda h, r: 1 - r / h), "you forgot the exp: 1 - ref_len/hyp_len is the log of the penalty"),
        (short(lambda h, r: h / r), "you returned hyp_len/ref_len"),
        (short(lambda h, r: math.exp(1 - r // h)), "you used integer division, ref_len // hyp_len"),
        (lambda h, r: 1.0 if h >= r else math.exp(1 - r / h),
         "for hyp_len=0, ref_len=7: your function raised ZeroDivisionError: division by zero"),
        (lambda h, r: 1.0 if h >= r or h == 0 else math.exp(1 - r / h),
         "for hyp_len=0, ref_len=7 you returned 1.0: the penalty of an empty hypothesis is 0"),
        (lambda h, r: 0.99 * brevity_penalty_right(h, r), head + "0.7094: it is 1 when hyp_len >= ref_len, else "
                                                               "exp(1 - ref_len/hyp_len)"),
        (lambda h, r: True, "for hyp_len=9, ref_len=12: you returned True: return the penalty, a number"),
        (lambda h, r: None, "for hyp_len=9, ref_len=12: your answer could not be read as a tensor of numbers"),
        (lambda h, r: [1.0, 0.5], "for hyp_len=9, ref_len=12: your answer has shape (2,); return one number"),
    ]
    for fn, message in cases:
        assert not ex.check_brevity_penalty(fn), message
        out = capsys.readouterr().out
        assert "❌" in out and message in out, out


def test_encoder_decoder_checks_agree_with_the_package():
    """The references are what the package does: Seq2Seq's reversed source is reverse_source_right's,
    its loss reads teacher_forcing_right's decoder input and targets and skips their padding (and
    refuses -100), and sacrebleu's corpus BLEU applies brevity_penalty_right's penalty."""
    import sacrebleu
    import torch
    import torch.nn.functional as F

    from lmbook_utils.seq2seq import Seq2Seq, Seq2SeqConfig

    torch.manual_seed(0)
    reversing = Seq2Seq(Seq2SeqConfig.tiny()).eval()
    plain = Seq2Seq(Seq2SeqConfig.tiny(reverse_source=False)).eval()
    plain.load_state_dict(reversing.state_dict())
    src = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 10, 0, 0], [5, 0, 0, 0, 0]])
    lengths = (src != 0).sum(1)
    for a, b in zip(reversing.encode(src)[1], plain.encode(reverse_source_right(src, lengths))[1]):
        assert torch.allclose(a, b, atol=1e-6)

    target_ids = [[3, 4, 5], [6, 7], [8, 9, 10, 11]]
    dec, tgt = teacher_forcing_right(target_ids, 1, 2, reversing.config.pad_id, 6)
    out = reversing(src, dec, tgt)
    keep = tgt != reversing.ignore_index
    assert int(keep.sum()) == sum(len(y) + 1 for y in target_ids)
    assert torch.allclose(out.loss, F.cross_entropy(out.logits[keep], tgt[keep]))
    with pytest.raises(IndexError, match="Target -100 is out of bounds"):  # what the check's -100 message says
        reversing(src, dec, tgt.masked_fill(~keep, -100))

    hyp, ref = "猫坐在", "猫坐在垫子上"  # tokenize="zh" scores Chinese by character: 3 against 6
    assert sacrebleu.corpus_bleu([hyp], [[ref]], tokenize="zh").bp == pytest.approx(brevity_penalty_right(3, 6))
    assert sacrebleu.corpus_bleu([ref], [[hyp]], tokenize="zh").bp == brevity_penalty_right(6, 3) == 1.0


def test_encoder_decoder_checks_report_an_answer_on_the_meta_device(capsys):
    import torch

    meta = torch.device("meta")
    for check, answer in [(ex.check_reverse_source, lambda ids, lengths: ids.to(meta)),
                          (ex.check_teacher_forcing, lambda *a: tuple(x.to(meta) for x in teacher_forcing_right(*a))),
                          (ex.check_brevity_penalty, lambda h, r: torch.tensor(1.0, device=meta))]:
        assert check(answer) is False
        assert "meta" in capsys.readouterr().out


def test_encoder_decoder_checks_refuse_what_is_not_a_function():
    for check in (ex.check_reverse_source, ex.check_teacher_forcing, ex.check_brevity_penalty):
        with pytest.raises(TypeError, match="fn must be a function"):
            check("ids.flip(1)")


# --- chapter 03_attention ---------------------------------------------------------------------

def attention_right(q, k, v, mask=None):
    import torch
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    w = scores.softmax(dim=-1)
    return w @ v, w


def test_attention_check_accepts_reference(capsys):
    assert ex.check_attention(attention_right)
    assert "✅" in capsys.readouterr().out


def test_attention_check_names_unnormalized_rows(capsys):
    def exp_only(q, k, v, mask=None):  # forgot to normalize: rows do not sum to 1
        scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).exp()
        if mask is not None:
            scores = scores * mask
        return scores @ v, scores

    assert not ex.check_attention(exp_only)
    out = capsys.readouterr().out
    assert "rows do not sum to 1" in out and "row 0 sums to" in out


def test_attention_check_names_missing_scaling(capsys):
    def unscaled(q, k, v, mask=None):
        scores = q @ k.transpose(-2, -1)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        w = scores.softmax(dim=-1)
        return w @ v, w

    assert not ex.check_attention(unscaled)
    assert "sqrt(d_k)" in capsys.readouterr().out


def test_attention_check_names_ignored_mask(capsys):
    def no_mask(q, k, v, mask=None):
        return attention_right(q, k, v, None)

    assert not ex.check_attention(no_mask)
    assert "mask" in capsys.readouterr().out


def test_causal_mask_check(capsys):
    import torch
    assert ex.check_causal_mask(lambda n: torch.ones(n, n, dtype=torch.bool).tril())
    assert not ex.check_causal_mask(lambda n: torch.ones(n, n, dtype=torch.bool).triu())
    assert "future" in capsys.readouterr().out


# --- chapter 04_transformer -------------------------------------------------------------------

def test_positional_encoding_check(capsys):
    import torch

    def right(max_len, d):
        pos = torch.arange(max_len)[:, None].double()
        i = torch.arange(0, d, 2).double()
        pe = torch.zeros(max_len, d, dtype=torch.float64)
        pe[:, 0::2] = torch.sin(pos / 10000 ** (i / d))
        pe[:, 1::2] = torch.cos(pos / 10000 ** (i / d))
        return pe

    assert ex.check_positional_encoding(right)

    def swapped(max_len, d):  # cos on even dimensions, sin on odd ones
        pe = right(max_len, d)
        return torch.stack([pe[:, 1::2], pe[:, 0::2]], dim=-1).flatten(1)

    assert not ex.check_positional_encoding(swapped)
    assert "PE[1, 0] should be sin(1)" in capsys.readouterr().out


def test_label_smoothing_check(capsys):
    import torch

    def right(target, n_classes, eps):
        dist = torch.full((len(target), n_classes), eps / n_classes)
        dist[torch.arange(len(target)), target] += 1 - eps
        return dist

    assert ex.check_label_smoothing(right)

    def all_to_others(target, n_classes, eps):  # spreads eps over the n-1 wrong classes only
        dist = torch.full((len(target), n_classes), eps / (n_classes - 1))
        dist[torch.arange(len(target)), target] = 1 - eps
        return dist

    assert not ex.check_label_smoothing(all_to_others)
    assert "eps / n_classes" in capsys.readouterr().out


# --- chapter 05_bert ---------------------------------------------------------------------------

def test_bert_input_check(capsys):
    import torch

    assert ex.check_bert_input(lambda t, s, p, ids, seg: t(ids) + s(seg) + p(torch.arange(len(ids))))
    assert not ex.check_bert_input(lambda t, s, p, ids, seg: t(ids + seg) + p(torch.arange(len(ids))))
    assert "segment embedding" in capsys.readouterr().out


def test_bert_input_check_leaves_the_global_rng_alone_and_is_deterministic(capsys):
    """The check draws its embeddings from a private generator: the reader's torch, random and
    numpy streams go on exactly where they were, and the verdict does not depend on them."""
    import random

    import torch

    def token_only(t, s, p, ids, seg):  # wrong: which token is named depends on the weights
        return t(ids)

    messages = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)
        before = (torch.get_rng_state(), random.getstate(), np.random.get_state())
        assert not ex.check_bert_input(token_only)
        after = (torch.get_rng_state(), random.getstate(), np.random.get_state())
        assert torch.equal(before[0], after[0]), "check_bert_input changed torch's global RNG state"
        assert before[1] == after[1], "check_bert_input changed python's random state"
        assert all(np.array_equal(a, b) for a, b in zip(before[2], after[2])), \
            "check_bert_input changed numpy's global RNG state"
        messages.append(capsys.readouterr().out)
    assert messages[0] == messages[1]  # the same weights whatever the reader's seed
    assert "token 4 (id 9, segment 1) is wrong" in messages[0]


def test_mask_decision_check(capsys):
    assert ex.check_mask_decision(lambda u: "mask" if u < 0.8 else "random" if u < 0.9 else "keep")
    assert ex.check_mask_decision(lambda u: "keep" if u < 0.1 else "random" if u < 0.2 else "mask")  # any order
    assert not ex.check_mask_decision(lambda u: "mask" if u < 0.8 else "random")  # forgot "keep"
    assert not ex.check_mask_decision(lambda u: "mask")
    out = capsys.readouterr().out
    assert "80%" in out and "random" in out


def test_top_k_check(capsys):
    import torch

    def right(logits, k):
        kth = torch.topk(logits, k).values[-1]
        return logits.masked_fill(logits < kth, float("-inf"))

    assert ex.check_top_k(right)
    assert not ex.check_top_k(lambda logits, k: logits.masked_fill(logits <= torch.topk(logits, k).values[-1],
                                                                   float("-inf")))  # drops the k-th
    assert "the 1 largest are [3]" in capsys.readouterr().out
    assert not ex.check_top_k(lambda logits, k: torch.where(logits >= torch.topk(logits, k).values[-1],
                                                            logits * 2, float("-inf")))
    assert "changed value" in capsys.readouterr().out


def test_top_p_check(capsys):
    import torch

    def right(logits, p):
        probs, order = torch.sort(logits.softmax(-1), descending=True)
        drop = (probs.cumsum(-1) - probs) >= p
        return logits.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), float("-inf"))

    assert ex.check_top_p(right)

    def off_by_one(logits, p):  # keeps tokens while the mass *including* them is < p
        probs, order = torch.sort(logits.softmax(-1), descending=True)
        drop = probs.cumsum(-1) >= p
        return logits.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), float("-inf"))

    assert not ex.check_top_p(off_by_one)
    assert "too small" in capsys.readouterr().out


def test_few_shot_optimum_check(capsys):
    assert ex.check_few_shot_optimum(lambda k: 0.25 if k == 0 else 1 - 2 ** (1 - k) / 3)
    assert not ex.check_few_shot_optimum(lambda k: 0.25 if k == 0 else 1 - 2 ** -k)
    assert "for k=1 the best accuracy is 0.6667" in capsys.readouterr().out
    assert not ex.check_few_shot_optimum(lambda k: 0.5)
    assert "4 labels" in capsys.readouterr().out


def test_head_score_check(capsys):
    import torch

    def right(att, links, exclude):
        att = att.clone()
        att[:, exclude] = -1.0
        return sum(int(att[q].argmax()) == t for q, t in links) / len(links)

    def columns(att, links, exclude):  # reads who attends TO the query, not where it looks
        att = att.clone()
        att[exclude, :] = -1.0
        return sum(int(att[:, q].argmax()) == t for q, t in links) / len(links)

    def no_exclude(att, links, exclude):
        return sum(int(att[q].argmax()) == t for q, t in links) / len(links)

    def count(att, links, exclude):
        return right(att, links, exclude) * len(links)

    assert ex.check_head_score(right)
    assert not ex.check_head_score(columns)
    assert "row" in capsys.readouterr().out
    assert not ex.check_head_score(no_exclude)
    assert "exclude" in capsys.readouterr().out
    assert not ex.check_head_score(count)
    assert "fraction" in capsys.readouterr().out
    assert not ex.check_head_score(lambda att, links, exclude: 1 / 0)
    assert "ZeroDivisionError" in capsys.readouterr().out


# --- chapter 07_xlnet --------------------------------------------------------------------------

def _ranks(order):
    import torch
    return torch.empty(len(order), dtype=torch.long).scatter_(0, torch.tensor(order), torch.arange(len(order)))


def query_mask_right(order):
    rank = _ranks(order)
    return rank[None, :] < rank[:, None]


def content_mask_right(order):
    rank = _ranks(order)
    return rank[None, :] <= rank[:, None]


def test_query_mask_check(capsys):
    import torch

    assert ex.check_query_mask(query_mask_right)
    assert "✅" in capsys.readouterr().out
    assert not ex.check_query_mask(content_mask_right)  # lets a position see itself
    assert "must not see itself" in capsys.readouterr().out
    assert not ex.check_query_mask(lambda order: query_mask_right(order).T)
    assert "transposed" in capsys.readouterr().out

    def order_as_rank(order):  # reads order[i] as the step of position i
        rank = torch.tensor(order)
        return rank[None, :] < rank[:, None]

    assert not ex.check_query_mask(order_as_rank)
    assert "order[s] is the position" in capsys.readouterr().out
    assert not ex.check_query_mask(lambda order: torch.ones(len(order), len(order), dtype=torch.bool).tril(-1))
    assert "left-to-right" in capsys.readouterr().out
    assert not ex.check_query_mask(lambda order: query_mask_right(order).long())
    assert "bool tensor" in capsys.readouterr().out

    def one_row_wrong(order):  # right except that the first position of the order sees position 1
        mask = query_mask_right(order)
        mask[order[0], 1] = order[0] != 1
        return mask

    assert not ex.check_query_mask(one_row_wrong)
    out = capsys.readouterr().out
    assert "row 2 (position 2, step 0 of the order [2, 0, 1]): it should not see [1]" in out
    assert not ex.check_query_mask(lambda order: 1 / 0)
    assert "ZeroDivisionError" in capsys.readouterr().out


def test_content_mask_check(capsys):
    assert ex.check_content_mask(content_mask_right)
    assert "✅" in capsys.readouterr().out
    assert not ex.check_content_mask(query_mask_right)  # forgets the diagonal
    assert "always sees itself" in capsys.readouterr().out
    assert not ex.check_content_mask(lambda order: ~content_mask_right(order))  # perm_mask's convention
    assert "may NOT see" in capsys.readouterr().out
    assert not ex.check_content_mask(lambda order: content_mask_right(order)[:, :-1])
    assert "needs shape (3, 3)" in capsys.readouterr().out
    assert not ex.check_content_mask(lambda order: order[5])  # IndexError on a short order
    assert "IndexError" in capsys.readouterr().out


def rel_shift_gather(x, klen):
    import torch
    qlen = x.shape[0]
    i, j = torch.arange(qlen)[:, None], torch.arange(klen)[None, :]
    return x.gather(1, qlen - i + j)


def rel_shift_trick(x, klen):  # rel_shift_bnij's two reshapes, for one head
    qlen, rlen = x.shape
    return x.reshape(rlen, qlen)[1:].reshape(qlen, rlen - 1)[:, :klen]


def test_rel_shift_check(capsys):
    import torch

    assert ex.check_rel_shift(rel_shift_gather)
    assert ex.check_rel_shift(rel_shift_trick)
    assert "✅" in capsys.readouterr().out
    assert not ex.check_rel_shift(lambda x, klen: x[:, :klen])  # no shift at all
    assert "not of key c" in capsys.readouterr().out

    def flipped(x, klen):  # reads distance j - i instead of i - j
        qlen = x.shape[0]
        i, j = torch.arange(qlen)[:, None], torch.arange(klen)[None, :]
        return x.gather(1, qlen + i - j)

    assert not ex.check_rel_shift(flipped)
    assert "entry [0, 1] (query 0 and key 1: distance -1) is wrong: yours holds query 0's score for distance 1" \
        in capsys.readouterr().out

    def no_memory(x, klen):  # column klen - (i - j): forgets that query i sits after the memory
        qlen = x.shape[0]
        i, j = torch.arange(qlen)[:, None], torch.arange(klen)[None, :]
        return x.gather(1, klen - i + j)

    assert not ex.check_rel_shift(no_memory)
    out = capsys.readouterr().out
    assert "works without memory but not for qlen=4, klen=6 (2 memory positions)" in out and "RuntimeError" in out
    assert not ex.check_rel_shift(lambda x, klen: x.reshape(x.shape[1], x.shape[0])[1:].reshape(x.shape[0], -1))
    assert "needs shape (3, 3) (queries, keys), yours has (3, 5)" in capsys.readouterr().out
    assert not ex.check_rel_shift(lambda x, klen: 1 / 0)
    assert "ZeroDivisionError" in capsys.readouterr().out


def test_xlnet_checks_agree_with_the_package():
    """The masks' references match the package's attention_blocks for a full-prediction order, and
    both right shifts equal rel_shift_bnij: the checks teach what the model computes."""
    import torch

    from lmbook_utils.xlnet import attention_blocks, rel_shift_bnij

    order = [4, 0, 5, 2, 1, 3]
    perm_blocked = ~query_mask_right(order)[None]  # every position a target: i may not see j unless j is earlier
    blocked_h, blocked_g = attention_blocks(None, perm_blocked, 0, len(order))
    assert torch.equal(~blocked_g[0], query_mask_right(order))
    assert torch.equal(~blocked_h[0], content_mask_right(order))
    x = torch.randn(4, 10)
    assert torch.equal(rel_shift_gather(x, 6), rel_shift_bnij(x[None, None], 6)[0, 0])
    assert torch.equal(rel_shift_trick(x, 6), rel_shift_gather(x, 6))


def test_xlnet_checks_report_an_answer_on_the_meta_device(capsys):
    import torch

    meta = torch.device("meta")
    for check, answer in [(ex.check_query_mask, lambda o: torch.zeros(len(o), len(o), dtype=torch.bool, device=meta)),
                          (ex.check_content_mask, lambda o: torch.ones(len(o), len(o), dtype=torch.bool, device=meta)),
                          (ex.check_rel_shift, lambda x, klen: x.to(meta)[:, :klen])]:
        assert check(answer) is False
        assert "meta" in capsys.readouterr().out



def _tiny_electra_batch():
    """(config, ids, masked ids, targets) of a tiny ELECTRA batch with padding in row 1, half the
    real tokens masked by ELECTRA's rule: the cases on which the chapter 08 and 08b references
    are compared with the package."""
    import torch

    from lmbook_utils.bert import mask_tokens
    from lmbook_utils.electra import ElectraConfig

    torch.manual_seed(0)
    config = ElectraConfig.tiny()
    ids = torch.randint(4, config.vocab_size, (3, 9))
    ids[1, 6:] = config.pad_id
    masked_ids, targets = mask_tokens(ids, {config.pad_id, 1}, config.vocab_size, mask_id=1, prob=0.5,
                                      generator=torch.Generator().manual_seed(1), mix=(0.85, 0.0, 0.15))
    return config, ids, masked_ids, targets


# --- chapter 08_electra ------------------------------------------------------------------------

def replaced_labels_right(original, corrupted, masked):
    return masked & (corrupted != original)


def discriminator_loss_right(logits, replaced, attention_mask):
    import torch.nn.functional as F
    per_token = F.binary_cross_entropy_with_logits(logits, replaced.float(), reduction="none")
    return (per_token * attention_mask).sum() / attention_mask.sum()


def optimal_discriminator_right(p_data, p_gen, mask_prob):
    m = mask_prob
    return m * p_gen * (1 - p_data) / ((1 - m) * p_data + m * p_gen)


def test_electra_replaced_labels_check(capsys):
    assert ex.check_replaced_labels(replaced_labels_right)
    assert "✅" in capsys.readouterr().out
    # unmasked positions are never changed, so comparing the two sequences alone is right too
    assert ex.check_replaced_labels(lambda original, corrupted, masked: corrupted != original)
    assert "✅" in capsys.readouterr().out
    assert ex.check_replaced_labels(lambda o, c, m: replaced_labels_right(o, c, m).long())  # 0/1 is fine
    out = capsys.readouterr().out
    assert "✅" in out and "torch.int64 0/1 values" in out
    assert not ex.check_replaced_labels(lambda original, corrupted, masked: masked)  # every masked one replaced
    assert ("you marked every masked position replaced, but at row 0, position 2 the generator sampled 3, "
            "the original token: a sample equal to the original is original") in capsys.readouterr().out
    assert not ex.check_replaced_labels(lambda o, c, m: ~replaced_labels_right(o, c, m))
    assert "True must mean replaced" in capsys.readouterr().out
    assert not ex.check_replaced_labels(lambda o, c, m: m & (c == o))  # flipped at the masked positions only
    assert "at row 0, position 1 (masked, the original 8, the corrupted 6) the target is True, yours is False" \
        in capsys.readouterr().out
    assert not ex.check_replaced_labels(lambda o, c, m: replaced_labels_right(o, c, m)[0])
    assert "need shape (1, 6), one per token; yours has (6,)" in capsys.readouterr().out
    assert not ex.check_replaced_labels(lambda o, c, m: replaced_labels_right(o, c, m) * 2)
    assert "True/False (or 1/0)" in capsys.readouterr().out
    assert not ex.check_replaced_labels(lambda o, c, m: o[9])
    assert "IndexError" in capsys.readouterr().out


def test_electra_discriminator_loss_check(capsys):
    import torch
    import torch.nn.functional as F

    def per_token(logits, replaced):
        return F.binary_cross_entropy_with_logits(logits, replaced.float(), reduction="none")

    assert ex.check_discriminator_loss(discriminator_loss_right)
    assert ex.check_discriminator_loss(lambda logits, replaced, mask: per_token(logits, replaced)[mask].mean())
    assert "✅" in capsys.readouterr().out
    assert not ex.check_discriminator_loss(lambda logits, replaced, mask: per_token(logits, replaced).mean())
    assert "padding included" in capsys.readouterr().out
    assert not ex.check_discriminator_loss(lambda logits, r, mask: (per_token(logits, r) * mask).mean())
    assert "divided by all positions" in capsys.readouterr().out
    assert not ex.check_discriminator_loss(lambda logits, replaced, mask: per_token(logits, replaced)[mask].sum())
    assert "you summed the losses: take their mean" in capsys.readouterr().out
    assert not ex.check_discriminator_loss(
        lambda logits, replaced, mask: discriminator_loss_right(torch.sigmoid(logits), replaced, mask))
    assert "you fed probabilities where logits are expected" in capsys.readouterr().out
    assert not ex.check_discriminator_loss(lambda logits, r, mask: discriminator_loss_right(logits, ~r, mask))
    assert "your labels are flipped" in capsys.readouterr().out
    assert not ex.check_discriminator_loss(lambda logits, replaced, mask: per_token(logits, replaced) * mask)
    assert "you returned a loss per token; the loss is one number" in capsys.readouterr().out
    assert not ex.check_discriminator_loss(lambda logits, r, mask: discriminator_loss_right(logits, r, mask).item())
    assert "carries no gradient back to the logits" in capsys.readouterr().out
    assert not ex.check_discriminator_loss(lambda logits, r, mask: discriminator_loss_right(logits, r, mask) + 0.1)
    assert "for 2 sequences of 6 positions, real lengths [6, 3]: the loss should be" in capsys.readouterr().out
    assert not ex.check_discriminator_loss(
        lambda logits, replaced, mask: F.binary_cross_entropy_with_logits(logits, 1 - replaced))
    out = capsys.readouterr().out
    assert "RuntimeError" in out and "replaced.float()" in out


def test_electra_optimal_discriminator_check(capsys):
    assert ex.check_optimal_discriminator(optimal_discriminator_right)
    assert "✅" in capsys.readouterr().out
    assert not ex.check_optimal_discriminator(lambda p_data, p_gen, m: p_data / (p_data + p_gen))  # the GAN's D*
    assert "GAN's optimal D* = p_data / (p_data + p_gen)" in capsys.readouterr().out
    assert not ex.check_optimal_discriminator(lambda p_data, p_gen, m: p_gen / (p_data + p_gen))
    assert "forgets two things" in capsys.readouterr().out
    assert not ex.check_optimal_discriminator(lambda p_data, p_gen, m: m * p_gen / ((1 - m) * p_data + m * p_gen))
    assert "multiply the numerator by 1 - p_data" in capsys.readouterr().out
    assert not ex.check_optimal_discriminator(lambda pd, pg, m: optimal_discriminator_right(pd, pg, 0.5))
    assert "you left out the masking prior" in capsys.readouterr().out
    assert not ex.check_optimal_discriminator(lambda pd, pg, m: optimal_discriminator_right(pd, pg, 1 - m))
    assert "you swapped m and 1 - m" in capsys.readouterr().out
    assert not ex.check_optimal_discriminator(lambda pd, pg, m: 1 - optimal_discriminator_right(pd, pg, m))
    assert "yours is P(original)" in capsys.readouterr().out
    assert not ex.check_optimal_discriminator(lambda pd, pg, m: optimal_discriminator_right(pd, pg, m)[:2])
    assert "the shape of p_data (5,); yours has shape (2,)" in capsys.readouterr().out
    assert not ex.check_optimal_discriminator(lambda p_data, p_gen, m: p_gen * (1 - p_data))
    assert "at token 0 (p_data = 0.500, p_gen = 0.300) P(replaced) should be 0.0479, yours is 0.1500" \
        in capsys.readouterr().out
    assert not ex.check_optimal_discriminator(lambda p_data, p_gen, m: 1 / 0)
    assert "ZeroDivisionError" in capsys.readouterr().out


def test_electra_checks_agree_with_the_package():
    """The references are the package's rules: the targets ElectraPretraining builds, the loss
    ElectraDiscriminator computes, and optimal_replaced_probability."""
    import torch

    from lmbook_utils.electra import ElectraDiscriminator, ElectraPretraining, optimal_replaced_probability

    config, ids, masked_ids, targets = _tiny_electra_batch()
    out = ElectraPretraining(config, config).eval()(masked_ids, targets=targets)
    masked = targets != ElectraPretraining.ignore_index
    assert torch.equal(replaced_labels_right(ids, out.corrupted_ids, masked), out.replaced)
    disc = ElectraDiscriminator(config).eval()
    keep = ids != config.pad_id
    d = disc(out.corrupted_ids, attention_mask=keep, targets=out.replaced)
    assert torch.allclose(discriminator_loss_right(d.logits, out.replaced, keep), d.loss)
    p_data, p_gen = torch.softmax(torch.randn(2, 7), -1), torch.softmax(torch.randn(2, 7), -1)
    assert torch.allclose(optimal_discriminator_right(p_data, p_gen, 0.15),
                          optimal_replaced_probability(p_data, p_gen, 0.15))


def test_electra_checks_report_an_answer_on_the_meta_device(capsys):
    import torch

    meta = torch.device("meta")
    for check, answer in [(ex.check_replaced_labels, lambda o, c, m: (c != o).to(meta)),
                          (ex.check_discriminator_loss, lambda logits, r, mask: logits.to(meta).mean()),
                          (ex.check_optimal_discriminator, lambda p_data, p_gen, m: p_gen.to(meta))]:
        assert check(answer) is False
        assert "meta" in capsys.readouterr().out

# --- chapter 08b_electra_ablations -------------------------------------------------------------

def scored_positions_right(objective, keep, masked):
    return keep if objective in ("ELECTRA", "All-Tokens MLM") else masked


def copy_loss_right(logits, copy_logit, original, shown, keep):
    import torch
    import torch.nn.functional as F
    log_mlm = logits.log_softmax(-1).gather(-1, original.unsqueeze(-1)).squeeze(-1)
    log_copy = F.logsigmoid(copy_logit).masked_fill(shown != original, float("-inf"))
    nll = -torch.logaddexp(log_copy, F.logsigmoid(-copy_logit) + log_mlm)
    return nll[keep].mean()


def steps_at_budget_right(step_flops, budget):
    total = 0
    for n, flops in enumerate(step_flops, start=1):
        total += flops
        if total >= budget:
            return n
    raise ValueError(f"the {len(step_flops)} steps sum to {total}, below the budget {budget}")


def test_electra_ablations_scored_positions_check(capsys):
    import torch

    assert ex.check_scored_positions(scored_positions_right)
    assert "✅" in capsys.readouterr().out
    assert ex.check_scored_positions(lambda o, keep, masked: scored_positions_right(o, keep, masked).long())
    out = capsys.readouterr().out
    assert "✅" in out and "torch.int64 0/1 values" in out
    assert not ex.check_scored_positions(lambda o, keep, masked: keep)  # every objective on every token
    assert ("for 'ELECTRA 15%' your function scores 14 positions of row 0, every real token; this ablation's "
            "discriminator still reads and labels every token, but its loss") in capsys.readouterr().out
    assert not ex.check_scored_positions(
        lambda o, keep, masked: keep if o in ("ELECTRA", "All-Tokens MLM", "BERT") else masked)
    assert "for 'BERT' your function scores 14 positions of row 0, every real token; BERT's" \
        in capsys.readouterr().out
    assert not ex.check_scored_positions(lambda o, keep, masked: keep if o == "ELECTRA" else masked)
    assert ("for 'All-Tokens MLM' your function scores 3 positions of row 0, only its masked ones; All-Tokens "
            "MLM predicts every token's identity, not only the masked ones") in capsys.readouterr().out
    assert not ex.check_scored_positions(  # padding scored
        lambda o, keep, masked: torch.ones_like(keep) if o == "ELECTRA" else masked)
    assert "position 9 among them, which is padding (row 1 has 9 real tokens)" in capsys.readouterr().out
    assert not ex.check_scored_positions(  # a row with no masked position falls back to every token
        lambda o, keep, masked: keep if o in ("ELECTRA", "All-Tokens MLM")
        else torch.where(masked.any(1, keepdim=True), masked, keep))
    assert ("for 'ELECTRA 15%' your function scores 6 positions of row 2, every real token, but row 2 has no "
            "masked position, so 'ELECTRA 15%' scores none of it") in capsys.readouterr().out
    assert not ex.check_scored_positions(
        lambda o, keep, masked: keep & ~masked if o == "BERT" else scored_positions_right(o, keep, masked))
    assert "its unmasked real tokens, the complement of the right answer" in capsys.readouterr().out
    assert not ex.check_scored_positions(lambda o, keep, masked: scored_positions_right(o, keep, masked)[0])
    assert "needs shape (3, 14), the shape of keep and masked, one per position; yours has (14,)" \
        in capsys.readouterr().out
    assert not ex.check_scored_positions(lambda o, keep, masked: keep * 2)
    assert "True/False (or 1/0)" in capsys.readouterr().out
    assert not ex.check_scored_positions(lambda o, keep, masked: None)
    assert "returned None" in capsys.readouterr().out
    assert not ex.check_scored_positions(lambda o, keep, masked: {"ELECTRA": keep, "BERT": masked}[o])
    assert "for objective 'ELECTRA 15%' your function raised KeyError" in capsys.readouterr().out


def test_electra_ablations_copy_loss_check(capsys):
    import torch
    import torch.nn.functional as F

    def naive(logits, c, original, shown, keep):  # in probability space: 1 - sigmoid(40) is 0 in float32
        d = torch.sigmoid(c)
        p = d * (shown == original) + (1 - d) * logits.softmax(-1).gather(-1, original[..., None])[..., 0]
        return -p.log()[keep].mean()

    def clamped(logits, c, original, shown, keep):
        d = torch.sigmoid(c)
        p = d * (shown == original) + (1 - d) * logits.softmax(-1).gather(-1, original[..., None])[..., 0]
        return -p.clamp_min(1e-12).log()[keep].mean()

    def no_one_minus_d(logits, c, original, shown, keep):
        log_mlm = logits.log_softmax(-1).gather(-1, original[..., None])[..., 0]
        log_copy = F.logsigmoid(c).masked_fill(shown != original, float("-inf"))
        return -torch.logaddexp(log_copy, log_mlm)[keep].mean()

    def in_place(logits, c, original, shown, keep):
        logits[~keep] = 0
        return copy_loss_right(logits, c, original, shown, keep)

    assert ex.check_copy_loss(copy_loss_right)
    assert "✅" in capsys.readouterr().out
    assert ex.check_copy_loss(  # zeroing the padding and dividing by the real tokens is right too
        lambda l, c, o, s, k: (torch.where(k, -torch.logaddexp(
            F.logsigmoid(c).masked_fill(s != o, float("-inf")),
            F.logsigmoid(-c) + l.log_softmax(-1).gather(-1, o[..., None])[..., 0]), 0.0)).sum() / k.sum())
    assert "✅" in capsys.readouterr().out
    assert not ex.check_copy_loss(naive)
    out = capsys.readouterr().out
    assert "for copy logits of +-40" in out and "your loss is inf" in out and "torch.logaddexp" in out \
        and "F.logsigmoid" in out
    assert not ex.check_copy_loss(clamped)
    out = capsys.readouterr().out
    assert "for copy logits of +-40" in out and "clamping a probability or adding an epsilon" in out
    assert not ex.check_copy_loss(lambda l, c, o, s, k: F.cross_entropy(l[k], o[k]))  # no copy mechanism
    assert "you left out the copy mechanism" in capsys.readouterr().out
    assert not ex.check_copy_loss(
        lambda l, c, o, s, k: -(F.logsigmoid(-c) + l.log_softmax(-1).gather(-1, o[..., None])[..., 0])[k].mean())
    assert "dropped the copy term D [original == shown]" in capsys.readouterr().out
    assert not ex.check_copy_loss(no_one_minus_d)
    assert "you forgot to weigh the MLM's softmax by (1 - D)" in capsys.readouterr().out
    assert not ex.check_copy_loss(lambda l, c, o, s, k: copy_loss_right(l, c, o, o, k))  # D on the original
    assert "you put the copy probability D on the original token" in capsys.readouterr().out
    assert not ex.check_copy_loss(lambda l, c, o, s, k: copy_loss_right(l, -c, o, s, k))
    assert "you swapped D and 1 - D" in capsys.readouterr().out
    assert not ex.check_copy_loss(lambda l, c, o, s, k: copy_loss_right(l, c, o, s, torch.ones_like(k)))
    assert "3 sequences of 6 positions, real lengths [6, 4, 2], a vocabulary of 9: you averaged over every " \
           "position, padding included" in capsys.readouterr().out
    assert not ex.check_copy_loss(lambda l, c, o, s, k: copy_loss_right(l, c, o, s, k) * k.sum() / k.numel())
    assert "you zeroed the padding but divided by all positions" in capsys.readouterr().out
    assert not ex.check_copy_loss(lambda l, c, o, s, k: copy_loss_right(l, c, o, s, k) * k.sum())
    assert "you summed the losses" in capsys.readouterr().out
    assert not ex.check_copy_loss(lambda l, c, o, s, k: copy_loss_right(l, c, o, s, k).expand(k.shape))
    assert "you returned a loss per token; the loss is one number" in capsys.readouterr().out
    assert not ex.check_copy_loss(lambda l, c, o, s, k: copy_loss_right(l, c, o, s, k).item())
    assert "carries no gradient back to the logits" in capsys.readouterr().out
    assert not ex.check_copy_loss(lambda l, c, o, s, k: copy_loss_right(l, c, o, s, k) * (1 + 3e-5))
    out = capsys.readouterr().out
    assert "for 2 sequences of 5 positions, real lengths [5, 5], a vocabulary of 7: the loss should be" in out
    assert "the check allows 1e-5, relative or absolute, on float32 inputs" in out
    assert not ex.check_copy_loss(in_place)
    out = capsys.readouterr().out
    assert "RuntimeError" in out and "instead of changing them in place" in out


def test_electra_ablations_steps_at_budget_check(capsys):
    import numpy as np

    def first_above(step_flops, budget):  # > instead of >=
        sums = np.cumsum(step_flops)
        if sums[-1] <= budget:
            raise ValueError("never")
        return int(np.argmax(sums > budget)) + 1

    def within(step_flops, budget):  # the most steps that stay within the budget: a cap, not a minimum
        return int((np.cumsum(step_flops) <= budget).sum())

    assert ex.check_steps_at_budget(steps_at_budget_right)
    assert "✅" in capsys.readouterr().out
    assert ex.check_steps_at_budget(lambda f, b: np.int64(steps_at_budget_right(f, b)))  # a NumPy int is fine
    assert "✅" in capsys.readouterr().out
    assert not ex.check_steps_at_budget(first_above)
    assert ("for step FLOPs [30, 20, 40, 10, 25] and a budget of 90: after 3 steps the sum is 90, which reaches "
            "the budget of 90: 3 steps, not 4. A sum equal to the budget reaches it") in capsys.readouterr().out
    assert not ex.check_steps_at_budget(lambda f, b: steps_at_budget_right(f, b) - 1)  # a 0-based index
    out = capsys.readouterr().out
    assert "after 2 steps the sum is 50, still below the budget of 90; the 3rd step brings it to 90: 3 steps, " \
           "not 2" in out and "Counting from 0?" in out
    assert not ex.check_steps_at_budget(within)
    out = capsys.readouterr().out
    assert "a budget of 95: after 3 steps the sum is 90, still below the budget of 95; the 4th step brings it " \
           "to 100: 4 steps, not 3" in out and "not a cap to stay under" in out
    assert not ex.check_steps_at_budget(lambda f, b: int(np.searchsorted(np.cumsum(f), b)) + 1)  # no ValueError
    assert "a budget of 200 your function returned 6, but the steps never reach the budget: raise ValueError" \
        in capsys.readouterr().out
    assert not ex.check_steps_at_budget(lambda f, b: int(np.searchsorted(np.cumsum(f), b)) + 1 if sum(f) >= b
                                        else list(f)[len(f)])
    assert "never reach the budget: raise ValueError; yours raised IndexError" in capsys.readouterr().out
    assert not ex.check_steps_at_budget(  # summed in float32: the sums of trillions are rounded
        lambda f, b: int(np.argmax(np.cumsum(np.asarray(f, dtype=np.float32)) >= np.float32(b))) + 1
        if sum(f) >= b else steps_at_budget_right(f, b))
    assert "Summed in float32?" in capsys.readouterr().out
    assert not ex.check_steps_at_budget(lambda f, b: float(steps_at_budget_right(f, b)))
    assert "a float: return the number of steps as an int (3)" in capsys.readouterr().out
    assert not ex.check_steps_at_budget(lambda f, b: None)
    assert "returned None (NoneType); return the number of steps, an int" in capsys.readouterr().out
    assert not ex.check_steps_at_budget(lambda f, b: f.index(b))
    assert "raised ValueError: 90 is not in list" in capsys.readouterr().out


def test_electra_ablations_checks_agree_with_the_package():
    """The references are the package's rules: ElectraPretraining's disc_positions ("all" for
    ELECTRA, "masked" for ELECTRA 15%) and ReplacedMLMPretraining's All-Tokens MLM loss."""
    import torch
    import torch.nn.functional as F

    from lmbook_utils.electra import ElectraPretraining, ReplacedMLMPretraining

    config, ids, masked_ids, targets = _tiny_electra_batch()
    keep, masked = ids != config.pad_id, targets != ElectraPretraining.ignore_index
    for objective, positions in (("ELECTRA", "all"), ("ELECTRA 15%", "masked")):
        out = ElectraPretraining(config, config, disc_positions=positions).eval()(masked_ids, targets=targets)
        scored = scored_positions_right(objective, keep, masked)
        per_token = F.binary_cross_entropy_with_logits(out.logits, out.replaced.float(), reduction="none")
        assert torch.allclose(per_token[scored].mean(), out.disc_loss)
    model = ReplacedMLMPretraining(config, config, all_tokens=True).eval()
    out = model(masked_ids, targets=targets)
    copy_logit = model.copy_head(out.last_hidden_state).squeeze(-1)
    assert torch.allclose(copy_loss_right(out.logits, copy_logit, ids, out.corrupted_ids, keep), out.main_loss)


def test_electra_ablations_checks_report_an_answer_on_the_meta_device(capsys):
    import torch

    meta = torch.device("meta")
    for check, answer in [(ex.check_scored_positions, lambda o, keep, masked: keep.to(meta)),
                          (ex.check_copy_loss, lambda logits, c, o, s, k: logits.to(meta).mean())]:
        assert check(answer) is False
        assert "meta" in capsys.readouterr().out

# --- chapter 08c_electra_longer_chinese -------------------------------------------------------

def auc_right(replaced_scores, original_scores):
    r = np.asarray(replaced_scores, dtype=float)[:, None]
    o = np.asarray(original_scores, dtype=float)[None, :]
    return float(((r > o).sum() + 0.5 * (r == o).sum()) / (r.size * o.size))


def answer_tokens_right(question, context, answer_start, answer_end):
    offset = 1 + len(question) + 1  # [CLS], the question, [SEP]
    return offset + answer_start, offset + answer_end - 1


_ZH_MARKS = "。，？！、；：“”（）"


def _zh_chars(s):
    return "".join(ch for ch in s if ch not in _ZH_MARKS and not ch.isspace())


def _longest_run(a, b):
    return max((j - i for i in range(len(a)) for j in range(i + 1, len(a) + 1) if a[i:j] in b), default=0)


def char_f1_right(prediction, truth):
    p, t = _zh_chars(prediction), _zh_chars(truth)
    overlap = _longest_run(p, t)
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(p), overlap / len(t)
    return 2 * precision * recall / (precision + recall)


def test_electra_longer_chinese_auc_check(capsys):
    import torch

    def pairs(r, o):
        return np.asarray(r, dtype=float)[:, None], np.asarray(o, dtype=float)[None, :]

    def ties_zero(r, o):
        r, o = pairs(r, o)
        return float((r > o).mean())

    def ties_one(r, o):
        r, o = pairs(r, o)
        return float((r >= o).mean())

    def undivided(r, o):
        r, o = pairs(r, o)
        return float((r > o).sum() + 0.5 * (r == o).sum())

    def accuracy(r, o):
        r, o = np.asarray(r), np.asarray(o)
        return float(((r > 0.5).sum() + (o <= 0.5).sum()) / (len(r) + len(o)))

    def in_torch(r, o):  # a torch answer: fine, a 0-d tensor is one number
        r, o = torch.as_tensor(r, dtype=torch.float64), torch.as_tensor(o, dtype=torch.float64)
        return ((r[:, None] > o).double().mean() + 0.5 * (r[:, None] == o).double().mean())

    assert ex.check_auc(auc_right)
    assert "✅" in capsys.readouterr().out
    assert ex.check_auc(in_torch)
    assert ex.check_auc(lambda r, o: np.float32(auc_right(r, o)))  # float32 precision is enough
    assert "✅" in capsys.readouterr().out
    assert not ex.check_auc(lambda r, o: auc_right(o, r))
    assert ("for replaced scores [0.9, 0.8, 0.3] and original scores [0.1, 0.4, 0.2, 0.7] (Python lists, no "
            "ties) your AUC is 0.1667, the right one 0.8333 = 1 - 0.8333: the probability that an original "
            "token scores above a replaced one") in capsys.readouterr().out
    assert not ex.check_auc(ties_zero)
    assert ("(NumPy arrays, with ties) your AUC is 0.5556, the right one 0.7222: you counted a tie as 0 (only "
            "replaced > original); a tie (the same score for a replaced and an original token, 3 of the 9 pairs "
            "here) counts one half") in capsys.readouterr().out
    assert not ex.check_auc(ties_one)
    assert "your AUC is 0.8889, the right one 0.7222: you counted a tie as 1 (replaced >= original)" \
        in capsys.readouterr().out
    assert not ex.check_auc(lambda r, o: ties_zero(o, r))
    out = capsys.readouterr().out  # the first case has no ties: it reads as swapped
    assert "= 1 - 0.8333" in out and "(replaced_scores, original_scores), in this order" in out
    assert not ex.check_auc(lambda r, o: ties_zero(o, r) if len(r) != 3 or r[0] != 0.9 else auc_right(r, o))
    assert "you swapped the two arguments (this counts the pairs where the original token scores higher) and " \
           "counted a tie as 0" in capsys.readouterr().out
    assert not ex.check_auc(undivided)
    assert ("your AUC is 10.0000, outside [0, 1]; it is a probability: the number of (replaced, original) pairs "
            "where the replaced score is higher, a tie counting one half, divided by the number of pairs, 3 x 4 "
            "= 12. You returned the count of pairs, 10, undivided.") in capsys.readouterr().out
    assert not ex.check_auc(lambda r, o: 2 * auc_right(r, o) - 0.5)
    assert "your AUC is 1.1667, outside [0, 1]" in capsys.readouterr().out
    assert not ex.check_auc(accuracy)
    assert "your AUC is 0.7143, the right one 0.8333: that is the accuracy of thresholding the scores at 0.5" \
        in capsys.readouterr().out
    assert not ex.check_auc(lambda r, o: auc_right(r, o) + 0.01)
    assert ("your AUC is 0.8433, the right one 0.8333: it is the fraction of (replaced, original) pairs where the "
            "replaced token's score is the higher one, a tie counting one half (10 of the 12 pairs have the "
            "replaced score higher and 0 are tied: (10 + 0/2) / 12)") in capsys.readouterr().out
    assert not ex.check_auc(lambda r, o: auc_right(r, o) if isinstance(r, list) else 0.5)  # the constant case
    assert "(NumPy arrays, with ties) your AUC is 0.5000, the right one 0.7222" in capsys.readouterr().out
    assert not ex.check_auc(lambda r, o: auc_right(r, o) if not isinstance(r, torch.Tensor) else r.numpy()[100])
    out = capsys.readouterr().out  # the tensors come last, and are named
    assert "(torch float32 tensors, as the chapter's discriminator returns them)" in out and "IndexError" in out
    assert not ex.check_auc(lambda r, o: np.asarray(r)[:, None] > np.asarray(o))
    assert "your function returned a bool array of shape (3, 4); return one number" in capsys.readouterr().out
    assert not ex.check_auc(lambda r, o: None)
    assert "returned None (NoneType); return one number: the AUC, a probability in [0, 1]" \
        in capsys.readouterr().out
    assert not ex.check_auc(lambda r, o: sum(r) / sum(o) / 0)
    out = capsys.readouterr().out
    assert out.startswith("❌ for replaced scores [0.9") and "your function raised ZeroDivisionError" in out


def test_electra_longer_chinese_auc_check_agrees_with_sklearn():
    from sklearn.metrics import roc_auc_score

    from lmbook_utils.exercises.ch08c_electra_longer_chinese import _auc_cases

    for _, r, o in _auc_cases():
        r, o = np.asarray(r, dtype=float), np.asarray(o, dtype=float)
        labels = np.r_[np.ones(len(r)), np.zeros(len(o))]
        assert auc_right(r, o) == pytest.approx(roc_auc_score(labels, np.r_[r, o]))
    assert auc_right([0.3] * 4, [0.3] * 5) == 0.5  # a constant discriminator, whatever its loss


def test_electra_longer_chinese_answer_tokens_check(capsys):
    import torch

    def searched(question, context, answer_start, answer_end):  # the first occurrence of the answer's text
        tokens, answer = ["[CLS]", *question, "[SEP]", *context, "[SEP]"], context[answer_start:answer_end]
        first = next(i for i in range(len(tokens)) if "".join(tokens[i:i + len(answer)]) == answer)
        return first, first + len(answer) - 1

    def context_searched(question, context, answer_start, answer_end):
        first = len(question) + 2 + context.find(context[answer_start:answer_end])
        return first, first + answer_end - answer_start - 1

    assert ex.check_answer_tokens(answer_tokens_right)
    assert "✅" in capsys.readouterr().out
    assert ex.check_answer_tokens(lambda q, c, s, e: list(answer_tokens_right(q, c, s, e)))
    assert ex.check_answer_tokens(lambda q, c, s, e: torch.tensor(answer_tokens_right(q, c, s, e)))
    assert ex.check_answer_tokens(lambda q, c, s, e: tuple(np.array(answer_tokens_right(q, c, s, e))))
    assert "✅" in capsys.readouterr().out
    case = ("for question '鲍勃读了什么？', context '鲍勃读了一本书。' and the answer '一本书' (answer_start=4, "
            "answer_end=7)")
    layout = ("the input is [CLS], the question's 7 characters, [SEP], then the context, so the context's "
              "character i is token 7 + 2 + i = 9 + i, and the answer is tokens 13 to 15")
    assert not ex.check_answer_tokens(lambda q, c, s, e: (len(q) + 1 + s, len(q) + e))  # [CLS] forgotten
    assert (f"{case}: your positions are (12, 14), which read '了一本', one token too early: {layout}. Did you "
            "forget [CLS] at position 0, or the [SEP] after the question?") in capsys.readouterr().out
    assert not ex.check_answer_tokens(lambda q, c, s, e: (1 + len(q) + s, 1 + len(q) + e - 1))  # [SEP] forgotten
    assert "one token too early" in capsys.readouterr().out
    assert not ex.check_answer_tokens(lambda q, c, s, e: (len(q) + s, len(q) + e - 1))  # both
    assert (f"{case}: your positions are (11, 13), which read '读了一', two tokens too early: you forgot both "
            "[CLS] at position 0 and the [SEP] after the question") in capsys.readouterr().out
    assert not ex.check_answer_tokens(lambda q, c, s, e: (len(q) + 2 + s, len(q) + 2 + e))  # last exclusive
    assert (f"{case}: your positions are (13, 16), which read '一本书。': your last is one past the answer; last "
            "is inclusive, the position of the answer's last character, answer_end - 1 in the context "
            "(answer_end is one past it): (13, 15)") in capsys.readouterr().out
    assert not ex.check_answer_tokens(lambda q, c, s, e: (len(q) + 1 + s, len(q) + 1 + e))  # both mistakes
    assert "your positions are (12, 15), which read '了一本书': two mistakes. Your first is one token too early" \
        in capsys.readouterr().out
    assert not ex.check_answer_tokens(lambda q, c, s, e: (len(q) + 3 + s, len(q) + 3 + e - 1))
    assert "one token too late" in capsys.readouterr().out
    assert not ex.check_answer_tokens(lambda q, c, s, e: (s, e - 1))
    assert "those are offsets in the context, not positions in the input" in capsys.readouterr().out
    assert not ex.check_answer_tokens(lambda q, c, s, e: answer_tokens_right(q, c, s, e)[::-1])
    assert "first and last are swapped; return (first, last) = (13, 15)" in capsys.readouterr().out
    assert not ex.check_answer_tokens(searched)
    assert ("for question '亨利去了市场还是花园？', context '亨利去了花园。' and the answer '花园' (answer_start=4, "
            "answer_end=6): your positions are (9, 10), which read '花园': you searched for the answer '花园' and "
            "found it in the question, at token 9") in capsys.readouterr().out
    assert not ex.check_answer_tokens(context_searched)
    assert ("your positions are (10, 11), which read '公园': you searched for the answer '公园' and found it "
            "earlier in the context, at token 10; the answer is the occurrence at context offset 12") \
        in capsys.readouterr().out
    assert not ex.check_answer_tokens(lambda q, c, s, e: answer_tokens_right(q, c, s, e) if s != 5 else (0, 0))
    out = capsys.readouterr().out  # the answer at the very end of the context
    assert "context '莉莉看见了一只白猫'" in out and "the answer is tokens 15 to 18" in out
    assert not ex.check_answer_tokens(lambda q, c, s, e: answer_tokens_right(q, c, s, e)[0])
    assert (f"{case} your function returned 13 (int); return a pair (first, last), the token positions of the "
            "answer's first and last characters: (13, 15) here") in capsys.readouterr().out
    assert not ex.check_answer_tokens(lambda q, c, s, e: (*answer_tokens_right(q, c, s, e), len(q) + len(c) + 3))
    assert "returned (13, 15, 18) (tuple); return a pair (first, last)" in capsys.readouterr().out
    assert not ex.check_answer_tokens(lambda q, c, s, e: None)
    assert "returned None (NoneType); return a pair" in capsys.readouterr().out
    assert not ex.check_answer_tokens(lambda q, c, s, e: tuple(map(float, answer_tokens_right(q, c, s, e))))
    assert "return the positions as ints, not floats: (13, 15) here" in capsys.readouterr().out
    assert not ex.check_answer_tokens(lambda q, c, s, e: (True, False))
    assert "first and last are token positions, ints" in capsys.readouterr().out
    assert not ex.check_answer_tokens(lambda q, c, s, e: (q.index("[CLS]"), 0))
    assert f"{case} your function raised ValueError: substring not found" in capsys.readouterr().out


def test_electra_longer_chinese_answer_tokens_reference_lines_up_with_toyworld():
    """On toyworld's Chinese questions the positions read the answer back, character for character."""
    from lmbook_utils.exercises.ch08c_electra_longer_chinese import _answer_cases
    from lmbook_utils.toyworld import qa_examples_zh

    cases = _answer_cases()
    assert len(cases) == 13 and any(c.find(c[s:e]) != s for _, c, s, e in cases[6:])  # a repeated answer
    for e in qa_examples_zh(50, seed=2018):
        tokens = ["[CLS]", *e.question, "[SEP]", *e.context, "[SEP]"]
        first, last = answer_tokens_right(e.question, e.context, e.answer_start, e.answer_end)
        assert "".join(tokens[first:last + 1]) == e.answer == e.context[e.answer_start:e.answer_end]


def test_electra_longer_chinese_char_f1_check(capsys):
    from collections import Counter

    def with_overlap(overlap, clean=_zh_chars):
        def f1(prediction, truth):
            p, t = clean(prediction), clean(truth)
            k = overlap(p, t)
            return 0.0 if k == 0 else 2 * k / (len(p) + len(t))
        return f1

    def no_zero_test(prediction, truth):
        p, t = _zh_chars(prediction), _zh_chars(truth)
        precision, recall = _longest_run(p, t) / len(p), _longest_run(p, t) / len(t)
        return 2 * precision * recall / (precision + recall)

    def with_numpy(prediction, truth):
        p, t = _zh_chars(prediction), _zh_chars(truth)
        k = np.float64(_longest_run(p, t))
        with np.errstate(all="ignore"):
            precision, recall = k / max(len(p), 1), k / max(len(t), 1)
            return precision * recall * 2 / (precision + recall)

    bag = with_overlap(lambda p, t: sum((Counter(p) & Counter(t)).values()))
    kept_marks = with_overlap(_longest_run, clean=lambda s: "".join(s.split()))
    kept_spaces = with_overlap(_longest_run, clean=lambda s: "".join(ch for ch in s if ch not in _ZH_MARKS))

    assert ex.check_char_f1(char_f1_right)
    assert "✅" in capsys.readouterr().out
    assert ex.check_char_f1(lambda p, t: np.float32(char_f1_right(p, t)))  # float32 precision is enough
    from lmbook_utils.qa import char_f1
    assert ex.check_char_f1(char_f1)
    assert "✅" in capsys.readouterr().out
    assert not ex.check_char_f1(bag)
    assert ("for prediction '一块蛋糕' and truth '一块大蛋糕' your F1 is 0.8889, that of an overlap of 4 characters "
            "counted wherever they stand (a bag of characters or a common subsequence with gaps); CMRC's overlap "
            "is the longest run of consecutive characters found in both: after removing whitespace and "
            "punctuation they are '一块蛋糕' and '一块大蛋糕', their longest common run of characters is '一块' (2 "
            "of 4 and 5 characters), so P = 2/4, R = 2/5 and F1 = 2PR/(P+R) = 0.4444. Find the longest common "
            "substring") in capsys.readouterr().out
    assert not ex.check_char_f1(with_overlap(lambda p, t: len(set(p) & set(t))))
    assert "that of an overlap of 4 characters counted wherever they stand (a bag of characters" \
        in capsys.readouterr().out
    assert not ex.check_char_f1(kept_marks)
    assert ("for prediction '一本书。' and truth '一本书' your F1 is 0.8571, as if the punctuation were part of the "
            "answers: remove 。，？！、；：“”（） from both strings before comparing ('一本书。' becomes '一本书')") \
        in capsys.readouterr().out
    assert not ex.check_char_f1(kept_spaces)
    assert ("for prediction '他 去了 火车站' and truth '火车站' your F1 is 0.5455, as if the spaces were characters "
            "of the answer: remove whitespace too") in capsys.readouterr().out
    assert not ex.check_char_f1(no_zero_test)
    assert ("for prediction '火车站' and truth '图书馆' your function raised ZeroDivisionError: float division by "
            "zero (line") in (out := capsys.readouterr().out)
    assert "when the overlap is 0, return 0.0 before dividing" in out
    assert not ex.check_char_f1(with_numpy)
    assert ("for prediction '火车站' and truth '图书馆' your F1 is nan: nothing overlaps here ('火车站' and '图书馆' "
            "after removing whitespace and punctuation), so precision and recall are 0 and 2PR/(P+R) is 0/0") \
        in capsys.readouterr().out
    assert not ex.check_char_f1(lambda p, t: 1.0 if _zh_chars(p) == _zh_chars(t) else char_f1_right(p, t))
    assert ("for prediction '' and truth '' your F1 is 1.0000, but both are empty once whitespace and punctuation "
            "are removed: nothing overlaps, so F1 = 0.0") in capsys.readouterr().out
    assert not ex.check_char_f1(lambda p, t: char_f1_right(p, t) if _zh_chars(p) else 0.5)
    assert "for prediction '' and truth '火车站' your F1 is 0.5000, but the prediction is empty" \
        in capsys.readouterr().out
    assert not ex.check_char_f1(lambda p, t: char_f1_right(p, t) or 0.1)
    assert "for prediction '火车站' and truth '图书馆' your F1 is 0.1000, but the two share no character" \
        in capsys.readouterr().out
    assert not ex.check_char_f1(lambda p, t: _longest_run(_zh_chars(p), _zh_chars(t)) / len(_zh_chars(p))
                                if _longest_run(_zh_chars(p), _zh_chars(t)) else 0.0)
    assert "your F1 is 0.5000, the precision 2/4; F1 combines it with the recall 2/5" in capsys.readouterr().out
    assert not ex.check_char_f1(lambda p, t: 100 * char_f1_right(p, t))
    assert "for prediction '一本书' and truth '一本书' your F1 is 100.0000, a percentage" in capsys.readouterr().out
    assert not ex.check_char_f1(lambda p, t: float(_zh_chars(p) == _zh_chars(t)))
    assert "your F1 is 0.0000, the exact match; the character F1 gives partial credit" in capsys.readouterr().out
    assert not ex.check_char_f1(lambda p, t: char_f1_right(p, t) * 0.9)
    assert ("for prediction '一本书' and truth '一本书' your F1 is 0.9000; after removing whitespace and punctuation "
            "they are '一本书' and '一本书'") in capsys.readouterr().out
    assert not ex.check_char_f1(lambda p, t: None)
    assert "returned None (NoneType); return one number: the F1, a fraction in [0, 1]" in capsys.readouterr().out
    assert not ex.check_char_f1(lambda p, t: p[100])
    assert "for prediction '一本书' and truth '一本书' your function raised IndexError" in capsys.readouterr().out


def test_electra_longer_chinese_char_f1_cases_are_where_the_definitions_agree():
    """The check's cases hold Chinese characters and the exercise's marks only, where qa.char_f1
    (which removes more marks and splits Latin words) is the exercise's definition."""
    from lmbook_utils.exercises.ch08c_electra_longer_chinese import _f1_cases
    from lmbook_utils.qa import char_f1

    cases = _f1_cases()
    assert len(cases) == 27
    for prediction, truth in cases:
        assert all("\u4e00" <= ch <= "\u9fff" or ch in _ZH_MARKS or ch == " " for ch in prediction + truth)
        assert char_f1(prediction, truth) == pytest.approx(char_f1_right(prediction, truth), abs=1e-12)
    assert char_f1_right("一块蛋糕", "一块大蛋糕") == pytest.approx(4 / 9)
    assert char_f1_right("公园", "花园") == 0.5


def test_electra_longer_chinese_checks_report_an_answer_on_the_meta_device(capsys):
    import torch

    meta = torch.device("meta")
    for check, answer in [(ex.check_auc, lambda r, o: torch.tensor(0.5, device=meta)),
                          (ex.check_answer_tokens, lambda q, c, s, e: torch.tensor([1, 2], device=meta)),
                          (ex.check_char_f1, lambda p, t: torch.tensor(1.0, device=meta))]:
        assert check(answer) is False
        assert "meta" in capsys.readouterr().out

# --- the package: one module per chapter, the same names as before ------------------------------

def test_every_check_is_reexported_from_its_chapter_module():
    import importlib

    chapters = {"ch00_introduction": 3, "ch01_ngram": 3, "ch02_neural_lm": 3, "ch02b_word_vectors": 3, "ch02c_encoder_decoder": 3,
                "ch03_attention": 2,
                "ch04_transformer": 2, "ch05_bert": 3, "ch06_gpt": 3, "ch07_xlnet": 3, "ch07b_xlnet_ablations": 3,
                "ch08_electra": 3, "ch08b_electra_ablations": 3, "ch08c_electra_longer_chinese": 3}
    seen = []
    for name, count in chapters.items():
        module = importlib.import_module(f"lmbook_utils.exercises.{name}")
        assert len(module.__all__) == count, name
        for check in module.__all__:
            assert getattr(ex, check) is getattr(module, check)
            assert f"Introduced in chapter {name[2:]}" in getattr(module, check).__doc__
        seen += module.__all__
    assert sorted(seen) == sorted(ex.__all__) and len(set(seen)) == len(seen) == 40
    assert set(ex.__all__) <= set(dir(ex))
    with pytest.raises(AttributeError, match="has no attribute 'check_nothing'; the checks are"):
        ex.check_nothing
