"""Bengio's NPLM and the recurrent language models, against hand computations and torch."""

import math

import pytest
import torch
import torch.nn.functional as F

from lmbook_utils.decoding import beam_search, generate
import numpy as np

from lmbook_utils.neural_lm import (NPLM, RNNLM, NPLMConfig, RNNLMConfig, gradient_norms_by_distance,
                                   interpolate_log2, interpolation_weight, token_log2_probs)


def _ids(batch=3, length=9, vocab=23, seed=0):
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def _model(kind, **kw):
    torch.manual_seed(0)
    if kind == "nplm":
        return NPLM(NPLMConfig.tiny(**kw)).eval()
    return RNNLM(RNNLMConfig.tiny(cell=kind, **kw)).eval()


@pytest.mark.parametrize("field, value, message", [
    ("vocab_size", 0, r"NPLMConfig.vocab_size must be an int >= 1, got 0"),
    ("context", 0, r"NPLMConfig.context must be an int >= 1, got 0"),
    ("d_hidden", 2.5, r"NPLMConfig.d_hidden must be an int >= 1, got 2.5"),
    ("direct", 1, r"NPLMConfig.direct must be a bool, got 1"),
    ("dropout", 1.0, r"NPLMConfig.dropout must be a number in \[0, 1\), got 1.0"),
    ("pad_id", -1, r"NPLMConfig.pad_id must be an int >= 0 or None, got -1"),
])
def test_nplm_config_names_the_bad_field(field, value, message):
    kwargs = {"vocab_size": 10, field: value}
    with pytest.raises(ValueError, match=message):
        NPLMConfig(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"cell": "gru"}, r"RNNLMConfig.cell must be one of \('rnn', 'lstm'\), got 'gru'"),
    ({"n_layers": 0}, r"RNNLMConfig.n_layers must be an int >= 1, got 0"),
    ({"tie_weights": True, "d_embed": 8, "d_hidden": 16},
     r"RNNLMConfig.tie_weights needs d_embed == d_hidden, got d_embed=8, d_hidden=16"),
    ({"dropout": -0.1}, r"RNNLMConfig.dropout must be a number in \[0, 1\)"),
])
def test_rnnlm_config_names_the_bad_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RNNLMConfig(vocab_size=10, **kwargs)


def test_models_refuse_wrong_configs_and_ids():
    with pytest.raises(TypeError, match="config must be an NPLMConfig, got RNNLMConfig"):
        NPLM(RNNLMConfig(10))
    with pytest.raises(TypeError, match="config must be an RNNLMConfig, got NPLMConfig"):
        RNNLM(NPLMConfig(10))
    for kind in ("nplm", "lstm"):
        with pytest.raises(ValueError, match=r"input_ids holds ids outside \[0, 23\): min 0, max 23"):
            _model(kind)(torch.tensor([[0, 23]]))


@pytest.mark.parametrize("direct", [False, True])
def test_nplm_equals_bengio_formula_by_hand(direct):
    """y = b + W x + U tanh(d + H x), x = [C(w_{t-n+1}), ..., C(w_t)], the start padded with the first token."""
    model = _model("nplm", direct=direct)
    ids = _ids(2, 6)
    logits = model(ids).logits
    C, H, d = model.embed.weight, model.hidden.weight, model.hidden.bias
    U, b = model.out.weight, model.out.bias
    for row in range(2):
        seq = [int(ids[row, 0])] * 2 + ids[row].tolist()   # context 3: two copies of the first token before it
        for t in range(6):
            window = seq[t:t + 3]
            x = torch.cat([C[w] for w in window])
            y = b + U @ torch.tanh(d + H @ x)
            if direct:
                y = y + model.direct.weight @ x
            torch.testing.assert_close(logits[row, t], y, atol=1e-6, rtol=1e-6)


def test_nplm_reads_exactly_its_window():
    model = _model("nplm")                  # context 3: position 6 reads positions 4, 5, 6
    ids = _ids(1, 8)
    base = model(ids).logits[0, 6]
    for pos, changes in [(3, False), (4, True), (6, True), (7, False)]:
        other = ids.clone()
        other[0, pos] = (other[0, pos] + 1) % 23
        moved = not torch.allclose(model(other).logits[0, 6], base)
        assert moved == changes, pos


@pytest.mark.parametrize("kind", ["nplm", "rnn", "lstm"])
def test_loss_is_cross_entropy_over_predicted_positions(kind):
    model = _model(kind)
    ids, targets = _ids(), _ids(seed=1)
    targets[0, 5:] = -100
    out = model(ids, targets)
    logp = out.logits.log_softmax(-1)
    keep = targets != -100
    by_hand = -logp[keep].gather(-1, targets[keep][:, None]).mean()
    torch.testing.assert_close(out.loss, by_hand)
    with pytest.raises(ValueError, match=r"targets must be an integer tensor of shape \(3, 9\)"):
        model(ids, targets[:, :4])


def test_elman_cell_by_hand():
    model = _model("rnn")
    ids = _ids(2, 5)
    out = model(ids)
    x = model.embed(ids)
    W, U = model.rnn.weight_ih_l0, model.rnn.weight_hh_l0
    b = model.rnn.bias_ih_l0 + model.rnn.bias_hh_l0
    h = torch.zeros(2, 8)
    for t in range(5):
        h = torch.tanh(x[:, t] @ W.T + h @ U.T + b)
        torch.testing.assert_close(out.last_hidden_state[:, t], h, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(out.logits[:, -1], h @ model.out.weight.T + model.out.bias, atol=1e-6, rtol=1e-6)


def test_lstm_cell_by_hand():
    """PyTorch's gate order: input, forget, cell candidate, output."""
    model = _model("lstm")
    ids = _ids(2, 5)
    out = model(ids)
    x = model.embed(ids)
    W, U = model.rnn.weight_ih_l0, model.rnn.weight_hh_l0
    b = model.rnn.bias_ih_l0 + model.rnn.bias_hh_l0
    h, c = torch.zeros(2, 8), torch.zeros(2, 8)
    for t in range(5):
        i, f, g, o = (x[:, t] @ W.T + h @ U.T + b).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        torch.testing.assert_close(out.last_hidden_state[:, t], h, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(out.state[1][0], c, atol=1e-6, rtol=1e-6)


def test_tied_weights_share_one_matrix_and_save_its_parameters():
    untied, tied = _model("lstm"), _model("lstm", tie_weights=True)
    assert tied.out.weight is tied.embed.weight
    count = lambda m: sum(p.numel() for p in m.parameters())   # parameters() lists a shared tensor once
    assert count(untied) - count(tied) == 23 * 8
    loss = tied(_ids(), _ids(seed=1)).loss
    loss.backward()
    assert tied.embed.weight.grad is not None and tied.embed.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_state_continues_a_text(kind):
    model = _model(kind)
    ids = _ids(2, 10)
    whole = model(ids)
    first = model(ids[:, :4])
    rest = model(ids[:, 4:], state=first.state)
    torch.testing.assert_close(torch.cat([first.logits, rest.logits], 1), whole.logits, atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match=r"state must be a tuple \(h, c\)|state must be one tensor h"):
        model(ids, state=torch.zeros(3, 3))


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_truncated_bptt_keeps_values_and_cuts_gradients(kind):
    model = _model(kind)
    ids, targets = _ids(2, 12), _ids(2, 12, seed=1)
    torch.testing.assert_close(model(ids, targets, bptt=4).loss, model(ids, targets).loss)
    full = gradient_norms_by_distance(model, ids)
    cut = gradient_norms_by_distance(model, ids, bptt=4)
    # 11 inputs read, chunks [0, 4), [4, 8), [8, 11): the last target's gradient stops at position 8
    assert torch.all(cut[:8] == 0) and torch.all(cut[8:] > 0)
    assert torch.all(full > 0)
    torch.testing.assert_close(cut[8:], full[8:])
    with pytest.raises(ValueError, match="bptt must be an int >= 1 or None, got 0"):
        model(ids, bptt=0)


def test_nplm_gradient_stops_at_its_window():
    model = _model("nplm")          # context 3
    ids = _ids(2, 9)
    norms = gradient_norms_by_distance(model, ids)   # 8 inputs read; the last target sees positions 5, 6, 7
    assert norms.shape == (8,)
    assert torch.all(norms[:5] == 0) and torch.all(norms[5:] > 0)
    short = _ids(2, 3)               # 2 inputs read: the repeated first token counts for position 0
    assert torch.all(gradient_norms_by_distance(model, short) > 0)


@pytest.mark.parametrize("kind", ["nplm", "rnn", "lstm"])
def test_right_padding_leaves_each_row_alone(kind):
    model = _model(kind)
    a, b = _ids(1, 7), _ids(1, 4, seed=2)
    batch = torch.cat([a, F.pad(b, (0, 3), value=0)])
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    out = model(batch, attention_mask=mask).logits
    torch.testing.assert_close(out[0], model(a).logits[0], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(out[1, :4], model(b).logits[0], atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="attention_mask has padding before a real token"):
        model(batch, attention_mask=mask.flip(1))


@pytest.mark.parametrize("kind", ["nplm", "rnn", "lstm"])
def test_generate_greedy_is_the_argmax_loop(kind):
    model = _model(kind)
    prompt = _ids(2, 3)
    seqs = prompt
    for _ in range(6):
        nxt = model(seqs).logits[:, -1].argmax(-1, keepdim=True)
        seqs = torch.cat([seqs, nxt], 1)
    assert torch.equal(generate(model, prompt, 6), seqs)
    assert torch.equal(generate(model, prompt, 6, use_cache=False), seqs)
    assert torch.equal(beam_search(model, prompt[:1], 6, beam_size=1), seqs[:1])


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_sampling_with_the_state_cache_equals_recomputing(kind):
    model = _model(kind)
    prompt = _ids(2, 3)
    a = generate(model, prompt, 8, do_sample=True, seed=5)
    b = generate(model, prompt, 8, do_sample=True, seed=5, use_cache=False)
    assert torch.equal(a, b)


def test_same_seed_same_weights():
    a, b = _model("lstm"), _model("lstm")
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_bengio_parameter_count():
    """|V|(1 + n m + h) + h(1 + (n - 1) m) in the paper's notation, n - 1 = context, with direct connections."""
    V, n1, m, h = 23, 3, 4, 8
    model = NPLM(NPLMConfig(vocab_size=V, context=n1, d_embed=m, d_hidden=h, direct=True))
    paper = V * (1 + n1 * m + h) + h * (1 + n1 * m)
    embeddings = V * m   # the paper counts C separately: |V| m
    assert sum(p.numel() for p in model.parameters()) == paper + embeddings


@pytest.mark.parametrize("kind", ["nplm", "rnn", "lstm"])
def test_meta_device(kind):
    with torch.device("meta"):
        model = NPLM(NPLMConfig.tiny()) if kind == "nplm" else RNNLM(RNNLMConfig.tiny(cell=kind))
        ids = torch.zeros(2, 5, dtype=torch.long)
        out = model(ids, ids)
    assert out.logits.device.type == "meta" and out.logits.shape == (2, 5, 23)


def test_gradient_norms_need_two_positions():
    with pytest.raises(ValueError, match="input_ids must have at least 2 positions, got 1"):
        gradient_norms_by_distance(_model("lstm"), _ids(2, 1))
    with pytest.raises(ValueError, match="bptt applies to an RNNLM only"):
        gradient_norms_by_distance(_model("nplm"), _ids(2, 4), bptt=2)
    assert math.isfinite(float(gradient_norms_by_distance(_model("rnn"), _ids(2, 4)).sum()))


# --- scoring a text token by token, and mixing two models -----------------------------------------

def test_token_log2_probs_equal_per_token_cross_entropy():
    torch.manual_seed(0)
    model = RNNLM(RNNLMConfig.tiny(vocab_size=11, tie_weights=True))
    ids = [3, 1, 4, 1, 5, 9, 2, 6]
    with torch.no_grad():
        logits = model.eval()(torch.tensor([ids[:-1]])).logits[0]
    nats = F.cross_entropy(logits, torch.tensor(ids[1:]), reduction="none")      # -ln p, independently
    np.testing.assert_allclose(token_log2_probs(model, ids), -(nats / math.log(2)).numpy(), rtol=1e-6)
    # one stream: the 5th token's probability depends on all four before it, not a window
    changed = token_log2_probs(model, [7] + ids[1:])
    assert changed[3] != pytest.approx(token_log2_probs(model, ids)[3], abs=1e-9)
    with pytest.raises(ValueError, match="ids"):
        token_log2_probs(model, [3])


def test_interpolate_log2_by_hand():
    a, b = np.log2([0.5, 0.1]), np.log2([0.1, 0.9])
    # 0.25 * 0.5 + 0.75 * 0.1 = 0.2 and 0.25 * 0.1 + 0.75 * 0.9 = 0.7
    np.testing.assert_allclose(interpolate_log2(0.25, a, b), np.log2([0.2, 0.7]))
    np.testing.assert_allclose(interpolate_log2(1, a, b), a)
    np.testing.assert_allclose(interpolate_log2(0.0, a, b), b)
    with pytest.raises(ValueError, match="lam"):
        interpolate_log2(1.5, a, b)
    with pytest.raises(ValueError, match="same tokens"):
        interpolate_log2(0.5, a, b[:1])


def test_interpolation_weight_finds_the_share_of_tokens_a_gets_right():
    # a gives probability 1 on a quarter of the tokens and 0 elsewhere, b the reverse: the mixture
    # gives lam or 1 - lam, and 0.25 log lam + 0.75 log(1 - lam) is largest at lam = 0.25 (on the grid)
    a = np.log2(np.array([1.0] * 10 + [1e-300] * 30))
    b = np.log2(np.array([1e-300] * 10 + [1.0] * 30))
    assert interpolation_weight(a, b) == pytest.approx(0.25)
    assert interpolation_weight(b, a) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="n_grid"):
        interpolation_weight(a, b, n_grid=1)
