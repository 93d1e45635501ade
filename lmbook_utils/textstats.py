"""Measures of generated text: how varied it is and whether it loops.

Introduced in chapter 06_gpt, to compare decoding strategies the way Holtzman et al. (2020)
do: distinct n-grams (Li et al. 2016) for diversity, and the share of texts caught in a loop
for degeneration. Texts are token lists; compute the same numbers on human text as the
reference.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["distinct_n", "sentences", "repeats_a_sentence", "repetition_share"]


def _check_texts(texts: object) -> list[Sequence[str]]:
    if isinstance(texts, str) or not isinstance(texts, Sequence) or any(
            isinstance(t, str) or not isinstance(t, Sequence) for t in texts):
        raise ValueError("texts must be a list of token lists, e.g. [['a', 'cat', '.']]")
    return list(texts)


def distinct_n(texts: Sequence[Sequence[str]], n: int = 2) -> float:
    """Distinct n-grams / all n-grams, pooled over the texts (Li et al. 2016's distinct-n).

    Introduced in chapter 06_gpt. 1.0: no n-gram is ever repeated; near 0: the same few
    n-grams again and again. Texts shorter than n add nothing."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    grams = [tuple(t[i:i + n]) for t in _check_texts(texts) for i in range(len(t) - n + 1)]
    if not grams:
        raise ValueError(f"texts hold no {n}-gram: every text is shorter than {n} tokens")
    return len(set(grams)) / len(grams)


def sentences(tokens: Sequence[str], end: str = ".") -> list[tuple[str, ...]]:
    """The sentences of a token list, each ending with `end` (an unfinished tail is dropped).

    Introduced in chapter 06_gpt."""
    out, current = [], []
    for tok in tokens:
        current.append(tok)
        if tok == end:
            out.append(tuple(current))
            current = []
    return out


def repeats_a_sentence(tokens: Sequence[str], end: str = ".") -> bool:
    """Does some sentence occur twice? The toy world's version of a repetition loop.

    Introduced in chapter 06_gpt."""
    found = sentences(tokens, end)
    return len(set(found)) < len(found)


def repetition_share(texts: Sequence[Sequence[str]], end: str = ".") -> float:
    """Share of texts that repeat a sentence. Introduced in chapter 06_gpt."""
    texts = _check_texts(texts)
    if not texts:
        raise ValueError("texts must hold at least one text")
    return sum(repeats_a_sentence(t, end) for t in texts) / len(texts)
