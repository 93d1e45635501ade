"""BERT (Devlin et al. 2019): a bidirectional Transformer encoder pretrained with MLM and NSP.

Introduced in chapter 05_bert, built on `transformer.Encoder` (post-LN, GELU, LayerNorm eps
1e-12, as in the original). The input is the SUM of three embeddings, token + segment +
position, followed by LayerNorm and dropout: `embedding(input_ids + segment_ids)`, which one
finds in circulation, adds the ids instead and cannot tell segments apart.

Heads: masked-language-model (a dense + GELU + LayerNorm transform, then a projection tied to
the token embeddings, with its own bias), next-sentence prediction and sequence
classification (both on the pooled [CLS] vector: dense + tanh). `mask_tokens` implements the
80/10/10 masking rule. Given the same weights the model equals Hugging Face's
`BertForPreTraining` (tested); `to_hf_state_dict` maps names and `save_pretrained` writes a
folder that `transformers` loads with `from_pretrained`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .dropout import Dropout
from .hf_export import load_mapped, mapped_state, write_folder
from .modeling import IGNORE_INDEX, ModelOutput, check_attention_mask, check_input_ids, check_targets, init_weights
from .qa import QAOutput, span_output
from .tokenizers import WordPieceTokenizer
from .transformer import Encoder, check_config_sizes

__all__ = ["BertConfig", "Bert", "BertOutput", "mask_tokens", "to_hf_state_dict", "from_hf_state_dict",
           "save_pretrained", "BertTokenClassifier", "token_classifier_from_hf_state_dict", "BertForQA",
           "qa_from_hf_state_dict"]


@dataclass
class BertConfig:
    """Sizes of a BERT model. Introduced in chapter 05_bert."""

    vocab_size: int  # number of token ids
    d_model: int = 64  # width of every token's vector
    n_layers: int = 2  # encoder layers
    n_heads: int = 4  # attention heads per layer (d_model must divide by it)
    d_ff: int = 256  # feed-forward width (BERT: 4 * d_model)
    max_len: int = 128  # positions in the position table: the longest input
    type_vocab_size: int = 2  # segments: sentence A and sentence B
    dropout: float = 0.1  # on embeddings, attention weights, residual branches, classifier input
    eps: float = 1e-12  # LayerNorm epsilon (the original's)
    pad_id: int = 0  # the padding token: attention_mask defaults to input_ids != pad_id
    n_labels: int = 2  # classes of the classification head (fine-tuning)

    def __post_init__(self) -> None:
        check_config_sizes(self, ("vocab_size", "d_model", "n_layers", "n_heads", "d_ff", "max_len",
                                  "type_vocab_size", "n_labels"))
        if not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(f"BertConfig.pad_id must be an id in [0, {self.vocab_size}), got {self.pad_id}")

    @classmethod
    def tiny(cls, vocab_size: int = 11, **changes) -> BertConfig:
        """A model small enough for a unit test (thousands of parameters)."""
        return cls(**{"vocab_size": vocab_size, "d_model": 16, "n_layers": 2, "n_heads": 2, "d_ff": 32,
                      "max_len": 16, "dropout": 0.0, **changes})


@dataclass
class BertOutput(ModelOutput):
    """What `Bert.forward` returns: `modeling.ModelOutput`, whose logits are the masked-language
    model's (batch, T, vocab), None when that head is not asked for; last_hidden_state is the
    last layer's output. Introduced in chapter 05_bert."""

    pooler_output: torch.Tensor | None = None  # (batch, d_model): tanh(dense([CLS])), Hugging Face's name
    nsp_logits: torch.Tensor | None = None  # (batch, 2): 0 = is next, 1 = random (HF convention)
    class_logits: torch.Tensor | None = None  # (batch, n_labels)


class Bert(nn.Module):
    """BERT encoder with MLM, NSP and classification heads. Introduced in chapter 05_bert."""

    ignore_index = IGNORE_INDEX  # MLM targets equal to it are not predicted

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        if not isinstance(config, BertConfig):
            raise TypeError(f"config must be a BertConfig, got {type(config).__name__}")
        c = self.config = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model, padding_idx=None)
        self.pos_emb = nn.Embedding(c.max_len, c.d_model)
        self.seg_emb = nn.Embedding(c.type_vocab_size, c.d_model)
        self.emb_norm = nn.LayerNorm(c.d_model, eps=c.eps)
        self.drop = Dropout(c.dropout)
        # Hugging Face's BertIntermediate has no dropout between the two feed-forward layers
        self.encoder = Encoder(c.n_layers, c.d_model, c.n_heads, c.d_ff, c.dropout, activation="gelu",
                               norm_first=False, final_norm=False, eps=c.eps, ff_dropout=0.0)
        self.pooler = nn.Linear(c.d_model, c.d_model)
        self.mlm_dense = nn.Linear(c.d_model, c.d_model)
        self.mlm_norm = nn.LayerNorm(c.d_model, eps=c.eps)
        self.mlm_bias = nn.Parameter(torch.zeros(c.vocab_size))
        self.nsp_head = nn.Linear(c.d_model, 2)
        self.cls_head = nn.Linear(c.d_model, c.n_labels)
        self.apply(init_weights)  # BERT's: N(0, 0.02), zero biases, unit LayerNorm gains

    def embed(self, input_ids: torch.Tensor, segment_ids: torch.Tensor) -> torch.Tensor:
        """token + segment + position embeddings, LayerNorm, dropout."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.tok_emb(input_ids) + self.seg_emb(segment_ids) + self.pos_emb(positions)
        return self.drop(self.emb_norm(x))

    def _check(self, input_ids, segment_ids, attention_mask):
        return check_encoder_inputs(self.config, input_ids, segment_ids, attention_mask)

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, targets: torch.Tensor | None = None,
                nsp_labels: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                heads: tuple[str, ...] = ("mlm", "nsp"), need_weights: bool = False) -> BertOutput:
        """attention_mask: (batch, T) bool, True at real tokens (default: input_ids != pad_id).
        targets: the masked-language model's, (batch, T), -100 where nothing is predicted;
        nsp_labels (batch,): 0 = is next, 1 = random; labels (batch,): classes for the
        classification head ("cls"). The loss is the sum of the given heads' losses
        (L_MLM + L_NSP in pretraining)."""
        segment_ids, keep = self._check(input_ids, segment_ids, attention_mask)
        unknown = set(heads) - {"mlm", "nsp", "cls"}
        if unknown:
            raise ValueError(f"heads must be among ('mlm', 'nsp', 'cls'), got {sorted(unknown)}")
        x = self.embed(input_ids, segment_ids)
        h, attentions = self.encoder(x, key_mask=keep, need_weights=need_weights)
        pooled = torch.tanh(self.pooler(h[:, 0]))
        out = BertOutput(attentions=attentions if need_weights else None, last_hidden_state=h,
                         pooler_output=pooled)
        batch, losses = (input_ids.shape[0],), []
        if "mlm" in heads or targets is not None:
            t = self.mlm_norm(F.gelu(self.mlm_dense(h)))
            out.logits = t @ self.tok_emb.weight.T + self.mlm_bias  # tied with the embeddings
            if targets is not None:
                check_targets(targets, tuple(input_ids.shape))
                losses.append(F.cross_entropy(out.logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX))
        if "nsp" in heads or nsp_labels is not None:
            out.nsp_logits = self.nsp_head(pooled)
            if nsp_labels is not None:
                losses.append(F.cross_entropy(out.nsp_logits, check_targets(nsp_labels, batch, "nsp_labels")))
        if "cls" in heads or labels is not None:
            out.class_logits = self.cls_head(self.drop(pooled))
            if labels is not None:
                losses.append(F.cross_entropy(out.class_logits, check_targets(labels, batch, "labels")))
        if losses:
            out.loss = torch.stack(losses).sum()
        return out


class BertTokenClassifier(nn.Module):
    """One class per token from BERT's last hidden state: dropout, then a linear layer (Hugging
    Face's BertForTokenClassification, whose dropout is the model's hidden dropout). Introduced in
    chapter 07_xlnet, beside `xlnet.XLNetTokenClassifier`, for tagging entities. The targets are per
    token, (batch, T), -100 where there is no label. forward returns a BertOutput whose logits are
    (batch, T, n_labels)."""

    ignore_index = IGNORE_INDEX

    def __init__(self, bert: Bert, n_labels: int) -> None:
        super().__init__()
        if not isinstance(bert, Bert):
            raise TypeError(f"bert must be a Bert, got {type(bert).__name__}")
        if isinstance(n_labels, bool) or not isinstance(n_labels, int) or n_labels < 1:
            raise ValueError(f"n_labels must be an int >= 1, got {n_labels!r}")
        self.bert, self.config = bert, bert.config
        self.drop = Dropout(bert.config.dropout)
        self.classifier = nn.Linear(bert.config.d_model, n_labels)
        init_weights(self.classifier)

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, targets: torch.Tensor | None = None,
                need_weights: bool = False) -> BertOutput:
        """Arguments as `Bert.forward`; targets (batch, T): one label id per token."""
        out = self.bert(input_ids, segment_ids, attention_mask, heads=(), need_weights=need_weights)
        out.logits = self.classifier(self.drop(out.last_hidden_state))
        if targets is not None:
            check_targets(targets, tuple(input_ids.shape))
            out.loss = F.cross_entropy(out.logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)
        return out


class BertForQA(nn.Module):
    """Extractive question answering on BERT (Hugging Face's `BertForQuestionAnswering`): a
    linear layer gives every token a start and an end logit, read from the last hidden state.
    Introduced in chapter 08_electra, beside `electra.ElectraForQA`, the same head."""

    def __init__(self, bert: Bert) -> None:
        super().__init__()
        if not isinstance(bert, Bert):
            raise TypeError(f"bert must be a Bert, got {type(bert).__name__}")
        self.bert, self.config = bert, bert.config
        self.qa_outputs = nn.Linear(bert.config.d_model, 2)
        init_weights(self.qa_outputs)

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, start_positions: torch.Tensor | None = None,
                end_positions: torch.Tensor | None = None, need_weights: bool = False) -> QAOutput:
        """start_positions, end_positions (batch,): the answer's first and last token."""
        _, keep = self.bert._check(input_ids, segment_ids, attention_mask)
        out = self.bert(input_ids, segment_ids, attention_mask, heads=(), need_weights=need_weights)
        return span_output(self.qa_outputs(out.last_hidden_state), keep, start_positions, end_positions,
                           out.attentions, out.last_hidden_state)


def check_encoder_inputs(c, input_ids, segment_ids, attention_mask) -> tuple[torch.Tensor, torch.Tensor]:
    """(segment ids, attention mask) checked against the config `c` of an encoder with segment
    embeddings (BERT's, ELECTRA's): ids in the vocabulary, no longer than max_len, segments in
    [0, type_vocab_size); defaults: one segment, attention_mask = input_ids != pad_id."""
    check_input_ids(input_ids, "input_ids", c.vocab_size)
    if input_ids.shape[1] > c.max_len:
        raise ValueError(f"input_ids has {input_ids.shape[1]} positions, more than the position "
                         f"table's max_len={c.max_len}; truncate the sequences")
    if segment_ids is None:
        segment_ids = torch.zeros_like(input_ids)
    if not isinstance(segment_ids, torch.Tensor) or segment_ids.shape != input_ids.shape:
        got = tuple(segment_ids.shape) if isinstance(segment_ids, torch.Tensor) else type(segment_ids).__name__
        raise ValueError(f"segment_ids must have the shape of input_ids {tuple(input_ids.shape)}, got {got}")
    # A meta tensor (a shape-only run, e.g. the device tests) has no values to check.
    if segment_ids.device.type != "meta" and segment_ids.numel() and (
            int(segment_ids.min()) < 0 or int(segment_ids.max()) >= c.type_vocab_size):
        raise ValueError(f"segment_ids must be in [0, {c.type_vocab_size}), got values "
                         f"{sorted(set(segment_ids.unique().tolist()))}")
    if attention_mask is None:
        attention_mask = input_ids != c.pad_id
    return segment_ids.long(), check_attention_mask(attention_mask, tuple(input_ids.shape))


def mask_tokens(input_ids: torch.Tensor, special_ids: list[int] | set[int], vocab_size: int, mask_id: int,
                prob: float = 0.15, generator: torch.Generator | None = None,
                mix: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: choose `prob` of the non-special tokens; of those, mix[0] become [MASK],
    mix[1] a random token, mix[2] stay. Returns (masked inputs, labels with -100 elsewhere).

    Introduced in chapter 05_bert. Deterministic given the generator; special tokens ([CLS],
    [SEP], [PAD], ...) are never chosen, and random replacements are never special tokens.

    The outputs are on input_ids' device. The random numbers are drawn on the generator's
    device (the CPU for the default generator and for ``torch.Generator()``) and then moved to
    input_ids' device, so one seed gives the same masks on every device: a reader on a GPU or
    on Apple silicon gets the masks of the book's stored (CPU) outputs.
    """
    if not isinstance(input_ids, torch.Tensor) or input_ids.dtype != torch.long:
        raise ValueError("input_ids must be a tensor of token ids (torch.long)")
    if not 0.0 < prob < 1.0:
        raise ValueError(f"prob must be in (0, 1), got {prob!r}")
    if len(mix) != 3 or min(mix) < 0 or abs(sum(mix) - 1.0) > 1e-9:
        raise ValueError(f"mix must be three non-negative fractions summing to 1, got {mix!r}")
    special_set = {int(i) for i in special_ids}
    if not (0 <= mask_id < vocab_size) or mask_id not in special_set:
        raise ValueError(f"mask_id must be one of the special_ids and < vocab_size, got {mask_id}")
    device, shape = input_ids.device, input_ids.shape
    draw_on = generator.device if generator is not None else torch.device("cpu")
    special = torch.tensor(sorted(special_set), dtype=torch.long, device=device)
    is_special = torch.isin(input_ids, special)
    u = torch.rand(shape, generator=generator, device=draw_on).to(device)
    chosen = (u < prob) & ~is_special
    v = torch.rand(shape, generator=generator, device=draw_on).to(device)
    to_mask = chosen & (v < mix[0])
    to_random = chosen & (v >= mix[0]) & (v < mix[0] + mix[1])
    normal = torch.tensor([i for i in range(vocab_size) if i not in special_set], dtype=torch.long, device=device)
    random_ids = normal[torch.randint(len(normal), shape, generator=generator, device=draw_on).to(device)]
    inputs = torch.where(to_mask, torch.full_like(input_ids, mask_id), input_ids)
    inputs = torch.where(to_random, random_ids, inputs)
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    return inputs, labels


# ---- Hugging Face interchange ---------------------------------------------------------------
def encoder_hf_names(n_layers: int, ours: str, hf: str) -> dict[str, tuple[str, int | None]]:
    """Hugging Face BERT-style encoder layer names (under the prefix `hf`, e.g. "bert.encoder.")
    -> (our `transformer.Encoder` name under `ours`, block): HF keeps query, key and value
    apart, we stack them in `in_proj` (block 0, 1, 2 of its rows); block None = whole.
    BERT and ELECTRA share this layout."""
    m = {}
    for i in range(n_layers):
        o, h = f"{ours}layers.{i}.", f"{hf}layer.{i}."
        for block, b in enumerate(("attention.self.query", "attention.self.key", "attention.self.value")):
            for p in ("weight", "bias"):
                m[f"{h}{b}.{p}"] = (f"{o}self_attn.in_proj.{p}", block)
        for a, b in (("self_attn.out_proj", "attention.output.dense"),
                     ("norm1", "attention.output.LayerNorm"), ("ff.linear1", "intermediate.dense"),
                     ("ff.linear2", "output.dense"), ("norm2", "output.LayerNorm")):
            for p in ("weight", "bias"):
                m[f"{h}{b}.{p}"] = (f"{o}{a}.{p}", None)
    return m


def _hf_to_ours(model: Bert) -> dict[str, tuple[str, int | None]]:
    """transformers.BertForPreTraining parameter name -> (ours, block): HF keeps query, key and
    value apart, we stack them in `in_proj` (block 0, 1, 2 of its rows); block None = whole."""
    m = {"bert.embeddings.word_embeddings.weight": ("tok_emb.weight", None),
         "bert.embeddings.position_embeddings.weight": ("pos_emb.weight", None),
         "bert.embeddings.token_type_embeddings.weight": ("seg_emb.weight", None),
         "bert.embeddings.LayerNorm.weight": ("emb_norm.weight", None),
         "bert.embeddings.LayerNorm.bias": ("emb_norm.bias", None),
         "cls.predictions.bias": ("mlm_bias", None)}
    m.update(encoder_hf_names(model.config.n_layers, "encoder.", "bert.encoder."))
    for p in ("weight", "bias"):
        m[f"bert.pooler.dense.{p}"] = (f"pooler.{p}", None)
        m[f"cls.predictions.transform.dense.{p}"] = (f"mlm_dense.{p}", None)
        m[f"cls.predictions.transform.LayerNorm.{p}"] = (f"mlm_norm.{p}", None)
        m[f"cls.seq_relationship.{p}"] = (f"nsp_head.{p}", None)
    return m


def to_hf_state_dict(model: Bert) -> dict[str, torch.Tensor]:
    """Our weights under `transformers.BertForPreTraining`'s names (the MLM decoder is the tied
    word embedding plus the MLM bias). Introduced in chapter 05_bert."""
    sd = model.state_dict()
    out = mapped_state(sd, _hf_to_ours(model))
    out["cls.predictions.decoder.weight"] = sd["tok_emb.weight"].detach().clone()
    out["cls.predictions.decoder.bias"] = sd["mlm_bias"].detach().clone()
    return out


def from_hf_state_dict(model: Bert, hf_state: dict[str, torch.Tensor]) -> None:
    """Load `BertForPreTraining` weights into our model (the classification head is left as is).

    Introduced in chapter 05_bert."""
    load_mapped(model, _hf_to_ours(model), hf_state, "BertForPreTraining")


def token_classifier_from_hf_state_dict(model: BertTokenClassifier, hf_state: dict[str, torch.Tensor]) -> None:
    """Load `transformers.BertForTokenClassification` weights (the encoder and `classifier`) into
    a BertTokenClassifier; BERT's pretraining heads are left as they are. Introduced in chapter 07_xlnet."""
    if not isinstance(model, BertTokenClassifier):
        raise TypeError(f"model must be a BertTokenClassifier, got {type(model).__name__}")
    body = {k: v for k, v in _hf_to_ours(model.bert).items() if k.startswith(("bert.embeddings.", "bert.encoder."))}
    missing = sorted({"classifier.weight", "classifier.bias"} - set(hf_state))
    if missing:
        raise ValueError(f"hf_state lacks {len(missing)} weights, e.g. {missing[:3]}")
    load_mapped(model.bert, body, hf_state, "BertForTokenClassification")
    if hf_state["classifier.weight"].shape != model.classifier.weight.shape:
        raise ValueError(f"classifier.weight has shape {tuple(hf_state['classifier.weight'].shape)}, ours "
                         f"{tuple(model.classifier.weight.shape)} (n_labels differ)")
    with torch.no_grad():
        model.classifier.weight.copy_(hf_state["classifier.weight"])
        model.classifier.bias.copy_(hf_state["classifier.bias"])


def qa_from_hf_state_dict(model: BertForQA, hf_state: dict[str, torch.Tensor]) -> None:
    """Load `transformers.BertForQuestionAnswering` weights (the encoder and `qa_outputs`) into a
    BertForQA; BERT's pretraining heads are left as they are. Introduced in chapter 08_electra."""
    if not isinstance(model, BertForQA):
        raise TypeError(f"model must be a BertForQA, got {type(model).__name__}")
    body = {k: v for k, v in _hf_to_ours(model.bert).items() if k.startswith(("bert.embeddings.", "bert.encoder."))}
    load_mapped(model.bert, body, hf_state, "BertForQuestionAnswering")
    load_mapped(model, {"qa_outputs.weight": ("qa_outputs.weight", None), "qa_outputs.bias": ("qa_outputs.bias", None)},
                hf_state, "BertForQuestionAnswering")


def hf_config(config: BertConfig) -> dict:
    """The `transformers.BertConfig` fields equal to ours. Introduced in chapter 05_bert."""
    return {"model_type": "bert", "architectures": ["BertForPreTraining"], "vocab_size": config.vocab_size,
            "hidden_size": config.d_model, "num_hidden_layers": config.n_layers,
            "num_attention_heads": config.n_heads, "intermediate_size": config.d_ff,
            "hidden_act": "gelu", "hidden_dropout_prob": config.dropout,
            "attention_probs_dropout_prob": config.dropout, "max_position_embeddings": config.max_len,
            "type_vocab_size": config.type_vocab_size, "initializer_range": 0.02,
            "layer_norm_eps": config.eps, "pad_token_id": config.pad_id, "tie_word_embeddings": True}


def save_pretrained(model: Bert, folder: str | os.PathLike, tokenizer: WordPieceTokenizer | None = None) -> Path:
    """Write a folder that `transformers` loads with `BertForPreTraining.from_pretrained(folder)`
    and, with the tokenizer, runs in `pipeline("fill-mask", model=folder)`. Introduced in
    chapter 05_bert."""
    if tokenizer is not None and not isinstance(tokenizer, WordPieceTokenizer):
        raise TypeError(f"tokenizer must be a WordPieceTokenizer (BERT's vocab.txt), got {type(tokenizer).__name__}")
    state = to_hf_state_dict(model)
    state.pop("cls.predictions.decoder.weight")  # tied to the word embeddings: stored once
    state.pop("cls.predictions.decoder.bias")  # the same tensor as cls.predictions.bias
    return write_folder(folder, hf_config(model.config), state, tokenizer, model.config.max_len)
