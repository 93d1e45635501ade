from __future__ import annotations

import json

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lmbook_utils.tokenizers import (BPETokenizer, CharTokenizer, Tokenizer, WordTokenizer,
                                     split_words)

TEXTS = ["The cat sat on the mat. Don't panic!", "the dog chased the cat; the cat ran away.",
         "我爱自然语言处理。语言模型预测下一个词。"]
ALPHABET = sorted(set("".join(TEXTS)))
BERT = dict(pad="[PAD]", unk="[UNK]", bos=None, eos=None, extra_specials=["[CLS]", "[SEP]", "[MASK]"])


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train(TEXTS * 4, vocab_size=300)


# ---- characters ----------------------------------------------------------------------------
def test_char_vocab_is_sorted_after_specials():
    tok = CharTokenizer.train(TEXTS)
    assert tok.vocab_size == 4 + len(ALPHABET)
    assert [tok.id_to_token(i) for i in range(4)] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert [tok.id_to_token(i) for i in range(4, tok.vocab_size)] == ALPHABET
    assert tok.encode("ca") == [4 + ALPHABET.index("c"), 4 + ALPHABET.index("a")]
    assert tok.tokenize("语言") == ["语", "言"]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=40))
def test_char_round_trip(text):
    tok = CharTokenizer.train(TEXTS)
    assert tok.decode(tok.encode(text)) == text


def test_special_ids_stable_across_training_texts():
    a = CharTokenizer.train("abc", **BERT)
    b = CharTokenizer.train("xyz 123", **BERT)
    expected = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
    assert a.special_ids == b.special_ids == expected
    assert a.pad_id == 0 and a.unk_id == 1 and a.bos_id is None and a.eos_id is None
    w = WordTokenizer.train(TEXTS, **BERT)
    p = BPETokenizer.train(TEXTS, vocab_size=280, **BERT)
    assert w.special_ids == p.special_ids == expected


def test_special_tokens_in_text_and_bos_eos():
    tok = CharTokenizer.train("abc", extra_specials=["[MASK]"])
    ids = tok.encode("a[MASK]b", add_bos=True, add_eos=True)
    assert ids == [tok.bos_id, tok.token_to_id("a"), tok.token_to_id("[MASK]"),
                   tok.token_to_id("b"), tok.eos_id]
    assert tok.decode(ids) == "<bos>a[MASK]b<eos>"
    assert tok.decode(ids, skip_specials=True) == "ab"
    assert tok.decode(torch.tensor(ids[1:3])) == "a[MASK]"
    with pytest.raises(ValueError, match="add_bos=True but this tokenizer has bos=None"):
        CharTokenizer.train("abc", bos=None).encode("a", add_bos=True)


def test_unknown_characters_map_to_unk_or_raise():
    tok = CharTokenizer.train("abc")
    assert tok.encode("axb") == [tok.token_to_id("a"), tok.unk_id, tok.token_to_id("b")]
    strict = CharTokenizer.train("abc", unk=None)
    with pytest.raises(ValueError, match=r"2 character\(s\) not in the vocabulary: 'x' at "
                                         r"position 2, 'z' at position 4.*unk=None"):
        strict.encode("abxcz")


# ---- words ---------------------------------------------------------------------------------
def test_split_words_by_hand():
    assert split_words("Don't stop, cat-like 3.5 我爱") == [
        "Don", "'", "t", "stop", ",", "cat", "-", "like", "3", ".", "5", "我", "爱"]


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40))
def test_lowercase_word_split_matches_toyworld(text):
    toyworld = pytest.importorskip("lmbook_utils.toyworld")
    tok = WordTokenizer([], lowercase=True)
    assume(not any(special in text for special in tok.specials))  # "<pad>" in text is the special token
    assert tok.tokenize(text) == toyworld.tokenize_en(text)


def test_word_vocab_order_min_freq_and_decode():
    tok = WordTokenizer.train(TEXTS, min_freq=2, lowercase=True)
    words = [tok.id_to_token(i) for i in range(4, tok.vocab_size)]
    # counts: the 5, cat 3; ".", "。", "语", "言" 2 each -> frequent first, ties by code point
    assert words == ["the", "cat", ".", "。", "言", "语"]
    assert tok.encode("The dog") == [tok.token_to_id("the"), tok.unk_id]
    full = WordTokenizer.train(TEXTS)
    assert full.decode(full.encode(TEXTS[0])) == TEXTS[0]
    assert full.decode(full.encode(TEXTS[2])) == TEXTS[2]


def test_word_unknown_raises_without_unk():
    tok = WordTokenizer.train("a b c", unk=None)
    with pytest.raises(ValueError, match=r"1 word\(s\) not in the vocabulary: 'x' at character 2"):
        tok.encode("a x b")
    with pytest.raises(ValueError, match="unk must not be None"):
        WordTokenizer.train("a b", min_freq=2, unk=None)


def test_word_custom_split_and_save_load(tmp_path):
    tok = WordTokenizer.train(["a-b c"], split=str.split)
    assert tok.tokenize("a-b c") == ["a-b", "c"]
    tok.save(tmp_path / "w.json")
    with pytest.raises(ValueError, match="pass load"):
        Tokenizer.load(tmp_path / "w.json")
    assert Tokenizer.load(tmp_path / "w.json", split=str.split) == tok
    default = WordTokenizer.train(TEXTS, lowercase=True)
    default.save(tmp_path / "d.json")
    assert WordTokenizer.load(tmp_path / "d.json") == default


# ---- BPE -----------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=40))
def test_bpe_round_trip_on_training_alphabet(bpe, text):
    assert bpe.decode(bpe.encode(text)) == text


@settings(max_examples=30, deadline=None)
@given(st.text(max_size=20))
def test_byte_level_bpe_is_lossless_on_any_text(bpe, text):
    assert bpe.decode(bpe.encode(text)) == text


def test_bpe_learns_merges_and_handles_chinese(bpe):
    assert bpe.vocab_size == 300
    ids = bpe.encode("the cat")
    assert len(ids) < len("the cat")  # merges happened
    zh = "语言模型"
    assert bpe.decode(bpe.encode(zh)) == zh
    assert len(bpe.encode(zh)) < len(zh.encode("utf-8"))  # multi-byte characters merged
    assert "".join(bpe.tokenize("the cat")).replace("Ġ", " ") == "the cat"


def test_bpe_is_deterministic():
    a = BPETokenizer.train(TEXTS * 4, vocab_size=300)
    b = BPETokenizer.train(TEXTS * 4, vocab_size=300)
    assert a.to_dict() == b.to_dict()


def test_whitespace_bpe_and_unknowns():
    tok = BPETokenizer.train(TEXTS, vocab_size=100, pre_tokenizer="whitespace")
    assert tok.decode(tok.encode("the cat sat")) == "the cat sat"
    assert tok.encode("Q") == [tok.unk_id]
    strict = BPETokenizer.train(TEXTS, vocab_size=100, pre_tokenizer="whitespace", unk=None)
    with pytest.raises(ValueError, match=r"'Q' at position 4"):
        strict.encode("the Q")


def test_save_load_equality_all_kinds(tmp_path, bpe):
    for tok in (CharTokenizer.train(TEXTS, **BERT), WordTokenizer.train(TEXTS), bpe):
        path = tmp_path / f"{tok.kind}.json"
        tok.save(path)
        json.loads(path.read_text(encoding="utf-8"))  # plain JSON
        again = Tokenizer.load(path)
        assert type(again) is type(tok) and again == tok
        assert again.encode(TEXTS[2]) == tok.encode(TEXTS[2])
    with pytest.raises(ValueError, match="holds a BPETokenizer, not a CharTokenizer"):
        CharTokenizer.load(tmp_path / "bpe.json")
    (tmp_path / "x.json").write_text('{"type": "pickle"}')
    with pytest.raises(ValueError, match="not a saved tokenizer"):
        Tokenizer.load(tmp_path / "x.json")


# ---- bad arguments -------------------------------------------------------------------------
def test_bad_arguments():
    with pytest.raises(ValueError, match=r"vocab_size must be an int >= 260"):
        BPETokenizer.train(TEXTS, vocab_size=100)
    with pytest.raises(ValueError, match="pre_tokenizer"):
        BPETokenizer.train(TEXTS, vocab_size=300, pre_tokenizer="bytes")
    for train in (CharTokenizer.train, WordTokenizer.train):
        with pytest.raises(ValueError, match="texts must contain some"):
            train(["", "  \n"])
    with pytest.raises(ValueError, match="texts must contain some"):
        BPETokenizer.train("", vocab_size=300)
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        CharTokenizer.train(["ok", 3])
    with pytest.raises(ValueError, match="min_freq"):
        WordTokenizer.train(TEXTS, min_freq=0)
    with pytest.raises(ValueError, match="special tokens must be distinct"):
        CharTokenizer.train("abc", pad="<x>", unk="<x>")
    tok = CharTokenizer.train("abc")
    with pytest.raises(ValueError, match=r"id must be an int in \[0, 7\)"):
        tok.decode([7])
    with pytest.raises(ValueError, match="token 'z'"):
        tok.token_to_id("z")
    with pytest.raises(TypeError, match="text must be a str"):
        tok.encode(["a"])


def test_bpe_merges_in_order_first_is_most_frequent_pair():
    # Byte level: "ab" occurs 6 times, "Ġa" 5 times, "bc" 3 times: the first merge is (a, b).
    tok = BPETokenizer.train(["ab ab ab ab ab ab bc bc bc cd"], vocab_size=264, min_frequency=1)
    merges = tok.merges()
    assert merges[0] == ("a", "b")
    assert merges[1] == ("Ġ", "ab")
    assert all(isinstance(m, tuple) and len(m) == 2 for m in merges)
    # each merge adds exactly one token to the 4 specials + 256 byte symbols
    assert len(merges) == tok.vocab_size - len(tok.specials) - 256


def test_wordpiece_matches_transformers_bert_tokenizer(tmp_path):
    transformers = pytest.importorskip("transformers")
    from lmbook_utils import toyworld
    from lmbook_utils.tokenizers import WordPieceTokenizer

    text = toyworld.generate_corpus(n_chars=60_000, seed=0).text
    tok = WordPieceTokenizer.train(text.splitlines(), vocab_size=150)
    assert tok.special_ids == {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
    (tmp_path / "vocab.txt").write_text("\n".join(tok.vocab()) + "\n", encoding="utf-8")
    ref = transformers.BertTokenizer(str(tmp_path / "vocab.txt"), do_lower_case=True)
    for sentence in ["Alice saw a small rabbit in the garden.", "Grace gave Henry an orange!",
                     "Zebras danced quickly."]:  # the last one has words the corpus never had
        ids, segments = tok.encode_pair(sentence, "He slept.")
        want = ref(sentence, "He slept.")
        assert ids == want["input_ids"] and segments == want["token_type_ids"]
    assert any(t.startswith("##") for t in tok.tokenize("Zebras danced quickly."))
    tok.save(tmp_path / "wp.json")
    assert WordPieceTokenizer.load(tmp_path / "wp.json") == tok
    with pytest.raises(ValueError, match="vocab_size must be an int >="):
        WordPieceTokenizer.train(["abc def"], vocab_size=3)


def test_wordpiece_training_is_deterministic():
    from lmbook_utils import toyworld
    from lmbook_utils.tokenizers import WordPieceTokenizer

    texts = toyworld.generate_corpus(n_chars=80_000, seed=2).text.splitlines()
    first = [WordPieceTokenizer.train(texts, vocab_size=220).vocab() for _ in range(3)]
    assert first[0] == first[1] == first[2]
    # hand-checkable: "aa" is the most frequent pair, then the tie ("b", "##b") vs ("c", "##c") by spelling
    tok = WordPieceTokenizer.train(["aa aa aa bb bb cc cc"], vocab_size=5 + 6 + 2, min_frequency=1)
    assert tok.vocab()[-2:] == ["aa", "bb"]


def test_whitespace_bpe_is_deterministic_and_merges_by_hand():
    from lmbook_utils import toyworld

    texts = toyworld.generate_corpus(n_chars=60_000, seed=4).text.splitlines()
    vocabs = [BPETokenizer.train(texts, vocab_size=200, pre_tokenizer="whitespace")._itos for _ in range(3)]
    assert vocabs[0] == vocabs[1] == vocabs[2]
    # 4 specials + l ##o ##w ##e ##r; (l, ##o) and (##o, ##w) both occur 4 times: "##o" sorts
    # before "l", so ##ow is merged first, then (l, ##ow)
    tok = BPETokenizer.train(["low low low lower"], vocab_size=4 + 5 + 2, pre_tokenizer="whitespace",
                             min_frequency=1)
    assert tok._itos[-2:] == ["##ow", "low"]
    assert tok.tokenize("lower") == ["low", "##e", "##r"]
    # two more merges: (low, ##e) and (##e, ##r) tie at 1; "##e" sorts before "low"
    tok = BPETokenizer.train(["low low low lower"], vocab_size=4 + 5 + 4, pre_tokenizer="whitespace",
                             min_frequency=1)
    assert tok._itos[-2:] == ["##er", "lower"]


def test_wordpiece_encode_batch_pads_rows_of_encode_pair():
    from lmbook_utils.tokenizers import WordPieceTokenizer

    tok = WordPieceTokenizer.train(TEXTS, vocab_size=60, min_frequency=1)
    firsts, seconds = ["the cat sat", "the dog"], ["a cat", "the cat sat on the mat"]
    ids, seg = tok.encode_batch(firsts, seconds)
    for i in range(2):
        row, row_seg = tok.encode_pair(firsts[i], seconds[i])
        assert ids[i, :len(row)].tolist() == row and seg[i, :len(row)].tolist() == row_seg
        assert set(ids[i, len(row):].tolist()) <= {tok.pad_id} and set(seg[i, len(row):].tolist()) <= {0}
    single, seg1 = tok.encode_batch(["the cat"])
    assert single[0].tolist() == tok.encode_pair("the cat")[0] and seg1.sum() == 0
    with pytest.raises(ValueError, match="seconds must have one text"):
        tok.encode_batch(firsts, ["x"])


# ---- the package: modules, registry, files saved before the split --------------------------
# Written by lmbook_utils/tokenizers.py before it became a package (WordTokenizer.train(
# ["The cat sat.", "the cat ran!"], lowercase=True) and CharTokenizer.train("abc",
# extra_specials=["[MASK]"])): files saved then must load and save again unchanged.
OLD_WORD_JSON = """{"type": "word", "version": 1, "roles": {"pad": "<pad>", "unk": "<unk>", "bos": "<bos>",
 "eos": "<eos>"}, "extra_specials": [], "tokens": ["cat", "the", "!", ".", "ran", "sat"],
 "config": {"lowercase": true, "split": "lmbook_utils.tokenizers:split_words"}}"""
OLD_CHAR_JSON = """{"type": "char", "version": 1, "roles": {"pad": "<pad>", "unk": "<unk>", "bos": "<bos>",
 "eos": "<eos>"}, "extra_specials": ["[MASK]"], "tokens": ["a", "b", "c"], "config": {}}"""


def test_files_saved_before_the_package_split_still_load(tmp_path):
    (tmp_path / "word.json").write_text(OLD_WORD_JSON, encoding="utf-8")
    (tmp_path / "char.json").write_text(OLD_CHAR_JSON, encoding="utf-8")
    word = Tokenizer.load(tmp_path / "word.json")
    assert type(word) is WordTokenizer and word.split is split_words
    assert word == WordTokenizer.load(tmp_path / "word.json")
    assert word == WordTokenizer.train(["The cat sat.", "the cat ran!"], lowercase=True)
    assert word.encode("The cat ran.") == [5, 4, 8, 7]
    assert word.decode(word.encode("the cat sat.")) == "the cat sat."
    assert word.to_dict() == json.loads(OLD_WORD_JSON)  # saved again, the same file
    char = CharTokenizer.load(tmp_path / "char.json")
    assert char == CharTokenizer.train("abc", extra_specials=["[MASK]"])
    assert char.to_dict() == json.loads(OLD_CHAR_JSON)


def test_package_reexports_and_third_party_tokenizers():
    import sys

    import tokenizers as hf_tokenizers

    import lmbook_utils.tokenizers as package
    from lmbook_utils.tokenizers import _WORD, WordPieceTokenizer, _check_texts, _learn_merges  # noqa: F401

    assert set(package.__all__) <= set(dir(package))
    assert split_words.__module__ == "lmbook_utils.tokenizers"  # what saved WordTokenizers name
    # the Hugging Face library, not this package, is what `from tokenizers import ...` finds
    assert sys.modules["tokenizers"] is hf_tokenizers and hf_tokenizers is not package
    assert "lmbook_utils" not in hf_tokenizers.__file__
    tok = BPETokenizer.train(TEXTS, vocab_size=270)
    assert isinstance(tok.hf, hf_tokenizers.Tokenizer)


def test_modules_depend_one_way():
    import ast
    import importlib

    imported = {}
    for name in ("base", "simple", "subword"):
        module = importlib.import_module(f"lmbook_utils.tokenizers.{name}")
        tree = ast.parse(open(module.__file__, encoding="utf-8").read())
        imported[name] = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level}
    assert imported == {"base": set(), "simple": {"base"}, "subword": {"base"}}


def test_subclasses_register_their_kind(tmp_path):
    assert {k: c.__name__ for k, c in Tokenizer._kinds.items()} == {
        "char": "CharTokenizer", "word": "WordTokenizer", "bpe": "BPETokenizer",
        "wordpiece": "WordPieceTokenizer"}

    class Upper(CharTokenizer):  # no kind of its own: saves and loads as a CharTokenizer
        pass

    assert Upper.kind == "char" and Tokenizer._kinds["char"] is CharTokenizer
    assert "base" not in Tokenizer._kinds  # Tokenizer itself is no kind a file can hold
    with pytest.raises(TypeError, match="kind 'char' is already the kind of CharTokenizer"):
        type("Clash", (CharTokenizer,), {"kind": "char"})

    class Reversed(CharTokenizer):
        kind = "test-reversed"

        def _split(self, text):
            return list(text[::-1])

    try:
        tok = Reversed.train("abc")
        tok.save(tmp_path / "r.json")
        again = Tokenizer.load(tmp_path / "r.json")
        assert type(again) is Reversed and again == tok and again.tokenize("ab") == ["b", "a"]
        with pytest.raises(ValueError, match="holds a Reversed, not a CharTokenizer"):
            CharTokenizer.load(tmp_path / "r.json")
    finally:
        del Tokenizer._kinds["test-reversed"]


def test_tokens_of_a_generated_row_stop_at_the_end_token_and_skip_padding():
    tok = WordTokenizer.train(["the cat sat ."])
    row = torch.tensor([tok.bos_id] + tok.encode("the cat") + [tok.eos_id] + tok.encode("sat") + [tok.pad_id])
    assert tok.tokens_of(row, until=tok.eos_id, skip=(tok.bos_id, tok.pad_id)) == ["the", "cat"]
    assert tok.tokens_of(row.tolist(), skip=(tok.bos_id, tok.pad_id, tok.eos_id)) == ["the", "cat", "sat"]
    assert tok.tokens_of([tok.eos_id], until=tok.eos_id) == []
    with pytest.raises(ValueError, match="id must be an int"):
        tok.tokens_of([tok.vocab_size])
