"""How the toy-world grammar reads: exact probabilities of sentences and stories by parsing.

Introduced in chapter 01_ngram. The grammar is unambiguous, so parsing a text finds its one
derivation and p(text) is the product of the choices made: `log_prob` for a standalone
sentence (or any phrase), `story_log_prob` for a story, -inf when the grammar cannot write it.
`grammar_shares` scores a model's samples by the same test.
"""

from __future__ import annotations

import math

from .grammar import RULES, SENTENCE_SYMBOLS, STORY_LENGTHS, _SLOTS, detokenize_en, tokenize_en
from .sampling import _slot_all

__all__ = ["log_prob", "is_grammatical", "story_log_prob", "grammar_shares"]


def _parse(sym: str, seq, pos: int, ctx, lang: str, memo: dict) -> list:
    """All ways `sym` can cover seq[pos:end]: a list of (end, log p, ctx)."""
    key = (sym, pos, ctx)
    if key in memo:
        return memo[key]
    out = []
    if ctx is not None and sym in _SLOTS:
        for p, en, zh, _, ents, used, _ in _slot_all(sym, *ctx):
            t = en if lang == "en" else zh
            if seq[pos:pos + len(t)] == t:
                out.append((pos + len(t), math.log(p), (ents, used)))
    else:
        for rule in RULES[sym]:
            states = [(pos, math.log(rule.prob), ctx)]
            for kind, v in (rule.en if lang == "en" else rule.zh):
                nxt = []
                for q, lp, c in states:
                    if kind == "T":
                        if seq[q:q + len(v)] == v:
                            nxt.append((q + len(v), lp, c))
                    else:
                        nxt += [(e, lp + lp2, c2) for e, lp2, c2 in _parse(v, seq, q, c, lang, memo)]
                states = nxt
                if not states:
                    break
            out += states
    memo[key] = out
    return out


def _logsumexp(xs: list[float]) -> float:
    if not xs:
        return -math.inf
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def _check_lang(lang: object) -> None:
    if lang not in ("en", "zh"):
        raise ValueError(f"lang must be 'en' or 'zh', got {lang!r}")


def _sentence_parses(text: str, lang: str, start: str) -> list[float]:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    _check_lang(lang)
    if start not in RULES:
        raise ValueError(f"start must be a grammar symbol such as {SENTENCE_SYMBOLS}, got {start!r}")
    if lang == "en":
        seq = tuple(tokenize_en(text))
        if start in SENTENCE_SYMBOLS and detokenize_en(seq) != text:
            return []  # not written the way the grammar writes it (case, spacing)
    else:
        seq = text
    return [lp for end, lp, _ in _parse(start, seq, 0, None, lang, {}) if end == len(seq)]


def log_prob(text: str, lang: str = "en", start: str = "S") -> float:
    """Exact natural-log probability of one standalone sentence, -inf if ungrammatical.

    `start` picks the process: "S" (narrative sentence), "REVIEW", "INTENT", or any symbol of
    `RULES` to score a phrase (then only the tokens are compared). Introduced in chapter 01_ngram."""
    return _logsumexp(_sentence_parses(text, lang, start))


def is_grammatical(sentence: str, lang: str = "en", start: str = "S") -> bool:
    """Can the grammar write exactly this sentence? Introduced in chapter 01_ngram."""
    return log_prob(sentence, lang, start) > -math.inf


def _story_parses(text: str, lang: str) -> list[float]:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    _check_lang(lang)
    if lang == "en":
        toks = tuple(tokenize_en(text))
        if detokenize_en(toks) != text:
            return []
        cuts = [i + 1 for i, t in enumerate(toks) if t == "."]
        sents = [toks[a:b] for a, b in zip([0] + cuts, cuts)]
        if not cuts or cuts[-1] != len(toks):
            return []
    else:
        sents = [s + "。" for s in text.split("。")[:-1]]
        if "".join(sents) != text:
            return []
    if len(sents) not in STORY_LENGTHS:
        return []
    beams = [(math.log(1 / len(STORY_LENGTHS)), ())]
    for seq in sents:
        beams = [(lp + lp2, c[0]) for lp, ents in beams
                 for end, lp2, c in _parse("S", seq, 0, (ents, ()), lang, {}) if end == len(seq)]
    return [lp for lp, _ in beams]


def story_log_prob(text: str, lang: str = "en") -> float:
    """Exact log-probability of a story (one line) under the story process, -inf if impossible.

    Introduced in chapter 01_ngram."""
    return _logsumexp(_story_parses(text, lang))


def grammar_shares(stories: list[list[str]]) -> tuple[float, float]:
    """(share of sentences the grammar parses, share of stories it could have written), for
    stories given as token lists (as a model samples them). Introduced in chapter 01_ngram.

    Sentences end with "."; an unfinished last sentence is not counted."""
    if isinstance(stories, str) or not stories or any(isinstance(t, str) for t in stories):
        raise ValueError("stories must be a non-empty list of token lists")
    from ..textstats import sentences as split_sentences

    sentences = [detokenize_en(list(s)) for tokens in stories for s in split_sentences(tokens)]
    ok_sentence = sum(is_grammatical(s) for s in sentences) / len(sentences) if sentences else 0.0
    ok_story = sum(story_log_prob(detokenize_en(list(t))) > -math.inf for t in stories) / len(stories)
    return ok_sentence, ok_story
