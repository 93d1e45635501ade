"""hf_export: the side an exported tokenizer pads on (right for BERT and GPT, as before; XLNet's
left is tested in test_xlnet.py) and a bad padding_side."""

from __future__ import annotations

import json

import pytest
import torch

from lmbook_utils import bert, gpt
from lmbook_utils.hf_export import write_folder
from lmbook_utils.tokenizers import Tokenizer, WordPieceTokenizer

transformers = pytest.importorskip("transformers")


def padded(folder, texts):
    """The exported tokenizer, loaded offline, and its padded batch of texts."""
    tok = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    return tok, tok(texts, padding=True, return_tensors="pt")


def test_bert_and_gpt_exports_still_pad_on_the_right(tmp_path):
    wp = WordPieceTokenizer.train(["the cat sat on the mat .", "a dog ran ."] * 2, vocab_size=50, min_frequency=1)
    bert.save_pretrained(bert.Bert(bert.BertConfig.tiny(vocab_size=wp.vocab_size)), tmp_path / "bert", wp)
    words = Tokenizer("the cat sat on a mat . dog ran".split())
    gpt.save_pretrained(gpt.GPT(gpt.GPTConfig.tiny(vocab_size=words.vocab_size, pad_id=words.pad_id)),
                        tmp_path / "gpt", words)
    for name, pad_id in (("bert", wp.pad_id), ("gpt", words.pad_id)):
        tok, enc = padded(tmp_path / name, ["the cat sat on a mat .", "the cat"])
        assert tok.padding_side == "right", name
        n = int(enc["attention_mask"][1].sum())
        assert enc["attention_mask"][1].tolist() == [1] * n + [0] * (enc["input_ids"].shape[1] - n), name
        assert enc["input_ids"][1, n:].eq(pad_id).all(), name


def test_padding_side_is_written_and_checked(tmp_path):
    words = Tokenizer("a b c".split())
    state = {"w": torch.zeros(1)}
    config = {"vocab_size": words.vocab_size}
    write_folder(tmp_path / "left", config, state, words, padding_side="left")
    written = json.loads((tmp_path / "left" / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert written["padding_side"] == "left"
    tok, enc = padded(tmp_path / "left", ["a b c", "a"])
    assert tok.padding_side == "left" and enc["attention_mask"][1].tolist() == [0, 0, 1]
    for bad in ("middle", None, 1):
        with pytest.raises(ValueError, match=r"padding_side must be 'right' or 'left'"):
            write_folder(tmp_path / "bad", config, state, words, padding_side=bad)
