"""The LSTM encoder-decoder: gates by hand, packing, reversal, decoding, the broken pieces, BLEU."""

from __future__ import annotations

import itertools

import pytest
import sacrebleu
import torch

from lmbook_utils.decoding import beam_search, generate
from lmbook_utils.seq2seq import (BrokenEncoder, Seq2Seq, Seq2SeqConfig, bleu_by_length,
                                  broken_decoder_concat_state, exact_match, reverse_real_tokens)
from lmbook_utils.toyworld.views import translation_pairs

torch.set_num_threads(1)
BOS = 1


def model_with(seed: int = 0, **changes) -> Seq2Seq:
    """A tiny model with weights large enough that its outputs depend on the source (the
    paper's +-0.08 start gives nearly flat logits, where every decoder agrees by accident)."""
    torch.manual_seed(seed)
    model = Seq2Seq(Seq2SeqConfig.tiny(**changes)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.7)
    return model


# right-padded sources of lengths 5, 3 and 1 (pad_id 0)
SOURCES = [[3, 4, 5, 6, 7], [8, 9, 2], [5]]
PADDED = torch.tensor([row + [0] * (5 - len(row)) for row in SOURCES])


def test_config_checks_name_the_field():
    with pytest.raises(ValueError, match="Seq2SeqConfig.n_layers must be an int >= 1, got 0"):
        Seq2SeqConfig(10, 10, n_layers=0)
    with pytest.raises(ValueError, match="Seq2SeqConfig.d_hidden must be an int"):
        Seq2SeqConfig(10, 10, d_hidden=8.0)
    with pytest.raises(ValueError, match="Seq2SeqConfig.dropout"):
        Seq2SeqConfig(10, 10, dropout=1.0)
    with pytest.raises(ValueError, match="Seq2SeqConfig.reverse_source must be a bool"):
        Seq2SeqConfig(10, 10, reverse_source=1)
    with pytest.raises(ValueError, match="Seq2SeqConfig.pad_id"):
        Seq2SeqConfig(10, 12, pad_id=10)  # outside the source vocabulary
    with pytest.raises(TypeError, match="config must be a Seq2SeqConfig"):
        Seq2Seq(10)
    model = Seq2Seq(Seq2SeqConfig.tiny())
    assert model.ignore_index == model.config.pad_id == 0 and model.config.reverse_source
    # the paper's initialization: every parameter within +-0.08
    assert all(float(p.detach().abs().max()) <= 0.08 for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) < 10_000


def test_one_lstm_step_is_the_gate_formulas():
    model = model_with(n_layers=1)
    lstm = model.encoder
    torch.manual_seed(1)
    x, h0, c0 = torch.randn(3, 8), torch.randn(3, 12), torch.randn(3, 12)
    # PyTorch stacks the four gates' weights in the order i, f, g, o
    w_i, w_f, w_g, w_o = lstm.weight_ih_l0.chunk(4)
    u_i, u_f, u_g, u_o = lstm.weight_hh_l0.chunk(4)
    b = (lstm.bias_ih_l0 + lstm.bias_hh_l0).chunk(4)
    i = torch.sigmoid(x @ w_i.T + h0 @ u_i.T + b[0])
    f = torch.sigmoid(x @ w_f.T + h0 @ u_f.T + b[1])
    g = torch.tanh(x @ w_g.T + h0 @ u_g.T + b[2])
    o = torch.sigmoid(x @ w_o.T + h0 @ u_o.T + b[3])
    c1 = f * c0 + i * g
    h1 = o * torch.tanh(c1)
    with torch.no_grad():
        out, (h, c) = lstm(x[:, None], (h0[None], c0[None]))
    torch.testing.assert_close(c[0], c1, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(h[0], h1, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out[:, 0], h1, atol=1e-6, rtol=1e-5)


def test_reverse_real_tokens_leaves_the_padding_in_place():
    got = reverse_real_tokens(PADDED, torch.tensor([5, 3, 1]))
    assert got.tolist() == [[7, 6, 5, 4, 3], [2, 9, 8, 0, 0], [5, 0, 0, 0, 0]]
    x = torch.arange(2 * 3 * 2).view(2, 3, 2)  # (batch, T, d): whole vectors move
    assert reverse_real_tokens(x, torch.tensor([2, 3]))[0].tolist() == [[2, 3], [0, 1], [4, 5]]


@pytest.mark.parametrize("reverse", [True, False])
def test_a_padded_batch_gives_each_row_what_it_gets_alone(reverse):
    model = model_with(reverse_source=reverse)
    tgt = torch.tensor([[BOS, 4, 5, 6]] * 3)
    with torch.no_grad():
        batch = model(PADDED, tgt)
        mask = PADDED != 0
        assert torch.equal(model(PADDED, tgt, attention_mask=mask).logits, batch.logits)
        for b, row in enumerate(SOURCES):
            alone = model(torch.tensor([row]), tgt[b:b + 1])
            torch.testing.assert_close(batch.logits[b], alone.logits[0], atol=1e-6, rtol=1e-5)
            for got, want in zip(batch.encoder_final_state, alone.encoder_final_state):
                torch.testing.assert_close(got[b], want[0], atol=1e-6, rtol=1e-5)
            n = len(row)
            torch.testing.assert_close(batch.encoder_last_hidden_state[b, :n],
                                       alone.encoder_last_hidden_state[0], atol=1e-6, rtol=1e-5)
            assert torch.all(batch.encoder_last_hidden_state[b, n:] == 0)
        # what packing prevents: an LSTM run over the padded rows reads the pads into its state
        _, (h_unpacked, _) = model.encoder(model.src_emb(PADDED))
    h_packed = batch.encoder_final_state[0].transpose(0, 1)
    if not reverse:  # the full-length row has no padding, so there the two agree
        torch.testing.assert_close(h_unpacked[:, 0], h_packed[:, 0], atol=1e-6, rtol=1e-5)
    for b in (1, 2):
        assert (h_unpacked[:, b] - h_packed[:, b]).abs().max() > 1e-2


def test_reversal_reverses_only_the_real_tokens():
    forward_model = model_with(reverse_source=False)
    reversed_model = model_with(reverse_source=False)
    reversed_model.config.reverse_source = True  # same weights, source fed reversed
    tgt = torch.tensor([[BOS, 4]] * 3)
    with torch.no_grad():
        out = reversed_model(PADDED, tgt)
        for b, row in enumerate(SOURCES):
            want = forward_model(torch.tensor([row[::-1]]), tgt[:1])
            torch.testing.assert_close(out.encoder_final_state[0][b], want.encoder_final_state[0][0],
                                       atol=1e-6, rtol=1e-5)
            # the encoder's outputs come back in source order: source token j was read n-1-j-th
            n = len(row)
            torch.testing.assert_close(out.encoder_last_hidden_state[b, :n],
                                       want.encoder_last_hidden_state[0].flip(0), atol=1e-6, rtol=1e-5)
    # so the last token read, the first of the source, holds the top layer's final h
    torch.testing.assert_close(out.encoder_last_hidden_state[:, 0], out.encoder_final_state[0][:, -1])


def test_the_decoder_sees_the_source_only_through_the_fixed_size_state():
    model = model_with()
    tgt = torch.tensor([[BOS, 4, 5]])
    with torch.no_grad():
        short = model(torch.tensor([[3, 4]]), tgt)
        long = model(torch.tensor([[3, 4, 5, 6, 7, 8, 9, 10, 3, 4]]), tgt)
        assert short.encoder_final_state[0].shape == long.encoder_final_state[0].shape == (1, 2, 12)
        assert (short.logits - long.logits).abs().max() > 1e-3  # the source does matter
        # the decoder run by hand from that state alone gives the model's logits
        h, c = (s.transpose(0, 1).contiguous() for s in long.encoder_final_state)
        out, _ = model.decoder(model.tgt_emb(tgt), (h, c))
        torch.testing.assert_close(model.out(out), long.logits)
        torch.testing.assert_close(out, long.last_hidden_state)


def test_teacher_forcing_is_causal_and_the_loss_ignores_padding_targets():
    model = model_with()
    src = PADDED[:2]
    tgt = torch.tensor([[BOS, 3, 4, 5, 6], [BOS, 6, 7, 2, 0]])
    targets = torch.tensor([[3, 4, 5, 6, 2], [6, 7, 2, 0, 0]])
    with torch.no_grad():
        out = model(src, tgt, targets)
        changed = tgt.clone()
        changed[:, 3:] = 9  # right padding (or anything later) cannot reach earlier positions
        torch.testing.assert_close(model(src, changed).logits[:, :3], out.logits[:, :3])
        keep = targets != 0
        logp = out.logits.log_softmax(-1)
        by_hand = -logp[keep].gather(1, targets[keep][:, None]).mean()
        torch.testing.assert_close(out.loss, by_hand)
        mask = tgt != 0
        assert torch.equal(model(src, tgt, decoder_attention_mask=mask).logits, out.logits)


def test_bad_input_is_named():
    model = model_with()
    tgt = torch.tensor([[BOS, 2]])
    with pytest.raises(ValueError, match=r"input_ids must be a \(batch, seq\) tensor"):
        model(torch.tensor([3, 4]), tgt)
    with pytest.raises(ValueError, match="input_ids holds ids outside"):
        model(torch.tensor([[3, 11]]), tgt)
    with pytest.raises(ValueError, match="decoder_input_ids holds ids outside"):
        model(torch.tensor([[3, 4]]), torch.tensor([[1, 13]]))
    with pytest.raises(ValueError, match="attention_mask must be right padding"):
        model(torch.tensor([[3, 4]]), tgt, attention_mask=torch.tensor([[False, True]]))
    with pytest.raises(ValueError, match=r"input_ids \(pad_id\) must be right padding"):
        model(torch.tensor([[0, 4]]), tgt)
    with pytest.raises(ValueError, match="at least one real token"):
        model(torch.tensor([[3, 4], [0, 0]]), torch.tensor([[1, 2], [1, 2]]))
    with pytest.raises(ValueError, match="decoder_input_ids has 1 rows, input_ids 2"):
        model(torch.tensor([[3, 4], [5, 6]]), tgt)
    with pytest.raises(ValueError, match="decoder_attention_mask must be right padding"):
        model(torch.tensor([[3, 4]]), tgt, decoder_attention_mask=torch.tensor([[False, True]]))
    with pytest.raises(ValueError, match=r"targets must be an integer tensor of shape \(1, 2\)"):
        model(torch.tensor([[3, 4]]), tgt, torch.tensor([[2]]))
    with pytest.raises(ValueError, match="max_len=16"):
        generate(model, torch.tensor([[3]]), 16, bos_id=BOS)


def greedy_by_hand(model: Seq2Seq, src: list[int], steps: int) -> list[int]:
    ys = [BOS]
    with torch.no_grad():
        for _ in range(steps):
            ys.append(int(model(torch.tensor([src]), torch.tensor([ys])).logits[0, -1].argmax()))
    return ys


def test_generate_is_the_greedy_loop_over_forward_with_and_without_the_cache():
    model = model_with()
    want = [greedy_by_hand(model, row, 8) for row in SOURCES]
    assert len({tuple(w) for w in want}) > 1  # the sources lead to different translations
    for use_cache in (True, False):
        assert generate(model, PADDED, 8, bos_id=BOS, use_cache=use_cache).tolist() == want
    # with an end id, a row stops there and is filled with the padding id
    eos = want[0][3]
    got = generate(model, PADDED[:1], 8, bos_id=BOS, eos_id=eos)[0].tolist()
    first = want[0].index(eos, 1)
    assert got[:first + 1] == want[0][:first + 1] and set(got[first + 1:]) <= {0}


def sequence_logprob(model: Seq2Seq, src: list[int], ys: list[int]) -> float:
    """log p(ys[1:] | src), ys starting with BOS, from teacher-forced logits."""
    with torch.no_grad():
        logp = model(torch.tensor([src]), torch.tensor([ys[:-1]])).logits[0].log_softmax(-1)
    return float(logp.gather(1, torch.tensor(ys[1:])[:, None]).sum())


def test_beam_search_of_one_is_greedy_and_exhaustive_beams_find_the_best():
    model = model_with()
    for row in SOURCES:
        greedy = greedy_by_hand(model, row, 6)
        assert beam_search(model, torch.tensor([row]), 6, bos_id=BOS, beam_size=1)[0].tolist() == greedy
    # three new tokens with V**2 beams keep every two-token prefix: the search is exact, so it
    # finds the brute-force best of all V**3 targets, which cannot be worse than greedy's
    src, vocab = SOURCES[1], model.config.tgt_vocab
    best = beam_search(model, torch.tensor([src]), 3, bos_id=BOS, beam_size=vocab ** 2,
                       length_penalty=0.0)[0].tolist()
    every = torch.tensor([[BOS, *t] for t in itertools.product(range(vocab), repeat=3)])
    with torch.no_grad():
        logp = model(torch.tensor([src]).expand(len(every), -1), every[:, :-1]).logits.log_softmax(-1)
    scores = logp.gather(2, every[:, 1:, None]).squeeze(2).sum(1)
    assert best == every[int(scores.argmax())].tolist()
    greedy = greedy_by_hand(model, src, 3)
    assert sequence_logprob(model, src, best) >= sequence_logprob(model, src, greedy) - 1e-6
    # and the beams of a batch are searched row by row: same as each row alone
    batch = beam_search(model, PADDED, 4, bos_id=BOS, beam_size=3)
    for b, row in enumerate(SOURCES):
        assert batch[b].tolist() == beam_search(model, torch.tensor([row]), 4, bos_id=BOS, beam_size=3)[0].tolist()


def test_the_source_documents_mistakes_fail_as_shown():
    embedded = torch.randn(2, 4, 8)
    state = (torch.randn(1, 2, 12), torch.randn(1, 2, 12))
    with pytest.raises(RuntimeError, match="input_size"):
        broken_decoder_concat_state(embedded, state)
    fixed = broken_decoder_concat_state(embedded, state, input_size=8 + 2 * 12)  # the only fault
    assert fixed.shape == (2, 4, 12)
    encoder = BrokenEncoder(10, 8, 12)
    x = torch.tensor([[3, 4, 5]])
    with pytest.raises(TypeError, match="hidden"):
        encoder(x)
    out, (h, c) = encoder(x, None)  # given the argument it never receives, it runs
    assert out.shape == (1, 3, 12) and h.shape == (1, 1, 12)


def test_bleu_by_length_is_sacrebleu_on_each_bin():
    pairs = translation_pairs(60, seed=3)
    refs = [p.zh for p in pairs]
    hyps = [z[:-2] if i % 3 else z for i, z in enumerate(refs)]  # some cut short, some right
    lengths = [len(p.en.split()) for p in pairs]
    bins = [(1, 4), (5, 6), (7, 100), (200, 300)]
    rows = bleu_by_length(hyps, refs, lengths, bins)
    assert [(r["low"], r["high"]) for r in rows] == bins
    for r in rows[:3]:
        chosen = [i for i, n in enumerate(lengths) if r["low"] <= n <= r["high"]]
        assert r["n"] == len(chosen) > 0
        want = sacrebleu.corpus_bleu([hyps[i] for i in chosen], [[refs[i] for i in chosen]], tokenize="zh")
        assert r["bleu"] == want.score
    assert rows[3] == {"low": 200, "high": 300, "n": 0, "bleu": None}
    assert sum(r["n"] for r in rows) == 60  # every length fell in a bin
    assert bleu_by_length(refs, refs, lengths, [(1, 100)])[0]["bleu"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="references has 59 items"):
        bleu_by_length(hyps, refs[:-1], lengths, bins)
    with pytest.raises(ValueError, match="lengths has 59 items"):
        bleu_by_length(hyps, refs, lengths[:-1], bins)
    with pytest.raises(ValueError, match="bins must hold at least one"):
        bleu_by_length(hyps, refs, lengths, [])
    with pytest.raises(ValueError, match="bins must be"):
        bleu_by_length(hyps, refs, lengths, [(5, 1)])
    with pytest.raises(ValueError, match="bins must increase"):
        bleu_by_length(hyps, refs, lengths, [(1, 5), (5, 9)])


def test_exact_match():
    assert exact_match(["我", "你好", "他"], ["我", "你", "他"]) == pytest.approx(2 / 3)
    assert exact_match([[1, 2]], [[1, 2]]) == 1.0
    with pytest.raises(ValueError, match="refs has 1 items"):
        exact_match(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="hyps must not be empty"):
        exact_match([], [])


def test_runs_on_the_meta_device():
    meta = torch.device("meta")
    with meta:
        model = Seq2Seq(Seq2SeqConfig.tiny())
    src = torch.zeros(3, 5, dtype=torch.long, device=meta)
    tgt = torch.zeros(3, 4, dtype=torch.long, device=meta)
    mask = torch.ones(3, 5, dtype=torch.bool, device=meta)
    out = model(src, tgt, tgt, attention_mask=mask, decoder_attention_mask=tgt != 0)
    assert out.logits.device == meta and out.logits.shape == (3, 4, 13) and out.loss.device == meta
    assert out.encoder_final_state[0].shape == (3, 2, 12) and out.encoder_last_hidden_state.shape == (3, 5, 12)
    context = model.decoding_context(src, None)
    caches = model.new_caches()
    logits = model.next_token_logits(tgt[:, :1], None, context, caches)
    assert logits.device == meta and caches[0].state[0].device == meta
    assert model.next_token_logits(tgt[:, 1:2], None, context, caches).shape == (3, 13)


def test_same_seed_same_weights_and_outputs():
    def build(seed):
        torch.manual_seed(seed)
        return Seq2Seq(Seq2SeqConfig.tiny(dropout=0.2, n_layers=2)).train()

    tgt = torch.tensor([[BOS, 4, 5, 6]] * 3)
    outs = []
    for seed in (5, 5, 6):
        model = build(seed)
        torch.manual_seed(100)  # the dropout draws
        outs.append((model.state_dict(), model(PADDED, tgt).logits))
    assert all(torch.equal(outs[0][0][k], outs[1][0][k]) for k in outs[0][0])
    assert torch.equal(outs[0][1], outs[1][1])
    assert not torch.equal(outs[0][0]["out.weight"], outs[2][0]["out.weight"])
