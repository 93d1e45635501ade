"""Task views for the coming chapter 09 (applications), each with exact gold from the grammar.

Also chapter 08's Chinese question answering (`qa_examples_zh`): `views.qa_examples` in Chinese.

`views` has the fine-tuning tasks; these are what an application measures: facts as (subject,
relation, object) triples and a knowledge graph for link prediction (TransE), an FAQ whose
answers carry the id of their story and fact (exact recall@k of a retriever), what each person
is said to like or hate (a recommender's user x item matrix), intents with one class held out of
training (out-of-scope detection), and stories paired with their polarity-flipped twin (style
transfer). Labels come from the story's one derivation, found by parsing it with the grammar
(`_derive`), never from a model. `views` and `corpus` are called, not changed (qa_examples only
shares its draws with qa_examples_zh): their examples and random streams are the same as before,
as the tests check against hashes recorded before.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

from .corpus import Story, _check_int, _to_story, generate_stories
from .grammar import (ANIMAL_ACTIONS, ATTITUDES, FEELINGS, PEOPLE, PERSON_ACTIONS, PLACES, RULES, SENTENCE_RULES,
                      STORY_LENGTHS, _NAME_ZH, _NOUN, _SLOTS, detokenize_en, tokenize_en)
from .sampling import _sample_story, _slot_all
from .views import IntentExample, QAExample, _qa_draws, intent_examples, qa_examples

__all__ = ["RELATIONS", "TripleExample", "KnowledgeGraph", "FAQPair", "PreferenceProfiles", "OutOfScopeSplit",
           "StylePair", "QAExampleZh", "relation_triples", "triple_examples", "knowledge_graph", "faq_pairs",
           "preference_profiles", "out_of_scope_intents", "style_pairs", "qa_examples_zh"]

# Every relation a narrative sentence states, by rule ("did": an intransitive action, its object
# the verb; "was_at": "X saw Y in the park" says where X was, as the Chinese 在公园里看见了 makes plain).
RELATIONS = ("did", "went_to", "ate", "read", "found", "lost", "saw", "was_at", "liked", "loved", "disliked",
             "hated", "gave", "gave_to", "received", "felt", "not_felt")
_TEMPLATE = {rule: tmpl for rule, (_, tmpl, _, _) in zip(RULES["S"], SENTENCE_RULES)}
_ZH = ({e.lower(): z for e, z, _ in PEOPLE} | {n: z for n, (z, _, _) in _NOUN.items()}
       | {e: z for e, z, _, _ in PLACES} | {e: z for e, z, _ in FEELINGS}
       | {e: z for e, z in PERSON_ACTIONS + ANIMAL_ACTIONS})
_FLIP = {}  # a polarity word and its opposite, same rule position: liked<->disliked, happy<->sad, ...
for _lhs, _pairs in (("ATTITUDE", ((0, 2), (1, 3))), ("FEELING", ((0, 3), (1, 5), (2, 4)))):
    for _a, _b in _pairs:
        _FLIP[RULES[_lhs][_a]], _FLIP[RULES[_lhs][_b]] = RULES[_lhs][_b], RULES[_lhs][_a]


def _terms(rule, lang: str):
    """The terminals of a lexical rule (all its items are terminals): en tokens or zh string."""
    assert all(kind == "T" for kind, _ in rule.en), rule
    items = rule.en if lang == "en" else rule.zh
    return sum((v for _, v in items), ()) if lang == "en" else "".join(v for _, v in items)


def _derive_sentence(seq, ents: tuple, lang: str) -> list:
    """Every derivation of one story sentence: (S rule, parts, ents after), parts maps a symbol to
    ("slot", entity index, en, zh) or ("lex", lexical rule)."""
    out = []
    for rule in RULES["S"]:
        states = [(0, ents, (), {})]
        for kind, v in (rule.en if lang == "en" else rule.zh):
            nxt = []
            for q, e, used, parts in states:
                if kind == "T":
                    if seq[q:q + len(v)] == v:
                        nxt.append((q + len(v), e, used, parts))
                elif v in _SLOTS:
                    for _, en, zh, _, e2, u2, idx in _slot_all(v, e, used):
                        t = en if lang == "en" else zh
                        if seq[q:q + len(t)] == t:
                            nxt.append((q + len(t), e2, u2, {**parts, v: ("slot", idx, en, zh)}))
                else:
                    for r in RULES[v]:
                        t = _terms(r, lang)
                        if seq[q:q + len(t)] == t:
                            nxt.append((q + len(t), e, used, {**parts, v: ("lex", r)}))
            states = nxt
        out += [(rule, parts, e) for q, e, _, parts in states if q == len(seq)]
    return out


def _derive(text: str, lang: str = "en") -> tuple[list, tuple]:
    """The one derivation of a story: [(S rule, parts)] per sentence and its entities."""
    if lang == "en":
        toks = tuple(tokenize_en(text))
        cuts = [i + 1 for i, t in enumerate(toks) if t == "."]
        sents = [toks[a:b] for a, b in zip([0] + cuts, cuts)]
        ok = detokenize_en(toks) == text and bool(cuts) and cuts[-1] == len(toks)
    else:
        sents = [s + "。" for s in text.split("。")[:-1]]
        ok = "".join(sents) == text
    beams = [([], ())]
    for seq in (sents if ok and len(sents) in STORY_LENGTHS else []):
        beams = [(d + [(rule, parts)], e2) for d, e in beams for rule, parts, e2 in _derive_sentence(seq, e, lang)]
    if not ok or len(sents) not in STORY_LENGTHS or len(beams) != 1:
        raise ValueError(f"story must be a story the grammar can write, got {text!r}")
    return beams[0]


def _render(derivation: list) -> tuple[str, str]:
    """A derivation written out in both languages (the grammar is synchronous)."""
    def piece(part, lang):  # a nonterminal's words: a slot's mention or a lexical rule's terminals
        if part[0] == "lex":
            return _terms(part[1], lang)
        return tuple(part[2]) if lang == "en" else part[3]
    en = [t for rule, parts in derivation for kind, v in rule.en
          for t in (v if kind == "T" else piece(parts[v], "en"))]
    zh = "".join(v if kind == "T" else piece(parts[v], "zh") for rule, parts in derivation for kind, v in rule.zh)
    return detokenize_en(en), zh


def _word(part) -> str:
    """The entity or value a part names: a lexical rule's head (park) or its words (ran away)."""
    toks = _terms(part[1], "en")
    return " ".join(toks[slice(*part[1].head)] if part[1].head else toks)


def _facts(rule, parts: dict, ents: tuple) -> list[tuple[str, str, str]]:
    """The triples one sentence states, read off its S rule and its parts."""
    ent = {sym: ents[p[1]][1] for sym, p in parts.items() if p[0] == "slot"}
    lex = {sym: _word(p) for sym, p in parts.items() if p[0] == "lex"}
    subj, tmpl = ent.get("P_S") or ent["A_S"], _TEMPLATE[rule]
    if "VI_P" in lex or "VI_A" in lex:
        return [(subj, "did", lex.get("VI_P") or lex["VI_A"])]
    if "FEELING" in lex:
        return [(subj, "not_felt" if " not " in tmpl else "felt", lex["FEELING"])]
    if "PLACE" in lex:
        return [(subj, "went_to", lex["PLACE"])]
    if "gave" in tmpl:
        return [(subj, "gave", ent["THING_N"]), (subj, "gave_to", ent["P_O"]), (ent["P_O"], "received", ent["THING_N"])]
    if "saw" in tmpl:
        return [(subj, "saw", ent["ANY_O"])] + ([(subj, "was_at", lex["PLACE_AT"])] if "PLACE_AT" in lex else [])
    if "ATTITUDE" in lex:
        return [(subj, lex["ATTITUDE"], ent["ANY_O"])]
    verb, obj = (lex["VT_TOY"], "<TOY_O>") if "VT_TOY" in lex else tmpl.split()[1:3]
    return [(subj, verb, ent[obj[1:-1]])]


def _story_text(story: object, name: str = "story") -> str:
    if isinstance(story, Story):
        return story.en
    if isinstance(story, str):
        return story
    raise ValueError(f"{name} must be a Story or its English text, got {type(story).__name__}")


def relation_triples(story: Story | str) -> tuple[tuple[str, str, str], ...]:
    """The (subject, relation, object) facts a story states, each once, in order of first mention.

    For chapter 09's knowledge graph and its extraction task: the gold triple set of a story.
    People are their names (alice); animals, things and places their noun (dog, apple, train
    station): a story has at most one entity of each kind, so the noun names it; across stories
    it names the kind. Pronouns are resolved by the derivation ("She ate it." after "Alice saw a
    cake." gives (alice, ate, cake)). Relations: `RELATIONS`. Raises ValueError on a text the
    grammar cannot write."""
    derivation, ents = _derive(_story_text(story))
    return tuple(dict.fromkeys(t for rule, parts in derivation for t in _facts(rule, parts, ents)))


@dataclass(frozen=True)
class TripleExample:
    """A story (both languages) and the exact set of triples it states. For chapter 09."""
    en: str
    zh: str
    triples: tuple[tuple[str, str, str], ...]


def triple_examples(n: int = 1000, seed: int = 0) -> list[TripleExample]:
    """`n` stories (those of `generate_stories(n, seed)`) with their gold triples, for relation
    extraction in chapter 09: a model reads the story and must list its facts."""
    return [TripleExample(s.en, s.zh, relation_triples(s)) for s in generate_stories(n, seed)]


@dataclass(frozen=True)
class KnowledgeGraph:
    """The distinct triples of many stories, split for link prediction. For chapter 09 (TransE).

    `entities`/`relations` are sorted vocabularies (`entity_zh` aligned with `entities`);
    train/valid/test are disjoint sets of (head, relation, tail) strings; every entity and every
    relation of a valid or test triple occurs in some train triple. `ids` gives index triples."""
    entities: tuple[str, ...]
    entity_zh: tuple[str, ...]
    relations: tuple[str, ...]
    train: tuple[tuple[str, str, str], ...]
    valid: tuple[tuple[str, str, str], ...]
    test: tuple[tuple[str, str, str], ...]

    @property
    def all_triples(self) -> tuple[tuple[str, str, str], ...]:
        """Every known true triple, for filtered ranks (`ranking.filtered_rank`)."""
        return self.train + self.valid + self.test

    def ids(self, split: str = "train") -> list[tuple[int, int, int]]:
        if split not in ("train", "valid", "test"):
            raise ValueError(f"split must be 'train', 'valid' or 'test', got {split!r}")
        e, r = {x: i for i, x in enumerate(self.entities)}, {x: i for i, x in enumerate(self.relations)}
        return [(e[h], r[rel], e[t]) for h, rel, t in getattr(self, split)]


def knowledge_graph(n_stories: int = 2000, seed: int = 0, held_out: float = 0.1,
                    relations: tuple[str, ...] = RELATIONS) -> KnowledgeGraph:
    """The knowledge graph of `generate_stories(n_stories, seed)`: each distinct triple once.

    For chapter 09's TransE link prediction. The split rule: the distinct triples (sorted, then
    shuffled by `random.Random(seed)`) are taken in turn; a triple goes to test (until it holds a
    share `held_out` of them), then to valid (the same share), only if its head, its tail and its
    relation still occur in another triple left in train; otherwise it stays in train. So no test
    entity or relation is unseen in training. `relations` keeps only those relations (all by
    default; e.g. drop "did", "felt", "not_felt" for entity-to-entity facts only)."""
    _check_int(n_stories, "n_stories", 1)
    _check_int(seed, "seed", 0)
    if isinstance(held_out, bool) or not isinstance(held_out, (int, float)) or not 0 <= held_out < 0.5:
        raise ValueError(f"held_out must be a number in [0, 0.5), got {held_out!r}")
    if isinstance(relations, str) or not relations or not set(relations) <= set(RELATIONS):
        raise ValueError(f"relations must be a non-empty tuple of names from RELATIONS, got {relations!r}")
    triples = sorted({t for ex in triple_examples(n_stories, seed) for t in ex.triples if t[1] in relations})
    random.Random(seed).shuffle(triples)
    count = defaultdict(int)
    for h, r, t in triples:
        count[h], count[t], count["rel:" + r] = count[h] + 1, count[t] + 1, count["rel:" + r] + 1
    quota, out = round(held_out * len(triples)), {"train": [], "valid": [], "test": []}
    for h, r, t in triples:
        split = "test" if len(out["test"]) < quota else "valid" if len(out["valid"]) < quota else "train"
        if split != "train" and min(count[h], count[t], count["rel:" + r]) > 1:
            count[h], count[t], count["rel:" + r] = count[h] - 1, count[t] - 1, count["rel:" + r] - 1
        else:
            split = "train"
        out[split].append((h, r, t))
    ents = sorted({x for h, _, t in triples for x in (h, t)})
    return KnowledgeGraph(tuple(ents), tuple(_ZH[x] for x in ents), tuple(sorted({r for _, r, _ in triples})),
                          tuple(out["train"]), tuple(out["valid"]), tuple(out["test"]))


@dataclass(frozen=True)
class FAQPair:
    """One FAQ entry: a question about one story, its answer, and where the answer comes from.

    `fact` is the triple that answers it, `context[answer_start:answer_end] == answer`, and
    `same_question` the ids of every pair of the list with the same question (this one too)."""
    id: int
    question: str
    answer: str
    question_zh: str
    answer_zh: str
    story_id: int
    fact: tuple[str, str, str]
    context: str
    context_zh: str
    answer_start: int
    answer_end: int
    same_question: tuple[int, ...]


_QUESTION_ZH = {"go": "{}去了哪里？", "eat": "{}吃了什么？", "read": "{}读了什么？"}


def faq_pairs(n: int = 1000, seed: int = 0) -> list[FAQPair]:
    """`n` FAQ entries from `views.qa_examples(n, seed)` (called as it is): pair i is about story i.

    For chapter 09's retrieval: the list is the FAQ, a query is a question (or `question_zh`, for
    cross-lingual retrieval), and recall@k is exact. A retriever that reads the question only
    must return one of `same_question` (the same question is asked of several stories); one that
    must find the answer's story is judged by `story_id`, whose fact is `fact`. Both sides are
    given: the Chinese story and answer are the English derivation written in Chinese."""
    out, rel_of = [], {"Where": "went_to", "eat": "ate", "read": "read"}
    for i, q in enumerate(qa_examples(n, seed)):
        derivation, ents = _derive(q.context)
        words = q.question.rstrip("?").split()
        key, name = (words[0], words[2]) if words[0] == "Where" else (words[3], words[2])
        for rule, parts in derivation:
            fact = _facts(rule, parts, ents)[0]
            if fact[:2] == (name.lower(), rel_of[key]):
                break
        else:
            raise AssertionError(f"no fact answers {q.question!r} in {q.context!r}")
        if key == "Where":
            answer_zh = _ZH[fact[2]]
        else:  # the entity's first mention, as qa_examples answers
            answer_zh = next(p[3] for _, parts in derivation for p in parts.values()
                             if p[0] == "slot" and ents[p[1]][1] == fact[2])
        question_zh = _QUESTION_ZH["go" if key == "Where" else key].format(_ZH[name.lower()])
        out.append((q, question_zh, answer_zh, fact, _render(derivation)[1]))
    groups = defaultdict(list)
    for i, (q, *_) in enumerate(out):
        groups[q.question].append(i)
    return [FAQPair(i, q.question, q.answer, qz, az, i, fact, q.context, cz, q.answer_start, q.answer_end,
                    tuple(groups[q.question])) for i, (q, qz, az, fact, cz) in enumerate(out)]


@dataclass(frozen=True)
class PreferenceProfiles:
    """Who is said to like or hate what, as a user x item matrix. For chapter 09's recommender.

    `matrix[u][i]` is +1 (liked/loved said more often than disliked/hated), -1 (the reverse) or
    0 (never said, or as often each way); `counts[u][i]` is (positive, negative) statements.
    `train` is the matrix with the `test` entries (user, item, value) set to 0."""
    users: tuple[str, ...]
    items: tuple[str, ...]
    matrix: tuple[tuple[int, ...], ...]
    counts: tuple[tuple[tuple[int, int], ...], ...]
    train: tuple[tuple[int, ...], ...]
    test: tuple[tuple[int, int, int], ...]


def preference_profiles(n_stories: int = 2000, seed: int = 0, held_out: float = 0.2) -> PreferenceProfiles:
    """The attitudes of `generate_stories(n_stories, seed)`: users are the world's 10 people,
    items the animals and things (people are not items). Of each user's known entries a share
    `held_out` (at least one when they have two) goes to test, chosen by `random.Random(seed)`.

    Beware, and this is what chapter 09 can show with it: the grammar draws an attitude uniformly,
    whoever the person and whatever the object, so the sign of a held-out entry is a fair coin,
    independent of every other entry: no recommender can beat 50% at telling liked from hated
    (one that does has leaked the test set). Only which items get mentioned at all carries a
    signal, popularity, the same for every person. The world has no taste to learn."""
    _check_int(n_stories, "n_stories", 1)
    _check_int(seed, "seed", 0)
    if isinstance(held_out, bool) or not isinstance(held_out, (int, float)) or not 0 < held_out < 1:
        raise ValueError(f"held_out must be a number in (0, 1), got {held_out!r}")
    users, items = tuple(e.lower() for e, _, _ in PEOPLE), tuple(_NOUN)
    pol = {e: p for e, _, p in ATTITUDES}
    c = {(u, i): [0, 0] for u in users for i in items}
    for ex in triple_examples(n_stories, seed):
        for h, r, t in ex.triples:  # a story states a triple once; repeats across stories count
            if r in pol and (h, t) in c:
                c[h, t][pol[r] < 0] += 1
    sign = lambda p, q: (p > q) - (p < q)  # noqa: E731
    matrix = [[sign(*c[u, i]) for i in items] for u in users]
    rng, test, train = random.Random(seed), [], [row[:] for row in matrix]
    for a in range(len(users)):
        known = [b for b in range(len(items)) if matrix[a][b]]
        k = max(1, round(held_out * len(known))) if len(known) >= 2 else 0
        for b in sorted(rng.sample(known, k)):
            test.append((a, b, matrix[a][b]))
            train[a][b] = 0
    return PreferenceProfiles(users, items, tuple(map(tuple, matrix)),
                              tuple(tuple(tuple(c[u, i]) for i in items) for u in users),
                              tuple(map(tuple, train)), tuple(test))


@dataclass(frozen=True)
class OutOfScopeSplit:
    """Intents with one class never seen in training. For chapter 09's out-of-scope detection.

    `test_out_of_scope[k]` is True when test[k] is of the held-out intent (its `intent` is kept)."""
    held_out: str
    in_scope: tuple[str, ...]
    train: tuple[IntentExample, ...]
    test: tuple[IntentExample, ...]
    test_out_of_scope: tuple[bool, ...]


_INTENTS = tuple(r.tag[len("intent="):] for r in RULES["INTENT"])


def out_of_scope_intents(n: int = 1000, seed: int = 0, held_out: str = "complaint",
                         train_share: float = 0.8) -> OutOfScopeSplit:
    """`views.intent_examples(n, seed)` (called as it is) split in order: the first `train_share`
    of them, less the held-out intent, train; the rest, every intent, test. For chapter 09: a
    classifier must say "none of these" on the held-out class (its confidence, AUROC of a score)
    while still classifying the others. "complaint" (the default) shares "my <ITEM>" with refund
    and order status, a near out-of-scope class; "greeting" or "thanks" are far ones."""
    _check_int(n, "n", 2)
    if held_out not in _INTENTS:
        raise ValueError(f"held_out must be one of {_INTENTS}, got {held_out!r}")
    if isinstance(train_share, bool) or not isinstance(train_share, (int, float)) or not 0 < train_share < 1:
        raise ValueError(f"train_share must be a number in (0, 1), got {train_share!r}")
    ex = intent_examples(n, seed)
    cut = min(max(1, round(train_share * n)), n - 1)
    test = tuple(ex[cut:])
    return OutOfScopeSplit(held_out, tuple(i for i in _INTENTS if i != held_out),
                           tuple(e for e in ex[:cut] if e.intent != held_out), test,
                           tuple(e.intent == held_out for e in test))


@dataclass(frozen=True)
class StylePair:
    """A story and its twin with every polarity word flipped (liked <-> disliked, loved <-> hated,
    happy <-> sad, excited <-> scared, proud <-> angry; "tired" has no polarity and stays), both
    languages. `polarity`/`flipped_polarity`: each sentence's +1, -1 or 0 ("not" reverses)."""
    en: str
    zh: str
    flipped_en: str
    flipped_zh: str
    polarity: tuple[int, ...]
    flipped_polarity: tuple[int, ...]


def _sentence_polarity(rule, parts) -> int:
    tags = [p[1].tag for p in parts.values() if p[0] == "lex" and p[1].tag and p[1].tag.startswith("pol=")]
    pol = int(tags[0][4:]) if tags else 0
    return -pol if rule.tag == "not" else pol


def style_pairs(n: int = 1000, seed: int = 0) -> list[StylePair]:
    """`n` pairs from the stories of `generate_stories` with seed `seed` that have a polarity word
    (others are skipped), for chapter 09's style transfer: rewrite a story's sentiment and keep
    everything else. The twin is the same derivation with each ATTITUDE/FEELING rule swapped for its
    opposite, so same people, places, actions and pronouns, and the same probability (the choices
    are uniform); the tests check with the parser that the twin is a possible story."""
    _check_int(n, "n", 1)
    _check_int(seed, "seed", 0)
    rng, out = random.Random(seed), []
    while len(out) < n:  # the stream of generate_stories(k, seed), read until n pairs are found
        s = _to_story(_sample_story(rng))
        derivation, _ = _derive(s.en)
        flipped = [(rule, {k: ("lex", _FLIP[p[1]]) if p[0] == "lex" and p[1] in _FLIP else p
                           for k, p in parts.items()}) for rule, parts in derivation]
        if flipped != derivation:
            out.append(StylePair(s.en, s.zh, *_render(flipped), tuple(_sentence_polarity(*d) for d in derivation),
                                 tuple(_sentence_polarity(*d) for d in flipped)))
    return out


@dataclass(frozen=True)
class QAExampleZh:
    """`en` (a `QAExample`) in Chinese: context[answer_start:answer_end] == answer.

    Introduced in chapter 08_electra, which scores Chinese answers by character F1 (`qa.char_f1`).
    `context` is the story's Chinese sentences joined with nothing between them (each ends in 。),
    as `Story.zh`; `answer` translates exactly `en.answer`, and its offsets point into the sentence
    that translates the English answer's, even when the same characters occur in another one."""
    context: str
    question: str
    answer: str
    answer_start: int
    answer_end: int
    en: QAExample


def qa_examples_zh(n: int = 1000, seed: int = 0) -> list[QAExampleZh]:
    """`views.qa_examples(n, seed)` in Chinese, item by item: the same stories and questions.

    The answer's span is read off the sampler, which records each mark's characters in Chinese as
    it writes both languages: no search, so no wrong occurrence of a repeated 公园."""
    out = []
    for d, kind, subj, mark, q in _qa_draws(n, seed):
        context, a, b = "".join(d["zh"]), mark[-2], mark[-1]
        question = _QUESTION_ZH[kind].format(_NAME_ZH[d["ents"][subj][1]][0])
        out.append(QAExampleZh(context, question, context[a:b], a, b, q))
    return out
