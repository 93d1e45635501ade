"""tagging: BIO tags from spans, their alignment to WordPiece pieces, read back per word, bad input."""

from __future__ import annotations

import pytest

from lmbook_utils.tagging import bio_labels, bio_tags, encode_tagged, lookup_tags, predict_word_tags, word_predictions
from lmbook_utils.tokenizers import WordPieceTokenizer


def test_bio_tags_from_spans_written_out():
    assert bio_tags(6, [(0, 1, "PERSON"), (3, 5, "PLACE")]) == ["B-PERSON", "O", "O", "B-PLACE", "I-PLACE", "O"]
    assert bio_tags(2, []) == ["O", "O"]
    assert bio_labels(["PER", "LOC"]) == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def test_a_split_word_is_labeled_on_its_first_piece_only():
    tok = WordPieceTokenizer.train(["alice went to the station", "bob went to the park"] * 20, vocab_size=60)
    words = ["alice", "went", "to", "the", "bobalice"]  # "bobalice" is not a word of the vocabulary: pieces
    tags = ["B-PER", "O", "O", "O", "B-LOC"]
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    ids, labels = encode_tagged(tok, words, tags, {t: i for i, t in enumerate(names)})
    pieces = tok.encode("bobalice")
    assert len(pieces) > 1
    assert ids == [tok.bos_id] + [i for w in words for i in tok.encode(w)] + [tok.eos_id]
    assert labels == [-100, 1, 0, 0, 0, 3] + [-100] * (len(pieces) - 1) + [-100]
    # reading a prediction back gives one tag per word, from each first piece
    assert word_predictions(labels[:1] + [1, 0, 0, 0, 3] + [4] * len(pieces), labels, names) == tags


@pytest.mark.parametrize("call, message", [
    (lambda: bio_tags(3, [(2, 4, "X")]), "start < end <= n_words"),
    (lambda: bio_tags(3, [(0, 2, "X"), (1, 3, "Y")]), "overlaps"),
    (lambda: bio_tags(-1, []), "n_words must be"),
    (lambda: bio_tags(3, [(0, 1)]), "each span must be"),
    (lambda: word_predictions([1, 2], [0], ["O"]), "same length"),
])
def test_bad_input_names_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_encode_tagged_rejects_unknown_tags_and_mismatched_lengths():
    tok = WordPieceTokenizer.train(["a b c"] * 10, vocab_size=30)
    with pytest.raises(ValueError, match="not in tag_ids"):
        encode_tagged(tok, ["a"], ["B-X"], {"O": 0})
    with pytest.raises(ValueError, match="same length"):
        encode_tagged(tok, ["a", "b"], ["O"], {"O": 0})


def test_lookup_tags_uses_the_training_tags_and_o_for_unseen_words():
    training = [(["bob", "saw", "a", "dog"], ["B-PER", "O", "O", "B-ANI"]), (["a", "dog", "ran"], ["O", "B-ANI", "O"])]
    assert lookup_tags(training, ["dog", "saw", "carol"]) == ["B-ANI", "O", "O"]


def test_predict_word_tags_reads_each_words_first_piece():
    import torch

    class Fixed(torch.nn.Module):  # a "model" whose predicted id at token t is t % 3
        def forward(self, input_ids, attention_mask=None):
            b, t = input_ids.shape
            logits = torch.nn.functional.one_hot(torch.arange(t) % 3, 3).float().expand(b, t, 3)
            return type("Out", (), {"logits": logits})()

    ids = torch.tensor([[2, 7, 8, 9, 3, 0]])
    labels = torch.tensor([[-100, 1, -100, 0, -100, -100]])  # words start at tokens 1 and 3
    assert predict_word_tags(Fixed(), ids, labels, ["O", "B-X", "I-X"], pad_id=0) == [["B-X", "O"]]
