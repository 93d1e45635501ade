"""GPT: a decoder-only Transformer language model, and text generation with every common strategy.

Introduced in chapter 06_gpt. The architecture is GPT-2's (Radford et al. 2019): learned
token and position embeddings, pre-LN blocks x + attn(LN(x)), x + mlp(LN(x)) with causal
self-attention and a tanh-approximated GELU, a final LayerNorm, and an output layer tied to
the token embeddings. Given the same weights it equals Hugging Face's `GPT2LMHeadModel`
(tested); `from_hf_state_dict`/`save_pretrained` convert in both directions (GPT-2 stores
its linear layers transposed, as "Conv1D").

`generate` does greedy decoding, sampling with temperature, top-k (Fan et al. 2018), top-p /
nucleus (Holtzman et al. 2020) and a repetition penalty (Keskar et al. 2019), batched, with
a key-value cache, an end token and a seed; `beam_search` keeps the k best continuations.
`GPTClassifier` is GPT-1's fine-tuning (Radford et al. 2018): a linear layer on the last
token's final hidden state, with the language-modeling loss kept as an auxiliary objective.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .attention import KVCache, MultiHeadAttention
from .dropout import Dropout
from .transformer import FeedForward, check_config_sizes

__all__ = ["GPTConfig", "GPT", "GPTClassifier", "generate", "beam_search", "filter_logits", "from_hf_state_dict",
           "to_hf_state_dict", "save_pretrained"]


@dataclass
class GPTConfig:
    """Sizes of a GPT model. Introduced in chapter 06_gpt."""

    vocab_size: int
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    max_len: int = 128
    dropout: float = 0.0
    eps: float = 1e-5
    pad_id: int | None = None  # the padding token, if batches are padded (train() then counts real tokens)

    def __post_init__(self) -> None:
        check_config_sizes(self, ("vocab_size", "d_model", "n_layers", "n_heads", "max_len"))
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.pad_id is not None and (isinstance(self.pad_id, bool) or not isinstance(self.pad_id, int)
                                        or not 0 <= self.pad_id < self.vocab_size):
            raise ValueError(f"GPTConfig.pad_id must be None or an id in [0, vocab_size={self.vocab_size}), "
                             f"got {self.pad_id!r}")


class Block(nn.Module):
    """x + attn(LN(x)), then x + mlp(LN(x)). Introduced in chapter 06_gpt."""

    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(c.d_model, eps=c.eps), nn.LayerNorm(c.d_model, eps=c.eps)
        self.attn = MultiHeadAttention(c.d_model, c.n_heads, c.dropout)
        self.mlp = FeedForward(c.d_model, 4 * c.d_model, 0.0, activation="gelu_tanh")
        self.drop1, self.drop2 = Dropout(c.dropout), Dropout(c.dropout)

    def forward(self, x, cache: KVCache | None = None, need_weights: bool = False):
        a, w = self.attn(self.ln_1(x), is_causal=True, cache=cache, need_weights=need_weights)
        x = x + self.drop1(a)
        return x + self.drop2(self.mlp(self.ln_2(x))), w


@dataclass
class GPTOutput:
    """What `GPT.forward` returns. Introduced in chapter 06_gpt."""

    logits: torch.Tensor  # (batch, T, vocab)
    loss: torch.Tensor | None = None
    attentions: list | None = None
    hidden_states: torch.Tensor | None = None  # (batch, T, d_model), after the final LayerNorm


class GPT(nn.Module):
    """A GPT-2-style causal language model. Introduced in chapter 06_gpt."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
        c = self.config = config
        self.wte, self.wpe = nn.Embedding(c.vocab_size, c.d_model), nn.Embedding(c.max_len, c.d_model)
        self.drop = Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layers))
        self.ln_f = nn.LayerNorm(c.d_model, eps=c.eps)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: residual projections scaled by depth
            if name.endswith("attn.out_proj.weight") or name.endswith("mlp.linear2.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * c.n_layers))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, ids: torch.Tensor, targets: torch.Tensor | None = None,
                caches: list[KVCache] | None = None, need_weights: bool = False) -> GPTOutput:
        """ids (batch, T); targets (batch, T) with -100 where nothing is predicted; caches: one
        KVCache per block, extended in place (positions continue after the cached ones)."""
        c = self.config
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.dtype != torch.long:
            got = f"{ids.dtype} {tuple(ids.shape)}" if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise ValueError(f"ids must be a (batch, seq) tensor of token ids (torch.long), got {got}")
        past = len(caches[0]) if caches else 0
        if past + ids.shape[1] > c.max_len:
            raise ValueError(f"{past + ids.shape[1]} positions exceed the model's max_len={c.max_len}")
        if ids.numel() and ids.device.type != "meta":
            low, high = torch.aminmax(ids)  # one reduction, one read
            if int(low) < 0 or int(high) >= c.vocab_size:
                raise ValueError(f"ids holds values outside [0, {c.vocab_size})")
        if caches is not None and len(caches) != c.n_layers:
            raise ValueError(f"caches must hold one KVCache per block ({c.n_layers}), got {len(caches)}")
        pos = torch.arange(past, past + ids.shape[1], device=ids.device)
        x = self.drop(self.wte(ids) + self.wpe(pos))
        weights = []
        for i, block in enumerate(self.blocks):
            x, w = block(x, caches[i] if caches else None, need_weights)
            weights.append(w)
        hidden = self.ln_f(x)
        logits = F.linear(hidden, self.wte.weight)  # output layer tied to the token embeddings
        loss = None
        if targets is not None:
            if targets.shape != ids.shape:
                raise ValueError(f"targets must have the shape of ids {tuple(ids.shape)}, got {tuple(targets.shape)}")
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        return GPTOutput(logits, loss, weights if need_weights else None, hidden)


@dataclass
class ClassifierOutput:
    """What `GPTClassifier.forward` returns. Introduced in chapter 06_gpt."""

    logits: torch.Tensor  # (batch, n_classes)
    loss: torch.Tensor | None = None


class GPTClassifier(nn.Module):
    """GPT-1's discriminative fine-tuning: classes from the last real token's hidden state.

    Introduced in chapter 06_gpt. The loss is cross-entropy on the labels plus lm_weight times
    the language-modeling loss on the same sequences (GPT-1 used 0.5: it helped larger data
    sets and sped up convergence)."""

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

    def forward(self, ids: torch.Tensor, labels: torch.Tensor | None = None,
                lengths: torch.Tensor | None = None) -> ClassifierOutput:
        """ids (batch, T), right-padded; lengths (batch,): real tokens per row (None: all T)."""
        b, t = ids.shape
        if lengths is None:
            lengths = torch.full((b,), t, device=ids.device)
        if (not isinstance(lengths, torch.Tensor) or lengths.shape != (b,) or lengths.is_floating_point()
                or int(lengths.min()) < 1 or int(lengths.max()) > t):
            raise ValueError(f"lengths must be a (batch={b},) tensor of ints in [1, {t}]")
        n_classes = self.head.out_features
        if labels is not None and (not isinstance(labels, torch.Tensor) or labels.shape != (b,)
                                   or labels.is_floating_point() or int(labels.min()) < 0
                                   or int(labels.max()) >= n_classes):
            raise ValueError(f"labels must be a (batch={b},) tensor of class ids in [0, {n_classes})")
        out = self.gpt(ids)
        last = out.hidden_states[torch.arange(b, device=ids.device), lengths - 1]
        logits = self.head(last)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits, labels)
            if self.lm_weight and t > 1:
                real = torch.arange(t - 1, device=ids.device)[None] < (lengths[:, None] - 1)
                targets = ids[:, 1:].masked_fill(~real, -100)
                lm = F.cross_entropy(out.logits[:, :-1].flatten(0, 1), targets.flatten(), ignore_index=-100)
                loss = loss + self.lm_weight * lm
        return ClassifierOutput(logits, loss)


# ---- generation ----------------------------------------------------------------------------
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


def _apply_repetition_penalty(logits: torch.Tensor, seqs: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's penalty: tokens already present get logit / penalty if positive, * penalty if not."""
    seen = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, seqs, True)
    penalized = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalized, logits)


@torch.no_grad()
def generate(model: GPT, prompt: torch.Tensor, max_new_tokens: int, *, do_sample: bool = False,
             temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
             repetition_penalty: float = 1.0, eos_id: int | None = None, seed: int | None = None,
             use_cache: bool = True) -> torch.Tensor:
    """Continue each prompt (batch, T) by up to max_new_tokens tokens; returns prompt + new ids.

    Introduced in chapter 06_gpt. Greedy unless do_sample; with do_sample the logits are
    divided by temperature, filtered by top_k / top_p, and a token is drawn with a generator
    seeded by `seed` (created on the CPU and the draws moved to the prompt's device, so a seed
    gives the same text on every device), or with torch's global generator when `seed` is None
    (which `repro.set_seed` seeds: each call then continues the global random stream). A sequence that produced eos_id gets eos_id from then on; generation
    stops when all have. use_cache=False recomputes the whole prefix at every step (slower,
    same result)."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
    if not isinstance(temperature, (int, float)) or not temperature > 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a finite number > 0 (use do_sample=False for greedy), "
                         f"got {temperature!r}")
    if not isinstance(repetition_penalty, (int, float)) or not repetition_penalty >= 1.0:
        raise ValueError(f"repetition_penalty must be a number >= 1, got {repetition_penalty!r}")
    if not isinstance(prompt, torch.Tensor) or prompt.dim() != 2 or prompt.shape[1] < 1:
        raise ValueError("prompt must be a (batch, T >= 1) tensor of token ids")
    if prompt.shape[1] + max_new_tokens > model.config.max_len:
        raise ValueError(f"prompt length {prompt.shape[1]} + max_new_tokens {max_new_tokens} exceeds "
                         f"the model's max_len={model.config.max_len}")
    was_training = model.training
    model.eval()
    gen = None if seed is None else torch.Generator().manual_seed(seed)
    try:
        seqs, done = prompt, torch.zeros(prompt.shape[0], dtype=torch.bool, device=prompt.device)
        caches = [KVCache() for _ in model.blocks] if use_cache else None
        step_input = prompt
        for _ in range(max_new_tokens):
            logits = model(step_input if use_cache else seqs, caches=caches).logits[:, -1].float()
            if repetition_penalty != 1.0:
                logits = _apply_repetition_penalty(logits, seqs, repetition_penalty)
            if do_sample:
                logits = filter_logits(logits / temperature, top_k, top_p)
                probs = logits.softmax(-1)
                if gen is not None and probs.device.type != "cpu":
                    probs = probs.cpu()
                nxt = torch.multinomial(probs, 1, generator=gen)[:, 0].to(prompt.device)
            else:
                nxt = logits.argmax(-1)
            if eos_id is not None:
                nxt = torch.where(done, torch.full_like(nxt, eos_id), nxt)
                done |= nxt == eos_id
            seqs = torch.cat([seqs, nxt[:, None]], dim=1)
            step_input = nxt[:, None]
            if eos_id is not None and bool(done.all()):
                break
        return seqs
    finally:
        model.train(was_training)


@torch.no_grad()
def beam_search(model: GPT, prompt: torch.Tensor, max_new_tokens: int, beam_size: int = 4,
                eos_id: int | None = None, length_penalty: float = 0.0) -> torch.Tensor:
    """The most probable continuation found with `beam_size` beams, for one prompt (1, T).

    Introduced in chapter 06_gpt. Scores are summed log-probabilities of the new tokens divided
    by (number of new tokens) ** length_penalty; a beam ends at eos_id or max_new_tokens."""
    if not isinstance(prompt, torch.Tensor) or prompt.dim() != 2 or prompt.shape[0] != 1:
        raise ValueError("prompt must be a (1, T) tensor: beam search runs one prompt at a time")
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
        raise ValueError(f"beam_size must be an int >= 1, got {beam_size!r}")
    if prompt.shape[1] + max_new_tokens > model.config.max_len:
        raise ValueError(f"prompt length {prompt.shape[1]} + max_new_tokens {max_new_tokens} exceeds "
                         f"the model's max_len={model.config.max_len}")
    was_training = model.training
    model.eval()
    try:
        beams, finished = [(prompt[0].tolist(), 0.0)], []
        n0 = prompt.shape[1]

        def norm(tokens, score):
            return score / max(len(tokens) - n0, 1) ** length_penalty

        for _ in range(max_new_tokens):
            logp = model(torch.tensor([t for t, _ in beams], device=prompt.device)).logits[:, -1].float()
            scores = torch.tensor([s for _, s in beams], device=prompt.device)[:, None] + logp.log_softmax(-1)
            top = torch.topk(scores.flatten(), min(2 * beam_size, scores.numel()))
            beams_next = []
            for value, index in zip(top.values.tolist(), top.indices.tolist()):
                i, tok = divmod(index, logp.shape[1])
                cand = (beams[i][0] + [tok], value)
                if eos_id is not None and tok == eos_id:
                    finished.append(cand)
                elif len(beams_next) < beam_size:
                    beams_next.append(cand)
            beams = beams_next
            if not beams or (len(finished) >= beam_size and length_penalty == 0.0
                             and max(s for _, s in beams) <= max(s for _, s in finished)):
                break
        best, _ = max(finished + beams, key=lambda ts: norm(*ts))
        return torch.tensor([best], device=prompt.device)
    finally:
        model.train(was_training)


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
            "n_head": config.n_heads, "n_inner": None, "activation_function": "gelu_new",
            "resid_pdrop": config.dropout, "embd_pdrop": config.dropout, "attn_pdrop": config.dropout,
            "layer_norm_epsilon": config.eps, "tie_word_embeddings": True,
            "bos_token_id": None, "eos_token_id": None}


def save_pretrained(model: GPT, folder: str | os.PathLike) -> Path:
    """Write config.json and model.safetensors that `GPT2LMHeadModel.from_pretrained` loads.

    Introduced in chapter 06_gpt."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(hf_config(model.config), indent=2), encoding="utf-8")
    save_file(to_hf_state_dict(model), str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "lmbook_config.json").write_text(json.dumps(asdict(model.config)), encoding="utf-8")
    return folder
