"""What every model of the book has in common: its inputs, masks, targets and output.

The contract (CONTRIBUTING.md explains it with an example; every model module follows it):

- A `@dataclass` config with commented defaults, checked in `__post_init__`, and a `tiny()`
  preset for tests; the model is built from its config alone: `GPT(GPTConfig(...))`.
- Inputs are `input_ids`, a (batch, T) torch.long tensor; an encoder-decoder also takes
  `decoder_input_ids`.
- `attention_mask` is a (batch, T) bool tensor, **True at real tokens** (attend to them),
  False at padding: the meaning of Hugging Face's `attention_mask`, and of every mask in this
  package (`attention.MultiHeadAttention`'s `mask` and `key_mask` too). PyTorch's
  `key_padding_mask` and `nn.Transformer`'s masks mean the opposite (True = blocked).
- `targets` are per-token ids aligned with the logits (no shift inside the model; a language
  model's targets are the inputs shifted by one); positions equal to the model's
  `ignore_index` are not predicted. `labels` are one class per sequence.
- `forward` returns a `ModelOutput` (or a subclass): `logits`, `loss` (when targets or labels
  are given), `attentions` (one (batch, heads, T_q, T_k) tensor per layer, only with
  `need_weights=True`), and `last_hidden_state` (batch, T, d_model) as Hugging Face names it.
- A model that writes text implements `decoding.Decodable`, so that `decoding.generate` and
  `decoding.beam_search` work for it unchanged.
- A model with a Hugging Face counterpart has `from_hf_state_dict`, `to_hf_state_dict` and
  `save_pretrained` (weights, config and tokenizer), tested to give the same logits within
  1e-5 and to run in a `transformers.pipeline`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["IGNORE_INDEX", "ModelOutput", "check_input_ids", "check_attention_mask", "check_targets"]

IGNORE_INDEX = -100  # PyTorch's cross-entropy default: targets equal to it are not predicted


@dataclass
class ModelOutput:
    """What a model's forward returns; subclasses add fields and say what `logits` holds."""

    logits: torch.Tensor | None = None  # (batch, T, vocab) for a language model
    loss: torch.Tensor | None = None  # a scalar, when targets or labels were given
    attentions: list | None = None  # per layer (batch, heads, T_q, T_k), only if need_weights
    last_hidden_state: torch.Tensor | None = None  # (batch, T, d_model): what the head reads


def check_input_ids(ids: object, name: str, vocab_size: int) -> torch.Tensor:
    """ids must be a (batch, T) torch.long tensor of ids in [0, vocab_size)."""
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.dtype != torch.long:
        got = f"{ids.dtype} {tuple(ids.shape)}" if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"{name} must be a (batch, seq) tensor of token ids (torch.long), got {got}")
    # A meta tensor (a shape-only run, e.g. the device tests) has no values to check.
    if ids.numel() and ids.device.type != "meta":
        low, high = (int(v) for v in torch.aminmax(ids))  # one reduction, one read
        if low < 0 or high >= vocab_size:
            raise ValueError(f"{name} holds ids outside [0, {vocab_size}): min {low}, max {high}")
    return ids


def check_attention_mask(mask: object, shape: tuple[int, ...], name: str = "attention_mask") -> torch.Tensor:
    """A (batch, T) mask, True at real tokens; 0/1 integer masks (Hugging Face's) become bool."""
    if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != tuple(shape):
        got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"{name} must be a bool tensor of shape {tuple(shape)} (True at real tokens), got {got}")
    if mask.dtype != torch.bool:
        if mask.is_floating_point() or (mask.device.type != "meta" and mask.numel()
                                        and not bool(((mask == 0) | (mask == 1)).all())):
            raise ValueError(f"{name} must be bool, or integers 0/1 (1 = real token), got {mask.dtype}")
        mask = mask.bool()
    return mask


def check_targets(targets: object, shape: tuple[int, ...], name: str = "targets") -> torch.Tensor:
    """Integer targets of the given shape."""
    if (not isinstance(targets, torch.Tensor) or tuple(targets.shape) != tuple(shape)
            or targets.is_floating_point() or targets.dtype == torch.bool):
        got = f"{targets.dtype} {tuple(targets.shape)}" if isinstance(targets, torch.Tensor) else type(targets).__name__
        raise ValueError(f"{name} must be an integer tensor of shape {tuple(shape)}, got {got}")
    return targets


def init_weights(module: torch.nn.Module, std: float = 0.02) -> None:
    """The initialization of BERT, GPT-2 and XLNet (and Hugging Face's): N(0, std) for linear and
    embedding weights, zero linear biases, unit LayerNorm gains and zero shifts. Use it with
    ``model.apply(init_weights)``; a model adds what is its own (GPT-2's depth-scaled
    projections, XLNet's attention parameters) after it."""
    if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
        torch.nn.init.normal_(module.weight, std=std)
    if isinstance(module, torch.nn.Linear) and module.bias is not None:
        torch.nn.init.zeros_(module.bias)
    if isinstance(module, torch.nn.LayerNorm):
        torch.nn.init.ones_(module.weight)
        torch.nn.init.zeros_(module.bias)
