"""The toy world's grammar: its words, its rules with their probabilities, and its tokens.

Introduced in chapter 00_introduction. Everything the other modules of `toyworld` sample or
parse is defined here: the bilingual lexicon, the published probabilities (`P_PRONOUN`,
`P_DEF`, ...), the synchronous rules (`RULES`), the story slots (`_SLOTS`) and the canonical
English and Chinese units (`tokenize_en`, `tokenize_zh`, `detokenize_en`). It holds data and
the tokenizers only, so the grammar can be read in one place.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

__all__ = ["PEOPLE", "ANIMALS", "THINGS", "ADJECTIVES", "PLACES", "FEELINGS", "ATTITUDES", "PERSON_ACTIONS",
           "ANIMAL_ACTIONS", "P_PRONOUN", "P_IT", "P_DEF", "P_ADJ", "P_NEW", "STORY_LENGTHS", "N",
           "SENTENCE_RULES", "OTHER_RULES", "SENTENCE_SYMBOLS", "ENTITY_LABELS", "Rule", "RULES",
           "tokenize_en", "tokenize_zh", "detokenize_en"]

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
    entity word in a lexical rule, labeled `label` (PERSON/ANIMAL/OBJECT/PLACE), and `head_zh`
    the character span of the same word in zh (狗 in 一只大狗), so Chinese spans need no search."""
    lhs: str
    prob: float
    en: tuple
    zh: tuple
    tag: str | None = None
    label: str | None = None
    head: tuple[int, int] | None = None
    head_zh: tuple[int, int] | None = None


def _items(template: str, lang: str) -> tuple:
    out = []
    for part in re.split(r"(<[A-Z_]+>)", template):
        if part.startswith("<"):
            out.append(("N", part[1:-1]))
        elif part.strip():
            out.append(("T", tuple(part.split()) if lang == "en" else part))
    return tuple(out)


def _rule(lhs, prob, en, zh, tag=None, label=None) -> Rule:
    head = head_zh = None
    if "{" in en + zh:  # "the {train station}" / "{火车站}": the braces mark the entity words
        assert "{" in en and "{" in zh and "<" not in en + zh, (en, zh)  # both sides, terminals only
        before, inside = en.split("{")[0].split(), en.split("{")[1].split("}")[0].split()
        head, en = (len(before), len(before) + len(inside)), en.replace("{", "").replace("}", "")
        head_zh, zh = (zh.index("{"), zh.index("}") - 1), zh.replace("{", "").replace("}", "")
    return Rule(lhs, prob, _items(en, "en"), _items(zh, "zh"), tag, label, head, head_zh)


def _indef(noun, zh, clf, adj=None) -> tuple[str, str]:
    first = adj[0] if adj else noun
    words = ["an" if first[0] in "aeiou" else "a"] + ([adj[0]] if adj else []) + [f"{{{noun}}}"]
    return " ".join(words), "一" + clf + (adj[1] if adj else "") + f"{{{zh}}}"


def _np_rules(lhs, entries, adjs, label) -> list[Rule]:
    """'the noun' | 'a noun' | 'a adj noun', with probabilities from P_DEF and P_ADJ."""
    n, out = len(entries), []
    for noun, zh, clf in entries:
        out.append(_rule(lhs, P_DEF / n, f"the {{{noun}}}", "那" + clf + f"{{{zh}}}", label=label))
        out.append(_rule(lhs, (1 - P_DEF) * (1 - P_ADJ) / n, *_indef(noun, zh, clf), label=label))
        out += [_rule(lhs, (1 - P_DEF) * P_ADJ / (n * len(adjs)), *_indef(noun, zh, clf, a), label=label)
                for a in adjs]
    return out


def _build_rules() -> dict[str, tuple[Rule, ...]]:
    r: dict[str, list[Rule]] = {"S": [_rule("S", *x) for x in SENTENCE_RULES]}
    for case, he, she in (("P_S", "he", "she"), ("P_O", "him", "her")):
        r[case] = [_rule(case, (1 - P_PRONOUN) / len(PEOPLE), f"{{{e.lower()}}}", f"{{{z}}}", label="PERSON")
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
    r["PLACE"] = [_rule("PLACE", 1 / len(PLACES), f"the {{{e}}}", f"{{{z}}}", label="PLACE")
                  for e, z, _, _ in PLACES]
    r["PLACE_AT"] = [_rule("PLACE_AT", 1 / len(PLACES), f"{p} the {{{e}}}", a.replace(z, f"{{{z}}}", 1),
                           label="PLACE") for e, z, p, a in PLACES]
    r["FEELING"] = [_rule("FEELING", 1 / len(FEELINGS), e, z, f"pol={p}") for e, z, p in FEELINGS]
    r["ATTITUDE"] = [_rule("ATTITUDE", 1 / len(ATTITUDES), e, z, f"pol={p}") for e, z, p in ATTITUDES]
    r["VT_TOY"] = [_rule("VT_TOY", 0.5, "found", "找到了"), _rule("VT_TOY", 0.5, "lost", "弄丢了")]
    r["VI_P"] = [_rule("VI_P", 1 / len(PERSON_ACTIONS), e, z) for e, z in PERSON_ACTIONS]
    r["VI_A"] = [_rule("VI_A", 1 / len(ANIMAL_ACTIONS), e, z) for e, z in ANIMAL_ACTIONS]
    r["ITEM"] = [_rule("ITEM", 0.2, f"{{{e}}}", f"{{{z}}}", label="OBJECT") for e, z in (
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
    """The canonical English word tokens (see the `toyworld` docstring). Introduced in chapter 01_ngram."""
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
