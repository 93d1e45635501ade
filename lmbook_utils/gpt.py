"""GPT: a decoder-only Transformer language model, and GPT-1's fine-tuning for classification.

Introduced in chapter 06_gpt. The architecture is GPT-2's (Radford et al. 2019): learned
token and position embeddings, pre-LN blocks x + attn(LN(x)), x + mlp(LN(x)) with causal
self-attention and a tanh-approximated GELU, a final LayerNorm, and an output layer tied to
the token embeddings. Given the same weights it equals Hugging Face's `GPT2LMHeadModel`
(tested); `from_hf_state_dict`/`save_pretrained` convert in both directions (GPT-2 stores
its linear layers transposed, as "Conv1D"), and the saved folder carries the tokenizer.

The model follows `modeling`'s contract: `GPT(input_ids, targets, attention_mask)` returns a
`ModelOutput`. A padded batch needs `attention_mask` only when the padding is on the left
(prompts of different lengths, as `decoding.generate` takes them): positions then count real
tokens only, and no real token attends to padding. Right padding needs no mask: causal
attention never looks ahead. Text is written by `decoding.generate` and
`decoding.beam_search` (GPT is `Decodable`, with a key-value cache).
`GPTClassifier` is GPT-1's fine-tuning (Radford et al. 2018): a linear layer on the last
token's final hidden state, with the language-modeling loss kept as an auxiliary objective.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .attention import KVCache, MultiHeadAttention
from .dropout import Dropout
from .hf_export import write_folder
from .modeling import IGNORE_INDEX, ModelOutput, check_attention_mask, check_input_ids, check_targets, init_weights
from .tokenizers import Tokenizer
from .transformer import FeedForward, check_config_sizes

__all__ = ["GPTConfig", "GPT", "GPTClassifier", "training_flops_per_token", "from_hf_state_dict", "to_hf_state_dict",
           "save_pretrained"]


@dataclass
class GPTConfig:
    """Sizes of a GPT model. Introduced in chapter 06_gpt."""

    vocab_size: int  # number of token ids
    d_model: int = 64  # width of every token's vector
    n_layers: int = 2  # Transformer blocks
    n_heads: int = 4  # attention heads per block (d_model must divide by it)
    d_ff: int | None = None  # feed-forward width; None = 4 * d_model, as in GPT-2
    max_len: int = 128  # positions in the position table: the longest sequence
    dropout: float = 0.0  # on embeddings, attention weights and residual branches
    eps: float = 1e-5  # LayerNorm epsilon
    pad_id: int | None = None  # the padding token, if batches are padded (train() then counts real tokens)

    def __post_init__(self) -> None:
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        check_config_sizes(self, ("vocab_size", "d_model", "n_layers", "n_heads", "d_ff", "max_len"))
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.pad_id is not None and (isinstance(self.pad_id, bool) or not isinstance(self.pad_id, int)
                                        or not 0 <= self.pad_id < self.vocab_size):
            raise ValueError(f"GPTConfig.pad_id must be None or an id in [0, vocab_size={self.vocab_size}), "
                             f"got {self.pad_id!r}")

    @classmethod
    def tiny(cls, vocab_size: int = 11, **changes) -> GPTConfig:
        """A model small enough for a unit test (thousands of parameters)."""
        return cls(**{"vocab_size": vocab_size, "d_model": 16, "n_layers": 2, "n_heads": 2, "max_len": 16,
                      **changes})


class Block(nn.Module):
    """x + attn(LN(x)), then x + mlp(LN(x)). Introduced in chapter 06_gpt."""

    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(c.d_model, eps=c.eps), nn.LayerNorm(c.d_model, eps=c.eps)
        self.attn = MultiHeadAttention(c.d_model, c.n_heads, c.dropout)
        self.mlp = FeedForward(c.d_model, c.d_ff, 0.0, activation="gelu_tanh")
        self.drop1, self.drop2 = Dropout(c.dropout), Dropout(c.dropout)

    def forward(self, x, cache: KVCache | None = None, need_weights: bool = False, mask=None):
        """mask: None (causal) or a bool (batch, 1, T, T_keys) mask, True = may attend."""
        a, w = self.attn(self.ln_1(x), mask=mask, is_causal=mask is None, cache=cache, need_weights=need_weights)
        x = x + self.drop1(a)
        return x + self.drop2(self.mlp(self.ln_2(x))), w


def _left_padded_attention(keep: torch.Tensor, past: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(positions (batch, n), mask (batch, 1, n, past + n)) for queries past..past+n-1 when
    `keep` (batch, past + n) is True at real tokens: positions count real tokens only (as
    if the padding were not there), a query sees real keys up to itself, and a padding query
    sees itself alone (so that no softmax row is empty; its output is never used)."""
    positions = (keep.long().cumsum(1) - 1).clamp(min=0)[:, past:]
    q = torch.arange(past, past + n, device=keep.device)[:, None]
    k = torch.arange(past + n, device=keep.device)[None, :]
    mask = (k <= q)[None] & (keep[:, None, :] | (k == q)[None])
    return positions, mask[:, None]


class GPT(nn.Module):
    """A GPT-2-style causal language model. Introduced in chapter 06_gpt."""

    is_encoder_decoder = False
    ignore_index = IGNORE_INDEX  # targets equal to it are not predicted

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
        c = self.config = config
        self.wte, self.wpe = nn.Embedding(c.vocab_size, c.d_model), nn.Embedding(c.max_len, c.d_model)
        self.drop = Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layers))
        self.ln_f = nn.LayerNorm(c.d_model, eps=c.eps)
        self.apply(init_weights)
        for name, p in self.named_parameters():  # GPT-2: residual projections scaled by depth
            if name.endswith("attn.out_proj.weight") or name.endswith("mlp.linear2.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * c.n_layers))

    def forward(self, input_ids: torch.Tensor, targets: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, caches: list[KVCache] | None = None,
                need_weights: bool = False) -> ModelOutput:
        """input_ids (batch, T); targets (batch, T), the next token at every position, -100 where
        nothing is predicted; attention_mask (batch, cached + T) bool, True at real tokens,
        None when there is no left padding; caches: one KVCache per block, extended in place
        (positions continue after the cached ones). logits: (batch, T, vocab)."""
        c = self.config
        check_input_ids(input_ids, "input_ids", c.vocab_size)
        if caches is not None and len(caches) != c.n_layers:
            raise ValueError(f"caches must hold one KVCache per block ({c.n_layers}), got {len(caches)}")
        past, n = (len(caches[0]) if caches else 0), input_ids.shape[1]
        if past + n > c.max_len:
            raise ValueError(f"{past + n} positions exceed the model's max_len={c.max_len}")
        mask = None
        if attention_mask is None:
            pos = torch.arange(past, past + n, device=input_ids.device)
        else:
            keep = check_attention_mask(attention_mask, (input_ids.shape[0], past + n))
            pos, mask = _left_padded_attention(keep, past, n)
        x = self.drop(self.wte(input_ids) + self.wpe(pos))
        weights = []
        for i, block in enumerate(self.blocks):
            x, w = block(x, caches[i] if caches else None, need_weights, mask)
            weights.append(w)
        hidden = self.ln_f(x)
        logits = F.linear(hidden, self.wte.weight)  # output layer tied to the token embeddings
        loss = None
        if targets is not None:
            check_targets(targets, tuple(input_ids.shape))
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)
        return ModelOutput(logits, loss, weights if need_weights else None, hidden)

    # -- decoding.Decodable ------------------------------------------------------------------
    def decoding_context(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> dict:
        return {}

    def new_caches(self) -> list[KVCache]:
        return [KVCache() for _ in self.blocks]

    def next_token_logits(self, ids: torch.Tensor, attention_mask: torch.Tensor | None, context: dict,
                          caches: list[KVCache] | None) -> torch.Tensor:
        return self(ids, attention_mask=attention_mask, caches=caches).logits[:, -1]


class GPTClassifier(nn.Module):
    """GPT-1's discriminative fine-tuning: classes from the last real token's hidden state.

    Introduced in chapter 06_gpt. The loss is cross-entropy on the labels plus lm_weight times
    the language-modeling loss on the same sequences (GPT-1 used 0.5: it helped larger data
    sets and sped up convergence). forward returns a `ModelOutput` whose logits are
    (batch, n_classes)."""

    def __init__(self, gpt: GPT, n_classes: int, lm_weight: float = 0.0) -> None:
        super().__init__()
        if not isinstance(gpt, GPT):
            raise TypeError(f"gpt must be a GPT, got {type(gpt).__name__}")
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"n_classes must be an int >= 2, got {n_classes!r}")
        if isinstance(lm_weight, bool) or not isinstance(lm_weight, (int, float)) or not lm_weight >= 0:
            raise ValueError(f"lm_weight must be a number >= 0, got {lm_weight!r}")
        self.gpt, self.lm_weight = gpt, float(lm_weight)
        self.head = nn.Linear(gpt.config.d_model, n_classes)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None) -> ModelOutput:
        """input_ids (batch, T), right-padded; attention_mask (batch, T) bool, True at real
        tokens (None: every token is real): the class is read at each row's last real token."""
        b, t = input_ids.shape
        if attention_mask is None:
            lengths = torch.full((b,), t, device=input_ids.device)
        else:
            keep = check_attention_mask(attention_mask, (b, t))
            lengths = keep.sum(1)
            if int(lengths.min()) < 1 or not bool((keep == (torch.arange(t, device=keep.device) < lengths[:, None])).all()):
                raise ValueError("attention_mask must mark a right-padded batch: each row real tokens "
                                 "(at least one) followed by padding")
        n_classes = self.head.out_features
        if labels is not None and (not isinstance(labels, torch.Tensor) or labels.shape != (b,)
                                   or labels.is_floating_point() or int(labels.min()) < 0
                                   or int(labels.max()) >= n_classes):
            raise ValueError(f"labels must be a (batch={b},) tensor of class ids in [0, {n_classes})")
        out = self.gpt(input_ids)  # right padding: causal attention never sees it
        last = out.last_hidden_state[torch.arange(b, device=input_ids.device), lengths - 1]
        logits = self.head(last)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits, labels)
            if self.lm_weight and t > 1:
                real = torch.arange(t - 1, device=input_ids.device)[None] < (lengths[:, None] - 1)
                targets = input_ids[:, 1:].masked_fill(~real, IGNORE_INDEX)
                lm = F.cross_entropy(out.logits[:, :-1].flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)
                loss = loss + self.lm_weight * lm
        return ModelOutput(logits, loss, last_hidden_state=out.last_hidden_state)


def training_flops_per_token(config: GPTConfig, n_ctx: int) -> int:
    """Floating-point operations of the matrix products that training on one token costs.

    Introduced in chapter 06_gpt. The forward pass does 2 operations (a multiply and an add) per
    weight of every linear layer, the output layer (d_model x vocab_size) included, and
    4 * n_layers * n_ctx * d_model for the attention scores and the weighted sum of the values
    over a context of n_ctx positions (Kaplan et al. 2020 count the first half, 2 n_layer n_ctx
    d_attn); the backward pass does twice the forward. Kaplan et al.'s C = 6N leaves out the
    attention and the output layer, which are not small in a narrow model. Biases, LayerNorms,
    softmax and GELU are left out (they are O(d) per token). `torch.utils.flop_counter`
    counts the same (tested)."""
    if isinstance(n_ctx, bool) or not isinstance(n_ctx, int) or not 1 <= n_ctx <= config.max_len:
        raise ValueError(f"n_ctx must be an int in [1, max_len={config.max_len}], got {n_ctx!r}")
    d, layers = config.d_model, config.n_layers
    linear = layers * (4 * d * d + 2 * d * config.d_ff) + d * config.vocab_size
    return 3 * (2 * linear + 4 * layers * n_ctx * d)


# ---- Hugging Face interchange ---------------------------------------------------------------
def _hf_names(model: GPT) -> dict[str, tuple[str, bool]]:
    """HF GPT2LMHeadModel name -> (our name, transposed?). HF's c_attn is our in_proj (Q, K, V
    stacked in the same order), stored transposed as all of GPT-2's "Conv1D" layers."""
    m = {"transformer.wte.weight": ("wte.weight", False), "transformer.wpe.weight": ("wpe.weight", False),
         "transformer.ln_f.weight": ("ln_f.weight", False), "transformer.ln_f.bias": ("ln_f.bias", False)}
    for i in range(model.config.n_layers):
        h, o = f"transformer.h.{i}.", f"blocks.{i}."
        for p in ("weight", "bias"):
            m[f"{h}ln_1.{p}"] = (f"{o}ln_1.{p}", False)
            m[f"{h}ln_2.{p}"] = (f"{o}ln_2.{p}", False)
            m[f"{h}attn.c_attn.{p}"] = (f"{o}attn.in_proj.{p}", p == "weight")
            m[f"{h}attn.c_proj.{p}"] = (f"{o}attn.out_proj.{p}", p == "weight")
            m[f"{h}mlp.c_fc.{p}"] = (f"{o}mlp.linear1.{p}", p == "weight")
            m[f"{h}mlp.c_proj.{p}"] = (f"{o}mlp.linear2.{p}", p == "weight")
    return m


@torch.no_grad()
def from_hf_state_dict(model: GPT, hf_state: dict[str, torch.Tensor]) -> None:
    """Load `GPT2LMHeadModel` weights (Conv1D layout) into our model. Introduced in chapter 06_gpt."""
    sd = model.state_dict()
    for hf, (ours, transpose) in _hf_names(model).items():
        if hf not in hf_state:
            raise ValueError(f"hf_state lacks {hf}")
        w = hf_state[hf].T if transpose else hf_state[hf]
        if w.shape != sd[ours].shape:
            raise ValueError(f"{hf} has shape {tuple(hf_state[hf].shape)}, incompatible with {ours} "
                             f"{tuple(sd[ours].shape)}")
        sd[ours] = w
    model.load_state_dict(sd)


def to_hf_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """Our weights under `GPT2LMHeadModel`'s names and layout. Introduced in chapter 06_gpt."""
    sd, out = model.state_dict(), {}
    for hf, (ours, transpose) in _hf_names(model).items():
        out[hf] = sd[ours].T if transpose else sd[ours]
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def hf_config(config: GPTConfig) -> dict:
    """The `transformers.GPT2Config` fields equal to ours. Introduced in chapter 06_gpt."""
    return {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": config.vocab_size,
            "n_positions": config.max_len, "n_embd": config.d_model, "n_layer": config.n_layers,
            "n_head": config.n_heads, "n_inner": config.d_ff, "activation_function": "gelu_new",
            "resid_pdrop": config.dropout, "embd_pdrop": config.dropout, "attn_pdrop": config.dropout,
            "layer_norm_epsilon": config.eps, "tie_word_embeddings": True,
            "bos_token_id": None, "eos_token_id": None, "pad_token_id": config.pad_id}


def save_pretrained(model: GPT, folder: str | os.PathLike, tokenizer: Tokenizer | None = None) -> Path:
    """Write a folder that `GPT2LMHeadModel.from_pretrained` loads and, with the tokenizer,
    `transformers.pipeline("text-generation", model=folder)` runs. Introduced in chapter 06_gpt."""
    return write_folder(folder, hf_config(model.config), to_hf_state_dict(model), tokenizer, model.config.max_len)
