"""Decoding: one `generate` and one `beam_search` for every model that writes text.

Introduced in chapter 04_transformer (greedy and beam search for translation) and used for
GPT in chapter 06_gpt (sampling with temperature, top-k (Fan et al. 2018), top-p / nucleus
(Holtzman et al. 2020) and a repetition penalty (Keskar et al. 2019)).

A model decodes with these functions when it is `Decodable`: it has `config.max_len`,
`config.pad_id` (or None), `is_encoder_decoder`, and three methods:

- `decoding_context(input_ids, attention_mask)`: what every step needs besides the prefix, as
  a dict of batch-first tensors (an encoder-decoder's encoded source; {} for a decoder-only
  model);
- `new_caches()`: fresh key-value caches for the steps, or None when the model has none;
- `next_token_logits(ids, attention_mask, context, caches)`: (batch, vocab) logits of the
  token after `ids`; with caches, `ids` are only the tokens not yet cached, and the mask
  covers cached and new tokens.

A decoder-only model continues `input_ids` (a prompt, left-padded when the prompts differ in
length, with `attention_mask`); an encoder-decoder reads `input_ids` as the source and writes
a target that starts with `bos_id`. Both functions return the prefix followed by the new
tokens. After `eos_id` a row is filled with the model's padding id, or with `eos_id` when the
model has none (Hugging Face's rule).
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import torch

from .modeling import check_attention_mask

__all__ = ["Decodable", "generate", "beam_search", "filter_logits"]


class Decodable(Protocol):
    """What `generate` and `beam_search` need from a model (see the module docstring)."""

    is_encoder_decoder: bool
    config: Any

    def decoding_context(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
                         ) -> dict[str, torch.Tensor]: ...

    def new_caches(self) -> list | None: ...

    def next_token_logits(self, ids: torch.Tensor, attention_mask: torch.Tensor | None,
                          context: dict[str, torch.Tensor], caches: list | None) -> torch.Tensor: ...


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Set to -inf every logit outside the top k, and outside the smallest set of most likely
    tokens whose probability reaches top_p. Introduced in chapter 06_gpt."""
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be an int >= 1 or None, got {top_k!r}")
        k = min(top_k, logits.shape[-1])
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        if not isinstance(top_p, (int, float)) or not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be a number in (0, 1], got {top_p!r}")
    if top_p is not None and top_p < 1.0:  # 1.0 keeps every token (a float32 cumsum may not reach 1)
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = sorted_logits.softmax(-1)
        before = probs.cumsum(-1) - probs  # mass of the tokens ranked above each one
        drop_sorted = before >= top_p  # keep a token while the mass above it is still < p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def _apply_repetition_penalty(logits: torch.Tensor, seqs: torch.Tensor, mask: torch.Tensor | None,
                              penalty: float) -> torch.Tensor:
    """CTRL's penalty: tokens already present (padding aside) get logit / penalty if positive,
    logit * penalty if not."""
    present = torch.ones_like(seqs) if mask is None else mask.long()
    seen = torch.zeros(logits.shape, dtype=torch.long, device=logits.device).scatter_add(-1, seqs, present) > 0
    penalized = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalized, logits)


def _int(value: object, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return value


def _start(model: Decodable, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
           bos_id: int | None, max_new_tokens: int, eos_id: int | None
           ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]:
    """Check the arguments; (prefix, its mask or None, context)."""
    for attr in ("decoding_context", "next_token_logits", "new_caches"):
        if not callable(getattr(model, attr, None)):
            raise TypeError(f"model must be Decodable (see lmbook_utils.decoding), "
                            f"{type(model).__name__} has no {attr}()")
    _int(max_new_tokens, "max_new_tokens", 1)
    if eos_id is not None:
        _int(eos_id, "eos_id", 0)
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.shape[1] < 1 \
            or input_ids.dtype != torch.long:
        raise ValueError("input_ids must be a (batch, T >= 1) tensor of token ids (torch.long)")
    if attention_mask is not None:
        attention_mask = check_attention_mask(attention_mask, tuple(input_ids.shape))
    context = model.decoding_context(input_ids, attention_mask)
    if model.is_encoder_decoder:
        _int(bos_id, "bos_id (the token a target starts with)", 0)
        prefix = torch.full((input_ids.shape[0], 1), bos_id, dtype=torch.long, device=input_ids.device)
        attention_mask = None
    else:
        if bos_id is not None:
            raise ValueError("bos_id is for encoder-decoder models; put it at the start of the prompt")
        prefix = input_ids
    room = model.config.max_len - prefix.shape[1]
    if max_new_tokens > room:
        raise ValueError(f"the prefix has {prefix.shape[1]} tokens; with max_new_tokens={max_new_tokens} it "
                         f"would exceed the model's max_len={model.config.max_len}")
    return prefix, attention_mask, context


def _fill_id(model: Decodable, eos_id: int | None) -> int | None:
    pad = getattr(model.config, "pad_id", None)
    return eos_id if pad is None else pad


@torch.no_grad()
def generate(model: Decodable, input_ids: torch.Tensor, max_new_tokens: int, *,
             attention_mask: torch.Tensor | None = None, do_sample: bool = False, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, repetition_penalty: float = 1.0,
             eos_id: int | None = None, bos_id: int | None = None, seed: int | None = None,
             use_cache: bool = True) -> torch.Tensor:
    """Up to max_new_tokens new tokens per row, for a whole batch at once; returns prefix + new.

    Greedy unless do_sample; with do_sample the logits are divided by temperature, filtered by
    top_k / top_p, and a token is drawn with a generator seeded by `seed` (created on the CPU,
    the draws moved to the model's device, so a seed gives the same text on every device), or
    with torch's global generator when `seed` is None (which `repro.set_seed` seeds: each call
    then continues the global random stream). Generation stops when every row has produced
    eos_id. use_cache=False recomputes the whole prefix at every step (slower, same result)."""
    if not isinstance(temperature, (int, float)) or not temperature > 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a finite number > 0 (use do_sample=False for greedy), "
                         f"got {temperature!r}")
    if not isinstance(repetition_penalty, (int, float)) or not repetition_penalty >= 1.0:
        raise ValueError(f"repetition_penalty must be a number >= 1, got {repetition_penalty!r}")
    seqs, mask, context = _start(model, input_ids, attention_mask, bos_id, max_new_tokens, eos_id)
    fill = _fill_id(model, eos_id)
    was_training = model.training
    model.eval()
    gen = None if seed is None else torch.Generator().manual_seed(seed)
    try:
        done = torch.zeros(seqs.shape[0], dtype=torch.bool, device=seqs.device)
        caches = model.new_caches() if use_cache else None
        step_ids = seqs
        for _ in range(max_new_tokens):
            logits = model.next_token_logits(step_ids if caches is not None else seqs, mask, context,
                                             caches).float()
            if repetition_penalty != 1.0:
                logits = _apply_repetition_penalty(logits, seqs, mask, repetition_penalty)
            if do_sample:
                probs = filter_logits(logits / temperature, top_k, top_p).softmax(-1)
                if gen is not None and probs.device.type != "cpu":
                    probs = probs.cpu()
                nxt = torch.multinomial(probs, 1, generator=gen)[:, 0].to(seqs.device)
            else:
                nxt = logits.argmax(-1)
            if eos_id is not None:
                nxt = torch.where(done, torch.full_like(nxt, fill), nxt)
                done |= nxt == eos_id
            seqs = torch.cat([seqs, nxt[:, None]], dim=1)
            if mask is not None:
                mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
            step_ids = nxt[:, None]
            if eos_id is not None and bool(done.all()):
                break
        return seqs
    finally:
        model.train(was_training)


@torch.no_grad()
def beam_search(model: Decodable, input_ids: torch.Tensor, max_new_tokens: int, *, beam_size: int = 4,
                length_penalty: float = 1.0, eos_id: int | None = None, bos_id: int | None = None,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The best continuation found with `beam_size` beams, for each row; returns prefix + new.

    Hypotheses are ranked by the sum of the new tokens' log-probabilities divided by (number
    of new tokens) ** length_penalty (0 = no normalization; 1, the default, the mean
    log-probability). A hypothesis ends at eos_id or after max_new_tokens. Rows are searched
    one at a time; the beams of one row are one batch (no cache: every step reads the whole
    prefix). Rows of different lengths are filled at the end as in `generate`."""
    _int(beam_size, "beam_size", 1)
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float)) or length_penalty < 0:
        raise ValueError(f"length_penalty must be a number >= 0, got {length_penalty!r}")
    prefix, mask, context = _start(model, input_ids, attention_mask, bos_id, max_new_tokens, eos_id)
    fill = _fill_id(model, eos_id)
    was_training = model.training
    model.eval()
    try:
        rows = []
        for b in range(prefix.shape[0]):
            real = prefix[b] if mask is None else prefix[b][mask[b]]
            ctx = {k: v[b:b + 1] for k, v in context.items()}
            new = _beam_one(model, real.tolist(), ctx, max_new_tokens, beam_size, float(length_penalty), eos_id)
            rows.append(prefix[b].tolist() + new)
        width = max(len(r) for r in rows)
        out = torch.full((len(rows), width), 0 if fill is None else fill, dtype=torch.long, device=prefix.device)
        for b, r in enumerate(rows):
            out[b, :len(r)] = torch.tensor(r, device=prefix.device)
        return out
    finally:
        model.train(was_training)


def _beam_one(model: Decodable, prefix: list[int], context: dict[str, torch.Tensor], max_new: int,
              beam_size: int, alpha: float, eos_id: int | None) -> list[int]:
    """The new tokens of the best hypothesis after `prefix`."""
    n0 = len(prefix)
    beams: list[tuple[list[int], float]] = [(prefix, 0.0)]  # (tokens, sum of new log-probs)
    finished: list[tuple[list[int], float]] = []

    def norm(tokens: list[int], score: float) -> float:
        return score / max(len(tokens) - n0, 1) ** alpha

    device = next(iter(context.values())).device if context else next(model.parameters()).device
    for _ in range(max_new):
        seqs = torch.tensor([t for t, _ in beams], device=device)
        ctx = {k: v.expand(len(beams), *v.shape[1:]) for k, v in context.items()}
        logp = model.next_token_logits(seqs, None, ctx, None).float().log_softmax(-1)
        scores = torch.tensor([s for _, s in beams], device=device)[:, None] + logp
        top = torch.topk(scores.flatten(), min(2 * beam_size, scores.numel()))
        beams = []
        for value, index in zip(top.values.tolist(), top.indices.tolist()):
            i, tok = divmod(index, logp.shape[1])
            cand = (seqs[i].tolist() + [tok], value)
            if eos_id is not None and tok == eos_id:
                finished.append(cand)
            elif len(beams) < beam_size:
                beams.append(cand)
        if not beams:
            break
        # Stop when no live beam can beat the best finished one: scores only fall, so a live
        # beam's normalized score can at best reach score / max_new ** alpha.
        if len(finished) >= beam_size:
            best_done = max(norm(*ts) for ts in finished)
            if all(s / max_new ** alpha <= best_done for _, s in beams):
                break
    # live beams left at max_new count as ended; after an early stop they cannot win anyway
    tokens, _ = max(finished + beams, key=lambda ts: norm(*ts))
    return tokens[n0:]
