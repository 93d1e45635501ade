"""The Transformer (Vaswani et al. 2017): encoder, decoder and the encoder-decoder model.

Introduced in chapter 04_transformer, built on `attention.MultiHeadAttention`.

Layer norm placement, which is easy to get wrong:
- post-LN (the 2017 paper): x = LayerNorm(x + Sublayer(x)). The residual stream is normalized
  after every sublayer; deep stacks need learning-rate warmup to train at all.
- pre-LN (GPT-2; Xiong et al. 2020, "On Layer Normalization in the Transformer Architecture",
  ICML, arXiv:2002.04745): x = x + Sublayer(LayerNorm(x)). The residual path is an identity,
  gradients are well behaved at initialization, and a final LayerNorm follows the stack.
`x + LayerNorm(Sublayer(x))` is neither of them.

Parity: given the same weights, `Encoder`, `Decoder` and `Transformer` compute what
torch.nn.TransformerEncoder/Decoder/Transformer compute (both norm placements; tested).
Note that torch.nn.Transformer always adds a final LayerNorm after both stacks, even post-LN;
here that is `final_norm`, which defaults to True only for pre-LN, as in the papers.
Masks follow `attention`: bool, True = may attend; key masks (`key_mask`, `memory_key_mask`)
are True at real tokens, the opposite of PyTorch's `key_padding_mask`. The model follows
`modeling`'s contract and is `decoding.Decodable` (translate with `decoding.generate` or
`decoding.beam_search`, bos_id=...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiHeadAttention
from .dropout import Dropout
from .modeling import ModelOutput, check_input_ids, check_targets

__all__ = ["sinusoidal_positions", "SinusoidalPositions", "LearnedPositions", "FeedForward",
           "EncoderLayer", "DecoderLayer", "Encoder", "Decoder", "Transformer",
           "TransformerConfig", "Seq2SeqOutput", "copy_from_torch"]


def _int(value: object, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return value


def check_config_sizes(config: object, names: tuple[str, ...]) -> None:
    """The checks every model config shares: whole sizes >= 1, d_model divisible by n_heads.

    Introduced in chapter 05_bert; errors name the field, e.g. "GPTConfig.n_heads"."""
    cls = type(config).__name__
    for name in names:
        _int(getattr(config, name), f"{cls}.{name}")
    d_model, n_heads = getattr(config, "d_model"), getattr(config, "n_heads")
    if d_model % n_heads:
        raise ValueError(f"{cls}.d_model ({d_model}) must be divisible by n_heads ({n_heads})")


def sinusoidal_positions(max_len: int, d_model: int) -> torch.Tensor:
    """(max_len, d_model): PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(same angle).

    Introduced in chapter 04_transformer. Each pair of dimensions is a clock of its own
    frequency, so PE[p + k] is a fixed rotation of PE[p] for every p: relative offsets are
    linear functions of the encoding.
    """
    _int(max_len, "max_len")
    if _int(d_model, "d_model") % 2:
        raise ValueError(f"d_model must be even for sinusoidal positions, got {d_model}")
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    pe = torch.zeros(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe.float()


class SinusoidalPositions(nn.Module):
    """Adds fixed sinusoidal positions to (batch, T, d_model). Introduced in chapter 04_transformer."""

    def __init__(self, d_model: int, max_len: int = 512) -> None:
        super().__init__()
        self.register_buffer("pe", sinusoidal_positions(max_len, d_model), persistent=False)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        if offset + x.shape[1] > self.pe.shape[0]:
            raise ValueError(f"sequence of length {x.shape[1]} (offset {offset}) exceeds the position "
                             f"table's max_len {self.pe.shape[0]}")
        return x + self.pe[offset:offset + x.shape[1]]


class LearnedPositions(nn.Module):
    """Adds a learned embedding per position (BERT, GPT). Introduced in chapter 04_transformer."""

    def __init__(self, d_model: int, max_len: int = 512) -> None:
        super().__init__()
        self.emb = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.emb.weight, std=0.02)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        if offset + x.shape[1] > self.emb.num_embeddings:
            raise ValueError(f"sequence of length {x.shape[1]} (offset {offset}) exceeds the position "
                             f"table's max_len {self.emb.num_embeddings}")
        return x + self.emb(torch.arange(offset, offset + x.shape[1], device=x.device))


class FeedForward(nn.Module):
    """Position-wise FFN: linear2(dropout(act(linear1(x)))). Introduced in chapter 04_transformer."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, activation: str = "relu") -> None:
        super().__init__()
        acts = {"relu": F.relu, "gelu": F.gelu,  # gelu: exact (erf), BERT's
                "gelu_tanh": lambda x: F.gelu(x, approximate="tanh")}  # GPT-2's approximation
        if activation not in acts:
            raise ValueError(f"activation must be one of {tuple(acts)}, got {activation!r}")
        self.linear1, self.linear2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.act = acts[activation]
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(self.act(self.linear1(x))))


class EncoderLayer(nn.Module):
    """Self-attention and feed-forward sublayers, each with a residual and a LayerNorm.

    Introduced in chapter 04_transformer. Returns (x, self-attention weights or None).
    `ff_dropout` is the dropout inside the feed-forward network (None: `dropout`, as in
    torch.nn.TransformerEncoderLayer; BERT has none there)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1,
                 activation: str = "relu", norm_first: bool = False, eps: float = 1e-5,
                 ff_dropout: float | None = None) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.ff = FeedForward(d_model, d_ff, dropout if ff_dropout is None else ff_dropout, activation)
        self.norm1, self.norm2 = nn.LayerNorm(d_model, eps=eps), nn.LayerNorm(d_model, eps=eps)
        self.drop1, self.drop2 = Dropout(dropout), Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                key_mask: torch.Tensor | None = None, need_weights: bool = False):
        """x (batch, T, d_model); mask bool, True = may attend (see attention); key_mask
        (batch, T) bool, True at real tokens."""
        def sa(h):
            out, w = self.self_attn(h, mask=mask, key_mask=key_mask, need_weights=need_weights)
            return self.drop1(out), w

        if self.norm_first:
            a, w = sa(self.norm1(x))
            x = x + a
            x = x + self.drop2(self.ff(self.norm2(x)))
        else:
            a, w = sa(x)
            x = self.norm1(x + a)
            x = self.norm2(x + self.drop2(self.ff(x)))
        return x, w


class DecoderLayer(nn.Module):
    """Causal self-attention, cross-attention to the encoder output, feed-forward.

    Introduced in chapter 04_transformer. Returns (x, self weights, cross weights)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1,
                 activation: str = "relu", norm_first: bool = False, eps: float = 1e-5) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.ff = FeedForward(d_model, d_ff, dropout, activation)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model, eps=eps) for _ in range(3))
        self.drop1, self.drop2, self.drop3 = (Dropout(dropout) for _ in range(3))
        self.norm_first = norm_first

    def forward(self, x: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor | None = None,
                key_mask: torch.Tensor | None = None,
                memory_key_mask: torch.Tensor | None = None, is_causal: bool = True,
                need_weights: bool = False):
        """x (batch, T, d_model), memory (batch, T_src, d_model); mask bool, True = may attend;
        key_mask (batch, T) and memory_key_mask (batch, T_src) bool, True at real tokens."""
        def sa(h):
            out, w = self.self_attn(h, mask=mask, key_mask=key_mask,
                                    is_causal=is_causal, need_weights=need_weights)
            return self.drop1(out), w

        def ca(h):
            out, w = self.cross_attn(h, memory, memory, key_mask=memory_key_mask,
                                     need_weights=need_weights)
            return self.drop2(out), w

        if self.norm_first:
            a, sw = sa(self.norm1(x))
            x = x + a
            c, cw = ca(self.norm2(x))
            x = x + c
            x = x + self.drop3(self.ff(self.norm3(x)))
        else:
            a, sw = sa(x)
            x = self.norm1(x + a)
            c, cw = ca(x)
            x = self.norm2(x + c)
            x = self.norm3(x + self.drop3(self.ff(x)))
        return x, sw, cw


class Encoder(nn.Module):
    """A stack of EncoderLayers; `final_norm` (default: norm_first) adds a last LayerNorm.

    Introduced in chapter 04_transformer. forward returns (x, list of per-layer weights)."""

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1,
                 activation: str = "relu", norm_first: bool = False, final_norm: bool | None = None,
                 eps: float = 1e-5, ff_dropout: float | None = None) -> None:
        super().__init__()
        _int(n_layers, "n_layers")
        self.layers = nn.ModuleList(EncoderLayer(d_model, n_heads, d_ff, dropout, activation, norm_first, eps,
                                                 ff_dropout) for _ in range(n_layers))
        final_norm = norm_first if final_norm is None else final_norm
        self.norm = nn.LayerNorm(d_model, eps=eps) if final_norm else None

    def forward(self, x, mask=None, key_mask=None, need_weights=False):
        """As EncoderLayer.forward (key_mask: True at real tokens), through every layer."""
        weights = []
        for layer in self.layers:
            x, w = layer(x, mask, key_mask, need_weights)
            weights.append(w)
        return (self.norm(x) if self.norm is not None else x), weights


class Decoder(nn.Module):
    """A stack of DecoderLayers; forward returns (x, self weights, cross weights) per layer.

    Introduced in chapter 04_transformer."""

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1,
                 activation: str = "relu", norm_first: bool = False, final_norm: bool | None = None) -> None:
        super().__init__()
        _int(n_layers, "n_layers")
        self.layers = nn.ModuleList(DecoderLayer(d_model, n_heads, d_ff, dropout, activation, norm_first)
                                    for _ in range(n_layers))
        final_norm = norm_first if final_norm is None else final_norm
        self.norm = nn.LayerNorm(d_model) if final_norm else None

    def forward(self, x, memory, mask=None, key_mask=None, memory_key_mask=None,
                is_causal=True, need_weights=False):
        """As DecoderLayer.forward (key masks: True at real tokens), through every layer."""
        self_w, cross_w = [], []
        for layer in self.layers:
            x, sw, cw = layer(x, memory, mask, key_mask, memory_key_mask, is_causal,
                              need_weights)
            self_w.append(sw)
            cross_w.append(cw)
        return (self.norm(x) if self.norm is not None else x), self_w, cross_w


@dataclass
class Seq2SeqOutput(ModelOutput):
    """What `Transformer.forward` returns: `modeling.ModelOutput` for the decoder (logits
    (batch, T_tgt, tgt_vocab); attentions are the decoder's self-attention, Hugging Face's
    `decoder_attentions`), and the encoder's side. Introduced in chapter 04_transformer."""

    encoder_attentions: list | None = None  # per layer (batch, heads, T_src, T_src)
    cross_attentions: list | None = None  # per layer (batch, heads, T_tgt, T_src)
    encoder_last_hidden_state: torch.Tensor | None = None  # (batch, T_src, d_model): the memory


@dataclass
class TransformerConfig:
    """Sizes and choices of an encoder-decoder Transformer. Introduced in chapter 04_transformer."""

    src_vocab: int  # source token ids
    tgt_vocab: int  # target token ids
    d_model: int = 64  # width of every token's vector
    n_heads: int = 4  # attention heads per layer (d_model must divide by it)
    n_layers: int = 2  # layers in the encoder, and in the decoder
    d_ff: int = 256  # feed-forward width (the paper: 4 * d_model)
    dropout: float = 0.1  # on embeddings, attention weights, residual branches, feed-forward
    max_len: int = 128  # the longest source or target sequence
    positions: str = "sinusoidal"  # "sinusoidal" (the paper) or "learned"
    norm_first: bool = False  # False: post-LN, as in the paper; True: pre-LN
    tie_output: bool = True  # the output layer shares the target embedding matrix
    pad_id: int = 0  # padding in both vocabularies: masked in attention, ignored by the loss
    label_smoothing: float = 0.0  # passed to the cross-entropy (the paper: 0.1)
    activation: str = "relu"  # of the feed-forward network: "relu" or "gelu"

    def __post_init__(self) -> None:
        check_config_sizes(self, ("src_vocab", "tgt_vocab", "d_model", "n_heads", "n_layers", "d_ff", "max_len"))
        if self.positions not in ("sinusoidal", "learned"):
            raise ValueError(f"TransformerConfig.positions must be 'sinusoidal' or 'learned', got {self.positions!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"TransformerConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"TransformerConfig.label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if isinstance(self.pad_id, bool) or not isinstance(self.pad_id, int) or \
                not 0 <= self.pad_id < min(self.src_vocab, self.tgt_vocab):
            raise ValueError(f"TransformerConfig.pad_id must be an int id in both vocabularies, got {self.pad_id!r}")

    @classmethod
    def tiny(cls, src_vocab: int = 11, tgt_vocab: int = 13, **changes) -> TransformerConfig:
        """A model small enough for a unit test (thousands of parameters)."""
        return cls(**{"src_vocab": src_vocab, "tgt_vocab": tgt_vocab, "d_model": 16, "n_heads": 2, "n_layers": 1,
                      "d_ff": 32, "dropout": 0.0, "max_len": 16, **changes})


class Transformer(nn.Module):
    """Encoder-decoder Transformer for sequence-to-sequence tasks such as translation.

    Introduced in chapter 04_transformer. Token embeddings are scaled by sqrt(d_model) as in
    the paper. Padding (`config.pad_id`) is masked in attention and ignored by the loss: the
    targets are padded token ids, so `ignore_index` is the padding id.
    """

    is_encoder_decoder = True

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        if not isinstance(config, TransformerConfig):
            raise TypeError(f"config must be a TransformerConfig, got {type(config).__name__}")
        c = self.config = config
        self.src_emb = nn.Embedding(c.src_vocab, c.d_model)
        self.tgt_emb = nn.Embedding(c.tgt_vocab, c.d_model)
        for emb in (self.src_emb, self.tgt_emb):
            nn.init.normal_(emb.weight, std=c.d_model ** -0.5)
        pos = SinusoidalPositions if c.positions == "sinusoidal" else LearnedPositions
        self.src_pos, self.tgt_pos = pos(c.d_model, c.max_len), pos(c.d_model, c.max_len)
        self.drop = Dropout(c.dropout)
        self.encoder = Encoder(c.n_layers, c.d_model, c.n_heads, c.d_ff, c.dropout, c.activation, c.norm_first)
        self.decoder = Decoder(c.n_layers, c.d_model, c.n_heads, c.d_ff, c.dropout, c.activation, c.norm_first)
        self.out = nn.Linear(c.d_model, c.tgt_vocab, bias=False)
        if c.tie_output:
            self.out.weight = self.tgt_emb.weight

    @property
    def ignore_index(self) -> int:
        """The target id the loss ignores: padding (train.evaluate counts targets with it)."""
        return self.config.pad_id

    def encode(self, input_ids: torch.Tensor, need_weights: bool = False):
        """(memory, per-layer encoder weights); padding in the source is masked."""
        check_input_ids(input_ids, "input_ids", self.config.src_vocab)
        x = self.drop(self.src_pos(self.src_emb(input_ids) * math.sqrt(self.config.d_model)))
        return self.encoder(x, key_mask=input_ids != self.config.pad_id, need_weights=need_weights)

    def decode(self, decoder_input_ids: torch.Tensor, memory: torch.Tensor, memory_key_mask: torch.Tensor,
               need_weights: bool = False):
        """(logits, last hidden state, self weights, cross weights) for the target prefix
        (teacher forcing); memory_key_mask (batch, T_src) is True at real source tokens."""
        check_input_ids(decoder_input_ids, "decoder_input_ids", self.config.tgt_vocab)
        y = self.drop(self.tgt_pos(self.tgt_emb(decoder_input_ids) * math.sqrt(self.config.d_model)))
        h, sw, cw = self.decoder(y, memory, memory_key_mask=memory_key_mask, is_causal=True,
                                 need_weights=need_weights)
        return self.out(h), h, sw, cw

    def forward(self, input_ids: torch.Tensor, decoder_input_ids: torch.Tensor,
                targets: torch.Tensor | None = None, need_weights: bool = False) -> Seq2SeqOutput:
        """Teacher forcing: input_ids the source (batch, T_src); decoder_input_ids
        <bos> y1 .. y_{T-1} and targets y1 .. y_T <eos>, padded with pad_id (batch, T_tgt)."""
        memory, enc_w = self.encode(input_ids, need_weights)
        logits, h, sw, cw = self.decode(decoder_input_ids, memory, input_ids != self.config.pad_id, need_weights)
        loss = None
        if targets is not None:
            check_targets(targets, tuple(decoder_input_ids.shape))
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=self.config.pad_id,
                                   label_smoothing=self.config.label_smoothing)
        return Seq2SeqOutput(logits, loss, sw if need_weights else None, h,
                             encoder_attentions=enc_w if need_weights else None,
                             cross_attentions=cw if need_weights else None, encoder_last_hidden_state=memory)

    # -- decoding.Decodable ------------------------------------------------------------------
    def decoding_context(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> dict:
        if attention_mask is not None:
            raise ValueError("the Transformer masks its source padding itself (pad_id); "
                             "attention_mask must be None")
        memory, _ = self.encode(input_ids)
        return {"memory": memory, "memory_key_mask": input_ids != self.config.pad_id}

    def new_caches(self) -> None:
        return None  # every step decodes the whole prefix

    def next_token_logits(self, ids: torch.Tensor, attention_mask: torch.Tensor | None, context: dict,
                          caches: None) -> torch.Tensor:
        return self.decode(ids, context["memory"], context["memory_key_mask"])[0][:, -1]


# ---- parity with PyTorch -----------------------------------------------------------------
def _copy_attention(ours: MultiHeadAttention, theirs: nn.MultiheadAttention) -> None:
    # Both stack W^Q, W^K, W^V in one matrix, in that order.
    for lin, w, b in ((ours.in_proj, theirs.in_proj_weight, theirs.in_proj_bias),
                      (ours.out_proj, theirs.out_proj.weight, theirs.out_proj.bias)):
        lin.weight.copy_(w)
        lin.bias.copy_(b)


@torch.no_grad()
def copy_from_torch(ours: nn.Module, theirs: nn.Module) -> None:
    """Copy weights from torch.nn.TransformerEncoder/Decoder(Layer) into ours (same shapes).

    Introduced in chapter 04_transformer, to show that our layers compute the same function.
    Accepts an (Encoder, nn.TransformerEncoder), (Decoder, nn.TransformerDecoder), or a
    single layer pair."""
    pairs = {EncoderLayer: nn.TransformerEncoderLayer, DecoderLayer: nn.TransformerDecoderLayer,
             Encoder: nn.TransformerEncoder, Decoder: nn.TransformerDecoder}
    if type(ours) not in pairs or not isinstance(theirs, pairs[type(ours)]):
        raise TypeError(f"cannot copy {type(theirs).__name__} into {type(ours).__name__}")
    if isinstance(ours, (Encoder, Decoder)):
        if len(ours.layers) != len(theirs.layers) or (ours.norm is None) != (theirs.norm is None):
            raise ValueError("the stacks differ in depth or in their final LayerNorm")
        for a, b in zip(ours.layers, theirs.layers):
            copy_from_torch(a, b)
        if ours.norm is not None:
            ours.norm.load_state_dict(theirs.norm.state_dict())
        return
    _copy_attention(ours.self_attn, theirs.self_attn)
    if isinstance(ours, DecoderLayer):
        _copy_attention(ours.cross_attn, theirs.multihead_attn)
        ours.norm3.load_state_dict(theirs.norm3.state_dict())
    ours.ff.linear1.load_state_dict(theirs.linear1.state_dict())
    ours.ff.linear2.load_state_dict(theirs.linear2.state_dict())
    ours.norm1.load_state_dict(theirs.norm1.state_dict())
    ours.norm2.load_state_dict(theirs.norm2.state_dict())
