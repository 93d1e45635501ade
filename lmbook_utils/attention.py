"""Attention: a readable reference function and the multi-head module every model is built on.

Introduced in chapter 03_attention. Scaled dot-product attention (Vaswani et al. 2017,
"Attention Is All You Need", NeurIPS, arXiv:1706.03762) is softmax(Q K^T / sqrt(d_k)) V.
`scaled_dot_product_attention` spells it out; `MultiHeadAttention` splits the model width
into heads, attends in each, concatenates and projects with W^O.

Paths, one result: when the weights are wanted (for bertviz, or to study them) the module
computes them with `scaled_dot_product_attention`, written out. When they are not, it picks the
fastest kernel for the device (`MultiHeadAttention.kernel`): PyTorch's fused
`torch.nn.functional.scaled_dot_product_attention` (FlashAttention or memory-efficient
kernels), which never stores the weights, or, on the CPU for up to EXPLICIT_MAX_KEYS keys, the
plain softmax with the mask added in the same batched matrix product. At the book's sizes the
whole module ran forward and backward 1.1-1.9x faster with it up to 64 keys, 0.8-1.4x as
fast at 128 (it varied between runs) and slower from 256 on (benchmarks/attention_speed.py,
2 CPU cores).
The tests check that every path agrees and that the module matches `torch.nn.MultiheadAttention`.

Mask convention (as in PyTorch's functional SDPA, and the OPPOSITE of nn.MultiheadAttention's
`attn_mask`): a boolean tensor, True where a query MAY attend to a key. Masks broadcast to
(batch, heads, n_queries, n_keys); a 2-D mask is (n_queries, n_keys), a 3-D mask is
(batch, n_queries, n_keys). A query that may attend to nothing is an error, not a row of NaN.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .dropout import dropout

__all__ = ["scaled_dot_product_attention", "causal_mask", "padding_mask", "KVCache",
           "MultiHeadAttention", "Projection", "KERNELS", "EXPLICIT_MAX_KEYS"]

KERNELS = ("auto", "sdpa", "explicit")
# Up to this many keys the module uses the plain softmax on a CPU: measured on 2 cores, forward
# and backward, 16-32 dims per head, it was 1.1-1.9x faster up to 64 keys, 0.8-1.4x as fast at
# 128 (it varied between runs), and slower from 256 on (benchmarks/attention_speed.py).
EXPLICIT_MAX_KEYS = 128


def causal_mask(n_queries: int, n_keys: int | None = None,
                device: torch.device | str | None = None) -> torch.Tensor:
    """(n_queries, n_keys) bool, True where key j <= query i's position.

    Introduced in chapter 03_attention. With n_keys > n_queries (a cache of earlier keys) the
    queries are the LAST n_queries positions: query i sits at position n_keys - n_queries + i.
    """
    n_keys = n_queries if n_keys is None else n_keys
    for name, value in (("n_queries", n_queries), ("n_keys", n_keys)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if n_keys < n_queries:
        raise ValueError(f"n_keys must be >= n_queries ({n_queries}), got {n_keys}")
    return torch.ones(n_queries, n_keys, dtype=torch.bool, device=device).tril(n_keys - n_queries)


def padding_mask(lengths: torch.Tensor | list[int], max_len: int | None = None) -> torch.Tensor:
    """(batch, 1, 1, max_len) bool, True at real tokens: a key mask for padded batches.

    Introduced in chapter 03_attention."""
    lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1 or lengths.dtype in (torch.bool,) or lengths.is_floating_point():
        raise ValueError(f"lengths must be a 1-D sequence of ints, got {lengths.tolist()!r}")
    if len(lengths) and int(lengths.min()) < 1:
        raise ValueError(f"lengths must be >= 1, got {lengths.tolist()}")
    longest = int(lengths.max()) if len(lengths) else 0
    max_len = longest if max_len is None else max_len
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < longest:
        raise ValueError(f"max_len must be an int >= the longest length ({longest}), got {max_len!r}")
    keep = torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]
    return keep[:, None, None, :]


def _check_mask(mask: torch.Tensor, target: tuple[int, ...], name: str = "mask",
                rows: bool = True) -> torch.Tensor:
    """Type and shape of a mask; with `rows`, also that every query keeps a key (a value check,
    one host sync: the module runs it once, on the combined mask; skipped on the meta device)."""
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise TypeError(f"{name} must be a bool tensor (True = may attend), got {got}")
    try:
        shape = torch.broadcast_shapes(mask.shape, target)
    except RuntimeError:
        shape = None
    if shape != torch.Size(target):
        raise ValueError(f"{name} of shape {tuple(mask.shape)} does not broadcast to the "
                         f"attention shape {target} (..., n_queries, n_keys)")
    if rows and mask.device.type != "meta" and not mask.any(dim=-1).all():
        raise ValueError(f"{name} leaves a query with no key to attend to (a row of all False); "
                         "its softmax would be NaN")
    return mask


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 mask: torch.Tensor | None = None, dropout_p: float = 0.0,
                                 training: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d_k)) v, written out; returns (output, weights).

    Introduced in chapter 03_attention. q: (..., n_q, d_k), k: (..., n_k, d_k),
    v: (..., n_k, d_v); mask: bool, True = may attend, broadcastable to (..., n_q, n_k).
    d_k is a Python int, so the scale is math.sqrt(d_k): `torch.sqrt(d_k)` would raise a
    TypeError (torch.sqrt takes tensors), a classic slip.
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.dim() < 2:
            raise ValueError(f"{name} must be a tensor with at least 2 dims (..., n, d), got "
                             f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must have the same last dim d_k, got {q.shape[-1]} and {k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same number of keys, got {k.shape[-2]} and {v.shape[-2]}")
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)
    if mask is not None:
        mask = _check_mask(mask, tuple(scores.shape))
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, training=training)
    return weights @ v, weights


@dataclass
class KVCache:
    """Keys and values of the positions seen so far, per head: (batch, heads, T, d_k).

    Introduced in chapter 06_gpt: generation feeds one new token at a time and attends to
    the cached keys and values instead of recomputing them."""

    k: torch.Tensor | None = None
    v: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[-2]

    def extend(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k is not None and (self.k.shape[:2] != k.shape[:2] or self.k.shape[-1] != k.shape[-1]):
            raise ValueError(f"cache holds keys of shape {tuple(self.k.shape)}, cannot add "
                             f"{tuple(k.shape)} (batch, heads and d_k must match)")
        self.k = k if self.k is None else torch.cat([self.k, k], dim=-2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=-2)
        return self.k, self.v


class Projection:
    """One block of a stacked projection layer (W^Q, W^K or W^V of `in_proj`): `weight` and
    `bias` are views into it (writing into them writes into the layer), and calling it applies
    that block alone, like the nn.Linear it would be if the three were kept apart."""

    def __init__(self, layer: nn.Linear, index: int) -> None:
        self.layer, self.index = layer, index
        self.size = layer.out_features // 3

    @property
    def weight(self) -> torch.Tensor:
        return self.layer.weight[self.index * self.size:(self.index + 1) * self.size]

    @property
    def bias(self) -> torch.Tensor | None:
        b = self.layer.bias
        return None if b is None else b[self.index * self.size:(self.index + 1) * self.size]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class MultiHeadAttention(nn.Module):
    """Multi-head attention, batch first: (batch, seq, d_model) in and out.

    Introduced in chapter 03_attention. forward(query, key=None, value=None, ...) is
    self-attention when key and value are None, cross-attention otherwise. Returns
    (output, weights): weights (batch, heads, n_q, n_k) if need_weights else None.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True,
                 kernel: str = "auto") -> None:
        """kernel (when the weights are not returned): "sdpa" PyTorch's fused kernel, "explicit"
        the plain softmax, "auto" the faster of the two for the device and length."""
        super().__init__()
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        self.kernel = kernel
        for name, value in (("d_model", d_model), ("n_heads", n_heads)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        self.d_model, self.n_heads, self.d_k, self.dropout = d_model, n_heads, d_model // n_heads, float(dropout)
        # W^Q, W^K, W^V stacked in one layer, as in nanoGPT's and GPT-2's c_attn and PyTorch's
        # in_proj_weight: self-attention computes Q, K and V in one matrix product (one in the
        # backward pass too). q_proj, k_proj, v_proj below are its three blocks.
        self.in_proj = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    @property
    def q_proj(self) -> Projection:
        """W^Q (and its bias): rows 0..d_model-1 of in_proj, callable like an nn.Linear."""
        return Projection(self.in_proj, 0)

    @property
    def k_proj(self) -> Projection:
        """W^K: rows d_model..2 d_model-1 of in_proj."""
        return Projection(self.in_proj, 1)

    @property
    def v_proj(self) -> Projection:
        """W^V: the last d_model rows of in_proj."""
        return Projection(self.in_proj, 2)

    def _project(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Q, K, V = query W^Q, key W^K, value W^V (plus biases), each (batch, seq, d_model).

        Self-attention (one input) takes the three from one product with the stacked weights;
        cross-attention projects the query alone and the keys and values (one source) together.
        """
        if key is query and value is query:
            return self.in_proj(query).split(self.d_model, dim=-1)
        w, b = self.in_proj.weight, self.in_proj.bias
        d = self.d_model
        q = F.linear(query, w[:d], None if b is None else b[:d])
        if value is key:
            k, v = F.linear(key, w[d:], None if b is None else b[d:]).split(d, dim=-1)
            return q, k, v
        return q, self.k_proj(key), self.v_proj(value)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.d_k).transpose(1, 2)  # (b, h, t, d_k)

    def _check_input(self, x: torch.Tensor, name: str, batch: int | None = None) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != self.d_model:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name} must have shape (batch, seq, d_model={self.d_model}), got {got}")
        if batch is not None and x.shape[0] != batch:
            raise ValueError(f"{name} has batch size {x.shape[0]}, query has {batch}")

    def forward(self, query: torch.Tensor, key: torch.Tensor | None = None,
                value: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                key_mask: torch.Tensor | None = None, need_weights: bool = False,
                is_causal: bool = False, cache: KVCache | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """mask: bool, True = may attend, (n_q, n_k), (batch, n_q, n_k) or 4-D broadcastable;
        key_mask: bool (batch, n_k), True at real tokens (the opposite of PyTorch's
        key_padding_mask, where True = blocked); is_causal adds a causal mask
        (queries are the last positions when a cache holds earlier keys); cache: a KVCache
        that this call extends with the new keys and values (self-attention only)."""
        self._check_input(query, "query")
        key = query if key is None else key
        value = key if value is None else value
        self._check_input(key, "key", query.shape[0])
        self._check_input(value, "value", query.shape[0])
        if key.shape[1] != value.shape[1]:
            raise ValueError(f"key and value must have the same length, got {key.shape[1]} and {value.shape[1]}")
        b, n_q = query.shape[:2]
        q, k, v = (self._split(t) for t in self._project(query, key, value))
        if cache is not None:
            if key is not query:
                raise ValueError("cache works for self-attention only (key and value must be None)")
            k, v = cache.extend(k, v)
        n_k = k.shape[-2]
        target = (b, self.n_heads, n_q, n_k)
        full, names = None, []
        if mask is not None:
            names.append("mask")
            if isinstance(mask, torch.Tensor) and mask.dim() == 3:
                mask = mask[:, None]  # (batch, n_q, n_k) -> (batch, 1, n_q, n_k)
            full = _check_mask(mask, target, rows=False)
        if key_mask is not None:
            if not isinstance(key_mask, torch.Tensor) or key_mask.shape != (b, n_k):
                got = tuple(key_mask.shape) if isinstance(key_mask, torch.Tensor) else key_mask
                raise ValueError(f"key_mask must have shape (batch={b}, n_keys={n_k}), got {got}")
            kp = _check_mask(key_mask[:, None, None, :], target, "key_mask", rows=False)
            names.append("key_mask")
            full = kp if full is None else full & kp
        p = self.dropout if self.training else 0.0
        explicit = not need_weights and self._explicit_kernel(query.device, n_k)
        # A causal mask alone: the fused kernel builds it itself (its flash kernel needs
        # is_causal=True and no explicit mask), the explicit kernel adds a cached -inf triangle.
        causal_alone = is_causal and full is None and not need_weights and (explicit or n_q == n_k)
        if is_causal and not causal_alone:
            names.append("the causal mask")
            cm = causal_mask(n_q, n_k, device=query.device)
            full = cm if full is None else full & cm
        if full is not None:
            _check_mask(full, target, names[0] if len(names) == 1 else "the combined mask")
        weights = None
        if need_weights:
            out, weights = scaled_dot_product_attention(q, k, v, full, p, self.training)
        elif explicit:
            bias = _causal_bias(n_q, n_k, q.device, q.dtype) if causal_alone else _mask_bias(full, q.dtype)
            out = _softmax_attention(q, k, v, bias, p)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=full, dropout_p=p,
                                                 is_causal=causal_alone)
        out = out.transpose(1, 2).reshape(b, n_q, self.d_model)
        return self.out_proj(out), weights

    def _explicit_kernel(self, device: torch.device, n_k: int) -> bool:
        if self.kernel != "auto":
            return self.kernel == "explicit"
        return device.type == "cpu" and n_k <= EXPLICIT_MAX_KEYS


@functools.lru_cache(maxsize=16)
def _causal_bias(n_q: int, n_k: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(n_q, n_k): 0 where causal_mask is True, -inf above the diagonal. Cached: a pure function
    of its arguments, built once per shape instead of at every layer of every step."""
    return torch.zeros(n_q, n_k, dtype=dtype, device=device).masked_fill_(
        ~causal_mask(n_q, n_k, device=device), float("-inf"))


def _mask_bias(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """The bool mask (True = may attend) as an additive one: 0 where True, -inf where False."""
    if mask is None:
        return None
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, float("-inf"))


def _softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None,
                       dropout_p: float) -> torch.Tensor:
    """softmax(q k^T / sqrt(d_k) + bias) v for (batch, heads, n, d) tensors, as batched 3-D
    products: the scale and the additive mask go into the same `baddbmm` call."""
    b, h, n_q, d_k = q.shape
    n_k, d_v = k.shape[-2], v.shape[-1]
    q3, k3, v3 = q.reshape(b * h, n_q, d_k), k.reshape(b * h, n_k, d_k), v.reshape(b * h, n_k, d_v)
    scale = 1.0 / math.sqrt(d_k)
    if bias is None:
        scores = torch.bmm(q3, k3.transpose(1, 2)) * scale
    else:
        if bias.dim() > 2:  # per batch and/or head: one (n_q, n_k) matrix per product
            bias = bias.expand(b, h, n_q, n_k).reshape(b * h, n_q, n_k)
        scores = torch.baddbmm(bias, q3, k3.transpose(1, 2), alpha=scale)
    weights = scores.softmax(-1)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, training=True)
    return torch.bmm(weights, v3).view(b, h, n_q, d_v)
