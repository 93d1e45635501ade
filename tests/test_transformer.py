"""The Transformer: sinusoids by hand, parity with torch.nn.Transformer, decoding on forced models."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lmbook_utils.attention import causal_mask
from lmbook_utils.decoding import beam_search, generate
from lmbook_utils.transformer import (Decoder, Encoder, Transformer, TransformerConfig, copy_from_torch,
                                      sinusoidal_positions)

torch.set_num_threads(2)


def test_sinusoids_by_hand():
    pe = sinusoidal_positions(50, 8)
    assert pe.shape == (50, 8)
    assert math.isclose(pe[1, 0], math.sin(1.0), rel_tol=1e-6)
    assert math.isclose(pe[1, 1], math.cos(1.0), rel_tol=1e-6)
    assert math.isclose(pe[7, 2], math.sin(7 / 10000 ** (2 / 8)), rel_tol=1e-6)
    assert math.isclose(pe[7, 7], math.cos(7 / 10000 ** (6 / 8)), rel_tol=1e-6)
    assert torch.all(pe[0, 0::2] == 0) and torch.all(pe[0, 1::2] == 1)
    with pytest.raises(ValueError, match="even"):
        sinusoidal_positions(10, 7)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_matches_torch(norm_first):
    torch.manual_seed(0)
    theirs = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True, norm_first=norm_first),
        num_layers=2, norm=nn.LayerNorm(32) if norm_first else None, enable_nested_tensor=False)
    ours = Encoder(2, 32, 4, 64, dropout=0.0, norm_first=norm_first)
    copy_from_torch(ours, theirs)
    x = torch.randn(3, 6, 32)
    keep = torch.tensor([[True] * 6, [True] * 4 + [False] * 2, [True] * 5 + [False]])
    got, _ = ours(x, key_mask=keep)
    want = theirs(x, src_key_padding_mask=~keep)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True])
def test_full_encoder_decoder_matches_torch_transformer(norm_first):
    torch.manual_seed(1)
    theirs = nn.Transformer(32, 4, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=64,
                            dropout=0.0, batch_first=True, norm_first=norm_first)
    # torch.nn.Transformer always ends both stacks with a LayerNorm
    enc = Encoder(2, 32, 4, 64, dropout=0.0, norm_first=norm_first, final_norm=True)
    dec = Decoder(2, 32, 4, 64, dropout=0.0, norm_first=norm_first, final_norm=True)
    copy_from_torch(enc, theirs.encoder)
    copy_from_torch(dec, theirs.decoder)
    src, tgt = torch.randn(2, 7, 32), torch.randn(2, 5, 32)
    src_keep = torch.tensor([[True] * 7, [True] * 5 + [False] * 2])
    want = theirs(src, tgt, tgt_mask=~causal_mask(5), src_key_padding_mask=~src_keep,
                  memory_key_padding_mask=~src_keep)
    memory, _ = enc(src, key_mask=src_keep)
    got, self_w, cross_w = dec(tgt, memory, memory_key_mask=src_keep, need_weights=True)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert cross_w[0].shape == (2, 4, 5, 7) and torch.all(cross_w[1][1, :, :, 5:] == 0)
    assert torch.all(self_w[0][..., ~causal_mask(5)] == 0)


def test_copy_from_torch_refuses_mismatches():
    with pytest.raises(TypeError, match="cannot copy"):
        copy_from_torch(Encoder(1, 8, 2, 16), nn.TransformerDecoder(
            nn.TransformerDecoderLayer(8, 2, 16, batch_first=True), 1))
    with pytest.raises(ValueError, match="depth"):
        copy_from_torch(Encoder(2, 8, 2, 16), nn.TransformerEncoder(
            nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 1, enable_nested_tensor=False))


def small_model(**kw) -> Transformer:
    torch.manual_seed(0)
    return Transformer(TransformerConfig(src_vocab=12, tgt_vocab=10, d_model=16, n_heads=2, n_layers=1, d_ff=32,
                                         dropout=0.0, max_len=20, **kw))


def test_teacher_forcing_is_causal_and_padding_is_ignored_by_the_loss():
    model = small_model().eval()
    src = torch.tensor([[3, 4, 5, 0], [6, 7, 0, 0]])
    tgt = torch.tensor([[1, 3, 4, 5, 6], [1, 6, 7, 2, 0]])
    a = model(src, tgt).logits
    changed = tgt.clone()
    changed[:, 3:] = 9
    b = model(src, changed).logits
    torch.testing.assert_close(a[:, :3], b[:, :3])
    out = torch.tensor([[3, 4, 5, 6, 2], [6, 7, 2, 0, 0]])
    loss = model(src, tgt, out).loss
    keep = out != 0
    by_hand = nn.functional.cross_entropy(a[keep], out[keep])
    torch.testing.assert_close(loss, by_hand)
    # padding in the source changes nothing: one more pad column, same logits
    wider = torch.cat([src, torch.zeros(2, 1, dtype=torch.long)], dim=1)
    torch.testing.assert_close(model(wider, tgt).logits, a, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_learns_to_reverse_short_sequences(positions):
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(8, 8, d_model=32, n_heads=4, n_layers=1, d_ff=64, dropout=0.0,
                                          max_len=10, positions=positions, pad_id=0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        src = torch.randint(3, 8, (32, 4), generator=g)
        tgt = torch.cat([torch.ones(32, 1, dtype=torch.long), src.flip(1), torch.full((32, 1), 2)], dim=1)
        loss = model(src, tgt[:, :-1], tgt[:, 1:]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    src = torch.randint(3, 8, (16, 4), generator=g)
    out = generate(model, src, 6, bos_id=1, eos_id=2)
    assert torch.equal(out[:, 1:5], src.flip(1)) and torch.all(out[:, 5] == 2)


class ForcedModel(nn.Module):
    """A Decodable whose next-token log-probs depend only on the last token; the table is
    chosen by the first source id."""

    is_encoder_decoder = True
    config = TransformerConfig.tiny(max_len=8)  # pad_id 0, room for 7 new tokens

    def __init__(self, tables: dict[int, dict[int, dict[int, float]]], vocab: int = 5) -> None:
        super().__init__()
        self.tables, self.vocab = tables, vocab

    def decoding_context(self, src, attention_mask):
        return {"first": src[:, 0]}

    def new_caches(self):
        return None

    def next_token_logits(self, tgt, attention_mask, context, caches):
        logits = torch.full((tgt.shape[0], self.vocab), -1e9)
        for b in range(tgt.shape[0]):
            for tok, p in self.tables[int(context["first"][b])].get(int(tgt[b, -1]), {}).items():
                logits[b, tok] = math.log(p)
        return logits


# ids: 0 pad, 1 bos, 2 eos, 3 A, 4 B
GREEDY_TRAP = {1: {3: 0.6, 4: 0.4}, 3: {3: 0.36, 4: 0.34, 2: 0.30}, 4: {2: 0.9, 3: 0.1}}
SIMPLE = {1: {3: 0.6, 4: 0.4}, 3: {2: 0.7, 4: 0.3}, 4: {2: 0.9, 3: 0.1}}


def test_greedy_walks_into_the_trap_and_beam_search_avoids_it():
    model = ForcedModel({7: GREEDY_TRAP})
    src = torch.tensor([[7, 5]])
    greedy = generate(model, src, 6, bos_id=1, eos_id=2)
    assert greedy.tolist() == [[1, 3, 3, 3, 3, 3, 3]]  # max_len respected, no EOS ever chosen
    # P(A EOS) = 0.18, P(B EOS) = 0.36: the best complete sentence starts with the worse token
    beam = beam_search(model, src, 6, bos_id=1, eos_id=2, beam_size=2, length_penalty=0.0)
    assert beam.tolist() == [[1, 4, 2]]


def test_beam_of_one_equals_greedy_and_batches_equal_single_examples():
    model = ForcedModel({7: SIMPLE, 8: GREEDY_TRAP})
    src = torch.tensor([[7, 1], [8, 1]])
    greedy = generate(model, src, 5, bos_id=1, eos_id=2)
    assert greedy.tolist() == [[1, 3, 2, 0, 0, 0], [1, 3, 3, 3, 3, 3]]  # ended rows padded
    for b in range(2):
        single = generate(model, src[b:b + 1], 5, bos_id=1, eos_id=2)
        assert single[0].tolist() == [t for t in greedy[b].tolist()][:single.shape[1]]
    beam1 = beam_search(model, src[:1], 5, bos_id=1, eos_id=2, beam_size=1, length_penalty=0.0)
    assert beam1.tolist() == [[1, 3, 2]]
    both = beam_search(model, src, 5, bos_id=1, eos_id=2, beam_size=3, length_penalty=0.0)
    assert both.tolist() == [[1, 3, 2], [1, 4, 2]]
    # length_penalty 1 (the default) ranks by mean log-probability: in the trap, A EOS
    # (ln(.6 * .3) / 2 = -0.86) and A A EOS (ln(.6 * .36 * .3) / 3 = -0.91) lose to B EOS
    # (ln(.4 * .9) / 2 = -0.51) as well
    assert beam_search(model, src[1:], 5, bos_id=1, eos_id=2, beam_size=3).tolist() == [[1, 4, 2]]


def test_bad_input_is_named():
    model = small_model()
    with pytest.raises(ValueError, match=r"input_ids must be a \(batch, seq\) tensor"):
        model(torch.tensor([3, 4]), torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match="decoder_input_ids holds ids outside"):
        model(torch.tensor([[3, 4]]), torch.tensor([[1, 10]]))
    with pytest.raises(ValueError, match="exceeds the position table"):
        model(torch.ones(1, 25, dtype=torch.long), torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match=r"targets must be an integer tensor of shape \(1, 2\)"):
        model(torch.tensor([[3, 4]]), torch.tensor([[1, 2]]), torch.tensor([[2]]))
    with pytest.raises(ValueError, match="TransformerConfig.positions must be"):
        TransformerConfig(10, 10, positions="rotary")
    with pytest.raises(ValueError, match="TransformerConfig.pad_id"):
        TransformerConfig(10, 10, pad_id=10)
    with pytest.raises(TypeError, match="config must be a TransformerConfig"):
        Transformer(10)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, torch.tensor([[3]]), 0, bos_id=1, eos_id=2)
    with pytest.raises(ValueError, match="bos_id"):
        generate(model, torch.tensor([[3]]), 3, eos_id=2)
    with pytest.raises(ValueError, match="max_len=20"):
        generate(model, torch.tensor([[3]]), 20, bos_id=1)
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(model, torch.tensor([[3]]), 3, bos_id=1, eos_id=2, beam_size=0)
    with pytest.raises(ValueError, match="length_penalty"):
        beam_search(model, torch.tensor([[3]]), 3, bos_id=1, eos_id=2, length_penalty=-1)


def test_config_preset_and_the_loss_ignores_padding_targets():
    model = Transformer(TransformerConfig.tiny())
    assert model.ignore_index == model.config.pad_id == 0
    assert sum(p.numel() for p in model.parameters()) < 20_000
