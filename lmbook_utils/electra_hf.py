"""ELECTRA's models under Hugging Face's names, both ways, and folders `transformers` loads.

Introduced in chapter 08_electra, with `electra`. Each of our four models has a Hugging Face
class with the same weights: `ElectraDiscriminator` is `ElectraForPreTraining`,
`ElectraGenerator` is `ElectraForMaskedLM` (its output layer tied to the word embeddings),
`ElectraClassifier` is `ElectraForSequenceClassification`, `ElectraForQA` is
`ElectraForQuestionAnswering`. Hugging Face keeps query, key and value apart; we stack them
(`bert.encoder_hf_names`). A pretrained pair is exported as two folders, one per model, as
Google published theirs (electra-small-generator, electra-small-discriminator).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .bert import encoder_hf_names
from .electra import ElectraClassifier, ElectraConfig, ElectraDiscriminator, ElectraForQA, ElectraGenerator
from .hf_export import Mapping, load_mapped, mapped_state, write_folder
from .tokenizers import WordPieceTokenizer

__all__ = ["ARCHITECTURES", "hf_config", "to_hf_state_dict", "from_hf_state_dict", "save_pretrained"]

ARCHITECTURES = {ElectraDiscriminator: "ElectraForPreTraining", ElectraGenerator: "ElectraForMaskedLM",
                 ElectraClassifier: "ElectraForSequenceClassification",
                 ElectraForQA: "ElectraForQuestionAnswering"}
_TIED = "generator_lm_head.weight"  # the generator's output layer: the word embeddings themselves


def _architecture(model: object) -> str:
    for cls, name in ARCHITECTURES.items():
        if type(model) is cls:
            return name
    raise TypeError(f"model must be one of {[c.__name__ for c in ARCHITECTURES]}, got {type(model).__name__}")


def _names(model) -> Mapping:
    """Hugging Face name -> (our name, block of in_proj's rows or None for the whole tensor)."""
    arch, c = _architecture(model), model.config
    m = {f"electra.embeddings.{hf}.weight": (f"body.embeddings.{ours}.weight", None)
         for hf, ours in (("word_embeddings", "tok_emb"), ("position_embeddings", "pos_emb"),
                          ("token_type_embeddings", "seg_emb"))}
    pairs = [("electra.embeddings.LayerNorm", "body.embeddings.norm")]
    if c.embedding_size != c.d_model:
        pairs.append(("electra.embeddings_project", "body.embeddings_project"))
    pairs += {"ElectraForPreTraining": [("discriminator_predictions.dense", "head_dense"),
                                        ("discriminator_predictions.dense_prediction", "head_out")],
              "ElectraForMaskedLM": [("generator_predictions.dense", "head_dense"),
                                     ("generator_predictions.LayerNorm", "head_norm")],
              "ElectraForSequenceClassification": [("classifier.dense", "dense"),
                                                   ("classifier.out_proj", "out_proj")],
              "ElectraForQuestionAnswering": [("qa_outputs", "qa_outputs")]}[arch]
    for hf, ours in pairs:
        for p in ("weight", "bias"):
            m[f"{hf}.{p}"] = (f"{ours}.{p}", None)
    if arch == "ElectraForMaskedLM":
        m["generator_lm_head.bias"] = ("head_bias", None)
    m.update(encoder_hf_names(c.n_layers, "body.encoder.", "electra.encoder."))
    return m


def hf_config(config: ElectraConfig, architecture: str, n_labels: int | None = None) -> dict:
    """The `transformers.ElectraConfig` fields equal to ours, for the given architecture."""
    if architecture not in ARCHITECTURES.values():
        raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES.values())}, got {architecture!r}")
    out = {"model_type": "electra", "architectures": [architecture], "vocab_size": config.vocab_size,
           "embedding_size": config.embedding_size, "hidden_size": config.d_model,
           "num_hidden_layers": config.n_layers, "num_attention_heads": config.n_heads,
           "intermediate_size": config.d_ff, "hidden_act": "gelu", "hidden_dropout_prob": config.dropout,
           "attention_probs_dropout_prob": config.dropout, "max_position_embeddings": config.max_len,
           "type_vocab_size": config.type_vocab_size, "initializer_range": 0.02,
           "layer_norm_eps": config.eps, "pad_token_id": config.pad_id, "tie_word_embeddings": True}
    if n_labels is not None:
        out["num_labels"] = n_labels
    return out


def to_hf_state_dict(model) -> dict[str, torch.Tensor]:
    """Our weights under the names of the model's Hugging Face class (see ARCHITECTURES)."""
    sd = model.state_dict()
    out = mapped_state(sd, _names(model))
    if _architecture(model) == "ElectraForMaskedLM":
        out[_TIED] = sd["body.embeddings.tok_emb.weight"].detach().clone()
    return out


def from_hf_state_dict(model, hf_state: dict[str, torch.Tensor]) -> None:
    """Load the weights of the model's Hugging Face class (a `state_dict()` of it) into ours."""
    load_mapped(model, _names(model), hf_state, _architecture(model))


def save_pretrained(model, folder: str | os.PathLike, tokenizer: WordPieceTokenizer | None = None) -> Path:
    """Write a folder that `transformers.<the model's class>.from_pretrained(folder)` loads with the
    same logits; with the tokenizer, the generator's runs in `pipeline("fill-mask", ...)`."""
    if tokenizer is not None and not isinstance(tokenizer, WordPieceTokenizer):
        raise TypeError(f"tokenizer must be a WordPieceTokenizer (BERT's vocab.txt), got {type(tokenizer).__name__}")
    arch = _architecture(model)
    n_labels = model.out_proj.out_features if arch == "ElectraForSequenceClassification" else None
    state = to_hf_state_dict(model)
    state.pop(_TIED, None)  # tied to the word embeddings: stored once
    return write_folder(folder, hf_config(model.config, arch, n_labels), state, tokenizer, model.config.max_len)
