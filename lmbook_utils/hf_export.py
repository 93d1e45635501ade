"""Folders that Hugging Face `transformers` loads: config, weights and the tokenizer.

Introduced in chapter 05_bert. A model module maps its weights to Hugging Face's names
(`to_hf_state_dict`) and its config to theirs (`hf_config`); this module writes the folder,
so that `from_pretrained(folder)` and `transformers.pipeline(task, model=folder)` run with no
code of ours: config.json, model.safetensors (no pickle) and the tokenizer files.

Tokenizers: a WordPiece tokenizer is written as BERT's vocab.txt (transformers'
`BertTokenizer` splits text into the same ids); the others as tokenizer.json, a Hugging Face
`tokenizers` file that `PreTrainedTokenizerFast` reads (a word-level vocabulary with the same
pre-tokenization, or the BPE model itself). `padding_side` is the side the loaded tokenizer
pads on: "right" as transformers' default (BERT, GPT), "left" for XLNet, as its own tokenizer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch

from .tokenizers import _WORD, BPETokenizer, CharTokenizer, Tokenizer, WordPieceTokenizer, WordTokenizer, split_words

__all__ = ["hf_tokenizer", "special_token_ids", "write_folder", "Mapping", "mapped_state", "load_mapped"]


# Hugging Face name -> (our name, block): block None is the whole tensor; 0, 1, 2 are the row
# blocks of a stacked tensor (our `in_proj` holds HF's query, key and value, in that order).
Mapping = Dict[str, Tuple[str, Optional[int]]]


def mapped_state(state: dict[str, torch.Tensor], mapping: Mapping) -> dict[str, torch.Tensor]:
    """Our `state` (a state_dict) under Hugging Face's names, as contiguous copies."""
    out = {hf: state[ours] if block is None else state[ours].chunk(3)[block] for hf, (ours, block) in mapping.items()}
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def load_mapped(module: torch.nn.Module, mapping: Mapping, hf_state: dict[str, torch.Tensor], what: str = "") -> None:
    """Copy `hf_state` (a Hugging Face state_dict) into `module` by `mapping`; every mapped
    weight must be there with our shape. `what` names the Hugging Face class in the errors."""
    missing = sorted(set(mapping) - set(hf_state))
    if missing:
        raise ValueError(f"hf_state lacks {len(missing)} weights{f' of {what}' if what else ''}, e.g. {missing[:3]}")
    sd = {k: v.clone() for k, v in module.state_dict().items()}
    for hf_name, (our_name, block) in mapping.items():
        target = sd[our_name] if block is None else sd[our_name].chunk(3)[block]
        if hf_state[hf_name].shape != target.shape:
            raise ValueError(f"{hf_name} has shape {tuple(hf_state[hf_name].shape)}, ours "
                             f"{our_name}{'' if block is None else f' (block {block})'} {tuple(target.shape)}")
        target.copy_(hf_state[hf_name])
    module.load_state_dict(sd)


def hf_tokenizer(tokenizer: Tokenizer) -> Any:
    """The `tokenizers.Tokenizer` that splits text into the same ids as ours."""
    from tokenizers import Regex, normalizers, pre_tokenizers
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers.models import WordLevel

    if isinstance(tokenizer, BPETokenizer):
        return HFTokenizer.from_str(tokenizer.hf.to_str())
    if isinstance(tokenizer, CharTokenizer) or not isinstance(tokenizer, Tokenizer):
        raise TypeError(f"tokenizer must be a word-level Tokenizer, a WordTokenizer or a BPETokenizer, "
                        f"got {type(tokenizer).__name__}")
    if isinstance(tokenizer, WordTokenizer) and tokenizer.split is not split_words:
        raise ValueError("a WordTokenizer with a custom split function cannot be exported: Hugging Face "
                         "would split the text differently")
    vocab = {t: i for i, t in enumerate(tokenizer._itos)}
    unk = tokenizer.roles["unk"]
    # WordLevel needs an unknown token; without one of ours, an unused string stands in
    hf = HFTokenizer(WordLevel(vocab=vocab, unk_token=unk if unk is not None else "\x00unk"))
    if isinstance(tokenizer, WordTokenizer):  # words and single punctuation marks, as split_words
        hf.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                    pre_tokenizers.Split(Regex(_WORD.pattern), "isolated")])
        if tokenizer.lowercase:
            hf.normalizer = normalizers.Lowercase()
    else:  # the base Tokenizer has no splitting rule of its own: tokens separated by spaces
        hf.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    hf.add_special_tokens(list(tokenizer.specials))
    return hf


def special_token_ids(tokenizer: Tokenizer | None) -> dict[str, int | None]:
    """config.json's pad/bos/eos token ids (None where the tokenizer has no such token)."""
    ids = {"pad": None, "bos": None, "eos": None} if tokenizer is None else {
        role: tokenizer._role_id(role) for role in ("pad", "bos", "eos")}
    return {f"{role}_token_id": i for role, i in ids.items()}


def _write_tokenizer(tokenizer: Tokenizer, folder: Path, max_len: int, padding_side: str = "right") -> None:
    roles = {f"{role}_token": tok for role, tok in tokenizer.roles.items() if tok is not None}
    if isinstance(tokenizer, WordPieceTokenizer):
        (folder / "vocab.txt").write_text("\n".join(tokenizer.vocab()) + "\n", encoding="utf-8")
        config = {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "mask_token": "[MASK]",
                  "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]"}
    else:
        hf_tokenizer(tokenizer).save(str(folder / "tokenizer.json"))
        config = {"tokenizer_class": "PreTrainedTokenizerFast", **roles}
    config["model_max_length"] = max_len
    config["padding_side"] = padding_side
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False),
                                                  encoding="utf-8")


def write_folder(folder: str | os.PathLike, config: dict, state: dict[str, torch.Tensor],
                 tokenizer: Tokenizer | None = None, max_len: int | None = None,
                 padding_side: str = "right") -> Path:
    """Write config.json, model.safetensors and (given a tokenizer) its files into `folder`.

    `config` is the model's Hugging Face config; with a tokenizer, its special token ids are
    added, and its vocabulary size must be the model's. `padding_side` ("right" or "left") is
    where the loaded tokenizer puts its pads: left for a model that generates after a padded
    batch with relative positions only (XLNet), as that model's own Hugging Face tokenizer."""
    from safetensors.torch import save_file

    if padding_side not in ("right", "left"):
        raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")

    if tokenizer is not None:
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(f"tokenizer must be an lmbook_utils.tokenizers.Tokenizer or None, "
                            f"got {type(tokenizer).__name__}")
        if tokenizer.vocab_size != config["vocab_size"]:
            raise ValueError(f"the tokenizer has {tokenizer.vocab_size} tokens, the model {config['vocab_size']}")
        config = {**config, **special_token_ids(tokenizer)}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    if tokenizer is not None:
        _write_tokenizer(tokenizer, folder, max_len or 512, padding_side)
    return folder
