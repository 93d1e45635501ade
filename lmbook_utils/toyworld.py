"""The toy world: a seeded probabilistic grammar that writes parallel English/Chinese stories.

Introduced in chapter 00_introduction; every later chapter trains on it. Because the generator
knows the exact probability of everything it writes, we know the corpus' true entropy: the
floor under any model's cross-entropy.

The grammar is a synchronous PCFG (`RULES`: each rule has a probability, an English and a
Chinese right-hand side sharing nonterminals) and it is unambiguous in both languages: every
text has one derivation, so p(text) is the product of the probabilities of the choices made
(the tests check this by parsing). A *story* is 2-5 sentences (length uniform); each sentence
picks its rule as a standalone sentence does, but its noun-phrase *slots* (`_SLOTS`) refer to
the story's entities: with probability `P_NEW` a new one (a name not used yet, or "a [adj]
noun" of a kind not present yet), otherwise one already introduced (uniform, never one
already mentioned in the same sentence). The form of a known entity is not a choice: "he"/
"she" (他/她) when it is the only person of that gender so far, "it" (它) when it is the only
non-person so far, else its name or "the noun". So the text determines the derivation, and
a pronoun's gender depends on a name several sentences back.

Units (use these so that every chapter compares with the same floor):
- `tokenize_en`: lowercase, words ``[a-z0-9]+`` and each other non-space character
  (punctuation) as its own token. Capitalization and spacing are a fixed function of the
  tokens (`detokenize_en` inverts it exactly on toy-world text), so they carry no information.
- Each story is one line and one sequence. A word model predicts its T tokens plus one
  end-of-story token ``</s>`` (the `ngram` convention): T + 1 predictions per story. A
  character model predicts every character plus the ``"\\n"`` that ends the line.
- Chinese is measured per character (`tokenize_zh`: every non-space character), plus one
  end-of-story unit per story.

`entropy_floor(stories)` = sum(-ln p(story)) / number of units, a Monte-Carlo estimate of
the entropy rate, with a standard error (ratio estimator over i.i.d. stories). A model q
trained on other stories has expected cross-entropy E[-ln q] >= E[-ln p] on held-out
toy-world text: it can approach the floor but, in expectation, not beat it.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import re
from dataclasses import dataclass
from functools import lru_cache

# ---- lexicon (English, Chinese, extra) ----------------------------------------------------
PEOPLE = (("Alice", "爱丽丝", "f"), ("Bob", "鲍勃", "m"), ("Carol", "卡罗尔", "f"),
          ("David", "大卫", "m"), ("Emma", "艾玛", "f"), ("Frank", "弗兰克", "m"),
          ("Grace", "格蕾丝", "f"), ("Henry", "亨利", "m"), ("Lily", "莉莉", "f"), ("Tom", "汤姆", "m"))
ANIMALS = (("dog", "狗", "只"), ("cat", "猫", "只"), ("bird", "鸟", "只"),
           ("rabbit", "兔子", "只"), ("horse", "马", "匹"), ("fish", "鱼", "条"))
THINGS = {"food": (("apple", "苹果", "个"), ("cake", "蛋糕", "块"), ("orange", "橙子", "个"),
                   ("cookie", "饼干", "块")),
          "toy": (("ball", "球", "个"), ("kite", "风筝", "个"), ("doll", "娃娃", "个")),
          "reading": (("book", "书", "本"), ("letter", "信", "封"), ("newspaper", "报纸", "份"))}
ADJECTIVES = {"animal": (("big", "大"), ("small", "小"), ("black", "黑"), ("white", "白"),
                         ("cute", "可爱的")),
              "food": (("big", "大"), ("small", "小"), ("fresh", "新鲜的")),
              "toy": (("red", "红"), ("new", "新"), ("big", "大")),
              "reading": (("new", "新"), ("old", "旧"))}
# (noun, Chinese, "went to ..." phrase, "... in the park" phrase): the place itself is the head.
PLACES = (("park", "公园", "in", "在公园里"), ("school", "学校", "at", "在学校"),
          ("market", "市场", "at", "在市场上"), ("river", "河边", "by", "在河边"),
          ("library", "图书馆", "in", "在图书馆里"), ("garden", "花园", "in", "在花园里"),
          ("beach", "海滩", "on", "在海滩上"), ("train station", "火车站", "at", "在火车站"))
FEELINGS = (("happy", "开心", 1), ("excited", "兴奋", 1), ("proud", "自豪", 1), ("sad", "难过", -1),
            ("angry", "生气", -1), ("scared", "害怕", -1), ("tired", "累", 0))  # polarity
ATTITUDES = (("liked", "喜欢", 1), ("loved", "很爱", 1), ("disliked", "不喜欢", -1), ("hated", "讨厌", -1))
PERSON_ACTIONS = (("laughed", "笑了"), ("cried", "哭了"), ("sang", "唱歌了"), ("danced", "跳舞了"),
                  ("smiled", "微笑了"), ("slept", "睡着了"))
ANIMAL_ACTIONS = (("slept", "睡着了"), ("ran away", "跑开了"), ("jumped", "跳了起来"))

# ---- published rule probabilities ---------------------------------------------------------
P_PRONOUN = 0.2  # standalone person NP: he/she (him/her) 0.1 each, else a name (uniform)
P_IT = 0.15      # standalone pronominal object/animal NP: "it", else a noun phrase
P_DEF = 0.4      # noun phrase: "the noun" (uniform), else "a [adj] noun"
P_ADJ = 0.5      # indefinite noun phrase: one adjective (uniform), else none
P_NEW = 0.25     # story slot: a new entity, when both new and known ones are possible
STORY_LENGTHS = (2, 3, 4, 5)  # uniform
N = "<{}>"  # nonterminal marker in templates
SENTENCE_RULES = (  # (prob, English, Chinese, tag); templates are pre-tokenized, lowercase
    (0.12, "<P_S> <VI_P> .", "<P_S><VI_P>。", None),
    (0.12, "<P_S> went to <PLACE> .", "<P_S>去了<PLACE>。", "event=go"),
    (0.10, "<P_S> ate <FOOD_O> .", "<P_S>吃了<FOOD_O>。", "event=eat"),
    (0.06, "<P_S> read <READ_O> .", "<P_S>读了<READ_O>。", "event=read"),
    (0.06, "<P_S> <VT_TOY> <TOY_O> .", "<P_S><VT_TOY><TOY_O>。", None),
    (0.10, "<P_S> saw <ANY_O> .", "<P_S>看见了<ANY_O>。", None),
    (0.08, "<P_S> saw <ANY_O> <PLACE_AT> .", "<P_S><PLACE_AT>看见了<ANY_O>。", None),
    (0.10, "<P_S> <ATTITUDE> <ANY_O> .", "<P_S><ATTITUDE><ANY_O>。", None),
    (0.06, "<P_S> gave <P_O> <THING_N> .", "<P_S>给了<P_O><THING_N>。", None),
    (0.07, "<P_S> was <FEELING> .", "<P_S>很<FEELING>。", None),
    (0.03, "<P_S> was not <FEELING> .", "<P_S>不<FEELING>。", "not"),
    (0.06, "<A_S> <VI_A> .", "<A_S><VI_A>。", None),
    (0.04, "<A_S> ate <FOOD_O> .", "<A_S>吃了<FOOD_O>。", None))
OTHER_RULES = {  # reviews (sentiment) and customer-service utterances (intents)
    "REVIEW": ((0.5, "i <R_VERB> this <R_ITEM> .", "我<R_VERB>这<R_ITEM>。", None),
               (0.5, "this <R_ITEM> is <R_ADJ> .", "这<R_ITEM>很<R_ADJ>。", None)),
    "R_VERB": tuple((0.25, e, z, f"pol={p}") for e, z, p in (
        ("love", "爱", 1), ("like", "喜欢", 1), ("hate", "讨厌", -1), ("do not like", "不喜欢", -1))),
    "R_ITEM": tuple((0.2, e, z, None) for e, z in (("movie", "部电影"), ("book", "本书"),
                    ("song", "首歌"), ("restaurant", "家餐厅"), ("game", "个游戏"))),
    "R_ADJ": tuple((1 / 6, e, z, f"pol={p}") for e, z, p in (
        ("great", "棒", 1), ("wonderful", "精彩", 1), ("good", "好", 1), ("boring", "无聊", -1),
        ("terrible", "糟糕", -1), ("bad", "差", -1))),
    "INTENT": tuple((0.2, f"<{s}>", f"<{s}>", f"intent={s.lower()}") for s in (
        "GREETING", "ORDER_STATUS", "REFUND", "COMPLAINT", "THANKS")),
    "GREETING": ((0.4, "hello , how are you ?", "你好，你怎么样？", None), (0.2, "hi !", "嗨！", None),
                 (0.2, "good morning .", "早上好。", None),
                 (0.2, "hello , nice to meet you .", "你好，很高兴认识你。", None)),
    "ORDER_STATUS": ((0.3, "where is my order ?", "我的订单在哪里？", None),
                     (0.35, "my <ITEM> has not arrived yet .", "我的<ITEM>还没有到。", None),
                     (0.35, "when will my <ITEM> arrive ?", "我的<ITEM>什么时候到？", None)),
    "REFUND": ((0.4, "i want a refund for my <ITEM> .", "我想为我的<ITEM>申请退款。", None),
               (0.3, "can i return my <ITEM> ?", "我可以退回我的<ITEM>吗？", None),
               (0.3, "please give me my money back .", "请把钱退给我。", None)),
    "COMPLAINT": ((0.4, "my <ITEM> is broken .", "我的<ITEM>坏了。", None),
                  (0.3, "this service is terrible .", "这个服务太差了。", None),
                  (0.3, "i am not happy with my <ITEM> .", "我对我的<ITEM>不满意。", None)),
    "THANKS": ((0.4, "thank you !", "谢谢你！", None), (0.3, "thanks a lot .", "非常感谢。", None),
               (0.3, "thank you for your help .", "谢谢你的帮助。", None)),
}
SENTENCE_SYMBOLS = ("S", "REVIEW", "INTENT")
ENTITY_LABELS = ("PERSON", "ANIMAL", "OBJECT", "PLACE")


@dataclass(frozen=True)
class Rule:
    """One rule of the synchronous grammar. Introduced in chapter 00_introduction.

    `en`/`zh` hold ("N", symbol) or ("T", terminal) items; `head` is the token span of the
    entity word in a lexical rule, labeled `label` (PERSON/ANIMAL/OBJECT/PLACE)."""
    lhs: str
    prob: float
    en: tuple
    zh: tuple
    tag: str | None = None
    label: str | None = None
    head: tuple[int, int] | None = None


def _items(template: str, lang: str) -> tuple:
    out = []
    for part in re.split(r"(<[A-Z_]+>)", template):
        if part.startswith("<"):
            out.append(("N", part[1:-1]))
        elif part.strip():
            out.append(("T", tuple(part.split()) if lang == "en" else part))
    return tuple(out)


def _rule(lhs, prob, en, zh, tag=None, label=None) -> Rule:
    head = None
    if "{" in en:  # "the {train station}": the braces mark the entity words
        before, inside = en.split("{")[0].split(), en.split("{")[1].split("}")[0].split()
        head, en = (len(before), len(before) + len(inside)), en.replace("{", "").replace("}", "")
    return Rule(lhs, prob, _items(en, "en"), _items(zh, "zh"), tag, label, head)


def _indef(noun, zh, clf, adj=None) -> tuple[str, str]:
    first = adj[0] if adj else noun
    words = ["an" if first[0] in "aeiou" else "a"] + ([adj[0]] if adj else []) + [f"{{{noun}}}"]
    return " ".join(words), "一" + clf + (adj[1] if adj else "") + zh


def _np_rules(lhs, entries, adjs, label) -> list[Rule]:
    """'the noun' | 'a noun' | 'a adj noun', with probabilities from P_DEF and P_ADJ."""
    n, out = len(entries), []
    for noun, zh, clf in entries:
        out.append(_rule(lhs, P_DEF / n, f"the {{{noun}}}", "那" + clf + zh, label=label))
        out.append(_rule(lhs, (1 - P_DEF) * (1 - P_ADJ) / n, *_indef(noun, zh, clf), label=label))
        out += [_rule(lhs, (1 - P_DEF) * P_ADJ / (n * len(adjs)), *_indef(noun, zh, clf, a), label=label)
                for a in adjs]
    return out


def _build_rules() -> dict[str, tuple[Rule, ...]]:
    r: dict[str, list[Rule]] = {"S": [_rule("S", *x) for x in SENTENCE_RULES]}
    for case, he, she in (("P_S", "he", "she"), ("P_O", "him", "her")):
        r[case] = [_rule(case, (1 - P_PRONOUN) / len(PEOPLE), f"{{{e.lower()}}}", z, label="PERSON")
                   for e, z, _ in PEOPLE]
        r[case] += [_rule(case, P_PRONOUN / 2, he, "他"), _rule(case, P_PRONOUN / 2, she, "她")]
    r["ANIMAL_N"] = _np_rules("ANIMAL_N", ANIMALS, ADJECTIVES["animal"], "ANIMAL")
    for kind, entries in THINGS.items():
        r[f"{kind.upper()}_N"] = _np_rules(f"{kind.upper()}_N", entries, ADJECTIVES[kind], "OBJECT")
    for sym, np_sym in (("A_S", "ANIMAL_N"), ("FOOD_O", "FOOD_N"), ("TOY_O", "TOY_N"), ("READ_O", "READING_N")):
        r[sym] = [_rule(sym, 1 - P_IT, f"<{np_sym}>", f"<{np_sym}>"), _rule(sym, P_IT, "it", "它")]
    r["THING_N"] = [_rule("THING_N", 1 / 3, f"<{k}_N>", f"<{k}_N>") for k in ("FOOD", "TOY", "READING")]
    r["ANY_O"] = [_rule("ANY_O", p, f"<{s}>", f"<{s}>") for p, s in
                  ((0.3, "P_O"), (0.25, "ANIMAL_N"), (0.3, "THING_N"))] + [_rule("ANY_O", P_IT, "it", "它")]
    r["PLACE"] = [_rule("PLACE", 1 / len(PLACES), f"the {{{e}}}", z, label="PLACE") for e, z, _, _ in PLACES]
    r["PLACE_AT"] = [_rule("PLACE_AT", 1 / len(PLACES), f"{p} the {{{e}}}", a, label="PLACE")
                     for e, _, p, a in PLACES]
    r["FEELING"] = [_rule("FEELING", 1 / len(FEELINGS), e, z, f"pol={p}") for e, z, p in FEELINGS]
    r["ATTITUDE"] = [_rule("ATTITUDE", 1 / len(ATTITUDES), e, z, f"pol={p}") for e, z, p in ATTITUDES]
    r["VT_TOY"] = [_rule("VT_TOY", 0.5, "found", "找到了"), _rule("VT_TOY", 0.5, "lost", "弄丢了")]
    r["VI_P"] = [_rule("VI_P", 1 / len(PERSON_ACTIONS), e, z) for e, z in PERSON_ACTIONS]
    r["VI_A"] = [_rule("VI_A", 1 / len(ANIMAL_ACTIONS), e, z) for e, z in ANIMAL_ACTIONS]
    r["ITEM"] = [_rule("ITEM", 0.2, f"{{{e}}}", z, label="OBJECT") for e, z in (
        ("phone", "手机"), ("lamp", "台灯"), ("umbrella", "雨伞"), ("kettle", "水壶"), ("backpack", "背包"))]
    for lhs, rules in OTHER_RULES.items():
        r[lhs] = [_rule(lhs, *x) for x in rules]
    for lhs, rules in r.items():
        assert abs(sum(x.prob for x in rules) - 1) < 1e-12, lhs
    return {k: tuple(v) for k, v in r.items()}


RULES = _build_rules()
_CUM = {k: tuple(itertools.accumulate(x.prob for x in v)) for k, v in RULES.items()}
_PROPER = {e.lower() for e, _, _ in PEOPLE} | {"i"}
_NOUN = {n: (z, c, kind) for kind, v in THINGS.items() for n, z, c in v} | {n: (z, c, "animal") for n, z, c in ANIMALS}
_NAME_ZH = {e.lower(): (z, g) for e, z, g in PEOPLE}
# story slots: entity types allowed, grammatical case, may it become a pronoun?
_SLOTS = {"P_S": (("person",), "subj", True), "P_O": (("person",), "obj", True),
          "A_S": (("animal",), None, True), "FOOD_O": (("food",), None, True),
          "TOY_O": (("toy",), None, True), "READ_O": (("reading",), None, True),
          "ANY_O": (("person", "animal", "food", "toy", "reading"), "obj", True),
          "THING_N": (("food", "toy", "reading"), None, False)}


# ---- tokens ---------------------------------------------------------------------------------
def tokenize_en(text: str) -> list[str]:
    """The canonical English word tokens (see the module docstring). Introduced in chapter 01_ngram."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return re.findall(r"[a-z0-9]+|[^\sa-z0-9]", text.lower())


def tokenize_zh(text: str) -> list[str]:
    """Chinese units: every non-space character. Introduced in chapter 01_ngram."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return [c for c in text if not c.isspace()]


def _detok(tokens) -> tuple[str, list[int]]:
    parts, offsets, n, cap = [], [], 0, True
    for t in tokens:
        w = t.capitalize() if (cap or t in _PROPER) else t
        if parts and t not in ".,?!":
            parts.append(" ")
            n += 1
        offsets.append(n)
        parts.append(w)
        n += len(w)
        cap = t in ".?!"
    return "".join(parts), offsets


def detokenize_en(tokens: list[str]) -> str:
    """Inverse of `tokenize_en` on toy-world text. Introduced in chapter 01_ngram."""
    return _detok(tokens)[0]


# ---- sampling -------------------------------------------------------------------------------
def _mention(ents, i, case, pron):
    """The fixed form of known entity i: pronoun if unambiguous, else name or 'the noun'."""
    t, key, g = ents[i]
    if t == "person":
        if pron and sum(e[0] == "person" and e[2] == g for e in ents) == 1:
            en = {"subjm": "he", "subjf": "she", "objm": "him", "objf": "her"}[case + g]
            return (en,), "他" if g == "m" else "她", None
        return (key,), _NAME_ZH[key][0], ("PERSON", 0, 1)
    if pron and sum(e[0] != "person" for e in ents) == 1:
        return ("it",), "它", None
    zh, clf, _ = _NOUN[key]
    return ("the", key), "那" + clf + zh, ("ANIMAL" if t == "animal" else "OBJECT", 1, 2)


def _first_mentions(kind: str, noun: str, zh: str, clf: str) -> list[tuple]:
    """(prob given the noun, en tokens, zh, head) of each 'a [adj] noun'."""
    label, out = "ANIMAL" if kind == "animal" else "OBJECT", []
    for p, adj in [(1 - P_ADJ, None)] + [(P_ADJ / len(ADJECTIVES[kind]), a) for a in ADJECTIVES[kind]]:
        r = _rule("", 0, *_indef(noun, zh, clf, adj))
        out.append((p, r.en[0][1], r.zh[0][1], (label, *r.head)))
    return out


_FIRST = {n: _first_mentions(k, n, z, c) for k in ("animal", *THINGS)
          for n, z, c in (ANIMALS if k == "animal" else THINGS[k])}


@lru_cache(maxsize=1 << 16)
def _new_options(slot: str, present: frozenset) -> tuple[tuple, tuple]:
    """A story slot's new-entity choices given the entities present: (cum probs, options).

    Class (person / animal / thing) uniform among those with something left, then for a thing
    its type uniform, then the name or noun uniform, then the adjective (P_ADJ)."""
    allowed, _, _ = _SLOTS[slot]
    groups = []
    if "person" in allowed:
        names = [(n.lower(), z, g) for n, z, g in PEOPLE if n.lower() not in present]
        groups.append([(1 / len(names), ("person", n, g), (n,), z, ("PERSON", 0, 1))
                       for n, z, g in names] if names else [])
    for cls in ("animal", "thing"):
        ks = [k for k in ("animal", "food", "toy", "reading") if k in allowed and (k == "animal") ==
              (cls == "animal") and any(e[0] not in present for e in (ANIMALS if k == "animal" else THINGS[k]))]
        group = []
        for k in ks:
            avail = [e[0] for e in (ANIMALS if k == "animal" else THINGS[k]) if e[0] not in present]
            group += [(p / (len(ks) * len(avail)), (k, noun, None), en, zh, head)
                      for noun in avail for p, en, zh, head in _FIRST[noun]]
        groups.append(group)
    groups = [g for g in groups if g]
    opts = tuple((o[0] / len(groups),) + o[1:] for g in groups for o in g)
    return tuple(itertools.accumulate(o[0] for o in opts)), opts


def _slot_choices(slot: str, ents: tuple, used: tuple):
    """(known entities allowed here, P(new), new options' cum probs, new options)."""
    allowed = _SLOTS[slot][0]
    existing = [i for i, e in enumerate(ents) if e[0] in allowed and i not in used]
    cum, new = _new_options(slot, frozenset(e[1] for e in ents))
    p_new = 0.0 if not new else (1.0 if not existing else P_NEW)
    return existing, p_new, cum, new


def _slot_all(slot: str, ents: tuple, used: tuple):
    """Every choice of a story slot: (prob, en, zh, head, new ents, new used, entity index)."""
    _, case, pron = _SLOTS[slot]
    existing, p_new, _, new = _slot_choices(slot, ents, used)
    for i in existing:
        yield ((1 - p_new) / len(existing), *_mention(ents, i, case, pron), ents, used + (i,), i)
    for p, ent, en, zh, head in new:
        yield p_new * p, en, zh, head, ents + (ent,), used + (len(ents),), len(ents)


def _slot_sample(slot: str, ents: tuple, used: tuple, rng: random.Random):
    _, case, pron = _SLOTS[slot]
    existing, p_new, cum, new = _slot_choices(slot, ents, used)
    if existing and (not new or rng.random() >= p_new):
        i = existing[int(rng.random() * len(existing))]
        return ((1 - p_new) / len(existing), *_mention(ents, i, case, pron), ents, used + (i,), i)
    p, ent, en, zh, head = new[_pick(cum, rng)]
    return p_new * p, en, zh, head, ents + (ent,), used + (len(ents),), len(ents)


def _pick(cum, rng: random.Random) -> int:
    return min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(cum) - 1)


def _expand(sym: str, rng: random.Random, ctx):
    """Sample from `sym`: (en tokens, zh, log p, marks, tags, ctx). ctx=(ents, used) in stories.

    marks: (label, start, end) entity heads, ("REF", s, e, entity) story mentions,
    ("PLACE_PHRASE", s, e) place phrases; offsets are token indices into en."""
    if ctx is not None and sym in _SLOTS:
        p, en, zh, head, ents, used, idx = _slot_sample(sym, *ctx, rng)
        marks = [("REF", 0, len(en), idx)] + ([head] if head else [])
        return list(en), zh, math.log(p), marks, [], (ents, used)
    rule = RULES[sym][_pick(_CUM[sym], rng)]
    logp, tags, kids = math.log(rule.prob), [rule.tag] if rule.tag else [], {}
    for kind, v in rule.en:
        if kind == "N":
            kids[v] = _expand(v, rng, ctx)
            ctx = kids[v][5]
            logp += kids[v][2]
            tags += kids[v][4]
    en, marks = [], []
    if rule.label:
        marks.append((rule.label, *rule.head))
    for kind, v in rule.en:
        if kind == "T":
            en.extend(v)
            continue
        k, s = kids[v], len(en)
        marks += [(m[0], m[1] + s, m[2] + s, *m[3:]) for m in k[3]]
        if v == "PLACE":
            marks.append(("PLACE_PHRASE", s, s + len(k[0])))
        en.extend(k[0])
    zh = "".join(v if kind == "T" else kids[v][1] for kind, v in rule.zh)
    return en, zh, logp, marks, tags, ctx


# ---- parsing --------------------------------------------------------------------------------
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


# ---- generation -----------------------------------------------------------------------------
def grammar_shares(stories: list[list[str]]) -> tuple[float, float]:
    """(share of sentences the grammar parses, share of stories it could have written), for
    stories given as token lists (as a model samples them). Introduced in chapter 01_ngram.

    Sentences end with "."; an unfinished last sentence is not counted."""
    if isinstance(stories, str) or not stories or any(isinstance(t, str) for t in stories):
        raise ValueError("stories must be a non-empty list of token lists")
    from .textstats import sentences as split_sentences

    sentences = [detokenize_en(list(s)) for tokens in stories for s in split_sentences(tokens)]
    ok_sentence = sum(is_grammatical(s) for s in sentences) / len(sentences) if sentences else 0.0
    ok_story = sum(story_log_prob(detokenize_en(list(t))) > -math.inf for t in stories) / len(stories)
    return ok_sentence, ok_story


@dataclass(frozen=True)
class Sentence:
    """A standalone sentence and its exact log-probability. Introduced in chapter 00_introduction."""
    en: str
    zh: str
    log_prob: float


@dataclass(frozen=True)
class Story:
    """A story (2-5 sentences, one line) in both languages. Introduced in chapter 00_introduction."""
    en: str
    zh: str
    log_prob: float
    sentences_en: tuple[str, ...]
    sentences_zh: tuple[str, ...]


def _check_int(value: object, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def _sample_story(rng: random.Random) -> dict:
    n = STORY_LENGTHS[int(rng.random() * len(STORY_LENGTHS))]
    logp, ents, tokens, zh, bounds, marks, events = math.log(1 / len(STORY_LENGTHS)), (), [], [], [], [], []
    for _ in range(n):
        en, z, lp, mk, tags, (ents, _) = _expand("S", rng, (ents, ()))
        s = len(tokens)
        mk = [(m[0], m[1] + s, m[2] + s, *m[3:]) for m in mk]
        refs = [m for m in mk if m[0] == "REF"]
        events += [(t[6:], refs[0][3], [m for m in mk if m[0] == "PLACE_PHRASE"] + refs[1:])
                   for t in tags if t.startswith("event=")]
        tokens += en
        zh.append(z)
        bounds.append((s, len(tokens)))
        marks += mk
        logp += lp
    text, offsets = _detok(tokens)
    return {"text": text, "offsets": offsets, "tokens": tokens, "zh": zh, "bounds": bounds,
            "marks": marks, "events": events, "ents": ents, "log_prob": logp}


def _to_story(d: dict) -> Story:
    off, toks, text = d["offsets"], d["tokens"], d["text"]
    sents = tuple(text[off[a]:off[b - 1] + len(toks[b - 1])] for a, b in d["bounds"])
    return Story(d["text"], "".join(d["zh"]), d["log_prob"], sents, tuple(d["zh"]))


def generate_sentences(n: int, seed: int = 0, start: str = "S") -> list[Sentence]:
    """`n` standalone sentences from `start` ("S", "REVIEW" or "INTENT"). Introduced in chapter 00_introduction."""
    _check_int(n, "n", 1)
    _check_int(seed, "seed", 0)
    if start not in SENTENCE_SYMBOLS:
        raise ValueError(f"start must be one of {SENTENCE_SYMBOLS}, got {start!r}")
    rng, out = random.Random(seed), []
    for _ in range(n):
        en, zh, lp, _, _, _ = _expand(start, rng, None)
        out.append(Sentence(detokenize_en(en), zh, lp))
    return out


def generate_stories(n: int, seed: int = 0) -> list[Story]:
    """`n` stories. Introduced in chapter 00_introduction."""
    _check_int(n, "n", 1)
    rng = random.Random(_check_int(seed, "seed", 0))
    return [_to_story(_sample_story(rng)) for _ in range(n)]


# ---- the entropy floor and the corpus -------------------------------------------------------
def _ratio(a: list[float], b: list[int]) -> tuple[float, float]:
    """sum(a)/sum(b) and its standard error (delta method, i.i.d. pairs)."""
    n, r = len(a), sum(a) / sum(b)
    if n < 2:
        return r, math.nan
    mean_b = sum(b) / n
    var = sum((x - r * y) ** 2 for x, y in zip(a, b)) / (n - 1)
    return r, math.sqrt(var / n) / mean_b


@dataclass(frozen=True)
class EntropyFloor:
    """True entropy of toy-world text per unit, in nats, with standard errors (`_se`).

    Units: English word tokens + one ``</s>`` per story; English characters + one ``\\n`` per
    story; Chinese characters + one end unit per story. Introduced in chapter 01_ngram."""
    nats_per_token: float
    nats_per_token_se: float
    nats_per_char: float
    nats_per_char_se: float
    nats_per_char_zh: float
    nats_per_char_zh_se: float
    n_stories: int
    n_tokens: int
    n_chars: int

    @property
    def bits_per_token(self) -> float:
        return self.nats_per_token / math.log(2)

    @property
    def bits_per_token_se(self) -> float:
        return self.nats_per_token_se / math.log(2)

    @property
    def bits_per_char(self) -> float:
        return self.nats_per_char / math.log(2)

    @property
    def bits_per_char_se(self) -> float:
        return self.nats_per_char_se / math.log(2)

    @property
    def bits_per_char_zh(self) -> float:
        return self.nats_per_char_zh / math.log(2)

    @property
    def bits_per_char_zh_se(self) -> float:
        return self.nats_per_char_zh_se / math.log(2)


def entropy_floor(stories: list[Story]) -> EntropyFloor:
    """Monte-Carlo estimate of the entropy rate from the stories' exact log-probabilities.

    Introduced in chapter 01_ngram."""
    if not isinstance(stories, (list, tuple)) or not stories or not isinstance(stories[0], Story):
        raise ValueError("stories must be a non-empty list of Story")
    nll = [-s.log_prob for s in stories]
    toks = [len(tokenize_en(s.en)) + 1 for s in stories]
    chars = [len(s.en) + 1 for s in stories]
    chars_zh = [len(tokenize_zh(s.zh)) + 1 for s in stories]
    return EntropyFloor(*_ratio(nll, toks), *_ratio(nll, chars), *_ratio(nll, chars_zh),
                        len(stories), sum(toks), sum(chars))


SPLITS = {"train": (0.0, 0.8), "valid": (0.8, 0.9), "test": (0.9, 1.0), "all": (0.0, 1.0)}


@dataclass(frozen=True)
class ToyCorpus:
    """Stories, one per line. Introduced in chapter 00_introduction.

    Splits are contiguous: the first 80% of stories train, the next 10% valid, the last 10%
    test (stories are i.i.d., so contiguous blocks are as good as shuffled ones)."""
    stories: tuple[Story, ...]
    seed: int

    @property
    def text(self) -> str:
        return "".join(s.en + "\n" for s in self.stories)

    @property
    def text_zh(self) -> str:
        return "".join(s.zh + "\n" for s in self.stories)

    def split(self, name: str = "all") -> list[Story]:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {tuple(SPLITS)}, got {name!r}")
        a, b = SPLITS[name]
        n = len(self.stories)
        return list(self.stories[round(a * n):round(b * n)])

    def tokens(self, split: str = "all") -> list[list[str]]:
        """One token list per story: the sequences whose T+1 predictions the floor counts."""
        return [tokenize_en(s.en) for s in self.split(split)]

    def entropy(self, split: str = "all") -> EntropyFloor:
        return entropy_floor(self.split(split))


def generate_corpus(n_chars: int = 1_000_000, seed: int = 0) -> ToyCorpus:
    """Stories until the English text (with newlines) has at least `n_chars` characters.

    Introduced in chapter 00_introduction."""
    _check_int(n_chars, "n_chars", 1)
    rng, stories, total = random.Random(_check_int(seed, "seed", 0)), [], 0
    while total < n_chars:
        stories.append(_to_story(_sample_story(rng)))
        total += len(stories[-1].en) + 1
    return ToyCorpus(tuple(stories), seed)


# ---- labeled views --------------------------------------------------------------------------
@dataclass(frozen=True)
class SentimentExample:
    """Introduced in chapter 05_bert."""
    en: str
    zh: str
    label: str  # "positive" or "negative"


@dataclass(frozen=True)
class IntentExample:
    """Introduced in chapter 09_applications."""
    en: str
    zh: str
    intent: str  # greeting, order_status, refund, complaint, thanks


@dataclass(frozen=True)
class EntityExample:
    """Token spans [start, end) of tokenize_en(text). Introduced in chapter 07_xlnet."""
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
    """context[answer_start:answer_end] == answer. Introduced in chapter 08_electra."""
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


def sentiment_examples(n: int = 1000, seed: int = 0) -> list[SentimentExample]:
    """Balanced labels (each 50%): narrative feelings/attitudes (with "not") and reviews.

    Introduced in chapter 05_bert."""
    _check_int(n, "n", 1)
    rng, out = random.Random(_check_int(seed, "seed", 0)), []
    while len(out) < n:
        want = 1 if rng.random() < 0.5 else -1
        while True:
            en, zh, _, _, tags, _ = _expand("REVIEW" if rng.random() < 0.5 else "S", rng, None)
            if _polarity(tags) == want and any(t.startswith("pol=") for t in tags):
                break
        out.append(SentimentExample(detokenize_en(en), zh, "positive" if want > 0 else "negative"))
    return out


def intent_examples(n: int = 1000, seed: int = 0) -> list[IntentExample]:
    """Customer-service utterances, five intents (uniform). Introduced in chapter 09_applications."""
    _check_int(n, "n", 1)
    rng, out = random.Random(_check_int(seed, "seed", 0)), []
    for _ in range(n):
        en, zh, _, _, tags, _ = _expand("INTENT", rng, None)
        out.append(IntentExample(detokenize_en(en), zh, tags[0][len("intent="):]))
    return out


def entity_examples(n: int = 1000, seed: int = 0) -> list[EntityExample]:
    """Standalone sentences with PERSON/ANIMAL/OBJECT/PLACE spans (heads only; pronouns untagged).

    Introduced in chapter 07_xlnet."""
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
    event says "it": answering needs coreference across sentences. Introduced in chapter 08_electra."""
    _check_int(n, "n", 1)
    rng, out = random.Random(_check_int(seed, "seed", 0)), []
    while len(out) < n:
        d = _sample_story(rng)
        first = {}
        for m in d["marks"]:
            if m[0] == "REF":
                first.setdefault(m[3], (m[1], m[2]))
        kinds = [(k, subj) for k, subj, _ in d["events"]]
        cands = [(k, subj, tgt) for k, subj, tgt in d["events"]
                 if d["ents"][subj][0] == "person" and kinds.count((k, subj)) == 1]
        if not cands:
            continue
        kind, subj, tgt = cands[int(rng.random() * len(cands))]
        s, e = (tgt[0][1], tgt[0][2]) if kind == "go" else first[tgt[0][3]]
        a, b = d["offsets"][s], d["offsets"][e - 1] + len(d["tokens"][e - 1])
        name = d["ents"][subj][1].capitalize()
        out.append(QAExample(d["text"], _QUESTIONS[kind].format(name), d["text"][a:b], a, b))
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


_DETERMINERS = ("a", "the")
_NOUNS = frozenset([n for n, _, _ in ANIMALS] + [n for v in THINGS.values() for n, _, _ in v]
                   + [p[0].split()[-1] for p in PLACES])
# verbs whose first noun phrase after them is their direct object ("gave" has two objects: left out)
_OBJECT_VERBS = frozenset(["saw", "ate", "read", "found", "lost"] + [a for a, _, _ in ATTITUDES])


def word_relations(tokens: list[str]) -> list[tuple[str, int, int]]:
    """(relation, query index, target index) for three relations a head might track in toy-world text.

    Introduced in chapter 05_bert. "determiner → noun": a/the to the noun it introduces;
    "object → verb": the head word of a direct object to its verb; "pronoun → antecedent":
    he/she/him/her to the name it refers to (read off the text exactly, as in
    `coreference_examples`). `tokens` are `tokenize_en` words; sentences end with ".".
    """
    if not isinstance(tokens, (list, tuple)) or not all(isinstance(t, str) for t in tokens):
        raise ValueError(f"tokens must be a list of word strings (tokenize_en), got {type(tokens).__name__}")
    out, names, verb = [], {}, None
    for i, tok in enumerate(tokens):
        if tok == ".":
            verb = None
        elif tok in _DETERMINERS:
            noun = next((j for j in range(i + 1, min(i + 3, len(tokens))) if tokens[j] in _NOUNS), None)
            if noun is not None:
                out.append(("determiner → noun", i, noun))
        elif tok in _OBJECT_VERBS and verb is None:
            verb = i
        elif verb is not None and verb >= 0 and (tok in _NOUNS or tok in _GENDER or tok in ("him", "her", "it")):
            out.append(("object → verb", i, verb))
            verb = -1  # one direct object per verb
        if tok in _PRONOUN_GENDER:
            match = [j for w, j in names.items() if _GENDER[w] == _PRONOUN_GENDER[tok]]
            if len(match) == 1:
                out.append(("pronoun → antecedent", i, match[0]))
        elif tok in _GENDER:
            names[tok] = i
    return out



def hidden_word_posterior(tokens: list[str], position: int, words: list[str]) -> list[float]:
    """p(w | every other token) for each w in `words`, exactly, for the word at `position`.

    Introduced in chapter 05_bert: the best possible answer to a masked-word question, and its
    entropy the floor of a masked language model's loss. `tokens` (`tokenize_en` words) are a
    whole story or its opening sentences; each candidate is put into the gap and the story scored
    with `story_log_prob`, whose normalization over `words` is the conditional. A gap that no
    candidate can fill is an error, not a guess.
    """
    if not isinstance(tokens, (list, tuple)) or not tokens or not all(isinstance(t, str) for t in tokens):
        raise ValueError(f"tokens must be a non-empty list of word strings (tokenize_en), got {tokens!r:.80}")
    if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < len(tokens):
        raise ValueError(f"position must be an index into tokens, 0 to {len(tokens) - 1}, got {position!r}")
    if not isinstance(words, (list, tuple)) or not words or not all(isinstance(w, str) for w in words):
        raise ValueError(f"words must be a non-empty list of candidate word strings, got {words!r:.80}")
    logps = [story_log_prob(detokenize_en([*tokens[:position], w, *tokens[position + 1:]])) for w in words]
    best = max(logps)
    if best == -math.inf:
        raise ValueError(f"no word in words makes a possible story with position {position} filled in: "
                         f"{detokenize_en(tokens)!r} (the opening sentences of one story?)")
    ps = [math.exp(lp - best) for lp in logps]
    total = sum(ps)
    return [p / total for p in ps]

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
