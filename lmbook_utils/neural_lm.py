"""Neural language models before the Transformer: Bengio's window model and recurrent LMs.

Introduced in chapter 02_neural_lm, which trains both on the toy world.

- `NPLM`, the neural probabilistic language model of Bengio, Ducharme, Vincent & Jauvin
  (2003, JMLR 3): the previous `context` tokens are looked up in one shared embedding table,
  concatenated, passed through a tanh hidden layer and a softmax over the vocabulary,
  y = b + W x + U tanh(d + H x) (W x, the "direct connections", is optional, as in the
  paper). It reads exactly what an n-gram model of order context + 1 reads, but similar
  words get similar vectors, so it can score a combination it never saw.
- `RNNLM`, a recurrent language model (Elman 1990; Mikolov et al. 2010) with an Elman
  (tanh) cell or an LSTM (Hochreiter & Schmidhuber 1997), PyTorch's `nn.RNN` / `nn.LSTM`.
  `tie_weights=True` shares the input embedding with the output layer (Press & Wolf 2017,
  EACL; Inan et al. 2017). `forward(..., bptt=k)` is truncated backpropagation through time:
  the same forward values, but the recurrent state is detached every k steps, so no gradient
  flows further back than k tokens.

`token_log2_probs` scores a text token by token, and `interpolate_log2` with
`interpolation_weight` mixes two models' per-token probabilities, a neural LM with an n-gram
one (chapter 02b_word_vectors, on the Python documentation).

Both follow `modeling`'s contract (`forward(input_ids, targets)` -> output with `logits` and
`loss`) and are `decoding.Decodable`. An RNN's cache for `decoding.generate` is its state: a
fixed size however long the text, where a Transformer's key-value cache grows with it.
Neither model can skip padding on the left (both read every position), so prompts given to
`generate` must have equal length; padding on the right is harmless, since no position
reads a later one.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .modeling import IGNORE_INDEX, ModelOutput, check_attention_mask, check_input_ids, check_targets

__all__ = ["NPLMConfig", "NPLM", "RNNLMConfig", "RNNLM", "RNNLMOutput", "RecurrentState", "CELLS",
           "gradient_norms_by_distance", "token_log2_probs", "interpolate_log2", "interpolation_weight"]

CELLS = ("rnn", "lstm")


def _whole(config: object, name: str, low: int = 1, allow_none: bool = False) -> None:
    value = getattr(config, name)
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{type(config).__name__}.{name} must be an int >= {low}"
                         f"{' or None' if allow_none else ''}, got {value!r}")


def _check_dropout(config: object) -> None:
    value = config.dropout
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{type(config).__name__}.dropout must be a number in [0, 1), got {value!r}")


def _check_no_left_padding(mask: torch.Tensor | None, shape: tuple[int, int], model: str) -> None:
    """Right padding is harmless to a left-to-right reader; padding before a real token is not."""
    if mask is None:
        return
    keep = check_attention_mask(mask, shape)
    if keep.device.type != "meta" and keep.numel() and bool((keep[:, 1:] & ~keep[:, :-1]).any()):
        raise ValueError(f"attention_mask has padding before a real token: {model} reads every position "
                         "left to right and cannot skip it; give prompts of equal length (or pad on the right)")


def _lm_loss(logits: torch.Tensor, targets: torch.Tensor | None, shape: tuple[int, int]) -> torch.Tensor | None:
    if targets is None:
        return None
    check_targets(targets, shape)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)


# ---- Bengio et al. (2003) ----------------------------------------------------------------

@dataclass
class NPLMConfig:
    """Sizes of Bengio's neural probabilistic language model."""

    vocab_size: int  # number of token ids
    context: int = 6  # previous tokens read (n - 1 of an n-gram model); the first token is repeated before the start
    d_embed: int = 32  # m in the paper: width of each token's vector, shared by all positions
    d_hidden: int = 128  # h in the paper: tanh hidden units
    direct: bool = False  # the paper's optional direct connections W x from the embeddings to the output
    dropout: float = 0.0  # on the concatenated embeddings and the hidden layer
    max_len: int = 512  # longest text decoding may write (the model itself has no limit)
    pad_id: int | None = None  # the padding token, if batches are padded

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context", "d_embed", "d_hidden", "max_len"):
            _whole(self, name)
        _whole(self, "pad_id", 0, allow_none=True)
        if not isinstance(self.direct, bool):
            raise ValueError(f"NPLMConfig.direct must be a bool, got {self.direct!r}")
        _check_dropout(self)

    @classmethod
    def tiny(cls, vocab_size: int = 23, **overrides) -> NPLMConfig:
        return cls(**{"vocab_size": vocab_size, "context": 3, "d_embed": 4, "d_hidden": 8, **overrides})


class NPLM(nn.Module):
    """y = b + W x + U tanh(d + H x), x the concatenated embeddings of the last `context` tokens.

    Position t reads tokens t - context + 1 .. t; before
    the start the sequence's first token (the book's <bos>) is repeated, as an n-gram model
    pads with <s>, so both models read exactly the same context."""

    is_encoder_decoder = False
    ignore_index = IGNORE_INDEX

    def __init__(self, config: NPLMConfig) -> None:
        super().__init__()
        if not isinstance(config, NPLMConfig):
            raise TypeError(f"config must be an NPLMConfig, got {type(config).__name__}")
        c = self.config = config
        self.embed = nn.Embedding(c.vocab_size, c.d_embed)  # C in the paper
        self.hidden = nn.Linear(c.context * c.d_embed, c.d_hidden)  # H and d
        self.out = nn.Linear(c.d_hidden, c.vocab_size)  # U and b
        self.direct = nn.Linear(c.context * c.d_embed, c.vocab_size, bias=False) if c.direct else None  # W
        self.drop = nn.Dropout(c.dropout)

    def windows(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(batch, T, context): the ids each position reads, oldest first."""
        n = self.config.context
        start = input_ids[:, :1].expand(-1, n - 1)
        return torch.cat([start, input_ids], dim=1).unfold(1, n, 1)

    def forward(self, input_ids: torch.Tensor, targets: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None) -> ModelOutput:
        """input_ids (batch, T); targets (batch, T), -100 where nothing is predicted;
        attention_mask (batch, T) bool, True at real tokens (padding only on the right).
        logits (batch, T, vocab); last_hidden_state is the tanh layer (batch, T, d_hidden)."""
        c = self.config
        check_input_ids(input_ids, "input_ids", c.vocab_size)
        _check_no_left_padding(attention_mask, tuple(input_ids.shape), "NPLM")
        x = self.drop(self.embed(self.windows(input_ids)).flatten(2))
        h = self.drop(torch.tanh(self.hidden(x)))
        logits = self.out(h)
        if self.direct is not None:
            logits = logits + self.direct(x)
        return ModelOutput(logits=logits, loss=_lm_loss(logits, targets, tuple(input_ids.shape)),
                           last_hidden_state=h)

    # decoding.Decodable: the window moves with the text; no cache is needed
    def decoding_context(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> dict:
        return {}

    def new_caches(self) -> None:
        return None

    def next_token_logits(self, ids: torch.Tensor, attention_mask: torch.Tensor | None, context: dict,
                          caches: None) -> torch.Tensor:
        return self(ids[:, -self.config.context:],
                    attention_mask=None if attention_mask is None else attention_mask[:, -self.config.context:]
                    ).logits[:, -1]


# ---- recurrent language models -------------------------------------------------------------

@dataclass
class RNNLMConfig:
    """Sizes of a recurrent language model."""

    vocab_size: int  # number of token ids
    cell: str = "lstm"  # "rnn": Elman's h_t = tanh(W x_t + U h_{t-1} + b); "lstm": gated, with a cell state
    d_embed: int = 64  # width of each token's vector
    d_hidden: int = 64  # width of the recurrent state
    n_layers: int = 1  # stacked recurrent layers
    tie_weights: bool = False  # output layer = the embedding table (needs d_embed == d_hidden)
    dropout: float = 0.0  # on the embeddings, between layers and on the output (Zaremba et al. 2014)
    max_len: int = 512  # longest text decoding may write (the model itself has no limit)
    pad_id: int | None = None  # the padding token, if batches are padded

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"RNNLMConfig.cell must be one of {CELLS}, got {self.cell!r}")
        for name in ("vocab_size", "d_embed", "d_hidden", "n_layers", "max_len"):
            _whole(self, name)
        _whole(self, "pad_id", 0, allow_none=True)
        if not isinstance(self.tie_weights, bool):
            raise ValueError(f"RNNLMConfig.tie_weights must be a bool, got {self.tie_weights!r}")
        if self.tie_weights and self.d_embed != self.d_hidden:
            raise ValueError(f"RNNLMConfig.tie_weights needs d_embed == d_hidden, got d_embed={self.d_embed}, "
                             f"d_hidden={self.d_hidden}")
        _check_dropout(self)

    @classmethod
    def tiny(cls, vocab_size: int = 23, cell: str = "lstm", **overrides) -> RNNLMConfig:
        return cls(**{"vocab_size": vocab_size, "cell": cell, "d_embed": 8, "d_hidden": 8, **overrides})


@dataclass
class RNNLMOutput(ModelOutput):
    """`ModelOutput` plus `state`: the recurrent state after the last position (h for an
    Elman RNN, (h, c) for an LSTM; each (n_layers, batch, d_hidden)), to continue from."""

    state: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None


class RecurrentState:
    """The cache `decoding.generate` hands back to `RNNLM.next_token_logits`: the state so far."""

    def __init__(self) -> None:
        self.state = None


def _detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


class RNNLM(nn.Module):
    """An Elman-RNN or LSTM language model: embedding, recurrent layers, a linear output.

   """

    is_encoder_decoder = False
    ignore_index = IGNORE_INDEX

    def __init__(self, config: RNNLMConfig) -> None:
        super().__init__()
        if not isinstance(config, RNNLMConfig):
            raise TypeError(f"config must be an RNNLMConfig, got {type(config).__name__}")
        c = self.config = config
        self.embed = nn.Embedding(c.vocab_size, c.d_embed)
        rnn = nn.LSTM if c.cell == "lstm" else nn.RNN
        self.rnn = rnn(c.d_embed, c.d_hidden, num_layers=c.n_layers, batch_first=True,
                       dropout=c.dropout if c.n_layers > 1 else 0.0)
        self.drop = nn.Dropout(c.dropout)
        self.out = nn.Linear(c.d_hidden, c.vocab_size)
        if c.tie_weights:
            self.out.weight = self.embed.weight  # one (vocab, d) matrix reads and writes words

    def _check_state(self, state, batch: int):
        c = self.config
        want = (c.n_layers, batch, c.d_hidden)
        parts = state if isinstance(state, tuple) else (state,)
        if len(parts) != (2 if c.cell == "lstm" else 1) or any(
                not isinstance(s, torch.Tensor) or tuple(s.shape) != want for s in parts):
            what = "a tuple (h, c) of two tensors" if c.cell == "lstm" else "one tensor h"
            raise ValueError(f"state must be {what} of shape {want} for this {c.cell} model")

    def forward(self, input_ids: torch.Tensor, targets: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, state=None, bptt: int | None = None) -> RNNLMOutput:
        """input_ids (batch, T); targets (batch, T), -100 where nothing is predicted;
        attention_mask (batch, T) bool, True at real tokens (padding only on the right);
        state: what a previous call returned, to continue a text; bptt: truncate the gradient
        every `bptt` steps (the values are unchanged). logits (batch, T, vocab)."""
        c = self.config
        check_input_ids(input_ids, "input_ids", c.vocab_size)
        _check_no_left_padding(attention_mask, tuple(input_ids.shape), "RNNLM")
        if bptt is not None and (isinstance(bptt, bool) or not isinstance(bptt, int) or bptt < 1):
            raise ValueError(f"bptt must be an int >= 1 or None, got {bptt!r}")
        if state is not None:
            self._check_state(state, input_ids.shape[0])
        x = self.drop(self.embed(input_ids))
        step = bptt or max(x.shape[1], 1)
        outputs = []
        for start in range(0, x.shape[1], step):
            if start:  # truncated BPTT: the state carries values forward but no gradient back
                state = _detach(state)
            y, state = self.rnn(x[:, start:start + step], state)
            outputs.append(y)
        h = self.drop(torch.cat(outputs, dim=1)) if outputs else x.new_zeros(x.shape[0], 0, c.d_hidden)
        logits = self.out(h)
        return RNNLMOutput(logits=logits, loss=_lm_loss(logits, targets, tuple(input_ids.shape)),
                           last_hidden_state=h, state=state)

    # decoding.Decodable: the cache is the recurrent state
    def decoding_context(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> dict:
        return {}

    def new_caches(self) -> list[RecurrentState]:
        return [RecurrentState()]

    def next_token_logits(self, ids: torch.Tensor, attention_mask: torch.Tensor | None, context: dict,
                          caches: list[RecurrentState] | None) -> torch.Tensor:
        if caches is None:
            return self(ids, attention_mask=attention_mask).logits[:, -1]
        if attention_mask is not None:  # the mask covers cached and new tokens
            _check_no_left_padding(attention_mask, tuple(attention_mask.shape), "RNNLM")
        out = self(ids, state=caches[0].state)
        caches[0].state = out.state
        return out.logits[:, -1]


def gradient_norms_by_distance(model: RNNLM | NPLM, input_ids: torch.Tensor, bptt: int | None = None) -> torch.Tensor:
    """(T,): the norm of d(-log p(last target)) / d(embedding at position t), averaged over the
    batch, for t = 0 .. T-1 (the last entry is the token just read). The targets are the
    inputs shifted by one, so the loss is the log-probability of input_ids[:, -1] given the
    rest. This is how far back the model's gradient reaches: a vanishing gradient is a curve
    that drops to zero going left."""
    check_input_ids(input_ids, "input_ids", model.config.vocab_size)
    if input_ids.shape[1] < 2:
        raise ValueError(f"input_ids must have at least 2 positions, got {input_ids.shape[1]}")
    grads = {}

    def keep(module, inputs, output):
        output.retain_grad()
        grads["embeds"] = output

    handle = model.embed.register_forward_hook(keep)
    try:
        kwargs = {"bptt": bptt} if isinstance(model, RNNLM) else {}
        if bptt is not None and not isinstance(model, RNNLM):
            raise ValueError("bptt applies to an RNNLM only")
        logits = model(input_ids[:, :-1], **kwargs).logits
        loss = F.cross_entropy(logits[:, -1], input_ids[:, -1])
        loss.backward()
    finally:
        handle.remove()
    embeds = grads["embeds"]
    g = embeds.grad
    if isinstance(model, NPLM):  # (batch, T, context, d): sum what each position's token receives
        g = _scatter_window_grads(model, input_ids[:, :-1], g)
    model.zero_grad(set_to_none=True)
    return g.norm(dim=-1).mean(0).detach()


def _scatter_window_grads(model: NPLM, ids: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """An NPLM looks tokens up once per window; add up the gradient each position receives."""
    batch, length, n, d = g.shape
    out = g.new_zeros(batch, length + n - 1, d)
    for j in range(n):  # window slot j of position t reads padded position t + j
        out[:, j:j + length] += g[:, :, j]
    first = out[:, :n - 1].sum(1)  # the repeated first token: all its copies are position 0
    out = out[:, n - 1:].clone()
    out[:, 0] += first
    return out


@torch.no_grad()
def token_log2_probs(model: nn.Module, ids) -> np.ndarray:
    """(len(ids) - 1,): log2 p(ids[t] | ids[:t]) for t = 1 .. end, the model reading ids as one
    text (an RNN's state carries across everything before). Per-token values, not a mean, so
    two models' probabilities can be mixed token by token (`interpolate_log2`)."""
    ids = torch.as_tensor(ids, dtype=torch.long, device=next(model.parameters()).device)
    if ids.dim() != 1 or len(ids) < 2:
        raise ValueError(f"ids must be one sequence of at least 2 token ids, got shape {tuple(ids.shape)}")
    model.eval()
    logp = model(ids[None, :-1]).logits[0].log_softmax(-1)
    return (logp.gather(-1, ids[1:, None])[:, 0] / math.log(2)).cpu().numpy()


def interpolate_log2(lam: float, log2_a, log2_b) -> np.ndarray:
    """log2 of lam p_a + (1 - lam) p_b at every token: the linear interpolation of two whole
    models (Jelinek-Mercer's mixture, used by Mikolov et al. 2010 for RNN and n-gram LMs)."""
    a, b = np.asarray(log2_a, dtype=float), np.asarray(log2_b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"log2_a and log2_b must score the same tokens, got shapes {a.shape} and {b.shape}")
    if isinstance(lam, bool) or not isinstance(lam, (int, float, np.floating)) or not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be a number in [0, 1], got {lam!r}")
    return np.log2(lam * 2 ** a + (1 - lam) * 2 ** b)


def interpolation_weight(log2_a, log2_b, n_grid: int = 41) -> float:
    """The lam on an even grid over [0, 1] that maximizes the mean log-probability of the
    mixture: choose it on validation text, never on the test text it is reported on."""
    if isinstance(n_grid, bool) or not isinstance(n_grid, int) or n_grid < 2:
        raise ValueError(f"n_grid must be an int >= 2, got {n_grid!r}")
    lams = np.linspace(0, 1, n_grid)
    return float(lams[np.argmin([-interpolate_log2(float(lam), log2_a, log2_b).mean() for lam in lams])])
