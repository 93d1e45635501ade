"""The LSTM encoder-decoder of Sutskever, Vinyals & Le (2014), "Sequence to Sequence Learning
with Neural Networks", NeurIPS 27, arXiv:1409.3215.

Introduced in chapter 02c_encoder_decoder, which translates toy-world English stories to
Chinese and shows the bottleneck that motivates attention in chapter 03_attention: one LSTM
reads the source, and the decoder, a second LSTM, starts from the encoder's final (h, c)
alone. Whatever the source says must fit into those n_layers * 2 * d_hidden numbers, however
long the sentence. From the paper: the source is fed reversed (`reverse_source`, which
shortens the distance between the first source and first target words) and every weight
starts uniform in [-0.08, 0.08].

Padding: sources are right-padded (`attention_mask`, True at real tokens, or `pad_id`), and
the encoder runs on a packed sequence, so a padded row ends in the state it reaches alone;
reversal reverses the real tokens only. The model follows `modeling`'s contract and is
`decoding.Decodable`: translate with `decoding.generate` or `decoding.beam_search`, bos_id=...

Also here: two deliberately broken pieces the chapter runs to show the source documents'
mistakes (`broken_decoder_concat_state`, `BrokenEncoder`), and `bleu_by_length` and
`exact_match` for measuring translations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .dropout import Dropout
from .modeling import check_attention_mask, check_input_ids, check_targets
from .transformer import Seq2SeqOutput

__all__ = ["Seq2SeqConfig", "Seq2Seq", "LSTMSeq2SeqOutput", "DecoderState", "reverse_real_tokens",
           "broken_decoder_concat_state", "BrokenEncoder", "bleu_by_length", "exact_match"]

INIT_RANGE = 0.08  # the paper: every parameter uniform in [-0.08, 0.08]


def _whole(config: object, name: str, low: int = 1) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{type(config).__name__}.{name} must be an int >= {low}, got {value!r}")


@dataclass
class Seq2SeqConfig:
    """Sizes of an LSTM encoder-decoder. Introduced in chapter 02c_encoder_decoder."""

    src_vocab: int  # source token ids
    tgt_vocab: int  # target token ids
    d_embed: int = 64  # width of a token's embedding (the paper: 1000)
    d_hidden: int = 128  # width of each LSTM layer's h and c (the paper: 1000)
    n_layers: int = 2  # LSTM layers in the encoder, and in the decoder (the paper: 4)
    dropout: float = 0.0  # on embeddings, between LSTM layers, before the output (the paper: none)
    reverse_source: bool = True  # feed the source's real tokens in reverse order (the paper's trick)
    pad_id: int = 0  # padding in both vocabularies: not read by the encoder, ignored by the loss
    max_len: int = 64  # the longest target decoding may write, bos included (an LSTM has no length limit)

    def __post_init__(self) -> None:
        for name in ("src_vocab", "tgt_vocab", "d_embed", "d_hidden", "n_layers", "max_len"):
            _whole(self, name)
        d = self.dropout
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.0 <= d < 1.0:
            raise ValueError(f"Seq2SeqConfig.dropout must be a number in [0, 1), got {d!r}")
        if not isinstance(self.reverse_source, bool):
            raise ValueError(f"Seq2SeqConfig.reverse_source must be a bool, got {self.reverse_source!r}")
        if isinstance(self.pad_id, bool) or not isinstance(self.pad_id, int) or \
                not 0 <= self.pad_id < min(self.src_vocab, self.tgt_vocab):
            raise ValueError(f"Seq2SeqConfig.pad_id must be an int id in both vocabularies, got {self.pad_id!r}")

    @classmethod
    def tiny(cls, src_vocab: int = 11, tgt_vocab: int = 13, **changes) -> Seq2SeqConfig:
        """A model small enough for a unit test; two layers, so layer order matters."""
        return cls(**{"src_vocab": src_vocab, "tgt_vocab": tgt_vocab, "d_embed": 8, "d_hidden": 12,
                      "n_layers": 2, "dropout": 0.0, "max_len": 16, **changes})


@dataclass
class LSTMSeq2SeqOutput(Seq2SeqOutput):
    """`transformer.Seq2SeqOutput` (no attentions here) plus the encoder's final state.

    `last_hidden_state` is the decoder's top-layer output (batch, T_tgt, d_hidden);
    `encoder_last_hidden_state` the encoder's (batch, T_src, d_hidden), in source order, zero at
    padding: the decoder never reads it, which is what attention (chapter 03) changes."""

    encoder_final_state: tuple[torch.Tensor, torch.Tensor] | None = None  # (h, c), each (batch, n_layers, d_hidden)


class DecoderState:
    """The cache `decoding.generate` hands back to `Seq2Seq.next_token_logits`: the decoder's
    (h, c) after the tokens read so far, batch-first. Empty until the first step."""

    def __init__(self) -> None:
        self.state: tuple[torch.Tensor, torch.Tensor] | None = None


def reverse_real_tokens(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """x (batch, T, ...) with each row's first lengths[b] entries reversed, padding left in place:
    [a, b, c, pad] -> [c, b, a, pad]. Its own inverse."""
    t = torch.arange(x.shape[1], device=x.device)[None, :]
    idx = torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
    return x.gather(1, idx.view(*idx.shape, *[1] * (x.dim() - 2)).expand_as(x))


def _right_padded(mask: torch.Tensor, name: str, need_one: bool) -> torch.Tensor:
    """The lengths of a right-padded mask (True at real tokens); padding before a token is refused."""
    lengths = mask.sum(1)
    if mask.device.type != "meta" and mask.numel():  # a meta tensor has no values to check
        if not bool((mask == (torch.arange(mask.shape[1], device=mask.device) < lengths[:, None])).all()):
            raise ValueError(f"{name} must be right padding only (True, then False), got a False before a True")
        if need_one and int(lengths.min()) < 1:
            raise ValueError(f"{name}: every source needs at least one real token")
    return lengths


def _lstm(c: Seq2SeqConfig) -> nn.LSTM:
    return nn.LSTM(c.d_embed, c.d_hidden, c.n_layers, batch_first=True,
                   dropout=c.dropout if c.n_layers > 1 else 0.0)


class Seq2Seq(nn.Module):
    """LSTM encoder and LSTM decoder; the decoder starts from the encoder's final (h, c).

    Introduced in chapter 02c_encoder_decoder. The target's padding (`config.pad_id`) is ignored by
    the loss, so `ignore_index` is the padding id, as for `transformer.Transformer`."""

    is_encoder_decoder = True

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        if not isinstance(config, Seq2SeqConfig):
            raise TypeError(f"config must be a Seq2SeqConfig, got {type(config).__name__}")
        c = self.config = config
        self.src_emb = nn.Embedding(c.src_vocab, c.d_embed)
        self.tgt_emb = nn.Embedding(c.tgt_vocab, c.d_embed)
        self.encoder, self.decoder = _lstm(c), _lstm(c)
        self.drop = Dropout(c.dropout)
        self.out = nn.Linear(c.d_hidden, c.tgt_vocab)
        for p in self.parameters():
            nn.init.uniform_(p, -INIT_RANGE, INIT_RANGE)

    @property
    def ignore_index(self) -> int:
        """The target id the loss ignores: padding (train.evaluate counts targets with it)."""
        return self.config.pad_id

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        """(outputs (batch, T_src, d_hidden) in source order, zero at padding; final (h, c), each
        (batch, n_layers, d_hidden)). attention_mask is True at real tokens (right padding only);
        without it, tokens equal to pad_id are padding."""
        c = self.config
        check_input_ids(input_ids, "input_ids", c.src_vocab)
        if attention_mask is None:
            mask = input_ids != c.pad_id
        else:
            mask = check_attention_mask(attention_mask, tuple(input_ids.shape))
        lengths = _right_padded(mask, "attention_mask" if attention_mask is not None else "input_ids (pad_id)",
                                need_one=True)
        ids = reverse_real_tokens(input_ids, lengths) if c.reverse_source else input_ids
        x = self.drop(self.src_emb(ids))
        if x.device.type == "meta":  # shapes only: no lengths to pack by
            out, (h, cell) = self.encoder(x)
        else:  # the LSTM stops at each row's last real token: padding never enters the state
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, (h, cell) = self.encoder(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        if c.reverse_source:
            out = reverse_real_tokens(out, lengths)
        return out, (h.transpose(0, 1), cell.transpose(0, 1))

    def decode(self, decoder_input_ids: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        """(logits, top-layer outputs, final (h, c)) for the target prefix from `state` (h, c),
        each (batch, n_layers, d_hidden), batch-first as in `encode`; nn.LSTM's is layer-first."""
        check_input_ids(decoder_input_ids, "decoder_input_ids", self.config.tgt_vocab)
        hx = tuple(s.transpose(0, 1).contiguous() for s in state)  # beam search hands expanded views
        h, (h_n, c_n) = self.decoder(self.drop(self.tgt_emb(decoder_input_ids)), hx)
        return self.out(self.drop(h)), h, (h_n.transpose(0, 1), c_n.transpose(0, 1))

    def forward(self, input_ids: torch.Tensor, decoder_input_ids: torch.Tensor,
                targets: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                decoder_attention_mask: torch.Tensor | None = None) -> LSTMSeq2SeqOutput:
        """Teacher forcing: input_ids the source (batch, T_src), right-padded; decoder_input_ids
        <bos> y1 .. y_T and targets y1 .. y_T <eos>, padded with pad_id (batch, T_tgt).
        Masks are True at real tokens. decoder_attention_mask is only checked: the decoder reads
        left to right, so right padding cannot reach a real position (tested)."""
        enc_out, state = self.encode(input_ids, attention_mask)
        check_input_ids(decoder_input_ids, "decoder_input_ids", self.config.tgt_vocab)
        if decoder_input_ids.shape[0] != input_ids.shape[0]:
            raise ValueError(f"decoder_input_ids has {decoder_input_ids.shape[0]} rows, "
                             f"input_ids {input_ids.shape[0]}")
        if decoder_attention_mask is not None:
            m = check_attention_mask(decoder_attention_mask, tuple(decoder_input_ids.shape), "decoder_attention_mask")
            _right_padded(m, "decoder_attention_mask", need_one=False)
        logits, h, _ = self.decode(decoder_input_ids, state)
        loss = None
        if targets is not None:
            check_targets(targets, tuple(decoder_input_ids.shape))
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=self.config.pad_id)
        return LSTMSeq2SeqOutput(logits, loss, None, h, encoder_last_hidden_state=enc_out,
                                 encoder_final_state=state)

    # -- decoding.Decodable ------------------------------------------------------------------
    # generate's cache is one DecoderState: each step reads only the new token. beam_search
    # passes no cache (it never reorders one): each step re-runs the decoder over every beam's
    # prefix from the context, expanded to the beams; the same numbers, more work.
    def decoding_context(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> dict:
        _, (h, c) = self.encode(input_ids, attention_mask)
        return {"h": h, "c": c}  # batch-first (batch, n_layers, d_hidden), as decoding needs

    def new_caches(self) -> list[DecoderState]:
        return [DecoderState()]

    def next_token_logits(self, ids: torch.Tensor, attention_mask: torch.Tensor | None, context: dict,
                          caches: list[DecoderState] | None) -> torch.Tensor:
        if attention_mask is not None:
            raise ValueError("a target prefix has no padding: attention_mask must be None")
        if caches is None or caches[0].state is None:
            state = (context["h"], context["c"])  # ids is the whole prefix
        else:
            state = caches[0].state  # ids are the tokens after the cached ones
        logits, _, new = self.decode(ids, state)
        if caches is not None:
            caches[0].state = new
        return logits[:, -1]


# ---- the source documents' two mistakes, kept so the chapter can run them -------------------

def broken_decoder_concat_state(embedded: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor],
                                input_size: int | None = None) -> torch.Tensor:
    """DELIBERATELY WRONG, as the source documents wrote it: feed the encoder's final h and c
    into every decoder input, concatenated to the embeddings, but size the LSTM for one of them.

    embedded (batch, T, d_embed); state (h, c) as nn.LSTM returns it, (n_layers, batch, d_hidden).
    The input is d_embed + 2 * d_hidden wide, the LSTM expects d_embed + d_hidden (the
    default input_size): RuntimeError. input_size=d_embed + 2 * d_hidden runs, which shows the
    size is the only fault; `Seq2Seq` passes the state as the decoder's initial state instead."""
    h, c = state
    d_embed, d_hidden, steps = embedded.shape[-1], h.shape[-1], embedded.shape[1]
    lstm = nn.LSTM(input_size or d_embed + d_hidden, d_hidden, h.shape[0], batch_first=True).to(embedded.device)
    summary = torch.cat([h[-1], c[-1]], dim=-1)[:, None].expand(-1, steps, -1)  # (batch, T, 2 * d_hidden)
    return lstm(torch.cat([embedded, summary], dim=-1), state)[0]


class BrokenEncoder(nn.Module):
    """DELIBERATELY WRONG, as the source documents wrote it: `forward(x, hidden)` requires a
    `hidden` that the training code never passes, so `BrokenEncoder(...)(x)` raises TypeError.
    The fix: `hidden=None` (nn.LSTM then starts from zeros), as `Seq2Seq.encode` does."""

    def __init__(self, vocab: int, d_embed: int, d_hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d_embed)
        self.lstm = nn.LSTM(d_embed, d_hidden, batch_first=True)

    def forward(self, x, hidden):
        return self.lstm(self.embed(x), hidden)


# ---- measuring translations ----------------------------------------------------------------

def bleu_by_length(hypotheses: Sequence[str], references: Sequence[str], lengths: Sequence[int],
                   bins: Sequence[tuple[int, int]]) -> list[dict]:
    """Corpus BLEU (sacrebleu, tokenize="zh": Chinese by character) of the sentences whose
    source length falls in each bin, to see whether quality falls with length (the bottleneck).

    bins are (low, high) pairs, both ends included, increasing and not overlapping; sentences
    in no bin are left out. Returns one dict per bin: low, high, n (sentences) and bleu (None
    when n == 0)."""
    import sacrebleu  # imported here: only the chapters that measure translations need it

    hypotheses, references, lengths = list(hypotheses), list(references), list(lengths)
    if len(references) != len(hypotheses):
        raise ValueError(f"references has {len(references)} items, hypotheses {len(hypotheses)}")
    if len(lengths) != len(hypotheses):
        raise ValueError(f"lengths has {len(lengths)} items, hypotheses {len(hypotheses)}")
    if not all(isinstance(s, str) for s in hypotheses + references):
        raise ValueError("hypotheses and references must be strings")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in lengths):
        raise ValueError("lengths must be ints >= 0 (source lengths)")
    bins = list(bins)
    if not bins:
        raise ValueError("bins must hold at least one (low, high) pair")
    previous = None
    for b in bins:
        if not (isinstance(b, (tuple, list)) and len(b) == 2 and all(isinstance(v, int) for v in b)
                and b[0] <= b[1]):
            raise ValueError(f"bins must be (low, high) int pairs with low <= high, got {b!r}")
        if previous is not None and b[0] <= previous:
            raise ValueError(f"bins must increase without overlapping, got {b!r} after high={previous}")
        previous = b[1]
    rows = []
    for low, high in bins:
        keep = [i for i, n in enumerate(lengths) if low <= n <= high]
        bleu = sacrebleu.corpus_bleu([hypotheses[i] for i in keep], [[references[i] for i in keep]],
                                     tokenize="zh").score if keep else None
        rows.append({"low": low, "high": high, "n": len(keep), "bleu": bleu})
    return rows


def exact_match(hyps: Sequence, refs: Sequence) -> float:
    """The fraction of hypotheses equal to their reference (strings or token lists, compared as is)."""
    hyps, refs = list(hyps), list(refs)
    if len(hyps) != len(refs):
        raise ValueError(f"refs has {len(refs)} items, hyps {len(hyps)}")
    if not hyps:
        raise ValueError("hyps must not be empty")
    return sum(h == r for h, r in zip(hyps, refs)) / len(hyps)
