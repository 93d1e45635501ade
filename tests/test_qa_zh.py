"""Tests for toyworld.qa_examples_zh and the Chinese spans the sampler now records on its marks.

The Chinese of an answer (and of every mark) is rebuilt here from the lexicon (names, nouns with
their classifiers, adjectives, places), not by the sampler's code path; the answer's sentence is
checked against the parser's derivation of both languages; faq_pairs, which finds its Chinese by
parsing, must agree. The views that existed before are compared with hashes recorded before the
change, and so is the sampler's random stream.
"""

from __future__ import annotations

import hashlib
import random
import re

import pytest

from lmbook_utils import toyworld as tw
from lmbook_utils.qa import char_f1
from lmbook_utils.toyworld import app_views, grammar, sampling

# ---- the grammar's Chinese, from its lexicon --------------------------------------------------
_NAME = {e.lower(): z for e, z, _ in tw.PEOPLE}
_NOUN = {n: (z, c) for n, z, c in tw.ANIMALS + tuple(x for v in tw.THINGS.values() for x in v)}
_ADJ: dict[str, str] = {}
for _kind in tw.ADJECTIVES.values():
    for _a, _z in _kind:
        assert _ADJ.setdefault(_a, _z) == _z  # an English adjective has one Chinese in every kind
_PLACE = {e: z for e, z, _, _ in tw.PLACES}
_PRONOUN = {"he": "他", "him": "他", "she": "她", "her": "她", "it": "它"}


def _zh_of(words: str) -> str:
    """What the grammar writes in Chinese for an English entity word or noun phrase."""
    w = words.split()
    if words in _NAME or words in _PRONOUN:
        return _NAME.get(words) or _PRONOUN[words]
    if words in _PLACE or (w[0] == "the" and " ".join(w[1:]) in _PLACE):  # park, the park: 公园
        return _PLACE[words.removeprefix("the ")]
    if words in _NOUN:
        return _NOUN[words][0]
    zh, clf = _NOUN[w[-1]]
    if w[0] == "the":
        return "那" + clf + zh
    assert w[0] in ("a", "an") and len(w) in (2, 3), words
    return "一" + clf + (_ADJ[w[1]] if len(w) == 3 else "") + zh


def _sentence(pattern: str, text: str, start: int, end: int) -> int:
    """The index of the sentence of `text` that holds [start, end)."""
    spans = [m.span() for m in re.finditer(pattern, text)]
    assert "".join(text[a:b] for a, b in spans) == text
    (k,) = [k for k, (a, b) in enumerate(spans) if a <= start and end <= b]
    return k


@pytest.fixture(scope="module")
def examples():
    return tw.qa_examples_zh(3000, seed=1)


# ---- the QA view ------------------------------------------------------------------------------
def test_exported_like_the_other_views():
    assert tw.qa_examples_zh is app_views.qa_examples_zh and "qa_examples_zh" in tw.__all__
    assert tw.QAExampleZh is app_views.QAExampleZh and "QAExampleZh" in tw.__all__


def test_parallel_to_the_english_examples_item_by_item(examples):
    assert [x.en for x in examples] == tw.qa_examples(3000, seed=1)
    for x in examples[:300]:  # the Chinese story has the English story's one derivation
        assert app_views._derive(x.context, "zh") == app_views._derive(x.en.context)
    # the sentences are joined with nothing between them, as Story.zh: each ends in 。
    assert all(re.fullmatch(r"([^。 ]+。){2,5}", x.context) for x in examples)


def test_offsets_slice_exactly_and_the_answer_is_the_chinese_of_the_english(examples):
    for x in examples:
        assert x.context[x.answer_start:x.answer_end] == x.answer and x.answer
        assert x.answer == _zh_of(x.en.answer.lower()), (x.en.answer, x.answer)
        if not x.en.question.startswith("Where"):  # an entity's first mention: "a [adj] noun"
            assert x.en.answer.split()[0] in ("a", "an") and x.answer.startswith("一")


def test_questions_are_well_formed(examples):
    zh_of_en = {r"Where did (\w+) go\?": "{}去了哪里？", r"What did (\w+) eat\?": "{}吃了什么？",
                r"What did (\w+) read\?": "{}读了什么？"}
    for x in examples:
        ((template, name),) = [(q, m.group(1)) for rx, q in zh_of_en.items()
                               if (m := re.fullmatch(rx, x.en.question))]
        assert x.question == template.format(_NAME[name.lower()]) and _NAME[name.lower()] in x.context
    assert {x.question[-5:] for x in examples} == {"去了哪里？", "吃了什么？", "读了什么？"}


def test_the_answers_sentence_translates_the_english_answers_sentence(examples):
    repeated = [x for x in examples if x.context.count(x.answer) > 1]
    not_first = [x for x in repeated if x.context.index(x.answer) != x.answer_start]
    assert len(repeated) >= 20 and len(not_first) >= 10  # a search for the answer would go wrong here
    for x in examples[:300] + repeated:
        k = _sentence(r"[^。]+。", x.context, x.answer_start, x.answer_end)
        assert k == _sentence(r" ?[^.]+\.", x.en.context, x.en.answer_start, x.en.answer_end)
        derivation_en, _ = app_views._derive(x.en.context)
        derivation_zh, _ = app_views._derive(x.context, "zh")
        assert derivation_zh[k] == derivation_en[k]  # the same rule and parts: its translation
        # and within that sentence the answer occurs once, where the offsets say
        sentences = re.findall(r"[^。]+。", x.context)
        before = sum(map(len, sentences[:k]))
        assert sentences[k].count(x.answer) == 1 and before + sentences[k].index(x.answer) == x.answer_start


def test_agrees_with_faq_pairs_which_parses_instead():
    for x, p in zip(tw.qa_examples_zh(300, seed=2), tw.faq_pairs(300, seed=2)):
        assert (x.context, x.question, x.answer) == (p.context_zh, p.question_zh, p.answer_zh)


def test_deterministic_for_a_seed():
    assert tw.qa_examples_zh(30, 4) == tw.qa_examples_zh(30, 4) != tw.qa_examples_zh(30, 5)
    assert tw.qa_examples_zh(5, 4) == tw.qa_examples_zh(30, 4)[:5]  # one stream, read further


@pytest.mark.parametrize("call, match", [
    (lambda: tw.qa_examples_zh(0), "n"), (lambda: tw.qa_examples_zh(True), "n"),
    (lambda: tw.qa_examples_zh(2.0), "n"), (lambda: tw.qa_examples_zh(3, seed=-1), "seed"),
    (lambda: tw.qa_examples_zh(3, seed=1.5), "seed"), (lambda: tw.qa_examples_zh(3, seed="0"), "seed")])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_char_f1_on_real_answers():
    xs = tw.qa_examples_zh(6, seed=0)
    assert [x.answer for x in xs] == ["一本书", "火车站", "花园", "市场", "一封信", "一块大蛋糕"]
    assert all(char_f1(x.answer, x.answer) == 1.0 for x in tw.qa_examples_zh(200, seed=0))
    cake, station, garden = xs[5].answer, xs[1].answer, xs[2].answer
    # 蛋糕 in 一块大蛋糕: overlap 2, precision 2/2, recall 2/5, F1 = 2 * (2/5) / (7/5) = 4/7
    assert char_f1("蛋糕", cake) == pytest.approx(4 / 7)
    # 一块蛋糕 (the adjective dropped): the longest common run is 一块 or 蛋糕, 2 characters, not 4:
    # precision 2/4, recall 2/5, F1 = 2 * (1/5) / (9/10) = 4/9
    assert char_f1("一块蛋糕", cake) == pytest.approx(4 / 9)
    # a span one sentence too long, 大蛋糕。他: 。 is removed, so 大蛋糕他, overlap 3, P 3/4, R 3/5, F1 2/3
    assert char_f1("大蛋糕。他", cake) == pytest.approx(2 / 3)
    assert char_f1("火车", station) == pytest.approx(0.8)  # P 1, R 2/3: F1 = (4/3) / (5/3)
    # a wrong place still scores: 公园 and 花园 share 园, P = R = 1/2
    assert char_f1("公园", garden) == pytest.approx(0.5) and char_f1("河边", garden) == 0.0


# ---- the marks' Chinese spans -------------------------------------------------------------------
def test_every_mark_spans_the_chinese_of_its_english():
    rng = random.Random(3)
    seen = set()
    for _ in range(300):
        d = sampling._sample_story(rng)
        zh = "".join(d["zh"])
        for m in d["marks"]:
            assert len(m) == (6 if m[0] == "REF" else 5), m  # (label, start, end, [entity,] zh_start, zh_end)
            assert zh[m[-2]:m[-1]] == _zh_of(" ".join(d["tokens"][m[1]:m[2]])), m
            seen.add(m[0])
    for _ in range(300):  # standalone sentences: heads inside 在公园里 too
        en, zh, _, marks, _, _ = sampling._expand("S", rng, None)
        for m in marks:
            assert zh[m[-2]:m[-1]] == _zh_of(" ".join(en[m[1]:m[2]])), m
            seen.add(m[0])
    assert seen == {"REF", "PLACE_PHRASE", *tw.ENTITY_LABELS}
    assert tw.RULES["PLACE_AT"][0].head_zh == (1, 3) and tw.RULES["ANIMAL_N"][0].head_zh == (2, 3)


# ---- nothing that existed before has changed ---------------------------------------------------
# Recorded by running commit 9a320a4 (before head_zh and the Chinese spans of marks were added):
# sha256 of repr() of each call's output. Marks and events are compared without their two new
# last items (the Chinese span), rules without head_zh; *_rng is the random state after the draws.
_BEFORE = {
    "qa_examples": "2139a732d24b694fb2a5c92e109f95cb37d454f8384482aa7cd4215418d77536",
    "nsp_examples": "4a2713fd69b1307e164724ec45a0d93624b4fe606e789740d00e13ed21fd626f",
    "nsp_examples_start": "50c7ecce2199c8bc4e2fe0ccb0c7f9b586bb5dc34065e16f7b5eedb41c66edc4",
    "translation_pairs": "fdc976e93bd4333012b9197ba0feaf22b187442bcb5a22da58a54465fe512931",
    "entity_examples": "214d87dba3c4a8705c52be2ee1747d9d6f130c60cc25a5cbc2bfee6b71bbab3a",
    "generate_corpus": "00e51298b79c194667912172a76de6281c5d73530ca7b3e25868c6c5751f9570",
    "faq_pairs": "47ff3e4b2a6a06f66010e928e12f91de739dc3fce7b2189017b4d3ca07f9995e",
    "sample_story_fields": "6d1b36c44f72a5ba8b303d21f842de735b0a1beb4bdcd4a6e90cfd7c5ee5351d",
    "sample_story_marks": "fa35c077c9ca4f77b15208479b900ec36cd6bf2717be892f11e3c185ff08d999",
    "sample_story_events": "4f6ff57e3b4511ebb5347060eda4caf7d807c56ad56d0baf12432cde42cabb86",
    "sample_story_rng": "99877db5789bbd0de52f6c996ac2ff4c2c29abfd51c08b1603d75002e2c80f4d",
    "expand_standalone": "1d5efce1b792c9bee10b693fc05ad60c938ed535fbc610b82c8e3811bd7f0206",
    "expand_rng": "49a594a7b1393e3dddcfb515ab62bff71b7ef6b29385d9cae332f40c27676d9d",
    "rules": "7a68f56f7b80ee2809c81d8130af47a6f0ba1ac2980f61ddb3982ef3f9489f7e",
    "first": "3f4f601cf532e8555d1da070a1f6eb84d288fea2acb2be22332d04cec1527e9d",
}


def _now() -> dict:
    old = lambda m: m[:-2]  # noqa: E731  a mark as it was, without its Chinese span
    out = {"qa_examples": tw.qa_examples(300, seed=7), "nsp_examples": tw.nsp_examples(300, seed=7),
           "nsp_examples_start": tw.nsp_examples(300, seed=7, story_start=True),
           "translation_pairs": tw.translation_pairs(300, seed=7), "entity_examples": tw.entity_examples(300, seed=7),
           "generate_corpus": tw.generate_corpus(20_000, seed=7), "faq_pairs": tw.faq_pairs(100, seed=7)}
    rng = random.Random(7)
    stories = [sampling._sample_story(rng) for _ in range(300)]
    keep = ("text", "offsets", "tokens", "zh", "bounds", "ents", "log_prob")
    out["sample_story_fields"] = [[d[k] for k in keep] for d in stories]
    out["sample_story_marks"] = [[old(m) for m in d["marks"]] for d in stories]
    out["sample_story_events"] = [[(k, s, [old(m) for m in t]) for k, s, t in d["events"]] for d in stories]
    out["sample_story_rng"] = rng.getstate()
    rng = random.Random(7)
    sents = [sampling._expand(s, rng, None) for s in ("S", "REVIEW", "INTENT") * 100]
    out["expand_standalone"] = [(a, b, c, [old(m) for m in d], e, f) for a, b, c, d, e, f in sents]
    out["expand_rng"] = rng.getstate()
    out["rules"] = {k: [(r.lhs, r.prob, r.en, r.zh, r.tag, r.label, r.head) for r in v]
                    for k, v in grammar.RULES.items()}
    out["first"] = {k: [(p, en, zh, hd[:3]) for p, en, zh, hd in v] for k, v in sampling._FIRST.items()}
    return out


def test_existing_outputs_and_random_streams_are_unchanged():
    now = _now()
    assert set(now) == set(_BEFORE)
    changed = [k for k, v in now.items() if hashlib.sha256(repr(v).encode()).hexdigest() != _BEFORE[k]]
    assert changed == []
