"""Sequence labeling: entity spans as BIO tags, aligned to a subword tokenizer's pieces.

Introduced in chapter 07_xlnet (entity tagging with XLNet and BERT). A span (start, end, label)
covers words start..end-1; in BIO (IOB2) its first word is tagged B-label, the others I-label,
and words outside every span O. A word the tokenizer splits into pieces gets its tag on the first
piece and `ignore_index` on the others (Hugging Face's token-classification convention), so
that predictions are read once per word and scored at the entity level (`seqeval`, strict mode).
"""

from __future__ import annotations

from collections.abc import Sequence

from .modeling import IGNORE_INDEX

__all__ = ["bio_tags", "bio_labels", "encode_tagged", "word_predictions", "predict_word_tags", "lookup_tags"]


def bio_tags(n_words: int, spans: Sequence[tuple[int, int, str]]) -> list[str]:
    """The BIO tag of each of n_words words given (start, end, label) spans, end exclusive."""
    if isinstance(n_words, bool) or not isinstance(n_words, int) or n_words < 0:
        raise ValueError(f"n_words must be an int >= 0, got {n_words!r}")
    tags = ["O"] * n_words
    for span in spans:
        if not (isinstance(span, (tuple, list)) and len(span) == 3):
            raise ValueError(f"each span must be (start, end, label), got {span!r}")
        start, end, label = span
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= n_words):
            raise ValueError(f"span {span!r} must have 0 <= start < end <= n_words={n_words}")
        if any(t != "O" for t in tags[start:end]):
            raise ValueError(f"span {span!r} overlaps another span")
        tags[start:end] = [f"B-{label}"] + [f"I-{label}"] * (end - start - 1)
    return tags


def bio_labels(entity_labels: Sequence[str]) -> list[str]:
    """Every BIO tag for the given entity labels: O, then B- and I- of each, in that order."""
    return ["O"] + [f"{p}-{label}" for label in entity_labels for p in ("B", "I")]


def encode_tagged(tokenizer, words: Sequence[str], tags: Sequence[str], tag_ids: dict[str, int],
                  ignore_index: int = IGNORE_INDEX) -> tuple[list[int], list[int]]:
    """([CLS] pieces [SEP] ids, one label per id): each word's tag id on its first piece,
    ignore_index on its other pieces and on the special tokens. `tokenizer` is a WordPiece
    tokenizer (bos/eos are [CLS]/[SEP])."""
    if len(words) != len(tags):
        raise ValueError(f"words and tags must have the same length, got {len(words)} and {len(tags)}")
    unknown = sorted(set(tags) - set(tag_ids))
    if unknown:
        raise ValueError(f"tags {unknown} are not in tag_ids (known: {sorted(tag_ids)})")
    ids, labels = [tokenizer.bos_id], [ignore_index]
    for word, tag in zip(words, tags):
        pieces = tokenizer.encode(word)
        if not pieces:
            raise ValueError(f"the tokenizer gives no piece for the word {word!r}")
        ids += pieces
        labels += [tag_ids[tag]] + [ignore_index] * (len(pieces) - 1)
    return ids + [tokenizer.eos_id], labels + [ignore_index]


def word_predictions(predicted: Sequence[int], labels: Sequence[int], tag_names: Sequence[str],
                     ignore_index: int = IGNORE_INDEX) -> list[str]:
    """The predicted tag name of each word: `predicted` (one id per token) read where `labels`
    is not ignore_index, i.e. at each word's first piece."""
    if len(predicted) != len(labels):
        raise ValueError(f"predicted and labels must have the same length, got {len(predicted)} and {len(labels)}")
    return [tag_names[int(p)] for p, y in zip(predicted, labels) if int(y) != ignore_index]


def predict_word_tags(model, input_ids, labels, tag_names: Sequence[str], pad_id: int) -> list[list[str]]:
    """Each sentence's predicted tag names, one per word: a token classifier (BERT's or XLNet's)
    run in eval mode on (batch, T) input_ids, read at the first piece of each word (where
    `labels` is not ignore_index), ready for `seqeval`."""
    import torch

    with torch.no_grad():
        pred = model.eval()(input_ids, attention_mask=input_ids != pad_id).logits.argmax(-1).tolist()
    return [word_predictions(p, y, tag_names) for p, y in zip(pred, labels.tolist())]


def lookup_tags(training: Sequence[tuple[Sequence[str], Sequence[str]]], words: Sequence[str]) -> list[str]:
    """The rule baseline: each word's tag as the (words, tags) training sentences tag it (the last
    one wins), O for a word they never show."""
    memory = {w: t for ws, ts in training for w, t in zip(ws, ts)}
    return [memory.get(w, "O") for w in words]
