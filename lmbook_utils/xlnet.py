"""XLNet (Yang et al. 2019, "XLNet: Generalized Autoregressive Pretraining for Language
Understanding", NeurIPS, arXiv:1906.08237): a permutation language model with two-stream attention.

Introduced in chapter 07_xlnet. BERT predicts masked tokens independently
of each other and sees [MASK] symbols that never occur in fine-tuning; GPT sees only the left
context. XLNet keeps autoregressive prediction but draws a random factorization order for each
sequence: token z_t is predicted from the tokens before it *in that order*, wherever they sit in
the text. The tokens stay in place (positions are those of the text); only the attention masks
change, so over many orders every token learns from context on both sides.

How it is built (the architecture is Transformer-XL's, Dai et al. 2019):
- Relative positions: no position table. Each attention score is the sum of a content term
  (query . key), a position term (query . encoding of the distance i - j) and, with
  `token_type_ids`, a segment term (query . "same segment or not"), each with a learned bias per
  head (`r_w_bias`, `r_r_bias`, `r_s_bias`). `rel_shift_bnij` turns "query i x every distance"
  into "query i x key j" with two reshapes.
- Two streams: the content stream h_i sees its own token (a normal Transformer state); the query
  stream g_i starts from a learned vector (`mask_emb`), knows its position but not its token, and
  reads the content stream of the tokens before it in the order. The prediction is made from g,
  so the model never sees the token it predicts. Both streams share every weight.
- Memory: the content states of the previous segment (`mems`) are extra keys and values that
  every query may attend to (Transformer-XL's recurrence); `cache_mem` keeps the last `mem_len`.
- Partial prediction: only the last 1/K of each order is predicted (`sample_permutation`), so
  that every prediction has enough context. The predicted tokens are either a random subset of
  single tokens (the default) or, with `span=True`, contiguous spans of 1 to `max_span` tokens
  (or whole words), chosen as the original code's `_sample_mask` does.

Shapes are batch-first in our API and inside (Hugging Face's code is sequence-first,
(len, batch, ...)). `attention_mask` follows the package (True/1 = real token).
`perm_mask` follows Hugging Face and the original code: perm_mask[b, i, j] = 1 means position i
may NOT attend to position j. Given the same weights the model equals Hugging Face's
`XLNetLMHeadModel` and `XLNetForTokenClassification` (tested, eval mode, with padding, permutation
masks, memory, segments and `bi_data`); `from_hf_state_dict`, `to_hf_state_dict` and
`save_pretrained` convert in both directions. Not implemented: `attn_type="uni"` (Transformer-XL's
causal attention) and shared attention biases (`untie_r=False`).
- bi_data (the original's "bidirectional data"): the model half only. The original input
  pipeline puts the same text streams read backwards in the second half of each batch; the
  model gives that half negated distances (`relative_positional_encoding(backward=True)`), so
  the position term still sees the distances of the text in its own order, and the memory of a
  backward stream, the segment read before it, is what follows the text. A bi_data batch must
  be even; filling its second half is the data's job (`xlnet_pretraining.segment_streams`).
- Generation: `generate` writes left to right as Hugging Face's XLNetLMHeadModel.generate does (a
  dummy token after the text, predicted by the query stream), re-encoding the whole text at each
  step or, with `use_mems`, only the last tokens on top of a memory of frozen earlier states (an
  approximation: a bidirectional content stream changes every state when a token is added). The
  model is not `decoding.Decodable`, whose cache is exact.
The module is longer than 400 lines because the model, its masks and its sampler only make sense
together; the Hugging Face interchange is the last section.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .dropout import Dropout
from .hf_export import write_folder
from .modeling import IGNORE_INDEX, ModelOutput, check_attention_mask, check_input_ids, check_targets, init_weights
from .tokenizers import Tokenizer
from .transformer import FeedForward, check_config_sizes

__all__ = ["XLNetConfig", "XLNet", "XLNetOutput", "XLNetTokenClassifier", "PermutationBatch", "sample_permutation",
           "relative_positional_encoding", "rel_shift_bnij", "rel_shift_direct", "attention_blocks",
           "generate", "from_hf_state_dict", "to_hf_state_dict", "hf_config", "save_pretrained"]


@dataclass
class XLNetConfig:
    """Sizes and options of an XLNet model; names and defaults as Hugging Face's `XLNetConfig`
    where they mean the same (n_layers is their n_layer, n_heads their n_head)."""

    vocab_size: int  # number of token ids
    d_model: int = 64  # width of every token's vector (even: sines and cosines come in pairs)
    n_layers: int = 2  # layers, each relative attention (both streams) then a feed-forward network
    n_heads: int = 4  # attention heads per layer
    d_head: int | None = None  # width of each head; None = d_model // n_heads (Hugging Face requires that)
    d_inner: int = 256  # feed-forward width (XLNet: 4 * d_model)
    layer_norm_eps: float = 1e-12  # LayerNorm epsilon (Hugging Face's and the original's)
    dropout: float = 0.1  # on embeddings, positional encodings, attention weights and residual branches
    mem_len: int | None = None  # memory states kept for the next segment; None or 0 = no limit (all, as HF)
    reuse_len: int | None = None  # only the first reuse_len positions of a segment go into memory; None = all
    bi_data: bool = False  # the second half of each batch is the first's text streams backwards (negated distances)
    clamp_len: int = -1  # relative distances beyond +-clamp_len share one encoding; -1 = no clamping
    same_length: bool = False  # Transformer-XL option for attn_type="uni" only: must be False
    attn_type: str = "bi"  # "bi": XLNet's bidirectional attention (Transformer-XL's "uni" not implemented)
    pad_id: int | None = None  # the padding token, if batches are padded (written to the exported config)
    ignore_index: int = IGNORE_INDEX  # targets equal to it are not predicted
    untie_r: bool = True  # one set of attention biases per layer (Hugging Face always): must be True
    ff_activation: str = "gelu"  # "gelu" (exact, erf: HF's ACT2FN["gelu"]) or "relu"
    use_mems_eval: bool = True  # forward returns new mems in eval mode unless use_mems says otherwise (HF)
    use_mems_train: bool = False  # the same in training mode (HF's default: no memory in fine-tuning)

    def __post_init__(self) -> None:
        if self.d_head is None and isinstance(self.d_model, int) and isinstance(self.n_heads, int) and self.n_heads:
            self.d_head = self.d_model // self.n_heads
        check_config_sizes(self, ("vocab_size", "d_model", "n_layers", "n_heads", "d_head", "d_inner"))
        name = type(self).__name__
        if self.d_model % 2:
            raise ValueError(f"{name}.d_model must be even (the positional encoding pairs a sine with a cosine), "
                             f"got {self.d_model}")
        if isinstance(self.layer_norm_eps, bool) or not isinstance(self.layer_norm_eps, (int, float)) \
                or not self.layer_norm_eps > 0:
            raise ValueError(f"{name}.layer_norm_eps must be a number > 0, got {self.layer_norm_eps!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ValueError(f"{name}.dropout must be in [0, 1), got {self.dropout!r}")
        for field in ("mem_len", "reuse_len"):
            value = getattr(self, field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{name}.{field} must be None or an int >= 0, got {value!r}")
        if not isinstance(self.bi_data, bool):
            raise ValueError(f"{name}.bi_data must be a bool (True: the second half of each batch is read "
                             f"backwards), got {self.bi_data!r}")
        if isinstance(self.clamp_len, bool) or not isinstance(self.clamp_len, int):
            raise ValueError(f"{name}.clamp_len must be an int (-1 = no clamping), got {self.clamp_len!r}")
        if self.same_length is not False:
            raise ValueError(f"{name}.same_length must be False (it only changes attn_type='uni', which is "
                             f"not implemented), got {self.same_length!r}")
        if self.attn_type != "bi":
            raise ValueError(f"{name}.attn_type must be 'bi' (XLNet's bidirectional attention; Transformer-XL's "
                             f"'uni' is not implemented), got {self.attn_type!r}")
        if self.pad_id is not None and (isinstance(self.pad_id, bool) or not isinstance(self.pad_id, int)
                                        or not 0 <= self.pad_id < self.vocab_size):
            raise ValueError(f"{name}.pad_id must be None or an id in [0, vocab_size={self.vocab_size}), "
                             f"got {self.pad_id!r}")
        if isinstance(self.ignore_index, bool) or not isinstance(self.ignore_index, int):
            raise ValueError(f"{name}.ignore_index must be an int, got {self.ignore_index!r}")
        if self.untie_r is not True:
            raise ValueError(f"{name}.untie_r must be True (one set of attention biases per layer, as Hugging "
                             f"Face's XLNet; sharing them across layers is not implemented), got {self.untie_r!r}")
        if self.ff_activation not in ("gelu", "relu"):
            raise ValueError(f"{name}.ff_activation must be 'gelu' or 'relu', got {self.ff_activation!r}")
        for field in ("use_mems_eval", "use_mems_train"):
            if not isinstance(getattr(self, field), bool):
                raise ValueError(f"{name}.{field} must be a bool, got {getattr(self, field)!r}")

    @classmethod
    def tiny(cls, vocab_size: int = 11, **changes) -> XLNetConfig:
        """A model small enough for a unit test (thousands of parameters)."""
        return cls(**{"vocab_size": vocab_size, "d_model": 16, "n_layers": 2, "n_heads": 2, "d_inner": 32,
                      "dropout": 0.0, **changes})


@dataclass
class XLNetOutput(ModelOutput):
    """What `XLNet.forward` returns: `modeling.ModelOutput` plus what only XLNet has.

    With `target_mapping`, `logits` (batch, num_predict, vocab) and `last_hidden_state`
    (batch, num_predict, d_model) are the query stream's, one row per prediction (Hugging Face
    returns the same); without it they are the content stream's, one row per position.
    `attentions` are the content stream's, (batch, heads, T, mem_len + T) per layer."""

    mems: list | None = None  # per layer (batch, mem_len, d_model): pass as `mems` with the next segment
    query_attentions: list | None = None  # per layer, the query stream's (with target_mapping and need_weights)


# ---- relative positions ---------------------------------------------------------------------
def relative_positional_encoding(qlen: int, klen: int, d_model: int, clamp_len: int = -1,
                                 device: torch.device | str | None = None, backward: bool = False) -> torch.Tensor:
    """(klen + qlen, d_model) float32: row r encodes the relative distance klen - r, from klen
    down to -qlen + 1, as [sin(d * f), cos(d * f)] with f_k = 1 / 10000^(2k / d_model).
    backward=True negates every distance (row r: r - klen), for the second half of a bi_data
    batch, whose text is read backwards: negated, its distances are those of the text's own order.

    Sines and cosines are concatenated, not interleaved as in `transformer.sinusoidal_positions`
    (the same numbers in another order: Hugging Face's and the original's layout). klen = memory +
    segment length; a query at position i (counting the memory) and a key at j are i - j apart.
    Distances beyond +-clamp_len (when > 0) share the encoding of +-clamp_len. Computed exactly as
    Hugging Face does (int64 aranges turned into float32), so the numbers are the same to the bit."""
    freq_seq = torch.arange(0, d_model, 2, dtype=torch.int64, device=device).float()
    inv_freq = 1 / torch.pow(10000, (freq_seq / d_model))
    pos_seq = torch.arange(klen, -qlen, -1, dtype=torch.int64, device=device).float()
    if backward:  # Hugging Face's arange(-klen, qlen, 1): the same numbers
        pos_seq = -pos_seq
    if clamp_len > 0:
        pos_seq = pos_seq.clamp(-clamp_len, clamp_len)
    angles = pos_seq[:, None] * inv_freq
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


def rel_shift_bnij(x: torch.Tensor, klen: int) -> torch.Tensor:
    """Scores "query i x distance row r" (batch, heads, qlen, klen + qlen) -> "query i x key j"
    (batch, heads, qlen, klen), with out[..., i, j] = x[..., i, qlen - i + j].

    Row r of the positional encoding is the distance klen - r, so query i (at position
    mlen + i) and key j, which are mlen + i - j apart, need column klen - (mlen + i - j) =
    qlen - i + j: each query row is read from a different offset. Instead of gathering, the
    trick views the memory differently. With qlen = 2, klen = 2 (no memory) the distances of the
    columns are [2, 1, 0, -1] and x is

        [[a0 a1 a2 a3],      flattened: a0 a1 a2 a3 b0 b1 b2 b3
         [b0 b1 b2 b3]]

    1. view it as (klen + qlen, qlen) = 4 x 2 and drop the first row, i.e. drop the first qlen
       numbers: a2 a3 b0 b1 b2 b3;
    2. view those as (qlen, klen + qlen - 1) = 2 x 3: [[a2 a3 b0], [b1 b2 b3]];
    3. keep the first klen columns: [[a2 a3], [b1 b2]].

    Row 0 now holds distances 0 and -1 (keys 0 and 1), row 1 holds 1 and 0: each row has
    slid one place further left than the row above, which is the i-dependent offset. The column
    of distance klen is never needed (the farthest key is klen - 1 away), so nothing is lost.
    `rel_shift_direct` computes the same with an explicit index (tested)."""
    b, n, qlen, rlen = x.shape
    x = x.reshape(b, n, rlen, qlen)[:, :, 1:, :]
    x = x.reshape(b, n, qlen, rlen - 1)
    return x[..., :klen]


def rel_shift_direct(x: torch.Tensor, klen: int) -> torch.Tensor:
    """What `rel_shift_bnij` computes, written as the definition: out[..., i, j] = x[..., i, qlen - i + j]."""
    b, n, qlen, rlen = x.shape
    i = torch.arange(qlen, device=x.device)[:, None]
    j = torch.arange(klen, device=x.device)[None, :]
    return x.gather(3, (qlen - i + j).expand(b, n, qlen, klen))


# ---- the attention masks --------------------------------------------------------------------
def attention_blocks(keep: torch.Tensor | None, perm_blocked: torch.Tensor | None, mlen: int,
                     qlen: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(blocked_h, blocked_g): bool, True where a query may NOT attend to a key, shaped
    (batch, qlen, mlen + qlen) or (batch, 1, mlen + qlen) (one row for every query); (None, None)
    when nothing is blocked. As Hugging Face's XLNetModel.forward builds them:

    - nobody attends to padding (keep: (batch, qlen), True at real tokens);
    - perm_blocked (batch, qlen, qlen): the permutation mask, True = i may not see j;
    - every query may attend to the whole memory;
    - blocked_g is for the query stream; blocked_h, for the content stream, is the same except
      that a position always sees itself (the content stream carries its own token: Hugging
      Face's non_tgt_mask), padding included, so that no content row is empty."""
    if keep is None and perm_blocked is None:
        return None, None
    blocked = None if keep is None else ~keep[:, None, :]
    if perm_blocked is not None:
        blocked = perm_blocked if blocked is None else blocked | perm_blocked
    if mlen > 0:
        memory = torch.zeros(blocked.shape[0], blocked.shape[1], mlen, dtype=torch.bool, device=blocked.device)
        blocked = torch.cat([memory, blocked], dim=2)
    device = blocked.device
    itself = (torch.arange(mlen + qlen, device=device)[None, :]
              == torch.arange(qlen, device=device)[:, None] + mlen)  # (qlen, klen): key mlen + i is query i
    return blocked & ~itself, blocked


# ---- the layers -----------------------------------------------------------------------------
class RelativeAttention(nn.Module):
    """Two-stream relative multi-head attention, then output projection, dropout, residual and
    LayerNorm (post-LN). Weights (d_model, n_heads, d_head), no biases, as Hugging Face's
    XLNetRelativeAttention: q, k, v, o, and r for the positional encodings."""

    def __init__(self, c: XLNetConfig) -> None:
        super().__init__()
        shape = (c.d_model, c.n_heads, c.d_head)
        self.q, self.k, self.v, self.o, self.r = (nn.Parameter(torch.empty(shape)) for _ in range(5))
        self.r_w_bias = nn.Parameter(torch.empty(c.n_heads, c.d_head))  # content bias ("u" in the paper)
        self.r_r_bias = nn.Parameter(torch.empty(c.n_heads, c.d_head))  # position bias ("v")
        self.r_s_bias = nn.Parameter(torch.empty(c.n_heads, c.d_head))  # segment bias ("b")
        self.seg_embed = nn.Parameter(torch.empty(2, c.n_heads, c.d_head))  # 0: same segment, 1: different
        self.layer_norm = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.dropout = Dropout(c.dropout)
        self.scale = 1 / (c.d_head ** 0.5)

    def core(self, q_head, k_head_h, v_head_h, k_head_r, seg_mat, blocked):
        """Queries (b, qlen, n, d) against keys (b, klen, n, d): returns (values (b, qlen, n, d),
        attention weights (b, n, qlen, klen))."""
        ac = torch.einsum("bind,bjnd->bnij", q_head + self.r_w_bias, k_head_h)  # content
        bd = torch.einsum("bind,brnd->bnir", q_head + self.r_r_bias, k_head_r)  # position, per distance
        bd = rel_shift_bnij(bd, klen=ac.shape[3])  # ... per key
        ef = 0
        if seg_mat is not None:  # segment: one of two vectors per (query, key) pair
            ef = torch.einsum("bind,snd->bins", q_head + self.r_s_bias, self.seg_embed)
            ef = torch.einsum("bijs,bins->bnij", seg_mat, ef)
        score = (ac + bd + ef) * self.scale
        if blocked is not None:
            # Hugging Face subtracts a large number rather than setting -inf: a row with every key
            # blocked gets uniform weights instead of NaN (the same numbers as theirs)
            big = 65500.0 if score.dtype == torch.float16 else 1e30
            score = score - big * blocked[:, None].to(score.dtype)
        prob = self.dropout(F.softmax(score, dim=3))
        return torch.einsum("bnij,bjnd->bind", prob, v_head_h), prob

    def post_attention(self, x, attn_vec):
        out = torch.einsum("bind,hnd->bih", attn_vec, self.o)
        return self.layer_norm(self.dropout(out) + x)

    def forward(self, h, g, blocked_h, blocked_g, r, seg_mat, mem=None, target_mapping=None):
        """h (b, qlen, d_model): content stream; g (b, num_predict, d_model) or None: query stream,
        whose row m sits at the position that target_mapping[:, m] selects; r (b, klen + qlen,
        d_model): positional encodings; mem (b, mlen, d_model) or None. Both streams attend to the
        content stream (memory first). Returns (h, g, weights_h, weights_g)."""
        cat = h if mem is None else torch.cat([mem, h], dim=1)
        k_head_h = torch.einsum("bjh,hnd->bjnd", cat, self.k)
        v_head_h = torch.einsum("bjh,hnd->bjnd", cat, self.v)
        k_head_r = torch.einsum("brh,hnd->brnd", r, self.r)
        q_head_h = torch.einsum("bih,hnd->bind", h, self.q)
        vec_h, prob_h = self.core(q_head_h, k_head_h, v_head_h, k_head_r, seg_mat, blocked_h)
        out_h, out_g, prob_g = self.post_attention(h, vec_h), None, None
        if g is not None:
            q_head_g = torch.einsum("bmh,hnd->bmnd", g, self.q)
            # move each prediction's query to its position, attend there, and move the result back
            q_head_g = torch.einsum("bmnd,bml->blnd", q_head_g, target_mapping)
            vec_g, prob_g = self.core(q_head_g, k_head_h, v_head_h, k_head_r, seg_mat, blocked_g)
            vec_g = torch.einsum("blnd,bml->bmnd", vec_g, target_mapping)
            out_g = self.post_attention(g, vec_g)
        return out_h, out_g, prob_h, prob_g


class PositionwiseFF(nn.Module):
    """LayerNorm(x + dropout(layer_2(dropout(act(layer_1(x)))))), as Hugging Face's XLNetFeedForward."""

    def __init__(self, c: XLNetConfig) -> None:
        super().__init__()
        self.net = FeedForward(c.d_model, c.d_inner, c.dropout, activation=c.ff_activation)  # linear1/2
        self.dropout = Dropout(c.dropout)
        self.layer_norm = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_norm(x + self.dropout(self.net(x)))


class XLNetLayer(nn.Module):
    """Relative attention for both streams, then the same feed-forward network applied to each."""

    def __init__(self, c: XLNetConfig) -> None:
        super().__init__()
        self.rel_attn = RelativeAttention(c)
        self.ff = PositionwiseFF(c)

    def forward(self, h, g, blocked_h, blocked_g, r, seg_mat, mem=None, target_mapping=None):
        h, g, prob_h, prob_g = self.rel_attn(h, g, blocked_h, blocked_g, r, seg_mat, mem, target_mapping)
        return self.ff(h), (None if g is None else self.ff(g)), prob_h, prob_g


# ---- the model ------------------------------------------------------------------------------
def _binary(t: object, shape: tuple[int, ...], name: str, meaning: str) -> torch.Tensor:
    """A 0/1 (or bool) tensor of the given shape, as bool."""
    if not isinstance(t, torch.Tensor) or tuple(t.shape) != tuple(shape):
        got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"{name} must be a tensor of shape {tuple(shape)} ({meaning}), got {got}")
    if t.dtype != torch.bool:
        if t.device.type != "meta" and t.numel() and not bool(((t == 0) | (t == 1)).all()):
            raise ValueError(f"{name} must hold only 0 and 1 (or be bool) ({meaning})")
        t = t != 0
    return t


class XLNet(nn.Module):
    """XLNet with its language-model head (Hugging Face's XLNetLMHeadModel): the output layer is
    tied to the word embeddings and has a bias of its own (their `lm_loss`)."""

    def __init__(self, config: XLNetConfig) -> None:
        super().__init__()
        if not isinstance(config, XLNetConfig):
            raise TypeError(f"config must be an XLNetConfig, got {type(config).__name__}")
        c = self.config = config
        self.ignore_index = c.ignore_index  # targets equal to it are not predicted
        self.word_embedding = nn.Embedding(c.vocab_size, c.d_model)
        self.mask_emb = nn.Parameter(torch.empty(1, 1, c.d_model))  # the query stream's input: position, no token
        self.layers = nn.ModuleList(XLNetLayer(c) for _ in range(c.n_layers))
        self.dropout = Dropout(c.dropout)
        self.lm_bias = nn.Parameter(torch.zeros(c.vocab_size))
        self.apply(self._init)
        nn.init.normal_(self.mask_emb, std=0.02)

    @staticmethod
    def _init(module: nn.Module) -> None:
        """Hugging Face's initialization: `modeling.init_weights`, and N(0, 0.02) for the
        attention's projections and biases too."""
        init_weights(module)
        if isinstance(module, RelativeAttention):
            for p in (module.q, module.k, module.v, module.o, module.r, module.r_r_bias, module.r_s_bias,
                      module.r_w_bias, module.seg_embed):
                nn.init.normal_(p, std=0.02)

    def cache_mem(self, curr: torch.Tensor, prev: torch.Tensor | None) -> torch.Tensor:
        """The memory for the next segment: the previous memory then this segment's first
        reuse_len states, of which the last mem_len are kept (all when mem_len is None or 0, as
        Hugging Face), detached (no gradient flows into an earlier segment)."""
        c = self.config
        if c.reuse_len is not None and c.reuse_len > 0:
            curr = curr[:, :c.reuse_len]
        cutoff = 0 if not c.mem_len else -c.mem_len
        new = curr if prev is None else torch.cat([prev, curr], dim=1)
        return new[:, cutoff:].detach()

    def _check_mems(self, mems: object, batch: int) -> list[torch.Tensor] | None:
        if mems is None:
            return None
        c = self.config
        shape = f"(batch={batch}, mem_len, d_model={c.d_model})"
        if not isinstance(mems, (list, tuple)) or len(mems) != c.n_layers:
            got = f"{len(mems)} entries" if isinstance(mems, (list, tuple)) else type(mems).__name__
            raise ValueError(f"mems must be a list of {c.n_layers} tensors, one per layer, each {shape}, got {got}")
        mlen = None
        for i, m in enumerate(mems):
            ok = isinstance(m, torch.Tensor) and m.dim() == 3 and m.shape[0] == batch and m.shape[2] == c.d_model
            if ok and mlen is None:
                mlen = m.shape[1]
            if not ok or m.shape[1] != mlen:
                got = tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
                raise ValueError(f"mems[{i}] must have shape {shape}, the same mem_len in every layer "
                                 f"(mems[0]: {mlen}), got {got}")
        return list(mems)

    def _check_target_mapping(self, target_mapping: object, batch: int, qlen: int) -> torch.Tensor:
        meaning = "target_mapping[b, m, j] = 1: prediction m of row b is the token at position j"
        if not isinstance(target_mapping, torch.Tensor) or target_mapping.dim() != 3 \
                or target_mapping.shape[0] != batch or target_mapping.shape[2] != qlen or target_mapping.shape[1] < 1:
            got = (tuple(target_mapping.shape) if isinstance(target_mapping, torch.Tensor)
                   else type(target_mapping).__name__)
            raise ValueError(f"target_mapping must be a tensor of shape (batch={batch}, num_predict >= 1, T={qlen}) "
                             f"({meaning}), got {got}")
        tm = _binary(target_mapping, tuple(target_mapping.shape), "target_mapping", meaning)
        if tm.device.type != "meta":
            counts = tm.sum(-1)
            bad = (counts != 1).nonzero()
            if len(bad):
                b, m = (int(v) for v in bad[0])
                what = "no position (a row of zeros)" if int(counts[b, m]) == 0 else f"{int(counts[b, m])} positions"
                raise ValueError(f"target_mapping[{b}, {m}] selects {what}: each prediction must select exactly "
                                 f"one position ({meaning})")
        return tm

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               token_type_ids: torch.Tensor | None = None, perm_mask: torch.Tensor | None = None,
               target_mapping: torch.Tensor | None = None, mems: list[torch.Tensor] | None = None,
               use_mems: bool | None = None, need_weights: bool = False) -> XLNetOutput:
        """The network without a head (Hugging Face's XLNetModel); see `forward` for the arguments.
        Returns an XLNetOutput without logits."""
        c = self.config
        check_input_ids(input_ids, "input_ids", c.vocab_size)
        b, qlen = input_ids.shape
        mems = self._check_mems(mems, b)
        mlen = 0 if mems is None else mems[0].shape[1]
        keep = None if attention_mask is None else check_attention_mask(attention_mask, (b, qlen))
        perm = None if perm_mask is None else _binary(
            perm_mask, (b, qlen, qlen), "perm_mask", "perm_mask[b, i, j] = 1: position i may NOT attend to j")
        tm = None if target_mapping is None else self._check_target_mapping(target_mapping, b, qlen)
        if token_type_ids is not None and (
                not isinstance(token_type_ids, torch.Tensor) or tuple(token_type_ids.shape) != (b, qlen)
                or token_type_ids.is_floating_point() or token_type_ids.dtype == torch.bool):
            got = (f"{token_type_ids.dtype} {tuple(token_type_ids.shape)}" if isinstance(token_type_ids, torch.Tensor)
                   else type(token_type_ids).__name__)
            raise ValueError(f"token_type_ids must be an integer tensor of shape {(b, qlen)} (segment ids), got {got}")
        if c.bi_data and b % 2:
            # Hugging Face halves with bsz // 2: 0 rows of output for a batch of 1, an einsum error for 3
            raise ValueError(f"config.bi_data=True needs an even batch (its first half read forwards, the "
                             f"second the same text streams backwards), got batch size {b}")
        if use_mems is None:
            use_mems = c.use_mems_train if self.training else c.use_mems_eval

        blocked_h, blocked_g = attention_blocks(keep, perm, mlen, qlen)
        h = self.dropout(self.word_embedding(input_ids))
        dtype = h.dtype
        g = None
        if tm is not None:
            tm = tm.to(dtype)
            # a copy, not a view: a view of a parameter made under no_grad still says requires_grad,
            # which breaks torch's module tracker (FlopCounterMode) when generating
            g = self.dropout(self.mask_emb.expand(b, tm.shape[1], -1).clone())
        seg_mat = None
        if token_type_ids is not None:  # the memory counts as segment 0, as in Hugging Face
            cat_ids = torch.cat([token_type_ids.new_zeros(b, mlen), token_type_ids], dim=1)
            different = token_type_ids[:, :, None] != cat_ids[:, None, :]  # (b, qlen, klen)
            seg_mat = torch.stack([~different, different], dim=-1).to(dtype)  # one-hot: [same, different]
        r = relative_positional_encoding(qlen, mlen + qlen, c.d_model, c.clamp_len, device=h.device).to(dtype)
        r = r.expand(b, -1, -1)
        if c.bi_data:  # the second half's text runs backwards: negated distances
            back = relative_positional_encoding(qlen, mlen + qlen, c.d_model, c.clamp_len, device=h.device,
                                                backward=True).to(dtype)
            r = torch.cat([r[:b // 2], back.expand(b // 2, -1, -1)])
        r = self.dropout(r)

        new_mems, attentions, query_attentions = [], [], []
        for i, layer in enumerate(self.layers):
            mem = None if mems is None else mems[i]
            if use_mems:
                new_mems.append(self.cache_mem(h, mem))  # the layer's input is the next segment's memory
            h, g, prob_h, prob_g = layer(h, g, blocked_h, blocked_g, r, seg_mat, mem, tm)
            attentions.append(prob_h)
            query_attentions.append(prob_g)
        out = self.dropout(g if g is not None else h)
        return XLNetOutput(attentions=attentions if need_weights else None, last_hidden_state=out,
                           mems=new_mems if use_mems else None,
                           query_attentions=query_attentions if need_weights and g is not None else None)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, perm_mask: torch.Tensor | None = None,
                target_mapping: torch.Tensor | None = None, mems: list[torch.Tensor] | None = None,
                targets: torch.Tensor | None = None, use_mems: bool | None = None,
                need_weights: bool = False) -> XLNetOutput:
        """input_ids (batch, T).
        attention_mask (batch, T): bool or 0/1, True/1 at real tokens (None: every token is real;
          it is not derived from pad_id, as in Hugging Face).
        token_type_ids (batch, T): segment ids (any integers; only "same or different" counts;
          None: no segment term, which gives the same numbers as one segment for all: the
          term is then equal for every key of a query, and the softmax ignores it).
        perm_mask (batch, T, T): bool or 0/1, Hugging Face's convention: 1 = position i may NOT
          attend to position j (`sample_permutation` draws one).
        target_mapping (batch, num_predict, T): one-hot rows, row m selects the position of the
          m-th prediction; with it, the query stream runs and the outputs are per prediction.
        mems: per layer (batch, mem_len, d_model), the `mems` of the previous segment's output.
        targets: (batch, num_predict) with target_mapping, else (batch, T); config.ignore_index
          where nothing is predicted.
        use_mems: return new mems (None: config.use_mems_eval in eval mode, use_mems_train in
          training, as Hugging Face).
        logits: (batch, num_predict or T, vocab)."""
        out = self.encode(input_ids, attention_mask, token_type_ids, perm_mask, target_mapping, mems, use_mems,
                          need_weights)
        out.logits = F.linear(out.last_hidden_state, self.word_embedding.weight, self.lm_bias)
        if targets is not None:
            check_targets(targets, tuple(out.logits.shape[:2]))
            out.loss = F.cross_entropy(out.logits.flatten(0, 1), targets.flatten(), ignore_index=self.ignore_index)
        return out


class XLNetTokenClassifier(nn.Module):
    """One class per token from the content stream: a linear layer on XLNet's last hidden state
    (Hugging Face's XLNetForTokenClassification; no dropout of its own). The targets are per
    token, (batch, T), `config.ignore_index` where there is no label (Hugging Face calls them
    labels; here `labels` are one per sequence). forward returns an XLNetOutput whose logits are
    (batch, T, n_labels)."""

    def __init__(self, xlnet: XLNet, n_labels: int) -> None:
        super().__init__()
        if not isinstance(xlnet, XLNet):
            raise TypeError(f"xlnet must be an XLNet, got {type(xlnet).__name__}")
        if isinstance(n_labels, bool) or not isinstance(n_labels, int) or n_labels < 1:
            raise ValueError(f"n_labels must be an int >= 1, got {n_labels!r}")
        self.xlnet, self.config = xlnet, xlnet.config
        self.ignore_index = xlnet.config.ignore_index
        self.classifier = nn.Linear(xlnet.config.d_model, n_labels)
        nn.init.normal_(self.classifier.weight, std=0.02)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, mems: list[torch.Tensor] | None = None,
                targets: torch.Tensor | None = None, use_mems: bool | None = None,
                need_weights: bool = False) -> XLNetOutput:
        """Arguments as `XLNet.forward` (no permutation: the content stream only)."""
        out = self.xlnet.encode(input_ids, attention_mask, token_type_ids, mems=mems, use_mems=use_mems,
                                need_weights=need_weights)
        out.logits = self.classifier(out.last_hidden_state)
        if targets is not None:
            check_targets(targets, tuple(input_ids.shape))
            out.loss = F.cross_entropy(out.logits.flatten(0, 1), targets.flatten(), ignore_index=self.ignore_index)
        return out


# ---- permutation language modeling ----------------------------------------------------------
@dataclass
class PermutationBatch:
    """What `sample_permutation` returns: XLNet's inputs for one permutation-LM step, in
    Hugging Face's format (float 0/1 masks), so that either model takes them."""

    perm_mask: torch.Tensor  # (batch, T, T) float: 1 = position i may NOT attend to position j
    target_mapping: torch.Tensor  # (batch, num_predict, T) float, one-hot rows
    targets: torch.Tensor  # (batch, num_predict) long: the tokens to predict, ignore_index in unused slots
    order: torch.Tensor  # (batch, T) long: order[b, s] = the position at step s; padding last


def check_span_args(span: object, max_span: object) -> None:
    """ValueError unless span is a bool and max_span an int >= 1 (`sample_permutation`'s span mode)."""
    if not isinstance(span, bool):
        raise ValueError(f"span must be a bool (True = predict contiguous spans), got {span!r}")
    if isinstance(max_span, bool) or not isinstance(max_span, int) or max_span < 1:
        raise ValueError(f"max_span must be an int >= 1 (the longest span, in tokens or words), got {max_span!r}")


def _span_row(may_predict: list[bool], starts: list[bool], c: int, k: int, cdf: list[float],
              draws: list[tuple[float, float]], keys: list[float]) -> list[bool]:
    """One row's c targets in span mode (see `sample_permutation`): `may_predict` and `starts`
    (word starts) per position, the cumulative probabilities of the span lengths 1, 2, ..., and
    uniform numbers: (length, offset) per window and a key per position for the top-ups."""
    t = len(may_predict)
    may_start = [p and w for p, w in zip(may_predict, starts, strict=True)]
    chosen, count, cur = [False] * t, 0, 0
    for u_len, u_offset in draws:  # each window moves cur on by more than 2, so t draws are enough
        if cur >= t or count >= c:
            break
        n = min(bisect.bisect_right(cdf, u_len) + 1, len(cdf), c - count)  # p(n) ~ 1/n, capped
        window = n * k
        offset = int(u_offset * window)  # uniform in 0 .. window - 1
        beg = cur + offset
        while beg < t and not may_start[beg]:
            beg += 1
        if beg >= t:
            break
        end, words = beg, 0
        while end < t and may_predict[end] and count < c:  # n words (tokens), never past c targets
            if starts[end]:
                if words == n:
                    break
                words += 1
            chosen[end] = True
            count += 1
            end += 1
        cur = end + window - offset
    # top up with single positions, uniformly at random: word starts first
    for pool in (may_start, may_predict):
        if count == c:
            break
        free = sorted((i for i in range(t) if pool[i] and not chosen[i]), key=keys.__getitem__)[:c - count]
        for i in free:
            chosen[i] = True
        count += len(free)
    return chosen


def _span_targets(may_predict: torch.Tensor, word_start: torch.Tensor | None, c: torch.Tensor, k: int,
                  max_span: int, generator: torch.Generator | None, draw_on: torch.device) -> torch.Tensor:
    """(batch, T) bool on the CPU, True at span mode's targets: `_span_row` for each row."""
    b, t = may_predict.shape
    draws = torch.rand((b, t, 3), generator=generator, device=draw_on).cpu().tolist()
    weights = [1.0 / n for n in range(1, max_span + 1)]
    cdf = [sum(weights[:n]) / sum(weights) for n in range(1, max_span + 1)]
    predictable = may_predict.cpu().tolist()
    starts = [[True] * t] * b if word_start is None else word_start.cpu().tolist()
    counts = c.tolist()
    rows = [_span_row(predictable[r], starts[r], counts[r], k, cdf, [(d[0], d[1]) for d in draws[r]],
                      [d[2] for d in draws[r]]) for r in range(b)]
    return torch.tensor(rows, dtype=torch.bool).reshape(b, t)


def _check_bool_rows(value: object, shape: tuple[int, int], name: str, meaning: str) -> None:
    """A (batch, T) bool tensor, or a ValueError naming the argument."""
    if not isinstance(value, torch.Tensor) or value.dtype != torch.bool or tuple(value.shape) != shape:
        got = f"{value.dtype} {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"{name} must be a bool tensor of shape {shape} ({meaning}), got {got}")


def sample_permutation(input_ids: torch.Tensor, k: int = 6, attention_mask: torch.Tensor | None = None,
                       generator: torch.Generator | None = None, ignore_index: int = IGNORE_INDEX,
                       never_predict: torch.Tensor | None = None, span: bool = False, max_span: int = 5,
                       word_start: torch.Tensor | None = None) -> PermutationBatch:
    """Draw a factorization order per row and the masks that make XLNet follow it, predicting
    the last 1/k of each order (partial prediction: the paper's pretraining used K = 6).

    For a row with n real tokens, c = max(1, n_free // k) tokens are targets (n_free: the real
    tokens that may be predicted, see never_predict): by default the last c of a uniformly random
    order of the real positions, a random subset of single tokens. Then, as in the original code:
    - a target may not see itself or any target later in the order (perm_mask = 1): its query
      stream reads only what comes before it, and its content stream, which sees itself, is
      read only by later targets;
    - the other tokens are context: every position sees them (they are never predicted, so
      letting them see each other in both directions leaks nothing).
    Padding (attention_mask False) is never a target and comes last in `order`. Real tokens where
    `never_predict` (batch, T) is True, such as [CLS] and [SEP] (the original code's "functional
    tokens"), are never targets either: they come first in `order`, as context for every position,
    and the targets are counted among the other real tokens.

    Span mode (`span=True`): the same number c of targets per row, chosen as contiguous spans, the
    way the original code's `_sample_mask` (zihangdai/xlnet, data_utils.py) chooses them, with its
    mask_alpha = k and mask_beta = 1. Walking the row from left to right: draw a span length n in
    1..max_span (an int >= 1; 5 as in the original) with p(n) proportional to 1/n, capped at the
    targets still needed; the span starts at a uniformly random offset l in [0, n k) from the
    current position, moved forward to the next position that may be predicted (real, not
    never_predict and, when `word_start` (batch, T) bool is given, a word start); it covers n
    positions, or n whole words with word_start (a word start and the positions after it that are
    not word starts), and stops early at a position that may not be predicted, at the end of the
    row or at c targets; the walk goes on n k - l positions after the span. So n targets come with
    n k positions of context, about 1/(k + 1) of the row. When the walk ends with fewer than c
    targets, the row is topped up with single predictable positions drawn uniformly at random
    (with word_start: word starts only, while any are left, so that every run of targets begins at
    a word start when the row has at least c predictable word starts). The order puts the context
    first and the targets after it in a uniformly random order, so the masks follow the same rule
    as in token mode. A Python loop per row, on the CPU: meant for batches of moderate size.

    num_predict = max(1, T // k), the most any row can need, so the shapes depend on T alone. A
    row with fewer targets fills its other slots with distinct non-target positions and
    ignore_index as their targets (a zero row would be an error, and two slots on one position
    would add up their queries), in both modes.

    Every row needs at least 2 real tokens (so that the first target sees some context), and k
    must be an int >= 2. The random numbers are drawn on the generator's device (the CPU for
    the default generator and for torch.Generator()) and moved to input_ids' device, so one seed
    gives the same order on every device; the outputs are on input_ids' device. With span=False
    the draws are exactly those of the token mode alone (span mode draws more after them)."""
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.dtype != torch.long:
        raise ValueError("input_ids must be a (batch, T) tensor of token ids (torch.long)")
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"k must be an int >= 2 (predict the last 1/k of each order), got {k!r}")
    check_span_args(span, max_span)
    b, t = input_ids.shape
    device = input_ids.device
    if word_start is not None:
        if not span:
            raise ValueError("word_start is used only with span=True (token mode predicts single tokens)")
        _check_bool_rows(word_start, (b, t), "word_start", "True = a word's first token")
    if span and device.type == "meta":
        raise ValueError("span=True walks the rows' masks on the CPU: input_ids may not be on the meta device")
    keep = (torch.ones(b, t, dtype=torch.bool, device=device) if attention_mask is None
            else check_attention_mask(attention_mask, (b, t)))
    fixed = torch.zeros_like(keep)
    if never_predict is not None:
        _check_bool_rows(never_predict, (b, t), "never_predict", "True = never a target")
        fixed = never_predict.to(device) & keep
    n = keep.sum(1)  # real tokens per row
    n_free = n - fixed.sum(1)  # real tokens that may be predicted
    if device.type != "meta" and b and (int(n.min()) < 2 or int(n_free.min()) < 1):
        raise ValueError(f"every row needs at least 2 real tokens (attention_mask), one of them predictable "
                         f"(never_predict False), got {n.tolist()} real and {n_free.tolist()} predictable")
    draw_on = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand((b, t), generator=generator, device=draw_on).to(device)
    c = torch.clamp(n_free // k, min=1)  # targets per row
    key = u
    if span:  # the walk's targets after all the context (u's ranks are < t), each part in u's random order
        chosen = _span_targets(keep & ~fixed, word_start, c, k, max_span, generator, draw_on).to(device)
        key = u.argsort(dim=1).argsort(dim=1) + t * chosen
    # never-predicted tokens (-1) first, padding (2 t + 1, above every key) last, the rest in a random order
    order = torch.sort(key.masked_fill(~keep, 2 * t + 1).masked_fill(fixed, -1), dim=1, stable=True).indices
    steps = torch.arange(t, device=device).expand(b, t)
    rank = torch.empty_like(order).scatter_(1, order, steps)  # rank[b, position] = its step in the order
    is_target = keep & (rank >= (n - c)[:, None])
    # i may not see j when j is a target that does not come before i
    perm_mask = is_target[:, None, :] & (rank[:, None, :] >= rank[:, :, None])

    num_predict = max(1, t // k)
    slot = torch.arange(num_predict, device=device)[None, :]
    first = (n - c)[:, None]  # step of the first target
    spare = slot - c[:, None]  # unused slots: steps 0, 1, ... skipping the targets' steps
    step = torch.where(slot < c[:, None], first + slot, torch.where(spare < first, spare, spare + c[:, None]))
    positions = order.gather(1, step)  # (b, num_predict)
    target_mapping = positions[:, :, None] == torch.arange(t, device=device)[None, None, :]
    targets = input_ids.gather(1, positions).masked_fill(slot >= c[:, None], ignore_index)
    return PermutationBatch(perm_mask.float(), target_mapping.float(), targets, order)


# ---- generation -------------------------------------------------------------------------------
def _with_dummy(ids: torch.Tensor, dummy_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids followed by the dummy token, perm_mask, target_mapping), as Hugging Face's
    XLNetLMHeadModel.prepare_inputs_for_generation builds them: no position may attend to the
    dummy (perm_mask[:, :, -1] = 1), and the one prediction is at the dummy's position, so the
    query stream predicts the next token from its position and everything before it."""
    b, t = ids.shape
    fed = torch.cat([ids, ids.new_full((b, 1), dummy_id)], dim=1)
    perm_mask = torch.zeros(b, t + 1, t + 1, dtype=torch.bool, device=ids.device)
    perm_mask[:, :, -1] = True
    target_mapping = torch.zeros(b, 1, t + 1, dtype=torch.bool, device=ids.device)
    target_mapping[:, 0, -1] = True
    return fed, perm_mask, target_mapping


@torch.no_grad()
def generate(model: XLNet, input_ids: torch.Tensor, max_new_tokens: int, *, use_mems: bool = False,
             offset: int = 2, do_sample: bool = False, generator: torch.Generator | None = None,
             dummy_id: int = 0) -> torch.Tensor:
    """input_ids (batch, T) followed by max_new_tokens new tokens per row, (batch, T + max_new_tokens),
    written left to right as Hugging Face's XLNetLMHeadModel.generate does.

    Each step appends a dummy token (`dummy_id`) that no position may attend to and predicts it
    with the query stream (`target_mapping` on the dummy): the next token from its position and
    the text before it. Greedy (argmax) unless do_sample, which draws from the softmax with
    torch.multinomial and `generator`, on the generator's device (the CPU for torch.Generator())
    and moved to the input's device, so one seed gives the same text on every device (None:
    torch's global generator, on the input's device, as `decoding.generate` without a seed). No
    padding: every row has T real tokens (Hugging Face's generate ignores XLNet's attention_mask).

    use_mems=False: the whole text is encoded again at every step, exactly the model's
    prediction. The content stream is bidirectional, so adding a token changes every earlier
    state: there is nothing exact to cache, unlike a GPT's keys and values.

    use_mems=True (Hugging Face's scheme): the first step encodes the prompt and the dummy and
    keeps their states as memory; each later step feeds only the last `offset` tokens and the
    dummy, with the previous memory minus its last `offset` states (the dummy's and the
    tokens fed again) standing for everything before them. Cheaper, but those states are frozen
    as they were computed with less text to their right: an approximation of use_mems=False
    (equal for max_new_tokens=1, and whenever offset >= T + max_new_tokens - 1, when the memory
    stays empty). config.mem_len and reuse_len limit the memory as in `XLNet.cache_mem`. A
    prompt shorter than offset is fed whole until the text has offset tokens (as Hugging Face).

    Runs without gradients in eval mode (the model's mode is restored afterwards); the new
    tensors are on input_ids' device, which must be the model's."""
    if not isinstance(model, XLNet):
        raise TypeError(f"model must be an XLNet, got {type(model).__name__}")
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.shape[1] < 1 \
            or input_ids.dtype != torch.long:
        got = f"{input_ids.dtype} {tuple(input_ids.shape)}" if isinstance(input_ids, torch.Tensor) \
            else type(input_ids).__name__
        raise ValueError(f"input_ids must be a (batch, T >= 1) tensor of token ids (torch.long), got {got}")
    for name, value in (("max_new_tokens", max_new_tokens), ("offset", offset)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    for name, value in (("use_mems", use_mems), ("do_sample", do_sample)):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be a bool, got {value!r}")
    vocab = model.config.vocab_size
    if isinstance(dummy_id, bool) or not isinstance(dummy_id, int) or not 0 <= dummy_id < vocab:
        raise ValueError(f"dummy_id must be a token id in [0, vocab_size={vocab}), got {dummy_id!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")

    was_training = model.training
    model.eval()
    try:
        seqs, mems = input_ids, None
        for _ in range(max_new_tokens):
            if mems is None:  # no memory, or the first step: the whole text
                ids, prev = seqs, None
            else:
                ids, prev = seqs[:, -offset:], [m[:, :-offset] for m in mems]
            fed, perm_mask, target_mapping = _with_dummy(ids, dummy_id)
            out = model(fed, perm_mask=perm_mask, target_mapping=target_mapping, mems=prev, use_mems=use_mems)
            logits = out.logits[:, 0].float()  # (batch, vocab): the prediction at the dummy
            mems = out.mems  # None without use_mems
            if do_sample:
                probs = logits.softmax(-1)
                if generator is not None and probs.device != generator.device:
                    probs = probs.to(generator.device)
                nxt = torch.multinomial(probs, 1, generator=generator)[:, 0].to(seqs.device)
            else:
                nxt = logits.argmax(-1)
            seqs = torch.cat([seqs, nxt[:, None]], dim=1)
        return seqs
    finally:
        model.train(was_training)


# ---- Hugging Face interchange ---------------------------------------------------------------
def _body_names(config: XLNetConfig) -> dict[str, str]:
    """Hugging Face XLNetModel parameter name (under "transformer.") -> ours (same shapes)."""
    m = {"transformer.word_embedding.weight": "word_embedding.weight", "transformer.mask_emb": "mask_emb"}
    for i in range(config.n_layers):
        hf, ours = f"transformer.layer.{i}.", f"layers.{i}."
        for p in ("q", "k", "v", "o", "r", "r_r_bias", "r_s_bias", "r_w_bias", "seg_embed"):
            m[f"{hf}rel_attn.{p}"] = f"{ours}rel_attn.{p}"
        for p in ("weight", "bias"):
            m[f"{hf}rel_attn.layer_norm.{p}"] = f"{ours}rel_attn.layer_norm.{p}"
            m[f"{hf}ff.layer_norm.{p}"] = f"{ours}ff.layer_norm.{p}"
            m[f"{hf}ff.layer_1.{p}"] = f"{ours}ff.net.linear1.{p}"
            m[f"{hf}ff.layer_2.{p}"] = f"{ours}ff.net.linear2.{p}"
    return m


def _names(model: XLNet | XLNetTokenClassifier) -> dict[str, str]:
    """Hugging Face name -> ours, for XLNetLMHeadModel (XLNet) or XLNetForTokenClassification."""
    if isinstance(model, XLNetTokenClassifier):
        m = {hf: f"xlnet.{ours}" for hf, ours in _body_names(model.config).items()}
        return {**m, "classifier.weight": "classifier.weight", "classifier.bias": "classifier.bias"}
    if isinstance(model, XLNet):
        return {**_body_names(model.config), "lm_loss.bias": "lm_bias"}
    raise TypeError(f"model must be an XLNet or an XLNetTokenClassifier, got {type(model).__name__}")


@torch.no_grad()
def from_hf_state_dict(model: XLNet | XLNetTokenClassifier, hf_model_or_state: nn.Module | dict) -> None:
    """Load the weights of Hugging Face's XLNetLMHeadModel into an XLNet, or of
    XLNetForTokenClassification into an XLNetTokenClassifier (its unused LM bias is left as is).
    Takes the Hugging Face model or its state_dict()."""
    hf = hf_model_or_state.state_dict() if isinstance(hf_model_or_state, nn.Module) else hf_model_or_state
    mapping, sd = _names(model), model.state_dict()
    missing = sorted(set(mapping) - set(hf))
    if missing:
        raise ValueError(f"the Hugging Face weights lack {len(missing)} tensors, e.g. {missing[:3]}")
    if isinstance(model, XLNet) and "lm_loss.weight" in hf and not torch.equal(
            hf["lm_loss.weight"], hf["transformer.word_embedding.weight"]):
        raise ValueError("lm_loss.weight differs from transformer.word_embedding.weight: our output layer is "
                         "tied to the word embeddings (tie_word_embeddings=True)")
    for hf_name, ours in mapping.items():
        if hf[hf_name].shape != sd[ours].shape:
            raise ValueError(f"{hf_name} has shape {tuple(hf[hf_name].shape)}, ours {ours} {tuple(sd[ours].shape)}")
        sd[ours] = hf[hf_name]
    model.load_state_dict(sd)


def to_hf_state_dict(model: XLNet | XLNetTokenClassifier) -> dict[str, torch.Tensor]:
    """Our weights under Hugging Face's names: XLNetLMHeadModel's for an XLNet (lm_loss.weight is
    the word embedding), XLNetForTokenClassification's for an XLNetTokenClassifier."""
    sd = model.state_dict()
    out = {hf: sd[ours] for hf, ours in _names(model).items()}
    if isinstance(model, XLNet):
        out["lm_loss.weight"] = sd["word_embedding.weight"]
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def hf_config(config: XLNetConfig) -> dict:
    """The `transformers.XLNetConfig` fields equal to ours."""
    if config.d_head != config.d_model // config.n_heads:
        raise ValueError(f"Hugging Face's XLNet needs d_head = d_model // n_heads "
                         f"= {config.d_model // config.n_heads}, got d_head={config.d_head}")
    return {"model_type": "xlnet", "architectures": ["XLNetLMHeadModel"], "vocab_size": config.vocab_size,
            "d_model": config.d_model, "n_layer": config.n_layers, "n_head": config.n_heads,
            "d_head": config.d_head, "d_inner": config.d_inner, "ff_activation": config.ff_activation,
            "attn_type": config.attn_type, "initializer_range": 0.02, "layer_norm_eps": config.layer_norm_eps,
            "dropout": config.dropout, "mem_len": config.mem_len, "reuse_len": config.reuse_len,
            "use_mems_eval": config.use_mems_eval, "use_mems_train": config.use_mems_train,
            "bi_data": config.bi_data, "clamp_len": config.clamp_len, "same_length": config.same_length,
            "tie_word_embeddings": True, "pad_token_id": config.pad_id, "bos_token_id": None, "eos_token_id": None}


def save_pretrained(model: XLNet, folder: str | os.PathLike, tokenizer: Tokenizer | None = None) -> Path:
    """Write a folder that `transformers.XLNetLMHeadModel.from_pretrained(folder)` loads
    (config.json, model.safetensors and, given a tokenizer, its files). The tokenizer pads on
    the left, as Hugging Face's XLNetTokenizer: generation appends on the right, and with
    relative positions only the pads change no distance between real tokens."""
    if not isinstance(model, XLNet):
        raise TypeError(f"model must be an XLNet, got {type(model).__name__}")
    state = to_hf_state_dict(model)
    state.pop("lm_loss.weight")  # tied to the word embeddings: stored once
    return write_folder(folder, hf_config(model.config), state, tokenizer, padding_side="left")
