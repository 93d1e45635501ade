"""Task heads shared by every encoder of the book: one sequence classifier, one token
classifier and one span extractor that wrap BERT, ELECTRA, XLNet or GPT alike.

Introduced in chapter 09_applications (to come), which fine-tunes each pretrained model on the
same tasks (intent classification, entity tagging, extractive question answering) and compares
them. Chapters 05-08 keep their own heads (`bert.BertTokenClassifier`, `bert.BertForQA`,
`electra.ElectraClassifier`, `electra.ElectraForQA`, `xlnet.XLNetTokenClassifier`,
`gpt.GPTClassifier`); where a head here computes the same function, the tests show the same
logits and loss given the same weights.

**What an encoder is, here.** Anything that maps (input_ids, segment_ids=None,
attention_mask=None) to the last layer's hidden states (batch, T, d_model). The four models
expose them differently, so `encode` picks an adapter by the model's type (`EncoderAdapter` is
the protocol they share) and returns the states, the attention mask the model read (True at
real tokens) and, with need_weights, the attentions:

| model | how its states are read | attention_mask=None means | default pooling |
|---|---|---|---|
| `bert.Bert` | `Bert(..., heads=())`.last_hidden_state | input_ids != pad_id | "first" ([CLS]) |
| `electra.ElectraDiscriminator` (or `ElectraGenerator`, `ElectraBody`) | its `body` | input_ids != pad_id | "first" |
| `xlnet.XLNet` | `XLNet.encode` (the content stream, no memory) | every token is real | "last" (<cls>) |
| `gpt.GPT` | `GPT(...)`.last_hidden_state (after ln_f) | every token is real | "last" |

**Which token a sequence head reads ("auto" pooling), and why.** BERT and ELECTRA read the
first token, [CLS]: BERT pretrains it for next-sentence prediction and Hugging Face's
`BertForSequenceClassification` and `ElectraClassificationHead` read it. XLNet reads the last
real token: its tokenizer puts "<sep> <cls>" at the END of the input (and pads on the left),
and Hugging Face's XLNet summary reads position -1 (`summary_type="last"`). GPT reads the last
real token: under causal attention it is the only one that has seen the whole sequence (GPT-1's
extract token; `gpt.GPTClassifier`). "last" means the last position where attention_mask is
True, so it works with padding on either side (left-padded XLNet and GPT batches give each
row's numbers alone, since both models ignore masked tokens); "first" reads position 0 and
refuses a batch whose position 0 is padding. "mean" averages the real tokens.

**The sequence head.** `head="linear"` (the default) is dropout + linear on the pooled vector:
the simplest head, the same for every model, and GPT-1's (`GPTClassifier`, without dropout).
`head="dense_tanh"` is BERT's pooler (linear(dropout(tanh(dense(x))))), the same shape as
Hugging Face's XLNet summary (dense + tanh on the last token, dropout, linear);
`head="dense_gelu"` is ELECTRA's (linear(dropout(gelu(dense(dropout(x)))))). They start from
new weights: BERT's pretrained pooler is not reused unless one copies it (the tests do).

A wrapped ELECTRA model is stored as its `body` (as `ElectraClassifier` does), so the
replaced-token head is not fine-tuned along; a GPT is wrapped whole and its (unused)
language-model logits are still computed. With GPT the token and span heads work, but each
token sees only what lies to its left: the comparison chapter 09 makes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .bert import Bert, check_encoder_inputs
from .dropout import Dropout
from .electra import ElectraBody, ElectraDiscriminator, ElectraGenerator
from .gpt import GPT
from .modeling import IGNORE_INDEX, ModelOutput, check_attention_mask, check_input_ids, check_targets, init_weights
from .qa import QAOutput, span_output
from .xlnet import XLNet

__all__ = ["EncodedBatch", "EncoderAdapter", "encode", "encoder_states", "default_pooling", "pool", "POOLINGS",
           "SEQUENCE_HEADS", "SequenceClassifier", "SequenceClassifierOutput", "TokenClassifier",
           "TokenClassifierOutput", "SpanExtractor", "QAOutput"]

POOLINGS = ("auto", "first", "last", "mean")
SEQUENCE_HEADS = ("linear", "dense_tanh", "dense_gelu")


class EncodedBatch(NamedTuple):
    """What `encode` returns."""

    hidden: torch.Tensor  # (batch, T, d_model): the last layer's states
    keep: torch.Tensor  # (batch, T) bool: True at real tokens, the mask the encoder read
    attentions: list | None  # per layer (batch, heads, T, T_keys), only with need_weights


class EncoderAdapter(Protocol):
    """The protocol of an adapter: (encoder, input_ids, segment_ids, attention_mask,
    need_weights) -> EncodedBatch, with the model's own input checks and defaults."""

    def __call__(self, encoder: nn.Module, input_ids: torch.Tensor, segment_ids: torch.Tensor | None,
                 attention_mask: torch.Tensor | None, need_weights: bool) -> EncodedBatch: ...


def _bert(encoder: Bert, input_ids, segment_ids, attention_mask, need_weights) -> EncodedBatch:
    _, keep = check_encoder_inputs(encoder.config, input_ids, segment_ids, attention_mask)
    out = encoder(input_ids, segment_ids, attention_mask, heads=(), need_weights=need_weights)
    return EncodedBatch(out.last_hidden_state, keep, out.attentions if need_weights else None)


def _electra(encoder: nn.Module, input_ids, segment_ids, attention_mask, need_weights) -> EncodedBatch:
    body = encoder if isinstance(encoder, ElectraBody) else encoder.body
    h, attentions, keep = body(input_ids, segment_ids, attention_mask, need_weights)
    return EncodedBatch(h, keep, attentions if need_weights else None)


def _keep_or_all(input_ids: torch.Tensor, attention_mask) -> torch.Tensor:
    """XLNet's and GPT's default: without a mask every token is real."""
    if attention_mask is None:
        return torch.ones(input_ids.shape, dtype=torch.bool, device=input_ids.device)
    return check_attention_mask(attention_mask, tuple(input_ids.shape))


def _xlnet(encoder: XLNet, input_ids, segment_ids, attention_mask, need_weights) -> EncodedBatch:
    keep = _keep_or_all(input_ids, attention_mask)
    out = encoder.encode(input_ids, attention_mask, token_type_ids=segment_ids, use_mems=False,
                         need_weights=need_weights)
    return EncodedBatch(out.last_hidden_state, keep, out.attentions if need_weights else None)


def _gpt(encoder: GPT, input_ids, segment_ids, attention_mask, need_weights) -> EncodedBatch:
    if segment_ids is not None:
        raise ValueError("segment_ids must be None for a GPT: it has no segment embeddings "
                         "(join the two texts with a separator token instead, as GPT-1 did)")
    keep = _keep_or_all(input_ids, attention_mask)
    out = encoder(input_ids, attention_mask=attention_mask, need_weights=need_weights)
    return EncodedBatch(out.last_hidden_state, keep, out.attentions if need_weights else None)


# (type, adapter, the token a sequence head reads by default); the first isinstance match wins
_ADAPTERS: tuple[tuple[type, EncoderAdapter, str], ...] = (
    (Bert, _bert, "first"), (ElectraDiscriminator, _electra, "first"), (ElectraGenerator, _electra, "first"),
    (ElectraBody, _electra, "first"), (XLNet, _xlnet, "last"), (GPT, _gpt, "last"))
_SUPPORTED = ("a bert.Bert, an electra.ElectraDiscriminator (or ElectraGenerator, ElectraBody), an xlnet.XLNet "
              "or a gpt.GPT")


def _lookup(encoder: object) -> tuple[EncoderAdapter, str]:
    for cls, adapter, pooling in _ADAPTERS:
        if isinstance(encoder, cls):
            return adapter, pooling
    raise TypeError(f"encoder must be {_SUPPORTED}, got {type(encoder).__name__}")


def default_pooling(encoder: nn.Module) -> str:
    """The token a sequence head reads for this model: "first" for BERT and ELECTRA ([CLS]),
    "last" for XLNet (<cls> ends its input) and GPT (the only token that saw the whole text)."""
    return _lookup(encoder)[1]


def encode(encoder: nn.Module, input_ids: torch.Tensor, segment_ids: torch.Tensor | None = None,
           attention_mask: torch.Tensor | None = None, need_weights: bool = False) -> EncodedBatch:
    """(hidden (batch, T, d_model), keep (batch, T) bool, attentions) from any supported
    encoder. attention_mask: (batch, T) bool, True at real tokens; None is the model's own
    default (input_ids != pad_id for BERT and ELECTRA, every token real for XLNet and GPT).
    segment_ids: BERT's and ELECTRA's segments, XLNet's token_type_ids; GPT has none."""
    adapter, _ = _lookup(encoder)
    check_input_ids(input_ids, "input_ids", encoder.config.vocab_size)
    return adapter(encoder, input_ids, segment_ids, attention_mask, need_weights)


def encoder_states(encoder: nn.Module, input_ids: torch.Tensor, segment_ids: torch.Tensor | None = None,
                   attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The last hidden states (batch, T, d_model) of any supported encoder (see `encode`)."""
    return encode(encoder, input_ids, segment_ids, attention_mask).hidden


def pool(hidden: torch.Tensor, keep: torch.Tensor, pooling: str) -> torch.Tensor:
    """(batch, d_model): the vector a sequence head reads. "first": position 0 (which must be a
    real token in every row); "last": each row's last real token (keep True), whichever side
    the padding is on; "mean": the mean over each row's real tokens."""
    if pooling not in POOLINGS[1:]:
        raise ValueError(f"pooling must be one of {POOLINGS[1:]}, got {pooling!r}")
    batch, t = keep.shape
    check_values = keep.device.type != "meta" and keep.numel() > 0
    if pooling == "first":
        if check_values and not bool(keep[:, 0].all()):
            rows = (~keep[:, 0]).nonzero().flatten().tolist()
            raise ValueError(f"attention_mask is False at position 0 in rows {rows}: pooling='first' reads "
                             f"the first token ([CLS]), which must not be padding; pad on the right, or use "
                             f"pooling='last'")
        return hidden[:, 0]
    counts = keep.sum(1)
    if check_values and int(counts.min()) < 1:
        rows = (counts < 1).nonzero().flatten().tolist()
        raise ValueError(f"attention_mask has no real token in rows {rows}: pooling={pooling!r} has nothing to read")
    if pooling == "last":
        positions = torch.arange(t, device=keep.device).expand(batch, t)
        last = positions.masked_fill(~keep, -1).amax(1)
        return hidden[torch.arange(batch, device=hidden.device), last]
    weights = keep.to(hidden.dtype)[:, :, None]
    return (hidden * weights).sum(1) / counts.clamp_min(1).to(hidden.dtype)[:, None]


def _check_n_labels(n_labels: object) -> int:
    if isinstance(n_labels, bool) or not isinstance(n_labels, int) or n_labels < 1:
        raise ValueError(f"n_labels must be an int >= 1, got {n_labels!r}")
    return n_labels


def _check_dropout(dropout: object) -> float:
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
    return float(dropout)


class _Head(nn.Module):
    """What the three heads share: the wrapped encoder (an ELECTRA model as its body) and its width."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        _lookup(encoder)  # a TypeError now rather than at the first batch
        if isinstance(encoder, (ElectraDiscriminator, ElectraGenerator)):
            encoder = encoder.body
        self.encoder, self.config = encoder, encoder.config
        self.d_model = encoder.config.d_model

    def _encode(self, input_ids, segment_ids, attention_mask, need_weights) -> EncodedBatch:
        return encode(self.encoder, input_ids, segment_ids, attention_mask, need_weights)


@dataclass
class SequenceClassifierOutput(ModelOutput):
    """What `SequenceClassifier.forward` returns: logits (batch, n_labels), loss (cross-entropy,
    with labels), and `pooled`, the (batch, d_model) vector the head read."""

    pooled: torch.Tensor | None = None  # (batch, d_model)


class SequenceClassifier(_Head):
    """One class per sequence from any encoder: pool one vector per row (`pool`; "auto" is the
    model's own token, see the module docstring), then the head: "linear" (dropout + linear,
    the default), "dense_tanh" (BERT's pooler) or "dense_gelu" (ELECTRA's head). labels: (batch,)
    class ids in [0, n_labels)."""

    def __init__(self, encoder: nn.Module, n_labels: int, pooling: str = "auto", dropout: float = 0.1,
                 head: str = "linear") -> None:
        super().__init__(encoder)
        self.n_labels = _check_n_labels(n_labels)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if head not in SEQUENCE_HEADS:
            raise ValueError(f"head must be one of {SEQUENCE_HEADS}, got {head!r}")
        self.pooling = default_pooling(self.encoder) if pooling == "auto" else pooling
        self.head = head
        self.drop = Dropout(_check_dropout(dropout))
        self.dense = None if head == "linear" else nn.Linear(self.d_model, self.d_model)
        self.out_proj = nn.Linear(self.d_model, n_labels)
        for layer in (self.dense, self.out_proj):
            if layer is not None:
                init_weights(layer)

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                need_weights: bool = False) -> SequenceClassifierOutput:
        """attention_mask (batch, T) bool, True at real tokens (None: the model's default, see
        `encode`); labels (batch,): one class per sequence."""
        enc = self._encode(input_ids, segment_ids, attention_mask, need_weights)
        pooled = pool(enc.hidden, enc.keep, self.pooling)
        if self.head == "linear":
            x = self.drop(pooled)
        elif self.head == "dense_tanh":  # BERT: dropout after the pooler only
            x = self.drop(torch.tanh(self.dense(pooled)))
        else:  # ELECTRA: dropout before the dense layer and after the GELU
            x = self.drop(F.gelu(self.dense(self.drop(pooled))))
        out = SequenceClassifierOutput(logits=self.out_proj(x), attentions=enc.attentions,
                                       last_hidden_state=enc.hidden, pooled=pooled)
        if labels is not None:
            check_targets(labels, (input_ids.shape[0],), "labels")
            if labels.device.type != "meta" and labels.numel() and (
                    int(labels.min()) < 0 or int(labels.max()) >= self.n_labels):
                raise ValueError(f"labels must be class ids in [0, {self.n_labels}), got {labels.tolist()}")
            out.loss = F.cross_entropy(out.logits, labels)
        return out


@dataclass
class TokenClassifierOutput(ModelOutput):
    """What `TokenClassifier.forward` returns: logits (batch, T, n_labels), loss (cross-entropy
    over the positions whose target is not -100, with targets)."""


class TokenClassifier(_Head):
    """One class per token from any encoder: dropout, then a linear layer on the last hidden
    state (Hugging Face's *ForTokenClassification; `bert.BertTokenClassifier`, and
    `xlnet.XLNetTokenClassifier` with dropout=0). targets (batch, T): one label id per token,
    -100 (modeling.IGNORE_INDEX) where there is none (padding, a word's later pieces); named
    `targets` because they are per token (the model contract), as in BertTokenClassifier."""

    ignore_index = IGNORE_INDEX  # what `train` counts as "no target"; XLNet's config.ignore_index is not read

    def __init__(self, encoder: nn.Module, n_labels: int, dropout: float = 0.1) -> None:
        super().__init__(encoder)
        self.n_labels = _check_n_labels(n_labels)
        self.drop = Dropout(_check_dropout(dropout))
        self.classifier = nn.Linear(self.d_model, n_labels)
        init_weights(self.classifier)

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, targets: torch.Tensor | None = None,
                need_weights: bool = False) -> TokenClassifierOutput:
        """attention_mask (batch, T) bool, True at real tokens; targets (batch, T), -100 = no label."""
        enc = self._encode(input_ids, segment_ids, attention_mask, need_weights)
        out = TokenClassifierOutput(logits=self.classifier(self.drop(enc.hidden)), attentions=enc.attentions,
                                    last_hidden_state=enc.hidden)
        if targets is not None:
            check_targets(targets, tuple(input_ids.shape))
            if targets.device.type != "meta" and targets.numel():
                labeled = targets != IGNORE_INDEX
                if not bool(labeled.any()):  # else the mean over no position is NaN
                    raise ValueError("targets mark no labeled position (every entry is -100): there is nothing "
                                     "to predict")
                if bool((labeled & ((targets < 0) | (targets >= self.n_labels))).any()):
                    raise ValueError(f"targets must be ids in [0, {self.n_labels}) or -100 (no label), got "
                                     f"values {sorted(set(targets[labeled].tolist()))}")
            out.loss = F.cross_entropy(out.logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)
        return out


class SpanExtractor(_Head):
    """Extractive question answering from any encoder: a linear layer gives every token a start
    and an end logit (Hugging Face's *ForQuestionAnswering; `bert.BertForQA`,
    `electra.ElectraForQA`). start_positions, end_positions (batch,): the answer's first and last
    token; the loss is the mean of the start and end cross-entropies, and a span outside the
    input, ending before it starts or touching padding is an error (`qa.span_output`).
    forward returns a `qa.QAOutput`; `qa.best_spans` decodes it."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__(encoder)
        self.qa_outputs = nn.Linear(self.d_model, 2)
        init_weights(self.qa_outputs)

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, start_positions: torch.Tensor | None = None,
                end_positions: torch.Tensor | None = None, need_weights: bool = False) -> QAOutput:
        """attention_mask (batch, T) bool, True at real tokens; start_positions, end_positions (batch,)."""
        enc = self._encode(input_ids, segment_ids, attention_mask, need_weights)
        return span_output(self.qa_outputs(enc.hidden), enc.keep, start_positions, end_positions,
                           enc.attentions, enc.hidden)
