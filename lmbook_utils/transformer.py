"""The Transformer (Vaswani et al. 2017): encoder, decoder, encoder-decoder, and decoding.

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
Masks follow `attention`: bool, True = may attend; key padding masks are True at real tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiHeadAttention
from .dropout import Dropout

__all__ = ["sinusoidal_positions", "SinusoidalPositions", "LearnedPositions", "FeedForward",
           "EncoderLayer", "DecoderLayer", "Encoder", "Decoder", "Transformer",
           "copy_from_torch", "greedy_decode", "beam_search"]


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
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = False):
        def sa(h):
            out, w = self.self_attn(h, mask=mask, key_padding_mask=key_padding_mask, need_weights=need_weights)
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
                key_padding_mask: torch.Tensor | None = None,
                memory_key_padding_mask: torch.Tensor | None = None, is_causal: bool = True,
                need_weights: bool = False):
        def sa(h):
            out, w = self.self_attn(h, mask=mask, key_padding_mask=key_padding_mask,
                                    is_causal=is_causal, need_weights=need_weights)
            return self.drop1(out), w

        def ca(h):
            out, w = self.cross_attn(h, memory, memory, key_padding_mask=memory_key_padding_mask,
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

    def forward(self, x, mask=None, key_padding_mask=None, need_weights=False):
        weights = []
        for layer in self.layers:
            x, w = layer(x, mask, key_padding_mask, need_weights)
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

    def forward(self, x, memory, mask=None, key_padding_mask=None, memory_key_padding_mask=None,
                is_causal=True, need_weights=False):
        self_w, cross_w = [], []
        for layer in self.layers:
            x, sw, cw = layer(x, memory, mask, key_padding_mask, memory_key_padding_mask, is_causal,
                              need_weights)
            self_w.append(sw)
            cross_w.append(cw)
        return (self.norm(x) if self.norm is not None else x), self_w, cross_w


@dataclass
class Seq2SeqOutput:
    """What `Transformer.forward` returns. Introduced in chapter 04_transformer."""

    logits: torch.Tensor  # (batch, T_tgt, tgt_vocab)
    loss: torch.Tensor | None = None
    encoder_attentions: list | None = None
    decoder_attentions: list | None = None
    cross_attentions: list | None = None


class Transformer(nn.Module):
    """Encoder-decoder Transformer for sequence-to-sequence tasks such as translation.

    Introduced in chapter 04_transformer. Token embeddings are scaled by sqrt(d_model) as in
    the paper; `positions` is "sinusoidal" or "learned"; `tie_output` shares the target
    embedding with the output projection. Padding (`pad_id`) is masked in attention and
    ignored by the loss; `label_smoothing` is passed to the cross-entropy.
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, d_model: int = 64, n_heads: int = 4,
                 n_layers: int = 2, d_ff: int = 256, dropout: float = 0.1, max_len: int = 128,
                 positions: str = "sinusoidal", norm_first: bool = False, tie_output: bool = True,
                 pad_id: int = 0, label_smoothing: float = 0.0, activation: str = "relu") -> None:
        super().__init__()
        _int(src_vocab, "src_vocab", 2)
        _int(tgt_vocab, "tgt_vocab", 2)
        if positions not in ("sinusoidal", "learned"):
            raise ValueError(f"positions must be 'sinusoidal' or 'learned', got {positions!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        if not (isinstance(pad_id, int) and 0 <= pad_id < min(src_vocab, tgt_vocab)):
            raise ValueError(f"pad_id must be an int id in both vocabularies, got {pad_id!r}")
        self.d_model, self.pad_id, self.label_smoothing = d_model, pad_id, label_smoothing
        self.src_emb = nn.Embedding(src_vocab, d_model)
        self.tgt_emb = nn.Embedding(tgt_vocab, d_model)
        for emb in (self.src_emb, self.tgt_emb):
            nn.init.normal_(emb.weight, std=d_model ** -0.5)
        pos = SinusoidalPositions if positions == "sinusoidal" else LearnedPositions
        self.src_pos, self.tgt_pos = pos(d_model, max_len), pos(d_model, max_len)
        self.drop = Dropout(dropout)
        self.encoder = Encoder(n_layers, d_model, n_heads, d_ff, dropout, activation, norm_first)
        self.decoder = Decoder(n_layers, d_model, n_heads, d_ff, dropout, activation, norm_first)
        self.out = nn.Linear(d_model, tgt_vocab, bias=False)
        if tie_output:
            self.out.weight = self.tgt_emb.weight

    @property
    def ignore_index(self) -> int:
        """The target id the loss ignores: padding (train.evaluate counts targets with it)."""
        return self.pad_id

    def _check_ids(self, ids: torch.Tensor, name: str, vocab: int) -> None:
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.dtype != torch.long:
            got = f"{ids.dtype} {tuple(ids.shape)}" if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise ValueError(f"{name} must be a (batch, seq) tensor of token ids (torch.long), got {got}")
        if ids.numel() and ids.device.type != "meta":
            low, high = (int(v) for v in torch.aminmax(ids))
            if low < 0 or high >= vocab:
                raise ValueError(f"{name} holds ids outside [0, {vocab}): min {low}, max {high}")

    def encode(self, src: torch.Tensor, need_weights: bool = False):
        """(memory, per-layer encoder weights); padding in src is masked."""
        self._check_ids(src, "src", self.src_emb.num_embeddings)
        x = self.drop(self.src_pos(self.src_emb(src) * math.sqrt(self.d_model)))
        return self.encoder(x, key_padding_mask=src != self.pad_id, need_weights=need_weights)

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor, src_keep: torch.Tensor,
               need_weights: bool = False):
        """(logits, self weights, cross weights) for target prefix `tgt` (teacher forcing)."""
        self._check_ids(tgt, "tgt", self.tgt_emb.num_embeddings)
        y = self.drop(self.tgt_pos(self.tgt_emb(tgt) * math.sqrt(self.d_model)))
        h, sw, cw = self.decoder(y, memory, memory_key_padding_mask=src_keep, is_causal=True,
                                 need_weights=need_weights)
        return self.out(h), sw, cw

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor, tgt_out: torch.Tensor | None = None,
                need_weights: bool = False) -> Seq2SeqOutput:
        """Teacher forcing: tgt_in = <bos> y1 .. y_{T-1}, tgt_out = y1 .. y_T <eos> (padded)."""
        memory, enc_w = self.encode(src, need_weights)
        logits, sw, cw = self.decode(tgt_in, memory, src != self.pad_id, need_weights)
        loss = None
        if tgt_out is not None:
            if tgt_out.shape != tgt_in.shape:
                raise ValueError(f"tgt_out must have the shape of tgt_in {tuple(tgt_in.shape)}, "
                                 f"got {tuple(tgt_out.shape)}")
            loss = F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=self.pad_id,
                                   label_smoothing=self.label_smoothing)
        return Seq2SeqOutput(logits, loss, enc_w, sw, cw)


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


# ---- decoding -----------------------------------------------------------------------------
def _check_decoding(src, bos_id, eos_id, max_len, beam_size=1):
    if not isinstance(src, torch.Tensor) or src.dim() != 2 or src.dtype != torch.long:
        raise ValueError("src must be a (batch, seq) tensor of token ids (torch.long)")
    _int(max_len, "max_len")
    _int(beam_size, "beam_size")
    for name, v in (("bos_id", bos_id), ("eos_id", eos_id)):
        _int(v, name, 0)


@torch.no_grad()
def greedy_decode(model: Transformer, src: torch.Tensor, bos_id: int, eos_id: int,
                  max_len: int = 50) -> torch.Tensor:
    """Most likely next token at every step, for a whole batch at once.

    Introduced in chapter 04_transformer. Returns (batch, <= max_len + 1) ids starting with
    bos_id; a sequence that produced eos_id is padded with model.pad_id afterwards; decoding
    stops when every sequence has ended or after max_len new tokens."""
    _check_decoding(src, bos_id, eos_id, max_len)
    was_training = model.training
    model.eval()
    try:
        memory, _ = model.encode(src)
        keep = src != model.pad_id
        out = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        for _ in range(max_len):
            logits, _, _ = model.decode(out, memory, keep)
            nxt = logits[:, -1].argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, model.pad_id), nxt)
            out = torch.cat([out, nxt[:, None]], dim=1)
            done |= nxt == eos_id
            if bool(done.all()):
                break
        return out
    finally:
        model.train(was_training)


@torch.no_grad()
def beam_search(model: Transformer, src: torch.Tensor, bos_id: int, eos_id: int,
                max_len: int = 50, beam_size: int = 4, length_penalty: float = 1.0) -> torch.Tensor:
    """Keep the `beam_size` best prefixes; return the best finished hypothesis per example.

    Introduced in chapter 04_transformer. Hypotheses are ranked by sum of log-probabilities
    divided by (number of generated tokens) ** length_penalty (0 = no normalization). A
    hypothesis ends at eos_id or after max_len tokens. Examples are searched one at a time;
    the beams of one example are one batch. Output as `greedy_decode`."""
    _check_decoding(src, bos_id, eos_id, max_len, beam_size)
    if not isinstance(length_penalty, (int, float)) or length_penalty < 0:
        raise ValueError(f"length_penalty must be a number >= 0, got {length_penalty!r}")
    was_training = model.training
    model.eval()
    try:
        results = []
        for b in range(src.shape[0]):
            results.append(_beam_one(model, src[b:b + 1], bos_id, eos_id, max_len, beam_size, length_penalty))
        width = max(len(r) for r in results)
        out = torch.full((len(results), width), model.pad_id, dtype=torch.long, device=src.device)
        for b, r in enumerate(results):
            out[b, :len(r)] = torch.tensor(r, device=src.device)
        return out
    finally:
        model.train(was_training)


def _beam_one(model, src, bos_id, eos_id, max_len, beam_size, alpha) -> list[int]:
    memory, _ = model.encode(src)
    keep = src != model.pad_id
    beams = [([bos_id], 0.0)]  # (tokens, sum of log-probs)
    finished: list[tuple[list[int], float]] = []

    def norm(tokens, score):
        return score / (max(len(tokens) - 1, 1) ** alpha)

    for _ in range(max_len):
        seqs = torch.tensor([t for t, _ in beams], device=src.device)
        logits, _, _ = model.decode(seqs, memory.expand(len(beams), -1, -1), keep.expand(len(beams), -1))
        logp = torch.log_softmax(logits[:, -1].float(), dim=-1)
        scores = torch.tensor([s for _, s in beams], device=src.device)[:, None] + logp
        top = torch.topk(scores.flatten(), min(beam_size * 2, scores.numel()))
        candidates = []
        for value, index in zip(top.values.tolist(), top.indices.tolist()):
            i, tok = divmod(index, logp.shape[1])
            candidates.append((beams[i][0] + [tok], value))
        beams = []
        for tokens, score in candidates:
            if tokens[-1] == eos_id:
                finished.append((tokens, score))
            elif len(beams) < beam_size:
                beams.append((tokens, score))
        # stop when no live beam can beat the best finished one (scores only decrease)
        if finished:
            best_done = max(norm(t, s) for t, s in finished)
            if len(finished) >= beam_size and all(
                    s / (max_len ** alpha if alpha > 0 else 1) <= best_done for _, s in beams):
                break
        if not beams:
            break
    # live beams left at max_len count as ended; after an early stop they cannot win anyway
    tokens, _ = max(finished + beams, key=lambda ts: norm(*ts))
    return tokens
