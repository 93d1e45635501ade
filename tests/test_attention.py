"""Attention: hand-worked numbers, PyTorch's own modules as references, and the causal property."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from lmbook_utils.attention import (EXPLICIT_MAX_KEYS, KVCache, MultiHeadAttention, causal_mask, padding_mask,
                                    scaled_dot_product_attention)

torch.set_num_threads(2)


def test_two_tokens_by_hand():
    # Row 1: scores (1, 1)/sqrt(2) -> weights (1/2, 1/2) -> output (0.5, 1).
    # Row 2: scores (1, -1)/sqrt(2) -> weights sigmoid(+-sqrt(2)) -> output (w, 2 (1 - w)).
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    v = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    w = 1 / (1 + math.exp(-math.sqrt(2)))
    out, weights = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(weights, torch.tensor([[0.5, 0.5], [w, 1 - w]]))
    torch.testing.assert_close(out, torch.tensor([[0.5, 1.0], [w, 2 * (1 - w)]]))


def test_reference_matches_torch_functional_with_mask():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=g) for _ in range(3))
    mask = causal_mask(5)
    out, w = scaled_dot_product_attention(q, k, v, mask)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, 5))
    assert torch.all(w[..., ~mask] == 0)


def test_masks_by_hand():
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    # two cached keys, one new query: it sits at position 2 and sees all three keys
    assert causal_mask(1, 3).tolist() == [[True, True, True]]
    assert causal_mask(2, 3).tolist() == [[True, True, False], [True, True, True]]
    assert padding_mask([2, 3]).reshape(2, 3).tolist() == [[True, True, False], [True, True, True]]
    assert padding_mask([1], max_len=2).shape == (1, 1, 1, 2)


def copy_into_torch(ours: MultiHeadAttention) -> nn.MultiheadAttention:
    ref = nn.MultiheadAttention(ours.d_model, ours.n_heads, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        ref.out_proj.weight.copy_(ours.out_proj.weight)
        ref.out_proj.bias.copy_(ours.out_proj.bias)
    return ref.eval()


@pytest.mark.parametrize("cross", [False, True])
def test_matches_torch_multihead_attention(cross):
    torch.manual_seed(1)
    ours = MultiHeadAttention(24, 3).eval()
    ref = copy_into_torch(ours)
    x = torch.randn(2, 5, 24)
    mem = torch.randn(2, 7, 24) if cross else x
    n_k = mem.shape[1]
    kpm = torch.tensor([[True] * n_k, [True] * (n_k - 2) + [False] * 2])  # ours: True = real
    attn = causal_mask(5, n_k) if not cross else torch.ones(5, n_k, dtype=torch.bool)
    out, w = ours(x, mem, mem, mask=attn, key_mask=kpm, need_weights=True)
    ref_out, ref_w = ref(x, mem, mem, attn_mask=~attn, key_padding_mask=~kpm,
                         need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(out, ref_out, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(w, ref_w, atol=1e-6, rtol=1e-5)
    fast, none = ours(x, mem, mem, mask=attn, key_mask=kpm)
    assert none is None
    torch.testing.assert_close(fast, out, atol=1e-6, rtol=1e-5)


def test_is_causal_equals_explicit_causal_mask():
    torch.manual_seed(2)
    mha = MultiHeadAttention(16, 4).eval()
    x = torch.randn(3, 6, 16)
    a, _ = mha(x, is_causal=True)
    b, _ = mha(x, mask=causal_mask(6))
    torch.testing.assert_close(a, b)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 9), cut=st.integers(1, 8))
def test_causal_outputs_ignore_the_future(seed, n, cut):
    cut = min(cut, n - 1)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    mha = MultiHeadAttention(8, 2).eval()
    x = torch.randn(1, n, 8, generator=g)
    y = x.clone()
    y[:, cut:] = torch.randn(1, n - cut, 8, generator=g)
    for need in (False, True):
        ox, _ = mha(x, is_causal=True, need_weights=need)
        oy, _ = mha(y, is_causal=True, need_weights=need)
        torch.testing.assert_close(ox[:, :cut], oy[:, :cut], atol=1e-6, rtol=1e-5)


def test_kv_cache_one_token_at_a_time_equals_full_pass():
    torch.manual_seed(3)
    mha = MultiHeadAttention(16, 2).eval()
    x = torch.randn(2, 7, 16)
    full, _ = mha(x, is_causal=True)
    cache, steps = KVCache(), []
    for t in range(7):
        out, _ = mha(x[:, t:t + 1], is_causal=True, cache=cache)
        steps.append(out)
    assert len(cache) == 7
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-6, rtol=1e-5)
    # a prompt of 4 tokens at once, then 3 one by one
    cache = KVCache()
    first, _ = mha(x[:, :4], is_causal=True, cache=cache)
    rest = [mha(x[:, t:t + 1], is_causal=True, cache=cache)[0] for t in range(4, 7)]
    torch.testing.assert_close(torch.cat([first] + rest, dim=1), full, atol=1e-6, rtol=1e-5)


def test_integer_d_k_pitfall_is_handled():
    with pytest.raises(TypeError):
        torch.sqrt(64)  # the source documents' bug: torch.sqrt needs a tensor
    q = torch.randn(3, 64)
    _, w = scaled_dot_product_attention(q, q, q)
    torch.testing.assert_close(w, torch.softmax(q @ q.T / 8.0, dim=-1))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="n_heads"):
        MultiHeadAttention(8, 0)
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"query must have shape \(batch, seq, d_model=8\)"):
        mha(torch.randn(2, 5, 6))
    with pytest.raises(ValueError, match="query must have shape"):
        mha(torch.randn(5, 8))
    with pytest.raises(ValueError, match="batch size"):
        mha(torch.randn(2, 5, 8), torch.randn(3, 5, 8))
    with pytest.raises(ValueError, match="does not broadcast"):
        mha(torch.randn(2, 5, 8), mask=causal_mask(4))
    with pytest.raises(TypeError, match="bool tensor"):
        mha(torch.randn(2, 5, 8), mask=torch.ones(5, 5))
    with pytest.raises(ValueError, match="no key to attend to"):
        mha(torch.randn(1, 3, 8), mask=torch.zeros(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="key_mask must have shape"):
        mha(torch.randn(2, 5, 8), key_mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="same last dim"):
        scaled_dot_product_attention(torch.randn(2, 4), torch.randn(2, 3), torch.randn(2, 3))
    with pytest.raises(ValueError, match="n_keys must be >= n_queries"):
        causal_mask(3, 2)
    with pytest.raises(ValueError, match="lengths must be >= 1"):
        padding_mask([0, 2])
    with pytest.raises(ValueError, match="cache works for self-attention only"):
        mha(torch.randn(1, 2, 8), torch.randn(1, 3, 8), cache=KVCache())


@pytest.mark.parametrize("kernel", ["sdpa", "explicit"])
def test_every_kernel_computes_the_reference(kernel):
    # The module picks PyTorch's fused kernel or the plain softmax by device and length
    # ("auto"); both must equal the written-out reference with its weights, for every mask.
    torch.manual_seed(0)
    ref = MultiHeadAttention(16, 4).eval()
    mha = MultiHeadAttention(16, 4, kernel=kernel).eval()
    mha.load_state_dict(ref.state_dict())
    x, mem = torch.randn(3, 6, 16), torch.randn(3, 9, 16)
    keep = torch.ones(3, 6, dtype=torch.bool)
    keep[1, 4:] = False
    cases = [dict(), dict(is_causal=True), dict(key_mask=keep),
             dict(is_causal=True, key_mask=keep), dict(mask=causal_mask(6)[None].expand(3, 6, 6))]
    for kwargs in cases:
        want, _ = ref(x, need_weights=True, **kwargs)
        got, w = mha(x, **kwargs)
        assert w is None
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    want, _ = ref(x, mem, need_weights=True)
    torch.testing.assert_close(mha(x, mem)[0], want, atol=1e-6, rtol=1e-5)
    # with a cache: the last query of a causal prefix
    cache_ref, cache = KVCache(), KVCache()
    ref(x[:, :5], is_causal=True, cache=cache_ref, need_weights=True)
    mha(x[:, :5], is_causal=True, cache=cache)
    want, _ = ref(x[:, 5:], is_causal=True, cache=cache_ref, need_weights=True)
    torch.testing.assert_close(mha(x[:, 5:], is_causal=True, cache=cache)[0], want, atol=1e-6, rtol=1e-5)


def test_auto_kernel_is_the_plain_softmax_on_a_cpu_for_short_inputs(monkeypatch):
    calls = []
    real = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda *a, **k: calls.append(a[0].shape[-2]) or real(*a, **k))
    mha = MultiHeadAttention(16, 4)
    mha(torch.randn(1, EXPLICIT_MAX_KEYS, 16), is_causal=True)
    assert calls == []
    mha(torch.randn(1, EXPLICIT_MAX_KEYS + 1, 16), is_causal=True)
    assert calls == [EXPLICIT_MAX_KEYS + 1]
    with pytest.raises(ValueError, match="kernel"):
        MultiHeadAttention(16, 4, kernel="flash")


def test_q_k_v_projections_are_views_of_the_stacked_layer():
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(2, 3, 8)
    q, k, v = mha.in_proj(x).split(8, dim=-1)
    for proj, want in ((mha.q_proj, q), (mha.k_proj, k), (mha.v_proj, v)):
        torch.testing.assert_close(proj(x), want)
    with torch.no_grad():
        mha.k_proj.weight.zero_()
    assert mha.in_proj.weight[8:16].abs().sum() == 0 and mha.in_proj.weight[:8].abs().sum() > 0
