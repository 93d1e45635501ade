"""How far back a language model carries information: pronouns that must agree with a name.

Introduced in chapter 02_neural_lm, which scores n-gram, window and recurrent models with it.
The toy world writes "he"/"him" only when exactly one man has been named so
far in the story, "she"/"her" only when exactly one woman has
(`toyworld.grammar`). So at every personal pronoun whose other-gender form the grammar
forbids at that point, a model that remembers the story's cast gives the right form the
higher probability; a model that forgot it can only guess. `distance` is the number of
sentence ends between the pronoun and the latest mention of its name, the dependency's
length, which the grammar, not the model, decides.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .toyworld.grammar import PEOPLE

__all__ = ["PronounCase", "pronoun_cases", "ngram_margins", "model_margins", "accuracy_by_distance"]

_GENDER = {name.lower(): gender for name, _, gender in PEOPLE}
_PRONOUNS = {"he": ("m", "she"), "she": ("f", "he"), "him": ("m", "her"), "her": ("f", "him")}


@dataclass(frozen=True)
class PronounCase:
    """One pronoun of one story: the right form, the forbidden other-gender form, and how far
    back (in sentences and in tokens) its name was last mentioned."""

    tokens: tuple[str, ...]  # the whole story, toyworld.tokenize_en units
    position: int  # index of the pronoun in tokens
    right: str  # the pronoun the grammar wrote
    wrong: str  # the other gender's form, impossible at this point of the story
    distance: int  # sentence ends between the name's latest mention and the pronoun (0: same sentence)
    token_distance: int  # position - the name's latest position


def pronoun_cases(stories: Sequence[Sequence[str]], first_only: bool = True) -> list[PronounCase]:
    """Every personal pronoun in the stories whose other-gender form the grammar forbids there
    (no person, or more than one, of that gender named so far). The name a pronoun refers to is
    the only one of its gender so far; a story where that is not so is not toy-world text.
    first_only: keep only a name's first pronoun after its latest mention, so that no nearer
    pronoun of the same person carries the gender forward and `distance` is the whole way."""
    if isinstance(stories, (str, bytes)) or not isinstance(stories, Sequence):
        raise ValueError(f"stories must be a list of token lists, got {type(stories).__name__}")
    cases = []
    for k, story in enumerate(stories):
        if isinstance(story, str) or not all(isinstance(t, str) for t in story):
            raise ValueError(f"stories[{k}] must be a list of tokens (str), got {story!r:.60}")
        tokens, last, since = tuple(story), {}, set()
        for i, tok in enumerate(tokens):
            if tok in _GENDER:
                last[tok] = i
                since.discard(tok)
            elif tok in _PRONOUNS:
                gender, wrong = _PRONOUNS[tok]
                same = [w for w in last if _GENDER[w] == gender]
                if len(same) != 1:
                    raise ValueError(f"stories[{k}] is not toy-world text: {tok!r} at {i} with "
                                     f"{len(same)} earlier names of its gender")
                j, first = last[same[0]], same[0] not in since
                since.add(same[0])
                other = sum(1 for w in last if _GENDER[w] != gender)
                if other == 1 or (first_only and not first):  # other == 1: both forms possible, no test
                    continue
                cases.append(PronounCase(tokens, i, tok, wrong, tokens[j:i].count("."), i - j))
    return cases


def ngram_margins(model, cases: Sequence[PronounCase]) -> list[float]:
    """log2 p(right | context) - log2 p(wrong | context) under an `ngram.NGramLM`."""
    out = []
    for case in cases:
        context = list(case.tokens[:case.position])
        p_right, p_wrong = model.prob(case.right, context), model.prob(case.wrong, context)
        out.append(_log2_ratio(p_right, p_wrong))
    return out


def _log2_ratio(a: float, b: float) -> float:
    if a == 0 and b == 0:
        return 0.0
    if b == 0:
        return math.inf
    if a == 0:
        return -math.inf
    return math.log2(a) - math.log2(b)


@torch.no_grad()
def model_margins(model: torch.nn.Module, token_to_id: Callable[[str], int], bos_id: int,
                  cases: Sequence[PronounCase], batch_size: int = 256) -> list[float]:
    """log2 p(right | story so far) - log2 p(wrong | ...) under a left-to-right model whose
    input is <bos> followed by the story's tokens (`forward(input_ids)` -> `.logits`)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[float] = []
    try:
        for start in range(0, len(cases), batch_size):
            chunk = cases[start:start + batch_size]
            rows = [[bos_id] + [token_to_id(t) for t in c.tokens[:c.position]] for c in chunk]
            width = max(map(len, rows))
            ids = torch.tensor([r + [r[-1]] * (width - len(r)) for r in rows], device=device)  # right padding
            logp = model(ids).logits.float().log_softmax(-1)
            at = torch.tensor([len(r) - 1 for r in rows], device=device)
            last = logp[torch.arange(len(rows), device=device), at]
            right = torch.tensor([token_to_id(c.right) for c in chunk], device=device)
            wrong = torch.tensor([token_to_id(c.wrong) for c in chunk], device=device)
            margin = (last.gather(1, right[:, None]) - last.gather(1, wrong[:, None]))[:, 0] / math.log(2)
            out.extend(margin.cpu().tolist())
    finally:
        model.train(was_training)
    return out


def accuracy_by_distance(cases: Sequence[PronounCase], margins: Sequence[float],
                         max_distance: int | None = None) -> dict[int, tuple[float, int]]:
    """{distance: (share of cases with margin > 0, number of cases)}; distances above
    max_distance are pooled into max_distance. A tie (margin 0) counts as half right."""
    if len(cases) != len(margins):
        raise ValueError(f"margins must have one entry per case ({len(cases)}), got {len(margins)}")
    if max_distance is not None and (isinstance(max_distance, bool) or not isinstance(max_distance, int)
                                     or max_distance < 0):
        raise ValueError(f"max_distance must be an int >= 0 or None, got {max_distance!r}")
    score: dict[int, list[float]] = {}
    for case, m in zip(cases, margins):
        d = case.distance if max_distance is None else min(case.distance, max_distance)
        score.setdefault(d, []).append(1.0 if m > 0 else 0.5 if m == 0 else 0.0)
    return {d: (sum(v) / len(v), len(v)) for d, v in sorted(score.items())}
