"""XLNet: parity with Hugging Face transformers (plain, permutation masks, memory, segments, token
classification, generation with and without memory, bi_data), the relative shift, the permutation
sampler, export (with a left-padding tokenizer), bad input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmbook_utils.xlnet import (XLNet, XLNetConfig, XLNetTokenClassifier, from_hf_state_dict, generate,
                                hf_config, rel_shift_bnij, rel_shift_direct, relative_positional_encoding,
                                sample_permutation, save_pretrained, to_hf_state_dict)

torch.set_num_threads(2)
transformers = pytest.importorskip("transformers")

TOL = {"atol": 1e-5, "rtol": 1e-5}
VOCAB = 23
CONFIGS = [  # small and different: one layer, four heads, clamped distances with ReLU
    {"d_model": 16, "n_heads": 2, "n_layers": 1, "d_inner": 32},
    {"d_model": 32, "n_heads": 4, "n_layers": 2, "d_inner": 48},
    {"d_model": 24, "n_heads": 3, "n_layers": 2, "d_inner": 40, "clamp_len": 3, "ff_activation": "relu"},
]


def hf_xlnet_config(cfg: XLNetConfig, **extra):
    """Hugging Face's config for ours, written out here (not with hf_config, which the export test checks)."""
    return transformers.XLNetConfig(
        vocab_size=cfg.vocab_size, d_model=cfg.d_model, n_layer=cfg.n_layers, n_head=cfg.n_heads,
        d_inner=cfg.d_inner, ff_activation=cfg.ff_activation, layer_norm_eps=cfg.layer_norm_eps, dropout=0.0,
        mem_len=cfg.mem_len, reuse_len=cfg.reuse_len, clamp_len=cfg.clamp_len, bi_data=cfg.bi_data,
        pad_token_id=0, bos_token_id=None, eos_token_id=None, **extra)


@torch.no_grad()
def randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every weight random, LayerNorm gains near 1. The default initialization leaves biases at zero
    and makes attention nearly uniform at these widths, which would hide a wrong bias or position term."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        noise = torch.randn(p.shape, generator=g)
        p.copy_(1 + 0.1 * noise if name.endswith("layer_norm.weight") else 0.2 * noise)
    return model


def pair(seed: int, **sizes) -> tuple[XLNet, object]:
    """A random Hugging Face XLNetLMHeadModel and our XLNet with its weights, both in eval mode."""
    cfg = XLNetConfig(vocab_size=VOCAB, dropout=0.0, **sizes)
    theirs = randomize(transformers.XLNetLMHeadModel(hf_xlnet_config(cfg)), seed).eval()
    ours = XLNet(cfg).eval()
    from_hf_state_dict(ours, theirs)
    return ours, theirs


def batch(seed: int, b: int = 3, t: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention_mask (True = real): row 0 padded on the right, row 1 on the left
    (XLNet's tokenizer pads on the left), row 2 not padded."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (b, t), generator=g)
    keep = torch.ones(b, t, dtype=torch.bool)
    keep[0, t - 2:] = False
    keep[1, :3] = False
    ids[~keep] = 0
    return ids, keep


# ---- parity with Hugging Face -----------------------------------------------------------------
@pytest.mark.parametrize("i", range(len(CONFIGS)))
def test_bidirectional_logits_match_hf_with_padding(i):
    ours, theirs = pair(i, **CONFIGS[i])
    ids, keep = batch(i)
    with torch.no_grad():
        want = theirs(ids, attention_mask=keep.float(), output_attentions=True)
        got = ours(ids, attention_mask=keep, need_weights=True)
        torch.testing.assert_close(got.logits, want.logits, **TOL)
        assert got.logits.shape == (3, 8, VOCAB)
        for a, w in zip(got.attentions, want.attentions, strict=True):
            torch.testing.assert_close(a, w, **TOL)
        # no mask at all (Hugging Face then builds none)
        torch.testing.assert_close(ours(ids).logits, theirs(ids).logits, **TOL)


@pytest.mark.parametrize("i", range(len(CONFIGS)))
def test_query_stream_matches_hf_with_perm_mask_and_target_mapping(i):
    ours, theirs = pair(10 + i, **CONFIGS[i])
    ids, keep = batch(i, t=9)
    b, t = ids.shape
    sampled = sample_permutation(ids, k=3, attention_mask=keep, generator=torch.Generator().manual_seed(i))
    # Hugging Face's own example: no position sees the last one, which is the one predicted
    last_perm = torch.zeros(b, t, t)
    last_perm[:, :, -1] = 1.0
    last_map = torch.zeros(b, 1, t)
    last_map[:, 0, -1] = 1.0
    cases = [(sampled.perm_mask, sampled.target_mapping, keep, sampled.targets),
             (last_perm, last_map, None, ids[:, -1:])]
    for perm_mask, mapping, mask, targets in cases:
        with torch.no_grad():
            want = theirs(ids, attention_mask=None if mask is None else mask.float(), perm_mask=perm_mask,
                          target_mapping=mapping, labels=targets, output_attentions=True)
            got = ours(ids, attention_mask=mask, perm_mask=perm_mask, target_mapping=mapping, targets=targets,
                       need_weights=True)
        assert got.logits.shape == (b, mapping.shape[1], VOCAB)
        torch.testing.assert_close(got.logits, want.logits, **TOL)
        torch.testing.assert_close(got.loss, want.loss, **TOL)
        # with target_mapping, Hugging Face gives (content, query) attentions per layer
        for a, q, (wa, wq) in zip(got.attentions, got.query_attentions, want.attentions, strict=True):
            torch.testing.assert_close(a, wa, **TOL)
            torch.testing.assert_close(q, wq, **TOL)
    with torch.no_grad():  # a permutation mask without target_mapping: the content stream alone
        torch.testing.assert_close(ours(ids, attention_mask=keep, perm_mask=sampled.perm_mask).logits,
                                   theirs(ids, attention_mask=keep.float(), perm_mask=sampled.perm_mask).logits, **TOL)


@pytest.mark.parametrize("mem_len, reuse_len, kept", [(5, None, 5), (None, None, 7), (3, 4, 3)])
def test_memory_of_the_previous_segment_matches_hf(mem_len, reuse_len, kept):
    # kept: memory after a first segment of 7 tokens: the last mem_len; all 7 without a limit;
    # with reuse_len=4 only the first 4 are candidates, of which the last 3 stay
    ours, theirs = pair(20, mem_len=mem_len, reuse_len=reuse_len, d_model=16, n_heads=2, n_layers=2, d_inner=32)
    g = torch.Generator().manual_seed(3)
    first, second = torch.randint(1, VOCAB, (2, 7), generator=g), torch.randint(1, VOCAB, (2, 4), generator=g)
    with torch.no_grad():
        want1, got1 = theirs(first, use_mems=True), ours(first, use_mems=True)
    assert [tuple(m.shape) for m in got1.mems] == [(2, kept, 16)] * 2
    for m, w in zip(got1.mems, want1.mems, strict=True):
        torch.testing.assert_close(m, w.transpose(0, 1), **TOL)  # theirs are (mem_len, batch, d_model)
    keep = torch.tensor([[True] * 4, [False, True, True, True]])  # padding in the second segment
    with torch.no_grad():
        want2 = theirs(second, mems=want1.mems, attention_mask=keep.float(), use_mems=True)
        got2 = ours(second, mems=got1.mems, attention_mask=keep, use_mems=True)
        torch.testing.assert_close(got2.logits, want2.logits, **TOL)
        for m, w in zip(got2.mems, want2.mems, strict=True):
            torch.testing.assert_close(m, w.transpose(0, 1), **TOL)
        # the query stream with a memory
        perm = sample_permutation(second, k=2, generator=torch.Generator().manual_seed(4))
        want3 = theirs(second, mems=want1.mems, perm_mask=perm.perm_mask, target_mapping=perm.target_mapping)
        got3 = ours(second, mems=got1.mems, perm_mask=perm.perm_mask, target_mapping=perm.target_mapping)
        torch.testing.assert_close(got3.logits, want3.logits, **TOL)
        # the memory is read: without it the logits differ
        assert not torch.allclose(got2.logits, ours(second, attention_mask=keep).logits, atol=1e-3)


@pytest.mark.parametrize("i", range(len(CONFIGS)))
def test_segments_match_hf_with_and_without_memory(i):
    ours, theirs = pair(30 + i, mem_len=4, **CONFIGS[i])
    ids, keep = batch(i)
    b, t = ids.shape
    # as XLNet's tokenizer: A <sep> B <sep> <cls>, segments 0 ... 1 ... 2
    seg = (torch.arange(t)[None, :] >= torch.tensor([[3], [4], [5]])).long()
    seg[:, -1] = 2
    with torch.no_grad():
        want = theirs(ids, attention_mask=keep.float(), token_type_ids=seg)
        got = ours(ids, attention_mask=keep, token_type_ids=seg)
        torch.testing.assert_close(got.logits, want.logits, **TOL)
        # the segment term counts: two segments differ from none, while one segment equals none
        # (the term is then the same for every key of a query, which the softmax ignores)
        plain = ours(ids, attention_mask=keep).logits
        assert not torch.allclose(got.logits, plain, atol=1e-4)
        torch.testing.assert_close(ours(ids, attention_mask=keep, token_type_ids=torch.zeros_like(seg)).logits,
                                   plain, **TOL)
        # a second segment with the memory of the first (the memory counts as segment 0)
        ids2 = torch.randint(1, VOCAB, (b, 5), generator=torch.Generator().manual_seed(i))
        seg2 = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 0, 1, 2]])
        want2 = theirs(ids2, mems=want.mems, token_type_ids=seg2)
        got2 = ours(ids2, mems=got.mems, token_type_ids=seg2)
        torch.testing.assert_close(got2.logits, want2.logits, **TOL)


# ---- bi_data: the second half of the batch backwards ----------------------------------------
BI_MODES = ["plain", "perm_mask", "mems", "segments"]
BI_CONFIGS = [*CONFIGS, {"d_model": 16, "n_heads": 2, "n_layers": 2, "d_inner": 32, "clamp_len": 2, "mem_len": 3}]


@torch.no_grad()
def run_both(ours, theirs, mode: str, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(our logits, Hugging Face's) on a batch of 4 (rows 0 and 2 padded, rows 2-3 the backward
    half) in one of the four modes of the parity tests above."""
    ids, keep = batch(seed, b=4, t=8)
    keep[2, :2] = False  # padding in the backward half too
    ids[~keep] = 0
    if mode == "plain":
        return [(ours(ids, attention_mask=keep).logits, theirs(ids, attention_mask=keep.float()).logits),
                (ours(ids).logits, theirs(ids).logits)]
    if mode == "perm_mask":
        p = sample_permutation(ids, k=3, attention_mask=keep, generator=torch.Generator().manual_seed(seed))
        return [(ours(ids, attention_mask=keep, perm_mask=p.perm_mask, target_mapping=p.target_mapping).logits,
                 theirs(ids, attention_mask=keep.float(), perm_mask=p.perm_mask,
                        target_mapping=p.target_mapping).logits)]
    if mode == "mems":
        first = torch.randint(1, VOCAB, (4, 6), generator=torch.Generator().manual_seed(seed))
        got1, want1 = ours(first, use_mems=True), theirs(first, use_mems=True)
        got2 = ours(ids, attention_mask=keep, mems=got1.mems, use_mems=True)
        want2 = theirs(ids, attention_mask=keep.float(), mems=want1.mems, use_mems=True)
        p = sample_permutation(ids, k=2, attention_mask=keep, generator=torch.Generator().manual_seed(seed))
        got3 = ours(ids, mems=got2.mems, perm_mask=p.perm_mask, target_mapping=p.target_mapping)
        want3 = theirs(ids, mems=want2.mems, perm_mask=p.perm_mask, target_mapping=p.target_mapping)
        return [(got1.logits, want1.logits), (got2.logits, want2.logits), (got3.logits, want3.logits)]
    if mode == "segments":
        seg = (torch.arange(8)[None, :] >= torch.tensor([[3], [4], [5], [2]])).long()
        seg[:, -1] = 2
        return [(ours(ids, attention_mask=keep, token_type_ids=seg).logits,
                 theirs(ids, attention_mask=keep.float(), token_type_ids=seg).logits)]
    raise AssertionError(mode)


@pytest.mark.parametrize("mode", BI_MODES)
@pytest.mark.parametrize("i", range(len(BI_CONFIGS)))
def test_bi_data_matches_hf(i, mode):
    ours, theirs = pair(90 + i, bi_data=True, **BI_CONFIGS[i])
    assert theirs.config.bi_data and ours.config.bi_data
    for got, want in run_both(ours, theirs, mode, seed=i):
        torch.testing.assert_close(got, want, **TOL)


@pytest.mark.parametrize("mode", BI_MODES)
def test_bi_data_changes_only_the_second_half(mode):
    """The same weights with bi_data=False: the first half of the batch is unchanged, the second
    differs (a bi_data that did nothing would pass the parity test of a buggy Hugging Face)."""
    bi, bi_hf = pair(95, bi_data=True, **BI_CONFIGS[3])
    plain = XLNet(XLNetConfig(vocab_size=VOCAB, dropout=0.0, **BI_CONFIGS[3])).eval()
    plain.load_state_dict(bi.state_dict())
    plain_hf = transformers.XLNetLMHeadModel(hf_xlnet_config(plain.config)).eval()
    plain_hf.load_state_dict(bi_hf.state_dict())
    for (got, got_hf), (fwd, fwd_hf) in zip(run_both(bi, bi_hf, mode, 5), run_both(plain, plain_hf, mode, 5),
                                            strict=True):
        torch.testing.assert_close(got[:2], fwd[:2], **TOL)
        assert (got[2:] - fwd[2:]).abs().max() > 1e-3
        assert (got_hf[2:] - fwd_hf[2:]).abs().max() > 1e-3  # Hugging Face's too


@pytest.mark.parametrize("clamp_len", [-1, 3])
def test_bi_data_backward_half_reads_a_reversed_text_as_the_text(clamp_len):
    """Negated distances undo the reversal: a backward row holding the text reversed gives the
    forward row's outputs, reversed (the position term sees the distances of the original text;
    with a memory, the difference is that the memory then holds what follows the text)."""
    model, _ = pair(96, bi_data=True, clamp_len=clamp_len, **CONFIGS[1])
    ids = torch.randint(1, VOCAB, (2, 7), generator=torch.Generator().manual_seed(96))
    with torch.no_grad():
        logits = model(torch.cat([ids, ids.flip(1)])).logits
    torch.testing.assert_close(logits[2:], logits[:2].flip(1), **TOL)


def test_bi_data_refuses_an_odd_batch():
    # Hugging Face halves with bsz // 2: a batch of 1 gives 0 rows of logits, 3 an einsum error
    model = XLNet(XLNetConfig.tiny(vocab_size=20, bi_data=True)).eval()
    for b in (1, 3):
        with pytest.raises(ValueError, match=rf"bi_data=True needs an even batch .*got batch size {b}"):
            model(torch.ones(b, 5, dtype=torch.long))
        with pytest.raises(ValueError, match=rf"bi_data=True needs an even batch .*got batch size {b}"):
            XLNetTokenClassifier(model, 3)(torch.ones(b, 5, dtype=torch.long))
        with pytest.raises(ValueError, match=rf"bi_data=True needs an even batch .*got batch size {b}"):
            generate(model, torch.ones(b, 5, dtype=torch.long), 2)
    assert model(torch.ones(2, 5, dtype=torch.long)).logits.shape == (2, 5, 20)
    for bad in (1, "yes", None):
        with pytest.raises(ValueError, match="XLNetConfig.bi_data must be a bool"):
            XLNetConfig.tiny(bi_data=bad)


@pytest.mark.parametrize("use_mems", [False, True])
def test_bi_data_generate_matches_hf_generate(use_mems):
    ours, theirs = pair(97, bi_data=True, **CONFIGS[2])
    ids = prompts(97, b=4)
    want = theirs.generate(ids, max_new_tokens=5, do_sample=False, use_mems=use_mems, eos_token_id=None,
                           pad_token_id=0, output_logits=True, return_dict_in_generate=True)
    assert torch.equal(generate(ours, ids, 5, use_mems=use_mems), want.sequences)
    for ours_step, hf_step in zip(steps_by_hand(ours, ids, 5, use_mems), want.logits, strict=True):
        torch.testing.assert_close(ours_step, hf_step, **TOL)


def test_bi_data_is_exported(tmp_path):
    cfg = XLNetConfig(vocab_size=VOCAB, d_model=16, n_layers=2, n_heads=2, d_inner=32, clamp_len=4, bi_data=True,
                      dropout=0.0)
    assert hf_config(cfg)["bi_data"] is True and hf_config(XLNetConfig.tiny())["bi_data"] is False
    ours = randomize(XLNet(cfg), 98).eval()
    save_pretrained(ours, tmp_path / "xlnet")
    loaded = transformers.XLNetLMHeadModel.from_pretrained(tmp_path / "xlnet").eval()
    assert loaded.config.bi_data is True and loaded.config.clamp_len == 4
    ids, keep = batch(98, b=4)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids, attention_mask=keep).logits,
                                   loaded(ids, attention_mask=keep.float()).logits, **TOL)


def test_token_classifier_matches_hf():
    cfg = XLNetConfig(vocab_size=VOCAB, d_model=16, n_layers=2, n_heads=2, d_inner=32, dropout=0.0)
    theirs = randomize(transformers.XLNetForTokenClassification(hf_xlnet_config(cfg, num_labels=5)), 7).eval()
    ours = XLNetTokenClassifier(XLNet(cfg), n_labels=5).eval()
    from_hf_state_dict(ours, theirs)
    ids, keep = batch(7)
    labels = torch.randint(0, 5, ids.shape, generator=torch.Generator().manual_seed(7))
    labels[~keep] = -100
    with torch.no_grad():
        want = theirs(ids, attention_mask=keep.float(), labels=labels)
        got = ours(ids, attention_mask=keep, targets=labels)
    assert got.logits.shape == (3, 8, 5)
    torch.testing.assert_close(got.logits, want.logits, **TOL)
    torch.testing.assert_close(got.loss, want.loss, **TOL)
    theirs_sd = theirs.state_dict()
    for k, v in to_hf_state_dict(ours).items():
        assert torch.equal(v, theirs_sd[k]), k


@pytest.mark.parametrize("clamp_len", [-1, 2])
def test_relative_positional_encoding_is_hf(clamp_len):
    _, theirs = pair(0, d_model=16, n_heads=2, n_layers=1, d_inner=32, clamp_len=clamp_len)
    for qlen, klen in ((4, 4), (3, 7)):
        want = theirs.transformer.relative_positional_encoding(qlen, klen, bsz=None)[:, 0]
        got = relative_positional_encoding(qlen, klen, 16, clamp_len)
        assert got.shape == (klen + qlen, 16)
        assert torch.equal(got, want)
    # row r is the distance klen - r: row klen is distance 0, sin(0) = 0 and cos(0) = 1
    assert relative_positional_encoding(2, 3, 4)[3].tolist() == [0.0, 0.0, 1.0, 1.0]
    # bi_data: called without a batch size, Hugging Face gives one forward and one backward column
    _, bi = pair(0, d_model=16, n_heads=2, n_layers=1, d_inner=32, clamp_len=clamp_len, bi_data=True)
    for qlen, klen in ((4, 4), (3, 7)):
        want = bi.transformer.relative_positional_encoding(qlen, klen, bsz=None)
        assert want.shape == (klen + qlen, 2, 16)
        assert torch.equal(relative_positional_encoding(qlen, klen, 16, clamp_len), want[:, 0])
        assert torch.equal(relative_positional_encoding(qlen, klen, 16, clamp_len, backward=True), want[:, 1])
    # backward: row r is the distance r - klen, the forward rows with their sines negated
    fwd, bwd = relative_positional_encoding(3, 5, 8), relative_positional_encoding(3, 5, 8, backward=True)
    torch.testing.assert_close(bwd, torch.cat([-fwd[:, :4], fwd[:, 4:]], dim=1), atol=1e-6, rtol=0)


def test_rel_shift_equals_the_direct_computation():
    x = torch.arange(32.0).reshape(1, 1, 4, 8)  # qlen = klen = 4: x[i, c] = 8 i + c
    assert torch.equal(rel_shift_bnij(x, 4), rel_shift_direct(x, 4))
    # out[i, j] = x[i, 4 - i + j] = 7 i + 4 + j
    assert rel_shift_bnij(x, 4)[0, 0].tolist() == [[4, 5, 6, 7], [11, 12, 13, 14], [18, 19, 20, 21],
                                                   [25, 26, 27, 28]]
    for qlen, mlen in ((4, 0), (3, 2)):
        klen = qlen + mlen
        # columns hold their distance (klen down to -qlen + 1): after the shift, entry (i, j) must
        # be the distance from query i (at position mlen + i) to key j
        dist = torch.arange(klen, -qlen, -1).float().expand(2, 3, qlen, klen + qlen)
        want = (mlen + torch.arange(qlen)[:, None] - torch.arange(klen)[None, :]).float()
        assert torch.equal(rel_shift_bnij(dist, klen), want.expand(2, 3, qlen, klen))
        rnd = torch.randn(2, 3, qlen, klen + qlen, generator=torch.Generator().manual_seed(qlen))
        assert torch.equal(rel_shift_bnij(rnd, klen), rel_shift_direct(rnd, klen))


# ---- the permutation language model -----------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), b=st.integers(1, 3), t=st.integers(2, 10), k=st.integers(2, 4),
       span=st.booleans(), max_span=st.integers(1, 4), data=st.data())
def test_query_stream_never_sees_its_own_token_or_a_later_one(seed, b, t, k, span, max_span, data):
    lengths = data.draw(st.lists(st.integers(2, t), min_size=b, max_size=b))
    keep = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 13, (b, t), generator=g)
    p = sample_permutation(ids, k, attention_mask=keep, generator=torch.Generator().manual_seed(seed),
                           span=span, max_span=max_span)
    rank = p.order.argsort(1)  # rank[row, position] = its step in the order
    num_predict = max(1, t // k)
    assert p.perm_mask.shape == (b, t, t) and p.target_mapping.shape == (b, num_predict, t)
    assert torch.equal(p.target_mapping.sum(-1), torch.ones(b, num_predict))  # one position per prediction
    model = randomize(XLNet(XLNetConfig.tiny(vocab_size=13)), seed).eval()
    masks = {"attention_mask": keep, "perm_mask": p.perm_mask, "target_mapping": p.target_mapping}
    with torch.no_grad():
        base = model(ids, **masks).logits
        for row in range(b):
            n = lengths[row]
            predicted = p.targets[row] != -100
            assert int(predicted.sum()) == max(1, n // k)  # the last 1/k of the order
            positions = p.target_mapping[row].argmax(-1)
            assert len(set(positions.tolist())) == num_predict  # no two predictions on one position
            for m in range(num_predict):
                if not predicted[m]:
                    continue
                i = int(positions[m])
                assert keep[row, i] and int(rank[row, i]) >= n - max(1, n // k)
                assert int(p.targets[row, m]) == int(ids[row, i])
                later = keep[row] & (rank[row] >= rank[row, i])  # itself and what follows it
                assert bool(p.perm_mask[row, i][later].eq(1).all())
                # change every such token: the prediction must not move
                changed = ids.clone()
                changed[row, later] = (ids[row, later] + 1 + torch.randint(0, 12, (int(later.sum()),),
                                                                           generator=g)) % 13
                torch.testing.assert_close(model(changed, **masks).logits[row, m], base[row, m], atol=1e-6, rtol=0)
                # while what comes before it does count
                earlier = keep[row] & ~later
                changed = ids.clone()
                changed[row, earlier] = (ids[row, earlier] + 1) % 13
                assert not torch.allclose(model(changed, **masks).logits[row, m], base[row, m], atol=1e-6)


def test_sample_permutation_is_seeded_and_puts_padding_last():
    ids, keep = batch(0, t=9)
    a = sample_permutation(ids, 3, keep, generator=torch.Generator().manual_seed(5))
    again = sample_permutation(ids, 3, keep, generator=torch.Generator().manual_seed(5))
    other = sample_permutation(ids, 3, keep, generator=torch.Generator().manual_seed(6))
    assert all(torch.equal(x, y) for x, y in zip(vars(a).values(), vars(again).values(), strict=True))
    assert not torch.equal(a.order, other.order)
    for row in range(3):
        n = int(keep[row].sum())
        assert keep[row, a.order[row, :n]].all() and not keep[row, a.order[row, n:]].any()


def test_never_predicted_tokens_are_context_first_in_the_order_and_never_targets():
    ids, keep = batch(1, t=10)
    fixed = torch.zeros_like(keep)
    fixed[:, 0] = True  # a [CLS] at the start of every row (padding in row 1, which pads on the left)
    fixed[0, 3] = True
    p = sample_permutation(ids, 3, keep, generator=torch.Generator().manual_seed(7), never_predict=fixed)
    targets = p.target_mapping.argmax(-1)  # (batch, num_predict) positions
    for row in range(3):
        n, f = int(keep[row].sum()), int((fixed[row] & keep[row]).sum())
        assert set(p.order[row, :f].tolist()) == set((fixed[row] & keep[row]).nonzero().flatten().tolist())
        used = targets[row][p.targets[row] != -100].tolist()
        assert len(used) == max(1, (n - f) // 3) and not any(bool(fixed[row, q]) for q in used)
        assert not p.perm_mask[row][:, fixed[row]].any()  # everyone sees them
    with pytest.raises(ValueError, match="never_predict must be a bool tensor"):
        sample_permutation(ids, 3, keep, never_predict=fixed.long())
    with pytest.raises(ValueError, match="one of them predictable"):
        sample_permutation(ids, 3, keep, never_predict=torch.ones_like(keep))


# ---- span-based prediction --------------------------------------------------------------------
def test_token_mode_draws_exactly_what_it_drew_before_span_mode_existed():
    """Chapter 07's stored outputs depend on these draws: the values below were recorded from
    sample_permutation before `span` existed, and span=False must reproduce them bit for bit."""
    ids = torch.arange(1, 25).reshape(3, 8)
    keep = torch.ones(3, 8, dtype=torch.bool)
    keep[0, 6:], keep[1, :2] = False, False
    fixed = torch.zeros(3, 8, dtype=torch.bool)
    fixed[:, 2], fixed[2, 7] = True, True

    def bits(p):
        return [["".join(str(x) for x in r) for r in m] for m in p.perm_mask.int().tolist()]

    for extra in ({}, {"span": False}, {"span": False, "max_span": 2}):
        g = torch.Generator().manual_seed(2024)
        p = sample_permutation(ids, 3, keep, generator=g, never_predict=fixed, **extra)
        assert torch.randint(0, 1000, (4,), generator=g).tolist() == [799, 951, 211, 964]  # no extra draw
        assert p.order.tolist() == [[2, 3, 4, 5, 0, 1, 6, 7], [2, 4, 7, 3, 5, 6, 0, 1], [2, 7, 0, 3, 6, 4, 1, 5]]
        assert p.targets.tolist() == [[2, -100], [15, -100], [18, 22]]
        assert p.target_mapping.shape == (3, 2, 8) and p.target_mapping.argmax(-1).tolist() == [[1, 2], [6, 2], [1, 5]]
        assert bits(p) == [
            ["01000000"] * 6 + ["00000000"] * 2,
            ["00000000"] * 2 + ["00000010"] * 6,
            ["01000100"] * 5 + ["00000100"] + ["01000100"] * 2]
        torch.manual_seed(11)  # the default generator
        q = sample_permutation(torch.arange(10).expand(2, 10), 4, **extra)
        assert torch.randint(0, 1000, (4,)).tolist() == [508, 162, 868, 249]
        assert q.order.tolist() == [[7, 0, 3, 1, 8, 6, 4, 5, 9, 2], [6, 0, 2, 3, 5, 7, 9, 4, 1, 8]]
        assert q.targets.tolist() == [[9, 2], [1, 8]] and q.target_mapping.argmax(-1).tolist() == [[9, 2], [1, 8]]
        assert bits(q) == [["0010000001"] * 2 + ["0010000000"] + ["0010000001"] * 7,
                           ["0100000010"] * 8 + ["0000000010"] + ["0100000010"]]


def runs(row: torch.Tensor) -> list[tuple[int, int]]:
    """(start, length) of each run of True in a 1-d bool tensor."""
    out, start = [], None
    for i, v in enumerate(row.tolist() + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            out.append((start, i - start))
            start = None
    return out


def target_sets(p, t: int) -> torch.Tensor:
    """(batch, T) bool: the positions of the used prediction slots."""
    chosen = torch.zeros(p.targets.shape[0], t, dtype=torch.bool)
    for row in range(p.targets.shape[0]):
        chosen[row, p.target_mapping[row].argmax(-1)[p.targets[row] != -100]] = True
    return chosen


def random_rows(seed: int):
    """A random batch with padding on either side and never_predict positions, and its sizes."""
    g = torch.Generator().manual_seed(seed)
    b, t = int(torch.randint(1, 6, (1,), generator=g)), int(torch.randint(2, 41, (1,), generator=g))
    ids = torch.randint(1, VOCAB, (b, t), generator=g)
    keep = torch.zeros(b, t, dtype=torch.bool)
    for row in range(b):
        n = int(torch.randint(2, t + 1, (1,), generator=g))
        left = int(torch.randint(0, t - n + 1, (1,), generator=g))
        keep[row, left:left + n] = True
    fixed = (torch.rand(b, t, generator=g) < 0.2) & keep
    for row in range(b):  # keep one predictable real token in each row
        real = keep[row].nonzero().flatten()
        fixed[row, real[int(torch.randint(0, len(real), (1,), generator=g))]] = False
    ids[~keep] = 0
    return ids, keep, fixed, g


@pytest.mark.parametrize("seed", range(40))
def test_span_mode_predicts_c_targets_in_every_row_and_builds_the_masks_by_the_same_rule(seed):
    ids, keep, fixed, g = random_rows(seed)
    b, t = ids.shape
    k, max_span = int(torch.randint(2, 7, (1,), generator=g)), int(torch.randint(1, 7, (1,), generator=g))
    p = sample_permutation(ids, k, keep, generator=torch.Generator().manual_seed(seed), never_predict=fixed,
                           span=True, max_span=max_span)
    token = sample_permutation(ids, k, keep, generator=torch.Generator().manual_seed(seed), never_predict=fixed)
    num_predict = max(1, t // k)
    assert p.target_mapping.shape == token.target_mapping.shape == (b, num_predict, t)
    assert torch.equal(p.target_mapping.sum(-1), torch.ones(b, num_predict))
    chosen = target_sets(p, t)
    rank = p.order.argsort(1)
    for row in range(b):
        n, f = int(keep[row].sum()), int(fixed[row].sum())
        c = max(1, (n - f) // k)
        assert int(chosen[row].sum()) == int((p.targets[row] != -100).sum()) == c
        assert not (chosen[row] & ~keep[row]).any() and not (chosen[row] & fixed[row]).any()
        positions = p.target_mapping[row].argmax(-1)
        assert len(set(positions.tolist())) == num_predict  # unused slots on other positions, as in token mode
        used = p.targets[row] != -100
        assert torch.equal(p.targets[row][used], ids[row, positions[used]])
        # the order: never_predict first, then the rest of the context, the targets, padding last
        assert set(p.order[row, :f].tolist()) == set(fixed[row].nonzero().flatten().tolist())
        assert not chosen[row, p.order[row, f:n - c]].any() and chosen[row, p.order[row, n - c:n]].all()
        assert not keep[row, p.order[row, n:]].any()
        # the masks: i may not see j when j is a target that does not come before i
        want = chosen[row][None, :] & (rank[row][None, :] >= rank[row][:, None])
        assert torch.equal(p.perm_mask[row].bool(), want)


def test_spans_are_runs_whose_lengths_follow_one_over_n():
    b, t, k, max_span = 200, 200, 6, 5
    ids = torch.randint(1, VOCAB, (b, t), generator=torch.Generator().manual_seed(0))
    lengths = {}
    for span in (False, True):
        p = sample_permutation(ids, k, generator=torch.Generator().manual_seed(1), span=span, max_span=max_span)
        chosen = target_sets(p, t)
        assert torch.equal(chosen.sum(1), torch.full((b,), t // k))
        # leave out the rightmost run (the walk's last span may be cut at c targets) and runs at the row's end
        lengths[span] = [n for row in chosen for s, n in runs(row)[:-1] if s + n < t]
    mean = {span: sum(v) / len(v) for span, v in lengths.items()}
    # 1/n over 1..5 has mean 5 / H_5 = 2.19, lowered by the top-ups (single tokens); uniform lengths: 3
    assert mean[False] < 1.3 < 1.7 < mean[True] < 2.4, mean
    count = [sum(n == m for n in lengths[True]) for m in range(max_span + 1)]
    # n * count(n) is the same for every n under p(n) ~ 1/n; uniform lengths would make it grow as n
    # (the top-ups, single tokens, add to count(1) alone, and rarely touch a span)
    scaled = [m * count[m] for m in range(2, max_span + 1)]
    assert max(scaled) < 1.45 * min(scaled), count  # uniform lengths: 5 / 2
    assert count[1] > 1.6 * count[2], count
    assert sum(n > max_span for n in lengths[True]) < 0.03 * len(lengths[True])  # only where a top-up touches a span


def test_span_mode_with_word_start_starts_every_run_at_a_word_start():
    g = torch.Generator().manual_seed(3)
    b, t, k = 64, 60, 4
    ids = torch.randint(1, VOCAB, (b, t), generator=g)
    keep = torch.arange(t)[None, :] < torch.randint(30, t + 1, (b, 1), generator=g)
    fixed = (torch.rand(b, t, generator=g) < 0.1) & keep
    starts = torch.rand(b, t, generator=g) < 0.5
    predictable = keep & ~fixed
    c = torch.clamp(predictable.sum(1) // k, min=1)
    assert bool(((predictable & starts).sum(1) >= c).all())  # enough word starts: no top-up needs another
    p = sample_permutation(ids, k, keep, generator=torch.Generator().manual_seed(4), never_predict=fixed,
                           span=True, max_span=3, word_start=starts)
    chosen = target_sets(p, t)
    assert torch.equal(chosen.sum(1), c)
    multi = mid_word = 0
    for row in range(b):
        for s, n in runs(chosen[row]):
            assert bool(starts[row, s]), (row, s)  # never inside a word
            multi += n > 1
            # a span covers whole words: it ends inside one only where it reached c targets (once a
            # row at most) or where a top-up (a single word start) touches it
            mid_word += n > 1 and s + n < t and bool(predictable[row, s + n] and not starts[row, s + n])
    assert multi > b and mid_word < b // 2  # and spans of more than one token exist
    # every position a word start: the same draws as without word_start
    all_starts = sample_permutation(ids, k, keep, generator=torch.Generator().manual_seed(4), never_predict=fixed,
                                    span=True, max_span=3, word_start=torch.ones(b, t, dtype=torch.bool))
    plain = sample_permutation(ids, k, keep, generator=torch.Generator().manual_seed(4), never_predict=fixed,
                               span=True, max_span=3)
    assert all(torch.equal(x, y) for x, y in zip(vars(all_starts).values(), vars(plain).values(), strict=True))
    # too few word starts for c targets: the row is topped up with other predictable positions
    one = torch.zeros(1, 12, dtype=torch.bool)
    one[0, 5] = True
    q = sample_permutation(torch.ones(1, 12, dtype=torch.long), 2, span=True, word_start=one,
                           generator=torch.Generator().manual_seed(0))
    assert int((q.targets != -100).sum()) == 6 and bool(target_sets(q, 12)[0, 5])


def test_span_mode_is_seeded():
    ids, keep = batch(7, b=3, t=40)

    def draw(seed):
        return sample_permutation(ids, 4, keep, generator=torch.Generator().manual_seed(seed), span=True)

    a, again, other = draw(5), draw(5), draw(6)
    assert all(torch.equal(x, y) for x, y in zip(vars(a).values(), vars(again).values(), strict=True))
    assert not torch.equal(target_sets(a, 40), target_sets(other, 40)) and not torch.equal(a.order, other.order)
    torch.manual_seed(3)  # the default generator
    first = sample_permutation(ids, 4, span=True)
    torch.manual_seed(3)
    assert torch.equal(sample_permutation(ids, 4, span=True).perm_mask, first.perm_mask)


def test_span_mode_batch_matches_hf():
    ours, theirs = pair(40, **CONFIGS[1])
    ids, keep = batch(4, b=3, t=20)
    p = sample_permutation(ids, 3, keep, generator=torch.Generator().manual_seed(9), span=True, max_span=4)
    assert any(n > 1 for row in target_sets(p, 20) for _, n in runs(row))  # a real span in the batch
    with torch.no_grad():
        want = theirs(ids, attention_mask=keep.float(), perm_mask=p.perm_mask, target_mapping=p.target_mapping,
                      labels=p.targets)
        got = ours(ids, attention_mask=keep, perm_mask=p.perm_mask, target_mapping=p.target_mapping, targets=p.targets)
    torch.testing.assert_close(got.logits, want.logits, **TOL)
    torch.testing.assert_close(got.loss, want.loss, **TOL)


@pytest.mark.parametrize("changes, message", [
    ({"span": 1}, "span must be a bool"),
    ({"span": "yes"}, "span must be a bool"),
    ({"span": True, "max_span": 0}, "max_span must be an int >= 1"),
    ({"span": True, "max_span": 2.0}, "max_span must be an int >= 1"),
    ({"span": True, "max_span": True}, "max_span must be an int >= 1"),
    ({"span": True, "word_start": torch.ones(2, 5, dtype=torch.long)}, r"word_start must be a bool .* \(2, 5\)"),
    ({"span": True, "word_start": torch.ones(2, 4, dtype=torch.bool)}, r"word_start must be a bool .* \(2, 5\)"),
    ({"span": True, "word_start": [True] * 5}, r"word_start must be a bool tensor"),
    ({"word_start": torch.ones(2, 5, dtype=torch.bool)}, "word_start is used only with span=True"),
])
def test_span_arguments_are_checked(changes, message):
    with pytest.raises(ValueError, match=message):
        sample_permutation(torch.ones(2, 5, dtype=torch.long), 2, **changes)


def test_a_padded_batch_gives_each_rows_logits_alone():
    # relative positions: padding on either side changes no distance between real tokens
    model = randomize(XLNet(XLNetConfig.tiny(vocab_size=13, pad_id=0)), 5).eval()
    g = torch.Generator().manual_seed(5)
    rows = [torch.randint(1, 13, (n,), generator=g) for n in (6, 3, 5)]
    for side in ("right", "left"):
        ids, keep = torch.zeros(3, 6, dtype=torch.long), torch.zeros(3, 6, dtype=torch.bool)
        for r, row in enumerate(rows):
            where = slice(0, len(row)) if side == "right" else slice(6 - len(row), 6)
            ids[r, where], keep[r, where] = row, True
        with torch.no_grad():
            logits = model(ids, attention_mask=keep).logits
            for r, row in enumerate(rows):
                torch.testing.assert_close(logits[r][keep[r]], model(row[None]).logits[0], **TOL)


def test_use_mems_defaults_follow_hf():
    model = XLNet(XLNetConfig.tiny(mem_len=3))
    ids = torch.ones(2, 5, dtype=torch.long)
    assert model.eval()(ids).mems is not None  # use_mems_eval=True
    assert model.train()(ids).mems is None  # use_mems_train=False
    assert model.train()(ids, use_mems=True).mems[0].shape == (2, 3, 16)
    assert model.eval()(ids, use_mems=False).mems is None


# ---- generation -------------------------------------------------------------------------------
@torch.no_grad()
def steps_by_hand(model: XLNet, ids: torch.Tensor, n: int, use_mems: bool = False, offset: int = 2) -> list:
    """Greedy decoding written out with model.forward: per step, the (batch, vocab) logits. Each
    step feeds the text (with use_mems, after the first step, its last `offset` tokens and the
    previous memory without its last `offset` states) plus a dummy token 0 that no position may
    attend to (perm_mask column) and that target_mapping selects as the one prediction."""
    seqs, mems, logits = ids, None, []
    for _ in range(n):
        x, prev = (seqs, None) if mems is None else (seqs[:, -offset:], [m[:, :-offset] for m in mems])
        b, t = x.shape
        fed = torch.cat([x, torch.zeros(b, 1, dtype=torch.long)], dim=1)
        perm_mask = torch.zeros(b, t + 1, t + 1)
        perm_mask[:, :, -1] = 1.0
        mapping = torch.zeros(b, 1, t + 1)
        mapping[:, 0, -1] = 1.0
        out = model(fed, perm_mask=perm_mask, target_mapping=mapping, mems=prev, use_mems=use_mems)
        assert out.logits.shape == (b, 1, model.config.vocab_size)
        logits.append(out.logits[:, 0])
        mems = out.mems
        seqs = torch.cat([seqs, out.logits[:, 0].argmax(-1, keepdim=True)], dim=1)
    return logits


def prompts(seed: int, b: int = 3, t: int = 5) -> torch.Tensor:
    return torch.randint(1, VOCAB, (b, t), generator=torch.Generator().manual_seed(seed))


def test_generate_without_memory_predicts_the_dummy_token_from_the_whole_text():
    model = randomize(XLNet(XLNetConfig(vocab_size=VOCAB, dropout=0.0, **CONFIGS[1])), 40).eval()
    ids = prompts(40)
    out = generate(model, ids, 6)
    assert out.shape == (3, 11) and out.dtype == torch.long and torch.equal(out[:, :5], ids)
    for s, logits in enumerate(steps_by_hand(model, ids, 6)):
        assert torch.equal(out[:, 5 + s], logits.argmax(-1)), s
    # each step re-reads the text: the token at a step is the hand-built argmax after out[:, :5 + s]
    with torch.no_grad():
        for s in range(6):
            assert torch.equal(out[:, 5 + s], steps_by_hand(model, out[:, :5 + s], 1)[0].argmax(-1)), s


@pytest.mark.parametrize("use_mems", [False, True])
@pytest.mark.parametrize("sizes", [CONFIGS[0], {**CONFIGS[1], "mem_len": 4}, CONFIGS[2], {**CONFIGS[0], "t": 1}],
                         ids=["one-layer", "mem_len=4", "clamped-relu", "one-token-prompt"])
def test_generate_matches_hf_generate(sizes, use_mems):
    """transformers 5.x generates with XLNetLMHeadModel (its prepare_inputs_for_generation adds
    the dummy token and, with use_mems, slices the memory): pass use_mems explicitly (None means
    config.use_mems_eval, True). No eos_token_id, so it never stops early."""
    sizes = dict(sizes)
    t = sizes.pop("t", 5)
    ours, theirs = pair(50, **sizes)
    ids = prompts(50, t=t)
    n = 7
    want = theirs.generate(ids, max_new_tokens=n, do_sample=False, use_mems=use_mems, eos_token_id=None,
                           pad_token_id=0, output_logits=True, return_dict_in_generate=True)
    got = generate(ours, ids, n, use_mems=use_mems)
    assert want.sequences.shape == got.shape == (3, t + n)
    assert torch.equal(got, want.sequences)
    for ours_step, hf_step in zip(steps_by_hand(ours, ids, n, use_mems), want.logits, strict=True):
        torch.testing.assert_close(ours_step, hf_step, **TOL)


def test_generate_with_memory_is_an_approximation():
    model = randomize(XLNet(XLNetConfig(vocab_size=VOCAB, dropout=0.0, **CONFIGS[1])), 60).eval()
    ids = prompts(60)
    exact, cached = steps_by_hand(model, ids, 6), steps_by_hand(model, ids, 6, use_mems=True)
    # the first step is the same computation
    assert torch.equal(exact[0], cached[0])
    assert torch.equal(generate(model, ids, 1, use_mems=True), generate(model, ids, 1))
    # later, the frozen memory changes the prediction (the text before the last two tokens was
    # encoded with less to its right) and, here, the tokens
    assert (exact[-1] - cached[-1]).abs().max() > 1e-4
    assert not torch.equal(generate(model, ids, 6, use_mems=True), generate(model, ids, 6))
    # with offset >= T + max_new_tokens - 1 every step feeds the whole text on an empty memory:
    # exact again; one less and the last step reads one frozen state
    assert torch.equal(generate(model, ids, 6, use_mems=True, offset=10), generate(model, ids, 6))
    torch.testing.assert_close(steps_by_hand(model, ids, 6, True, offset=10)[-1], exact[-1], atol=1e-6, rtol=0)
    assert (steps_by_hand(model, ids, 6, True, offset=9)[-1] - exact[-1]).abs().max() > 1e-4


def test_generate_samples_reproducibly_and_restores_the_mode():
    cfg = XLNetConfig(vocab_size=VOCAB, **CONFIGS[0], dropout=0.3)  # dropout: train mode would change the logits
    model = randomize(XLNet(cfg), 70).train()
    ids = prompts(70)
    for use_mems in (False, True):
        a = generate(model, ids, 12, do_sample=True, generator=torch.Generator().manual_seed(1), use_mems=use_mems)
        b = generate(model, ids, 12, do_sample=True, generator=torch.Generator().manual_seed(1), use_mems=use_mems)
        c = generate(model, ids, 12, do_sample=True, generator=torch.Generator().manual_seed(2), use_mems=use_mems)
        assert torch.equal(a, b) and not torch.equal(a, c)
        assert torch.equal(a[:, :5], ids) and int(a.min()) >= 0 and int(a.max()) < VOCAB
    assert model.training  # restored
    # greedy in eval mode: the same as the model in eval mode (no dropout)
    assert torch.equal(generate(model, ids, 5), generate(model.eval(), ids, 5))
    assert not model.training


def test_generate_samples_as_hf_with_the_same_global_seed():
    # with generator=None both draw torch.multinomial(softmax(logits)) from torch's global generator
    # (Hugging Face's default top_k=50 keeps every one of the 23 tokens)
    ours, theirs = pair(80, **CONFIGS[1])
    ids = prompts(80)
    for use_mems in (False, True):
        torch.manual_seed(3)
        want = theirs.generate(ids, max_new_tokens=8, do_sample=True, use_mems=use_mems, eos_token_id=None,
                               pad_token_id=0)
        torch.manual_seed(3)
        assert torch.equal(generate(ours, ids, 8, do_sample=True, use_mems=use_mems), want)


def test_generate_bad_input_is_named():
    model = XLNet(XLNetConfig.tiny(vocab_size=20)).eval()
    ids = torch.ones(2, 4, dtype=torch.long)
    with pytest.raises(TypeError, match="model must be an XLNet, got XLNetTokenClassifier"):
        generate(XLNetTokenClassifier(model, 3), ids, 2)
    for bad in (torch.ones(4, dtype=torch.long), torch.ones(2, 4), torch.ones(2, 0, dtype=torch.long), [[1, 2]]):
        with pytest.raises(ValueError, match=r"input_ids must be a \(batch, T >= 1\) tensor of token ids"):
            generate(model, bad, 2)
    with pytest.raises(ValueError, match="input_ids holds ids outside"):
        generate(model, torch.tensor([[1, 20]]), 2)
    for bad in (0, 1.0, True, None):
        with pytest.raises(ValueError, match="max_new_tokens must be an int >= 1"):
            generate(model, ids, bad)
        with pytest.raises(ValueError, match="offset must be an int >= 1"):
            generate(model, ids, 2, use_mems=True, offset=bad)
    for bad in (-1, 20, 1.0, True):
        with pytest.raises(ValueError, match=r"dummy_id must be a token id in \[0, vocab_size=20\)"):
            generate(model, ids, 2, dummy_id=bad)
    for flag in ("use_mems", "do_sample"):
        with pytest.raises(ValueError, match=f"{flag} must be a bool"):
            generate(model, ids, 2, **{flag: 1})
    with pytest.raises(TypeError, match="generator must be a torch.Generator or None"):
        generate(model, ids, 2, do_sample=True, generator=0)


# ---- export -----------------------------------------------------------------------------------
def test_save_pretrained_loads_in_transformers_with_the_same_logits(tmp_path):
    cfg = XLNetConfig(vocab_size=VOCAB, d_model=16, n_layers=2, n_heads=2, d_inner=32, mem_len=4, dropout=0.0)
    ours = randomize(XLNet(cfg), 8).eval()
    save_pretrained(ours, tmp_path / "xlnet")
    loaded = transformers.XLNetLMHeadModel.from_pretrained(tmp_path / "xlnet").eval()
    assert (loaded.config.mem_len, loaded.config.d_inner, loaded.config.n_layer) == (4, 32, 2)
    ids, keep = batch(8)
    perm = sample_permutation(ids, k=3, attention_mask=keep, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids, attention_mask=keep).logits,
                                   loaded(ids, attention_mask=keep.float()).logits, **TOL)
        torch.testing.assert_close(
            ours(ids, attention_mask=keep, perm_mask=perm.perm_mask, target_mapping=perm.target_mapping).logits,
            loaded(ids, attention_mask=keep.float(), perm_mask=perm.perm_mask,
                   target_mapping=perm.target_mapping).logits, **TOL)
    # and back: the exported weights are ours
    again = XLNet(cfg)
    from_hf_state_dict(again, loaded)
    back = to_hf_state_dict(again)
    for k, v in to_hf_state_dict(ours).items():
        assert torch.equal(back[k], v), k


def test_exported_tokenizer_pads_on_the_left_and_the_padded_batch_gives_each_texts_logits(tmp_path):
    """As Hugging Face's XLNetTokenizer (generation appends on the right); with relative positions
    the pads on the left change no distance between real tokens."""
    from lmbook_utils.tokenizers import WordPieceTokenizer

    texts = ["the cat sat on the mat .", "a dog ran to the park .", "the dog sat ."]
    tok = WordPieceTokenizer.train(texts * 2, vocab_size=60, min_frequency=1)
    cfg = XLNetConfig(vocab_size=tok.vocab_size, d_model=16, n_layers=2, n_heads=2, d_inner=32, dropout=0.0,
                      pad_id=tok.pad_id)
    ours = randomize(XLNet(cfg), 99).eval()
    save_pretrained(ours, tmp_path / "xlnet", tok)
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "xlnet"), local_files_only=True)
    assert hf_tok.padding_side == "left" and hf_tok.pad_token_id == tok.pad_id
    enc = hf_tok(["the cat sat on the mat .", "the dog sat ."], padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    alone = hf_tok("the dog sat .", return_tensors="pt")["input_ids"]
    n_pad = ids.shape[1] - alone.shape[1]
    assert n_pad > 0 and mask[0].all()
    assert mask[1].tolist() == [0] * n_pad + [1] * alone.shape[1]
    assert ids[1, :n_pad].eq(tok.pad_id).all() and torch.equal(ids[1, n_pad:], alone[0])
    loaded = transformers.XLNetLMHeadModel.from_pretrained(tmp_path / "xlnet").eval()
    with torch.no_grad():
        got = ours(ids, attention_mask=mask).logits
        torch.testing.assert_close(got[1, n_pad:], ours(alone).logits[0], **TOL)
        torch.testing.assert_close(got, loaded(ids, attention_mask=mask.float()).logits, **TOL)


# ---- bad input ----------------------------------------------------------------------------------
def test_bad_input_is_named():
    model = XLNet(XLNetConfig.tiny(vocab_size=20)).eval()
    ids = torch.ones(2, 5, dtype=torch.long)
    with pytest.raises(ValueError, match=r"perm_mask must be a tensor of shape \(2, 5, 5\)"):
        model(ids, perm_mask=torch.zeros(2, 5, 4))
    with pytest.raises(ValueError, match="perm_mask must hold only 0 and 1"):
        model(ids, perm_mask=torch.full((2, 5, 5), 0.5))
    mapping = torch.zeros(2, 2, 5)
    mapping[:, 0, 1] = 1.0
    mapping[1, 1, 3] = 1.0  # prediction 1 of row 0 selects nothing
    with pytest.raises(ValueError, match=r"target_mapping\[0, 1\] selects no position"):
        model(ids, target_mapping=mapping)
    mapping[0, 1, 2] = mapping[0, 1, 3] = 1.0
    with pytest.raises(ValueError, match=r"target_mapping\[0, 1\] selects 2 positions"):
        model(ids, target_mapping=mapping)
    with pytest.raises(ValueError, match=r"target_mapping must be a tensor of shape \(batch=2, num_predict >= 1, T=5"):
        model(ids, target_mapping=torch.zeros(2, 1, 4))
    last = torch.zeros(2, 1, 5)
    last[:, 0, 4] = 1.0
    with pytest.raises(ValueError, match=r"targets must be an integer tensor of shape \(2, 1\)"):
        model(ids, target_mapping=last, targets=torch.ones(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"mems\[1\] must have shape \(batch=2, mem_len, d_model=16\)"):
        model(ids, mems=[torch.zeros(2, 3, 16), torch.zeros(2, 3, 8)])  # wrong width
    with pytest.raises(ValueError, match=r"mems\[1\] .*\(mems\[0\]: 3\)"):
        model(ids, mems=[torch.zeros(2, 3, 16), torch.zeros(2, 4, 16)])  # lengths differ between layers
    with pytest.raises(ValueError, match=r"mems must be a list of 2 tensors, one per layer"):
        model(ids, mems=[torch.zeros(2, 3, 16)])
    with pytest.raises(ValueError, match=r"token_type_ids must be an integer tensor of shape \(2, 5\)"):
        model(ids, token_type_ids=torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="input_ids holds ids outside"):
        model(torch.tensor([[1, 25]]))
    with pytest.raises(ValueError, match=r"XLNetConfig.attn_type must be 'bi'"):
        XLNetConfig.tiny(attn_type="uni")
    with pytest.raises(ValueError, match=r"XLNetConfig.untie_r must be True"):
        XLNetConfig.tiny(untie_r=False)
    with pytest.raises(ValueError, match=r"XLNetConfig.same_length must be False"):
        XLNetConfig.tiny(same_length=True)
    with pytest.raises(ValueError, match=r"XLNetConfig.d_model must be even"):
        XLNetConfig(vocab_size=20, d_model=15, n_heads=3)
    with pytest.raises(ValueError, match=r"XLNetConfig.mem_len must be None or an int >= 0"):
        XLNetConfig.tiny(mem_len=-1)
    with pytest.raises(ValueError, match=r"XLNetConfig.ff_activation"):
        XLNetConfig.tiny(ff_activation="tanh")
    with pytest.raises(ValueError, match="d_head"):
        hf_config(XLNetConfig(vocab_size=20, d_model=16, n_heads=2, d_head=4))
    with pytest.raises(ValueError, match="k must be an int >= 2"):
        sample_permutation(ids, k=1)
    with pytest.raises(ValueError, match="at least 2 real tokens"):
        sample_permutation(ids, k=2, attention_mask=torch.tensor([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0]]))


def test_config_preset():
    model = XLNet(XLNetConfig.tiny())
    assert model.config.d_head == 8 and sum(p.numel() for p in model.parameters()) < 20_000


def test_generate_runs_under_torchs_flop_counter():
    """The chapter counts generation's operations with FlopCounterMode, whose module tracker
    refuses a module input that claims requires_grad without a graph (a no_grad view of a
    parameter): the query stream's input must be a copy."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = XLNet(XLNetConfig.tiny(vocab_size=20)).eval()
    prompt = torch.randint(1, 20, (1, 5))
    for use_mems in (False, True):
        with FlopCounterMode(display=False) as counter:
            generate(model, prompt, 3, use_mems=use_mems)
        assert counter.get_total_flops() > 0
