"""ELECTRA (Clark et al. 2020, ICLR, arXiv:2003.10555): replaced-token detection.

Introduced in chapter 08_electra. A small generator, trained as a masked language model,
fills the masked positions with tokens it samples; a discriminator, the model one keeps,
tells at every position whether the token is the original or a replacement. BERT learns from
the 15% of positions it masks; the discriminator learns from all of them.

Both are BERT encoders (`transformer.Encoder`, post-LN, exact GELU, LayerNorm eps 1e-12) whose
token, position and segment embeddings may be narrower than the hidden size (`embedding_size`,
then a linear `embeddings_project` to the width, as in Hugging Face's `ElectraModel`). In
pretraining the generator and the discriminator share one embedding module (the original
code's shared "electra/embeddings" scope: the three tables and their LayerNorm); each keeps its
own projection. `ElectraPretraining` is the joint objective L_MLM + lambda L_Disc with
lambda = 50, the generator's sample drawn without a gradient, and a sample that equals the
original counted as original. `ReplacedMLMPretraining` is the paper's two MLM ablations
(Table 5): the input corrupted the same way, a masked language model in the discriminator's
place, "Replace MLM" (BERT's loss, generator samples instead of [MASK]) or "All-Tokens MLM"
(every token predicted, with a copy mechanism). Heads: the discriminator's (dense + GELU +
dense to one logit), the generator's (dense to embedding_size + GELU + LayerNorm, then the
tied embeddings),
`ElectraClassifier` (Hugging Face's ELECTRA head: dense + GELU on the first token, not BERT's
tanh pooler) and `ElectraForQA` (start and end logits). `electra_hf` converts all of them to
and from Hugging Face's classes, and `flops` counts a training step's operations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .bert import check_encoder_inputs
from .dropout import Dropout
from .modeling import IGNORE_INDEX, ModelOutput, check_targets, init_weights
from .qa import QAOutput, span_output
from .transformer import Encoder, check_config_sizes

__all__ = ["ElectraConfig", "ElectraEmbeddings", "ElectraBody", "ElectraGenerator", "ElectraDiscriminator",
           "ElectraPretraining", "ElectraPretrainingOutput", "ReplacedMLMPretraining", "ReplacedMLMOutput",
           "ElectraClassifier", "ElectraForQA", "QAOutput",
           "gumbel_sample", "optimal_replaced_probability", "LAMBDA"]

LAMBDA = 50.0  # the paper's weight of the discriminator's loss (section 2)


@dataclass
class ElectraConfig:
    """Sizes of a generator or a discriminator. Introduced in chapter 08_electra."""

    vocab_size: int  # number of token ids
    embedding_size: int = 32  # width of the embedding tables (projected to d_model when it differs)
    d_model: int = 64  # hidden width of every layer
    n_layers: int = 2  # encoder layers
    n_heads: int = 4  # attention heads per layer (d_model must divide by it)
    d_ff: int = 256  # feed-forward width (4 * d_model in the paper)
    max_len: int = 128  # positions in the position table: the longest input
    type_vocab_size: int = 2  # segments
    dropout: float = 0.1  # on embeddings, attention weights, residual branches, classifier input
    eps: float = 1e-12  # LayerNorm epsilon (BERT's)
    pad_id: int = 0  # the padding token: attention_mask defaults to input_ids != pad_id

    def __post_init__(self) -> None:
        check_config_sizes(self, ("vocab_size", "embedding_size", "d_model", "n_layers", "n_heads", "d_ff",
                                  "max_len", "type_vocab_size"))
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ElectraConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(f"ElectraConfig.pad_id must be an id in [0, {self.vocab_size}), got {self.pad_id}")

    @classmethod
    def tiny(cls, vocab_size: int = 11, **changes) -> ElectraConfig:
        """A model small enough for a unit test (embedding size different from the width)."""
        return cls(**{"vocab_size": vocab_size, "embedding_size": 8, "d_model": 16, "n_layers": 2, "n_heads": 2,
                      "d_ff": 32, "max_len": 16, "dropout": 0.0, **changes})


class ElectraEmbeddings(nn.Module):
    """token + segment + position embeddings (embedding_size wide), LayerNorm, dropout: BERT's,
    shared by the generator and the discriminator in pretraining."""

    def __init__(self, c: ElectraConfig) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(c.vocab_size, c.embedding_size)
        self.pos_emb = nn.Embedding(c.max_len, c.embedding_size)
        self.seg_emb = nn.Embedding(c.type_vocab_size, c.embedding_size)
        self.norm = nn.LayerNorm(c.embedding_size, eps=c.eps)
        self.drop = Dropout(c.dropout)

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.tok_emb(input_ids) + self.seg_emb(segment_ids) + self.pos_emb(positions)
        return self.drop(self.norm(x))


def _same_tables(c: ElectraConfig, e: ElectraEmbeddings) -> None:
    want = {"vocab_size": e.tok_emb.num_embeddings, "embedding_size": e.tok_emb.embedding_dim,
            "max_len": e.pos_emb.num_embeddings, "type_vocab_size": e.seg_emb.num_embeddings}
    for name, value in want.items():
        if getattr(c, name) != value:
            raise ValueError(f"embeddings to share have {name}={value}, the config {getattr(c, name)}: "
                             f"a generator and its discriminator must agree on {name}")


class ElectraBody(nn.Module):
    """Embeddings, the projection to d_model when embedding_size differs, the encoder: Hugging
    Face's `ElectraModel`. `embeddings`: a module to share instead of new tables."""

    def __init__(self, c: ElectraConfig, embeddings: ElectraEmbeddings | None = None) -> None:
        super().__init__()
        if embeddings is not None:
            _same_tables(c, embeddings)
        self.config = c
        self.embeddings = embeddings if embeddings is not None else ElectraEmbeddings(c)
        self.embeddings_project = nn.Linear(c.embedding_size, c.d_model) if c.embedding_size != c.d_model else None
        # Hugging Face's ElectraIntermediate has no dropout between the two feed-forward layers
        self.encoder = Encoder(c.n_layers, c.d_model, c.n_heads, c.d_ff, c.dropout, activation="gelu",
                               norm_first=False, final_norm=False, eps=c.eps, ff_dropout=0.0)

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, need_weights: bool = False):
        """(last hidden state (batch, T, d_model), per-layer weights, the checked attention mask
        (True at real tokens))."""
        segment_ids, keep = check_encoder_inputs(self.config, input_ids, segment_ids, attention_mask)
        x = self.embeddings(input_ids, segment_ids)
        if self.embeddings_project is not None:
            x = self.embeddings_project(x)
        h, attentions = self.encoder(x, key_mask=keep, need_weights=need_weights)
        return h, attentions, keep


def _checked(config: object) -> ElectraConfig:
    if not isinstance(config, ElectraConfig):
        raise TypeError(f"config must be an ElectraConfig, got {type(config).__name__}")
    return config


class ElectraGenerator(nn.Module):
    """The generator: a masked language model (Hugging Face's `ElectraForMaskedLM`). Its output
    layer is the token embedding table (tied), with its own bias. targets (batch, T): the
    original ids at masked positions, -100 elsewhere."""

    ignore_index = IGNORE_INDEX

    def __init__(self, config: ElectraConfig, embeddings: ElectraEmbeddings | None = None) -> None:
        super().__init__()
        self.config, self.body = _checked(config), ElectraBody(config, embeddings)
        self.head_dense = nn.Linear(config.d_model, config.embedding_size)
        self.head_norm = nn.LayerNorm(config.embedding_size, eps=config.eps)
        self.head_bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.apply(init_weights)

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, targets: torch.Tensor | None = None,
                need_weights: bool = False) -> ModelOutput:
        h, attentions, _ = self.body(input_ids, segment_ids, attention_mask, need_weights)
        t = self.head_norm(F.gelu(self.head_dense(h)))
        out = ModelOutput(logits=t @ self.body.embeddings.tok_emb.weight.T + self.head_bias,
                          attentions=attentions if need_weights else None, last_hidden_state=h)
        if targets is not None:
            check_targets(targets, tuple(input_ids.shape))
            out.loss = F.cross_entropy(out.logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)
        return out


class ElectraDiscriminator(nn.Module):
    """The discriminator (Hugging Face's `ElectraForPreTraining`): one logit per token, > 0 for
    "replaced". targets (batch, T): 1 replaced, 0 original; the loss is the binary
    cross-entropy averaged over real tokens (attention_mask True), padding excluded."""

    def __init__(self, config: ElectraConfig, embeddings: ElectraEmbeddings | None = None) -> None:
        super().__init__()
        self.config, self.body = _checked(config), ElectraBody(config, embeddings)
        self.head_dense = nn.Linear(config.d_model, config.d_model)
        self.head_out = nn.Linear(config.d_model, 1)
        self.apply(init_weights)

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, targets: torch.Tensor | None = None,
                need_weights: bool = False) -> ModelOutput:
        h, attentions, keep = self.body(input_ids, segment_ids, attention_mask, need_weights)
        logits = self.head_out(F.gelu(self.head_dense(h))).squeeze(-1)
        out = ModelOutput(logits=logits, attentions=attentions if need_weights else None, last_hidden_state=h)
        if targets is not None:
            _check_binary(targets, tuple(input_ids.shape))
            per_token = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")
            out.loss = (per_token * keep).sum() / keep.sum()  # the mean over real tokens
        return out


def _check_binary(targets: object, shape: tuple[int, ...]) -> None:
    """Replaced-token targets: (batch, T), bool or 0/1 numbers."""
    if not isinstance(targets, torch.Tensor) or tuple(targets.shape) != shape:
        got = tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
        raise ValueError(f"targets must be a tensor of shape {shape} (1 = replaced, 0 = original), got {got}")
    if targets.dtype != torch.bool and targets.device.type != "meta" and targets.numel() and not bool(
            ((targets == 0) | (targets == 1)).all()):
        raise ValueError("targets must be 0 (original) or 1 (replaced) at every position")


def gumbel_sample(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One id per row of `logits` (..., vocab), drawn from softmax(logits) by the Gumbel-max trick
    (argmax of logits + Gumbel noise), as the original ELECTRA code samples. The uniform noise is
    drawn on the generator's device (the CPU by default) and moved to the logits', so one seed
    gives the same sample on every device; no gradient flows through the draw."""
    draw_on = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(logits.shape, generator=generator, device=draw_on, dtype=torch.float32).to(logits.device)
    gumbel = -torch.log((-torch.log(u.clamp_min(1e-9))).clamp_min(1e-9))  # -log(-log u), u in (0, 1)
    return (logits.detach().float() + gumbel).argmax(-1)


def optimal_replaced_probability(p_data: torch.Tensor, p_gen: torch.Tensor, mask_prob: float) -> torch.Tensor:
    """The best possible discriminator's P(replaced) for a token w at one position, every other
    position being original: with probability mask_prob the position was masked and w is the
    generator's sample (p_gen(w | context)), replaced unless it equals the original, which
    happens with p_data(w | context); otherwise w is the original, drawn from p_data. So
    P(replaced | w) = m p_gen (1 - p_data) / ((1 - m) p_data + m p_gen), with m = mask_prob:
    the discriminator's version of Goodfellow et al.'s D* = p_data / (p_data + p_gen), exact for
    one corrupted position (with several, the context itself may be corrupted). p_data and
    p_gen: probabilities of the same tokens, any shape; 0 where both are 0."""
    if not isinstance(mask_prob, (int, float)) or isinstance(mask_prob, bool) or not 0.0 < mask_prob < 1.0:
        raise ValueError(f"mask_prob must be a number in (0, 1), got {mask_prob!r}")
    for name, p in (("p_data", p_data), ("p_gen", p_gen)):
        if not isinstance(p, torch.Tensor) or not p.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor of probabilities")
        if p.device.type != "meta" and p.numel() and not bool(((p >= 0) & (p <= 1)).all()):
            raise ValueError(f"{name} must hold probabilities in [0, 1]")
    if p_data.shape != p_gen.shape:
        raise ValueError(f"p_data and p_gen must have the same shape, got {tuple(p_data.shape)} and "
                         f"{tuple(p_gen.shape)}")
    m = float(mask_prob)
    num = m * p_gen * (1 - p_data)
    den = (1 - m) * p_data + m * p_gen
    return torch.where(den > 0, num / den.clamp_min(torch.finfo(den.dtype).tiny), torch.zeros_like(den))


def _check_config_types(generator_config: object, model_config: object, model_name: str) -> None:
    for name, c in (("generator_config", generator_config), (model_name, model_config)):
        if not isinstance(c, ElectraConfig):
            raise TypeError(f"{name} must be an ElectraConfig, got {type(c).__name__}")


def _check_same_pad(generator_config: ElectraConfig, model_config: ElectraConfig, model_name: str) -> None:
    """The generator reads and writes the main model's ids: one padding token for both."""
    if generator_config.pad_id != model_config.pad_id:
        raise ValueError(f"generator_config.pad_id ({generator_config.pad_id}) and {model_name}.pad_id "
                         f"({model_config.pad_id}) must be the same token")


class _Corrupted(NamedTuple):
    keep: torch.Tensor  # (batch, T) bool: real tokens
    masked: torch.Tensor  # (batch, T) bool: the positions the generator fills
    generator_output: ModelOutput  # the generator's logits and MLM loss on the masked input
    corrupted: torch.Tensor  # (batch, T): the masked positions hold the generator's samples
    original: torch.Tensor  # (batch, T): the uncorrupted ids
    replaced: torch.Tensor  # (batch, T) bool: corrupted != original


def _corrupt(config: ElectraConfig, mlm: ElectraGenerator, input_ids: torch.Tensor,
             segment_ids: torch.Tensor | None, attention_mask: torch.Tensor | None, targets: torch.Tensor | None,
             generator: torch.Generator | None) -> _Corrupted:
    """The input checks and the corruption that ELECTRA and its MLM ablations share, in one
    place so that they cannot drift apart: `mlm` (the generator) is trained on the masked input,
    and one sample from it (no gradient, drawn with `generator`) fills each masked position.
    `config` is the main model's: the ids and targets are checked against it."""
    if targets is None:
        raise ValueError("targets are required: the original ids at the masked positions, -100 elsewhere "
                         "(what bert.mask_tokens returns as labels)")
    check_targets(targets, tuple(input_ids.shape))
    _, keep = check_encoder_inputs(config, input_ids, segment_ids, attention_mask)
    masked = targets != IGNORE_INDEX
    if not bool(masked.any()):  # else the generator's cross-entropy averages nothing: a NaN loss
        raise ValueError("targets mark no masked position (every entry is -100): the generator has nothing "
                         "to predict; mask at least one real token in the batch")
    if bool((masked & ~keep).any()):
        raise ValueError("targets hold a label at a padding position (attention_mask False there): "
                         "mask real tokens only")
    if bool((masked & ((targets < 0) | (targets >= config.vocab_size))).any()):
        raise ValueError(f"targets must be ids in [0, {config.vocab_size}) or -100")
    if bool((masked & (targets == config.pad_id)).any()):
        raise ValueError(f"targets hold the padding id {config.pad_id} at a masked position")
    g = mlm(input_ids, segment_ids, keep, targets)
    sampled = gumbel_sample(g.logits[masked], generator)
    corrupted = input_ids.clone()
    corrupted[masked] = sampled
    original = torch.where(masked, targets, input_ids)
    return _Corrupted(keep, masked, g, corrupted, original, corrupted != original)


@dataclass
class ElectraPretrainingOutput(ModelOutput):
    """What `ElectraPretraining.forward` returns: `logits` are the discriminator's (batch, T),
    > 0 for "replaced"; last_hidden_state is the discriminator's."""

    mlm_loss: torch.Tensor | None = None  # the generator's cross-entropy on the masked positions
    disc_loss: torch.Tensor | None = None  # the discriminator's binary cross-entropy on real tokens
    generator_logits: torch.Tensor | None = None  # (batch, T, vocab)
    corrupted_ids: torch.Tensor | None = None  # (batch, T): the discriminator's input
    replaced: torch.Tensor | None = None  # (batch, T) bool: the discriminator's targets


class ElectraPretraining(nn.Module):
    """A generator and a discriminator sharing their embeddings, trained jointly on
    L_MLM + lam * L_Disc (Clark et al. 2020, eq. 1 and section 2).

    forward takes what `bert.mask_tokens` returns: `input_ids` with the chosen positions
    masked (ELECTRA keeps 15% of them unchanged and puts [MASK] at the rest, with no random
    tokens: `mix=(0.85, 0.0, 0.15)`) and `targets`, the original ids there and -100 elsewhere.
    The generator predicts the masked positions; a token sampled from its distribution
    (no gradient through the sampling) replaces each of them; the discriminator labels every
    real token replaced (1) or original (0), and a sample equal to the original is original.
    The samples use `generator` (default: torch's global generator, which `repro.set_seed`
    seeds). `disc_positions="masked"` is the paper's "ELECTRA 15%" ablation (Table 5): the
    discriminator's loss covers the masked positions only instead of every real token."""

    ignore_index = IGNORE_INDEX
    DISC_POSITIONS = ("all", "masked")

    def __init__(self, generator_config: ElectraConfig, discriminator_config: ElectraConfig,
                 lam: float = LAMBDA, disc_positions: str = "all") -> None:
        super().__init__()
        _check_config_types(generator_config, discriminator_config, "discriminator_config")
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not lam > 0:
            raise ValueError(f"lam (the discriminator loss weight) must be a number > 0, got {lam!r}")
        _check_same_pad(generator_config, discriminator_config, "discriminator_config")
        if disc_positions not in self.DISC_POSITIONS:
            raise ValueError(f"disc_positions must be one of {self.DISC_POSITIONS}, got {disc_positions!r}")
        self.lam, self.disc_positions = float(lam), disc_positions
        self.config = discriminator_config
        self.discriminator = ElectraDiscriminator(discriminator_config)
        self.generator = ElectraGenerator(generator_config, embeddings=self.discriminator.body.embeddings)

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, targets: torch.Tensor | None = None,
                generator: torch.Generator | None = None, need_weights: bool = False) -> ElectraPretrainingOutput:
        """input_ids (batch, T) masked; targets (batch, T): original ids at masked positions,
        -100 elsewhere (required); attention_mask True at real tokens (default input_ids !=
        pad_id). The arguments come in `Bert.forward`'s order, so one batch serves both."""
        cor = _corrupt(self.config, self.generator, input_ids, segment_ids, attention_mask, targets, generator)
        keep, masked, g = cor.keep, cor.masked, cor.generator_output
        scored = keep if self.disc_positions == "all" else masked     # where L_Disc is averaged
        d = self.discriminator(cor.corrupted, segment_ids, keep, need_weights=need_weights)
        per_token = F.binary_cross_entropy_with_logits(d.logits, cor.replaced.to(d.logits.dtype), reduction="none")
        disc_loss = (per_token * scored).sum() / scored.sum().clamp_min(1)
        return ElectraPretrainingOutput(
            logits=d.logits, loss=g.loss + self.lam * disc_loss, attentions=d.attentions,
            last_hidden_state=d.last_hidden_state, mlm_loss=g.loss.detach(), disc_loss=disc_loss.detach(),
            generator_logits=g.logits, corrupted_ids=cor.corrupted, replaced=cor.replaced)


@dataclass
class ReplacedMLMOutput(ModelOutput):
    """What `ReplacedMLMPretraining.forward` returns: `logits` are the main model's MLM
    logits (batch, T, vocab) on the corrupted input; with the copy mechanism its distribution
    at position t is copy_prob_t on the input token plus (1 - copy_prob_t) softmax(logits_t).
    last_hidden_state is the main model's."""

    mlm_loss: torch.Tensor | None = None  # the generator's cross-entropy on the masked positions
    main_loss: torch.Tensor | None = None  # the main model's: on the masked positions, or on all real tokens
    generator_logits: torch.Tensor | None = None  # (batch, T, vocab)
    corrupted_ids: torch.Tensor | None = None  # (batch, T): the main model's input
    replaced: torch.Tensor | None = None  # (batch, T) bool: the corrupted id differs from the original
    copy_prob: torch.Tensor | None = None  # (batch, T): D = sigmoid(copy logit); None for Replace MLM


class ReplacedMLMPretraining(nn.Module):
    """The two MLM ablations of ELECTRA (Clark et al. 2020, section 3.3 and Table 5): the
    generator corrupts the input as in `ElectraPretraining`, but the main model is a masked
    language model of the discriminator's size that predicts the original ids.

    all_tokens=False is "Replace MLM": BERT's loss on the masked positions, whose input holds
    the generator's samples instead of [MASK], so pretraining never shows a token that
    fine-tuning lacks. all_tokens=True is "All-Tokens MLM": the model predicts the original id
    at every real token, through the paper's copy mechanism: a linear layer (`copy_head`) gives
    each position a copy logit c, D = sigmoid(c), and p(y) = D [y = input token] +
    (1 - D) softmax(logits)(y); its loss is the mean of -log p(original) over real tokens.

    The loss is L_MLM (the generator's) + the main loss, with weight 1: the paper gives none,
    and unlike ELECTRA's binary loss (lambda = 50) both are likelihoods of ids on one scale.
    The main model's `mlm.body` has `ElectraDiscriminator.body`'s parameter names, so a
    downstream model loads it as a discriminator's body. forward takes
    `ElectraPretraining.forward`'s arguments, in the same order."""

    ignore_index = IGNORE_INDEX

    def __init__(self, generator_config: ElectraConfig, model_config: ElectraConfig,
                 all_tokens: bool = False) -> None:
        super().__init__()
        _check_config_types(generator_config, model_config, "model_config")
        if not isinstance(all_tokens, bool):
            raise TypeError(f"all_tokens must be a bool (True: All-Tokens MLM, False: Replace MLM), "
                            f"got {all_tokens!r}")
        _check_same_pad(generator_config, model_config, "model_config")
        self.all_tokens, self.config = all_tokens, model_config
        self.mlm = ElectraGenerator(model_config)
        self.generator = ElectraGenerator(generator_config, embeddings=self.mlm.body.embeddings)
        self.copy_head = nn.Linear(model_config.d_model, 1) if all_tokens else None
        if self.copy_head is not None:
            init_weights(self.copy_head)

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, targets: torch.Tensor | None = None,
                generator: torch.Generator | None = None, need_weights: bool = False) -> ReplacedMLMOutput:
        """input_ids (batch, T) masked; targets (batch, T): original ids at masked positions,
        -100 elsewhere (required); attention_mask True at real tokens (default input_ids !=
        pad_id); `generator` draws the samples."""
        cor = _corrupt(self.config, self.generator, input_ids, segment_ids, attention_mask, targets, generator)
        g, keep = cor.generator_output, cor.keep
        if self.copy_head is None:  # Replace MLM: the MLM loss, on the masked positions only
            m = self.mlm(cor.corrupted, segment_ids, keep, targets, need_weights=need_weights)
            main_loss, copy_prob = m.loss, None
        else:  # All-Tokens MLM with the copy mechanism, in log space
            m = self.mlm(cor.corrupted, segment_ids, keep, need_weights=need_weights)
            c = self.copy_head(m.last_hidden_state).squeeze(-1)
            log_mlm = m.logits.log_softmax(-1).gather(-1, cor.original.unsqueeze(-1)).squeeze(-1)
            log_copy = F.logsigmoid(c).masked_fill(cor.replaced, float("-inf"))  # copying is right if unreplaced
            nll = -torch.logaddexp(log_copy, F.logsigmoid(-c) + log_mlm)  # -log(D [copy right] + (1 - D) p_mlm)
            main_loss = nll.masked_fill(~keep, 0.0).sum() / keep.sum().clamp_min(1)  # the mean over real tokens
            copy_prob = torch.sigmoid(c)
        return ReplacedMLMOutput(
            logits=m.logits, loss=g.loss + main_loss, attentions=m.attentions,
            last_hidden_state=m.last_hidden_state, mlm_loss=g.loss.detach(), main_loss=main_loss.detach(),
            generator_logits=g.logits, corrupted_ids=cor.corrupted, replaced=cor.replaced, copy_prob=copy_prob)


class ElectraClassifier(nn.Module):
    """One class per sequence from the discriminator's first token: dropout, dense, GELU,
    dropout, linear (Hugging Face's `ElectraClassificationHead`; BERT's pooler is dense + tanh
    instead). labels (batch,)."""

    def __init__(self, discriminator: ElectraDiscriminator, n_labels: int) -> None:
        super().__init__()
        if not isinstance(discriminator, ElectraDiscriminator):
            raise TypeError(f"discriminator must be an ElectraDiscriminator, got {type(discriminator).__name__}")
        if isinstance(n_labels, bool) or not isinstance(n_labels, int) or n_labels < 1:
            raise ValueError(f"n_labels must be an int >= 1, got {n_labels!r}")
        c = self.config = discriminator.config
        self.body = discriminator.body
        self.drop = Dropout(c.dropout)
        self.dense, self.out_proj = nn.Linear(c.d_model, c.d_model), nn.Linear(c.d_model, n_labels)
        init_weights(self.dense)
        init_weights(self.out_proj)

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                need_weights: bool = False) -> ModelOutput:
        h, attentions, _ = self.body(input_ids, segment_ids, attention_mask, need_weights)
        x = self.drop(F.gelu(self.dense(self.drop(h[:, 0]))))
        out = ModelOutput(logits=self.out_proj(x), attentions=attentions if need_weights else None,
                          last_hidden_state=h)
        if labels is not None:
            out.loss = F.cross_entropy(out.logits, check_targets(labels, (input_ids.shape[0],), "labels"))
        return out


class ElectraForQA(nn.Module):
    """Extractive question answering (Hugging Face's `ElectraForQuestionAnswering`): a linear
    layer gives every token a start and an end logit. start_positions, end_positions (batch,):
    token indices of the answer's first and last token; a span outside the input is an error
    (Hugging Face clamps and ignores it)."""

    def __init__(self, discriminator: ElectraDiscriminator) -> None:
        super().__init__()
        if not isinstance(discriminator, ElectraDiscriminator):
            raise TypeError(f"discriminator must be an ElectraDiscriminator, got {type(discriminator).__name__}")
        self.config = discriminator.config
        self.body = discriminator.body
        self.qa_outputs = nn.Linear(self.config.d_model, 2)
        init_weights(self.qa_outputs)

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, start_positions: torch.Tensor | None = None,
                end_positions: torch.Tensor | None = None, need_weights: bool = False) -> QAOutput:
        h, attentions, keep = self.body(input_ids, segment_ids, attention_mask, need_weights)
        return span_output(self.qa_outputs(h), keep, start_positions, end_positions,
                           attentions if need_weights else None, h)
