"""Labeled views of the toy world: examples for the tasks the chapters fine-tune on.

Sentiment, intents, entity spans, question answering, next-sentence prediction, translation,
pronoun coreference and gender agreement. The grammar writes each example, so each label is
exact: it is read off the derivation (or, for coreference and agreement, off the text by the
grammar's own rule), never annotated. Each generator takes `n` and a `seed`; the same seed
gives the same examples.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from .corpus import _check_int, _to_story
from .grammar import ENTITY_LABELS, PEOPLE, detokenize_en, tokenize_en
from .parsing import story_log_prob
from .sampling import _expand, _sample_story

__all__ = ["SentimentExample", "IntentExample", "EntityExample", "QAExample", "NSPExample", "TranslationPair",
           "CoreferenceExample", "AgreementExample", "sentiment_examples", "intent_examples", "entity_examples",
           "qa_examples", "nsp_examples", "translation_pairs", "coreference_examples", "agreement_examples"]


@dataclass(frozen=True)
class SentimentExample:
    """Introduced in chapter 05_bert."""
    en: str
    zh: str
    label: str  # "positive" or "negative"


@dataclass(frozen=True)
class IntentExample:
    """A customer-service utterance and its intent (no chapter uses it yet)."""
    en: str
    zh: str
    intent: str  # greeting, order_status, refund, complaint, thanks


@dataclass(frozen=True)
class EntityExample:
    """A sentence and its labeled token spans [start, end) of tokenize_en(text) (no chapter uses it yet)."""
    text: str
    tokens: tuple[str, ...]
    spans: tuple[tuple[int, int, str], ...]

    @property
    def bio_tags(self) -> list[str]:
        tags = ["O"] * len(self.tokens)
        for s, e, label in self.spans:
            tags[s:e] = [f"B-{label}"] + [f"I-{label}"] * (e - s - 1)
        return tags


@dataclass(frozen=True)
class QAExample:
    """context[answer_start:answer_end] == answer (no chapter uses it yet)."""
    context: str
    question: str
    answer: str
    answer_start: int
    answer_end: int


@dataclass(frozen=True)
class NSPExample:
    """Introduced in chapter 05_bert."""
    first: str
    second: str
    is_next: bool


@dataclass(frozen=True)
class TranslationPair:
    """Introduced in chapter 04_transformer."""
    en: str
    zh: str


@dataclass(frozen=True)
class CoreferenceExample:
    """A story and, for each he/him/she/her, (pronoun index, antecedent index, name) in
    `tokens` (tokenize_en of text); the antecedent is the name's latest mention before it.

    Introduced in chapter 03_attention."""
    text: str
    tokens: tuple[str, ...]
    links: tuple[tuple[int, int, str], ...]


@dataclass(frozen=True)
class AgreementExample:
    """A story (`tokens`, tokenize_en of `text`) and whether it is possible (1) or has one
    pronoun's gender flipped so that the grammar could not have written it (0).

    Introduced in chapter 06_gpt."""
    text: str
    tokens: tuple[str, ...]
    label: int


def _polarity(tags: list[str]) -> int:
    pol = math.prod(int(t[4:]) for t in tags if t.startswith("pol="))
    return -pol if "not" in tags else pol


def sentiment_examples(n: int = 1000, seed: int = 0, reviews: bool = True) -> list[SentimentExample]:
    """Balanced labels (each 50%): narrative feelings/attitudes (with "not") and reviews.

    Introduced in chapter 05_bert. With reviews (the default) most examples are reviews: a draw
    picks a review or a story sentence with equal odds, and most story sentences carry no
    sentiment and are drawn again. reviews=False keeps the story sentences only, whose words
    are the corpus's own."""
    _check_int(n, "n", 1)
    if not isinstance(reviews, bool):
        raise ValueError(f"reviews must be True or False, got {reviews!r}")
    rng, out = random.Random(_check_int(seed, "seed", 0)), []
    while len(out) < n:
        want = 1 if rng.random() < 0.5 else -1
        while True:
            review = rng.random() < 0.5 if reviews else False
            en, zh, _, _, tags, _ = _expand("REVIEW" if review else "S", rng, None)
            if _polarity(tags) == want and any(t.startswith("pol=") for t in tags):
                break
        out.append(SentimentExample(detokenize_en(en), zh, "positive" if want > 0 else "negative"))
    return out


def intent_examples(n: int = 1000, seed: int = 0) -> list[IntentExample]:
    """Customer-service utterances, five intents (uniform)."""
    _check_int(n, "n", 1)
    rng, out = random.Random(_check_int(seed, "seed", 0)), []
    for _ in range(n):
        en, zh, _, _, tags, _ = _expand("INTENT", rng, None)
        out.append(IntentExample(detokenize_en(en), zh, tags[0][len("intent="):]))
    return out


def entity_examples(n: int = 1000, seed: int = 0) -> list[EntityExample]:
    """Standalone sentences with PERSON/ANIMAL/OBJECT/PLACE spans (heads only; pronouns untagged)."""
    _check_int(n, "n", 1)
    rng, out = random.Random(_check_int(seed, "seed", 0)), []
    for _ in range(n):
        en, _, _, marks, _, _ = _expand("S", rng, None)
        spans = tuple(sorted((m[1], m[2], m[0]) for m in marks if m[0] in ENTITY_LABELS))
        out.append(EntityExample(detokenize_en(en), tuple(en), spans))
    return out


_QUESTIONS = {"go": "Where did {} go?", "eat": "What did {} eat?", "read": "What did {} read?"}


def qa_examples(n: int = 1000, seed: int = 0) -> list[QAExample]:
    """A story, "Where did X go?" / "What did X eat/read?", and the answer's character span.

    The answer to "what" is the entity's first mention ("a fresh apple"), even when the
    event says "it": answering needs coreference across sentences."""
    return [q for *_, q in _qa_draws(n, seed)]


def _qa_draws(n: int, seed: int) -> list[tuple]:
    """(story, kind, subject, answer's mark, QAExample) of each example: one stream of draws,
    shared with `app_views.qa_examples_zh` so that its Chinese examples are these, item by item."""
    _check_int(n, "n", 1)
    rng, out = random.Random(_check_int(seed, "seed", 0)), []
    while len(out) < n:
        d = _sample_story(rng)
        first = {}
        for m in d["marks"]:
            if m[0] == "REF":
                first.setdefault(m[3], m)
        kinds = [(k, subj) for k, subj, _ in d["events"]]
        cands = [(k, subj, tgt) for k, subj, tgt in d["events"]
                 if d["ents"][subj][0] == "person" and kinds.count((k, subj)) == 1]
        if not cands:
            continue
        kind, subj, tgt = cands[int(rng.random() * len(cands))]
        mark = tgt[0] if kind == "go" else first[tgt[0][3]]
        s, e = mark[1], mark[2]
        a, b = d["offsets"][s], d["offsets"][e - 1] + len(d["tokens"][e - 1])
        name = d["ents"][subj][1].capitalize()
        out.append((d, kind, subj, mark, QAExample(d["text"], _QUESTIONS[kind].format(name), d["text"][a:b], a, b)))
    return out


def nsp_examples(n: int = 1000, seed: int = 0, story_start: bool = False) -> list[NSPExample]:
    """Sentence pairs: 50% the true next sentence, 50% a sentence from another story.

    With story_start=True the first sentence is always a story's first one (so everything the
    second may refer back to is in it), and a random second sentence is a later sentence of
    another story, never a first one. Introduced in chapter 05_bert."""
    _check_int(n, "n", 1)
    rng = random.Random(_check_int(seed, "seed", 0))
    stories = [_to_story(_sample_story(rng)) for _ in range(n + 1)]
    out = []
    for k in range(n):
        sents = stories[k].sentences_en
        i = 0 if story_start else int(rng.random() * (len(sents) - 1))
        if rng.random() < 0.5:
            out.append(NSPExample(sents[i], sents[i + 1], True))
        else:
            j = (k + 1 + int(rng.random() * n)) % (n + 1)  # any story but k
            other = stories[j].sentences_en
            lo = 1 if story_start else 0
            out.append(NSPExample(sents[i], other[lo + int(rng.random() * (len(other) - lo))], False))
    return out


def translation_pairs(n: int = 1000, seed: int = 0) -> list[TranslationPair]:
    """(English, Chinese): 70% narrative sentences, 15% reviews, 15% customer-service turns.

    Introduced in chapter 04_transformer."""
    _check_int(n, "n", 1)
    rng, out = random.Random(_check_int(seed, "seed", 0)), []
    for _ in range(n):
        u = rng.random()
        en, zh, _, _, _, _ = _expand("S" if u < 0.7 else "REVIEW" if u < 0.85 else "INTENT", rng, None)
        out.append(TranslationPair(detokenize_en(en), zh))
    return out


_GENDER = {e.lower(): g for e, _, g in PEOPLE}
_PRONOUN_GENDER = {"he": "m", "him": "m", "she": "f", "her": "f"}


def coreference_examples(n: int = 1000, seed: int = 0) -> list[CoreferenceExample]:
    """Stories with at least one personal pronoun, each linked to the name it refers to.

    Introduced in chapter 03_attention. The grammar says "he"/"she" only when exactly one
    person of that gender has been mentioned so far, so the link is read off the text exactly:
    the name of that gender before the pronoun. Stories without such a pronoun are skipped.
    """
    _check_int(n, "n", 1)
    rng, out = random.Random(_check_int(seed, "seed", 0)), []
    while len(out) < n:
        story = _to_story(_sample_story(rng))
        toks = tuple(tokenize_en(story.en))
        last: dict[str, int] = {}
        links = []
        for i, tok in enumerate(toks):
            if tok in _PRONOUN_GENDER:
                names = [w for w in last if _GENDER[w] == _PRONOUN_GENDER[tok]]
                if len(names) != 1:  # the grammar never writes this; fail loudly if it did
                    raise AssertionError(f"pronoun {tok!r} at {i} in {story.en!r} has {names}")
                links.append((i, last[names[0]], names[0]))
            elif tok in _GENDER:
                last[tok] = i
        if links:
            out.append(CoreferenceExample(story.en, toks, tuple(links)))
    return out


_FLIP = {"he": "she", "she": "he", "him": "her", "her": "him"}


def agreement_examples(n: int = 1000, seed: int = 0) -> list[AgreementExample]:
    """Stories with a personal pronoun, half of them broken: one he/she/him/her turned into
    the other gender where that makes the story impossible (story_log_prob is -inf).

    Introduced in chapter 06_gpt. Telling them apart needs the story's cast: which names,
    of which gender, came before the pronoun. Each story is kept as is with probability 1/2;
    otherwise a uniformly chosen pronoun is flipped, and the story is skipped when the flip
    happens to leave it possible (another person of that gender was the only one so far)."""
    _check_int(n, "n", 1)
    rng, out = random.Random(_check_int(seed, "seed", 0)), []
    while len(out) < n:
        story = _to_story(_sample_story(rng))
        toks = tokenize_en(story.en)
        where = [i for i, t in enumerate(toks) if t in _FLIP]
        if not where:
            continue
        if rng.random() < 0.5:
            out.append(AgreementExample(story.en, tuple(toks), 1))
            continue
        i = rng.choice(where)
        broken = toks[:i] + [_FLIP[toks[i]]] + toks[i + 1:]
        text = detokenize_en(broken)
        if story_log_prob(text) == -math.inf:
            out.append(AgreementExample(text, tuple(broken), 0))
    return out
