"""Tests for lmbook_utils.toyworld: exact probabilities, parsing, the entropy floor, views."""

from __future__ import annotations

import math
import time
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmbook_utils import toyworld as tw
from lmbook_utils.toyworld import grammar, parsing, sampling


@pytest.fixture(scope="module")
def corpus():
    return tw.generate_corpus(n_chars=60_000, seed=0)


def _yields(sym: str) -> list[tuple[tuple, str]]:
    """Every (English tokens, Chinese) derivation of `sym`, by brute force from RULES."""
    out = []
    for rule in tw.RULES[sym]:
        partial = [((), "")]
        for kind, v in rule.en:
            if kind == "T":
                partial = [(e + v, z) for e, z in partial]
            else:
                partial = [(e + e2, z) for e, z in partial for e2, _ in _yields(v)]
        out += partial
    return out


# ---- determinism and speed ------------------------------------------------------------------
def test_same_seed_same_text_different_seed_different_text():
    a, b = tw.generate_corpus(20_000, seed=3), tw.generate_corpus(20_000, seed=3)
    assert a.text == b.text and a.text_zh == b.text_zh
    assert [s.log_prob for s in a.stories] == [s.log_prob for s in b.stories]
    assert tw.generate_corpus(20_000, seed=4).text != a.text
    assert len(a.text) >= 20_000 and a.text.endswith("\n")
    assert a.text.count("\n") == len(a.stories)


def test_one_million_chars_fast():
    t = time.perf_counter()
    c = tw.generate_corpus(1_000_000, seed=1)
    assert time.perf_counter() - t < 10
    assert len(c.text) >= 1_000_000


# ---- exact probabilities ----------------------------------------------------------------------
def test_generated_sentences_parse_to_their_recorded_log_prob():
    for start in tw.SENTENCE_SYMBOLS:
        for s in tw.generate_sentences(300, seed=5, start=start):
            assert tw.is_grammatical(s.en, start=start) and tw.is_grammatical(s.zh, "zh", start)
            assert len(parsing._sentence_parses(s.en, "en", start)) == 1  # unambiguous
            assert len(parsing._sentence_parses(s.zh, "zh", start)) == 1
            assert math.isclose(tw.log_prob(s.en, start=start), s.log_prob, rel_tol=1e-12)
            assert math.isclose(tw.log_prob(s.zh, "zh", start), s.log_prob, rel_tol=1e-12)


def test_stories_parse_uniquely_to_their_recorded_log_prob(corpus):
    for s in corpus.stories[:300]:
        assert len(parsing._story_parses(s.en, "en")) == 1 and len(parsing._story_parses(s.zh, "zh")) == 1
        assert math.isclose(tw.story_log_prob(s.en), s.log_prob, rel_tol=1e-12)
        assert math.isclose(tw.story_log_prob(s.zh, "zh"), s.log_prob, rel_tol=1e-12)
        for en, zh in zip(s.sentences_en, s.sentences_zh):  # each is a grammatical sentence
            assert tw.is_grammatical(en) and tw.is_grammatical(zh, "zh")
        assert tw.detokenize_en(tw.tokenize_en(s.en)) == s.en  # tokens lose nothing


@pytest.mark.parametrize("sym", ["REVIEW", "INTENT", "ANY_O", "A_S", "P_S", "PLACE_AT"])
def test_probabilities_of_a_whole_sub_language_sum_to_one(sym):
    ys = _yields(sym)
    texts = {tw.detokenize_en(list(e)) for e, _ in ys}
    assert len(texts) == len(ys)  # distinct derivations give distinct texts
    total = sum(math.exp(tw.log_prob(t, start=sym)) for t in texts)
    assert abs(total - 1) < 1e-9


def test_story_slot_choices_sum_to_one_and_are_distinct_texts(corpus):
    ents = (("person", "alice", "f"), ("animal", "dog", None), ("person", "bob", "m"), ("food", "cake", None))
    states = [((), ()), (ents[:1], ()), (ents[:2], ()), (ents, (0,)), (ents[:2], (1,))]
    for slot in grammar._SLOTS:
        for state in states:
            opts = list(sampling._slot_all(slot, *state))
            assert abs(sum(o[0] for o in opts) - 1) < 1e-12
            assert len({o[1] for o in opts}) == len(opts) and len({o[2] for o in opts}) == len(opts)


def test_hand_computed_sentence_and_story_log_probs():
    # S -> P_S went to PLACE (0.12); P_S -> alice ((1-0.2)/10); PLACE -> the park (1/8)
    assert (tw.P_PRONOUN, len(tw.PEOPLE), len(tw.PLACES)) == (0.2, 10, 8)
    expected = math.log(0.12) + math.log(0.8 / 10) + math.log(1 / 8)
    assert math.isclose(tw.log_prob("Alice went to the park."), expected, rel_tol=1e-12)
    assert math.isclose(tw.log_prob("爱丽丝去了公园。", "zh"), expected, rel_tol=1e-12)
    # "a big dog slept": S (0.06), A_S -> ANIMAL_N (0.85), indefinite (0.6) with adj (0.5),
    # dog (1/6), big (1/5), VI_A slept (1/3)
    expected = math.log(0.06 * 0.85 * 0.6 * 0.5 / 6 / 5 / 3)
    assert math.isclose(tw.log_prob("A big dog slept."), expected, rel_tol=1e-12)
    # Story: length 2 (1/4). Sentence 1: S->P_S VI_P (0.12), new person forced (1), Alice
    # (1/10), laughed (1/6). Sentence 2: known Alice (1 - P_NEW), who must be "she"; cried (1/6).
    assert tw.P_NEW == 0.25
    expected = math.log(1 / 4 * 0.12 / 10 / 6 * 0.12 * 0.75 / 6)
    assert math.isclose(tw.story_log_prob("Alice laughed. She cried."), expected, rel_tol=1e-12)
    assert math.isclose(tw.story_log_prob("爱丽丝笑了。她哭了。", "zh"), expected, rel_tol=1e-12)


def test_ungrammatical_strings_are_rejected():
    assert tw.is_grammatical("Alice went to the park.")
    for bad in ["Park the went Alice to.", "Alice went to the moon.", "Alice ate the dog.",
                "alice went to the park.", "Alice went to the park", "The dog read a book.",
                "Alice gave Bob it.", "Him laughed."]:
        assert not tw.is_grammatical(bad), bad
    assert not tw.is_grammatical("爱丽丝去了月亮。", "zh")
    # Pronoun gender must match the only person introduced so far.
    assert tw.story_log_prob("Alice laughed. She cried.") > -math.inf
    assert tw.story_log_prob("Alice laughed. He cried.") == -math.inf
    assert tw.story_log_prob("爱丽丝笑了。他哭了。", "zh") == -math.inf
    # A known person is never re-named while a pronoun is unambiguous, nor re-introduced.
    assert tw.story_log_prob("Alice laughed. Alice cried.") == -math.inf
    assert tw.story_log_prob("Alice laughed.") == -math.inf  # stories have 2-5 sentences


@settings(max_examples=30, deadline=None)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz .,?!爱丽丝去了公园。", max_size=40))
def test_random_text_is_scored_without_crashing(text):
    for lang in ("en", "zh"):
        lp = tw.log_prob(text, lang)
        assert lp <= 0 and (lp == -math.inf) == (not tw.is_grammatical(text, lang))


# ---- entropy floor ----------------------------------------------------------------------------
def test_entropy_floor_is_consistent_across_seeds():
    a, b = tw.generate_corpus(150_000, seed=0).entropy(), tw.generate_corpus(150_000, seed=1).entropy()
    for e in (a, b):
        assert 0 < e.bits_per_char < e.bits_per_token and 0 < e.bits_per_char_zh
        assert math.isclose(e.bits_per_token, e.nats_per_token / math.log(2))
    se = math.hypot(a.nats_per_token_se, b.nats_per_token_se)
    assert 0 < se and abs(a.nats_per_token - b.nats_per_token) < 4 * se


def test_entropy_floor_counts_tokens_and_end_markers(corpus):
    test = corpus.split("test")
    e = tw.entropy_floor(test)
    tokens = sum(len(t) + 1 for t in corpus.tokens("test"))
    assert e.n_tokens == tokens and e.n_chars == sum(len(s.en) + 1 for s in test)
    assert math.isclose(e.nats_per_token, -sum(s.log_prob for s in test) / tokens)
    parts = [corpus.split(n) for n in ("train", "valid", "test")]
    assert [s for p in parts for s in p] == list(corpus.stories)
    assert 0.75 < len(parts[0]) / len(corpus.stories) < 0.85


# ---- Chinese side and labeled views -----------------------------------------------------------
def test_every_sentence_has_a_chinese_translation_and_the_greeting_is_there(corpus):
    for s in corpus.stories:
        assert len(s.sentences_zh) == len(s.sentences_en) and all(z.endswith("。") for z in s.sentences_zh)
    pairs = tw.translation_pairs(1000, seed=0)
    assert tw.TranslationPair("Hello, how are you?", "你好，你怎么样？") in pairs
    assert all(p.en and p.zh and not any(c.isascii() and c.isalpha() for c in p.zh) for p in pairs)


def test_sentiment_labels_balanced_and_right():
    ex = tw.sentiment_examples(400, seed=0)
    counts = Counter(e.label for e in ex)
    assert set(counts) == {"positive", "negative"} and 150 < counts["positive"] < 250
    labels = {e.en: e.label for e in ex}
    for e in ex:  # spot-check against the lexicon's polarity
        if e.en == "I love this movie.":
            assert e.label == "positive"
        if " was not happy." in e.en or " hated " in e.en:
            assert e.label == "negative"
    assert any(" not " in e for e in labels)


def test_sentiment_without_reviews_keeps_story_sentences_only():
    default = tw.sentiment_examples(300, seed=3)
    assert sum(tw.is_grammatical(e.en, start="REVIEW") for e in default) > 150  # mostly reviews
    stories = tw.sentiment_examples(300, seed=3, reviews=False)
    assert not any(tw.is_grammatical(e.en, start="REVIEW") for e in stories)
    assert all(tw.is_grammatical(e.en, start="S") for e in stories)  # story sentences, and only those
    counts = Counter(e.label for e in stories)
    assert 110 < counts["positive"] < 190
    with pytest.raises(ValueError, match="reviews must be True or False"):
        tw.sentiment_examples(3, reviews=1)


def test_intents_cover_five_labels():
    ex = tw.intent_examples(500, seed=0)
    counts = Counter(e.intent for e in ex)
    assert set(counts) == {"greeting", "order_status", "refund", "complaint", "thanks"}
    assert min(counts.values()) > 60
    assert all(tw.is_grammatical(e.en, start="INTENT") for e in ex)


def test_entity_spans_point_at_the_right_words():
    names = {n.lower() for n, _, _ in tw.PEOPLE}
    animals = {a for a, _, _ in tw.ANIMALS}
    places = {p for p, _, _, _ in tw.PLACES}
    seen = Counter()
    for e in tw.entity_examples(300, seed=0):
        assert list(e.tokens) == tw.tokenize_en(e.text)
        for s, t, label in e.spans:
            words = " ".join(e.tokens[s:t])
            seen[label] += 1
            assert {"PERSON": words in names, "ANIMAL": words in animals, "PLACE": words in places,
                    "OBJECT": words in grammar._NOUN and words not in animals}[label], (words, label)
        assert sum(tag != "O" for tag in e.bio_tags) == sum(t - s for s, t, _ in e.spans)
    assert set(seen) == set(tw.ENTITY_LABELS)


def test_qa_answer_spans_match():
    ex = tw.qa_examples(200, seed=0)
    assert len(ex) == 200
    for q in ex:
        assert q.context[q.answer_start:q.answer_end] == q.answer and q.answer
        name = q.question.split()[2]
        assert name in q.context
        if q.question.startswith("Where"):
            assert q.answer.startswith("the ")
        else:
            assert q.answer.split()[0] in ("a", "an", "the")
    assert len({q.question.split()[0] for q in ex}) == 2  # Where / What


def test_nsp_is_fifty_fifty_and_true_pairs_are_consecutive():
    ex = tw.nsp_examples(600, seed=0)
    assert 0.44 < sum(e.is_next for e in ex) / len(ex) < 0.56
    pool = tw.generate_stories(601, seed=0)  # nsp_examples draws its stories first, like this
    for k, e in enumerate(ex):
        sents = pool[k].sentences_en
        i = sents.index(e.first)
        if e.is_next:
            assert sents[i + 1] == e.second
        else:
            assert any(e.second in pool[j].sentences_en for j in range(len(pool)) if j != k)



def test_nsp_from_story_start():
    ex = tw.nsp_examples(600, seed=3, story_start=True)
    assert 0.44 < sum(e.is_next for e in ex) / len(ex) < 0.56
    pool = tw.generate_stories(601, seed=3)
    for k, e in enumerate(ex):
        assert e.first == pool[k].sentences_en[0]
        if e.is_next:
            assert e.second == pool[k].sentences_en[1]
        else:  # a later sentence of another story, never a first one
            assert any(e.second in pool[j].sentences_en[1:] for j in range(len(pool)) if j != k)
    assert tw.nsp_examples(50, seed=3) != tw.nsp_examples(50, seed=3, story_start=True)

# ---- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize("call, match", [
    (lambda: tw.generate_corpus(0), "n_chars"),
    (lambda: tw.generate_corpus(-5), "n_chars"),
    (lambda: tw.generate_corpus(1.5), "n_chars"),
    (lambda: tw.generate_corpus(100, seed=-1), "seed"),
    (lambda: tw.log_prob("Alice laughed.", lang="fr"), "lang"),
    (lambda: tw.is_grammatical("Alice laughed.", lang="EN"), "lang"),
    (lambda: tw.story_log_prob("Alice laughed.", lang="de"), "lang"),
    (lambda: tw.log_prob("Alice laughed.", start="X"), "start"),
    (lambda: tw.generate_sentences(0), "n"),
    (lambda: tw.generate_sentences(5, start="P_S"), "start"),
    (lambda: tw.sentiment_examples(0), "n"),
    (lambda: tw.qa_examples(True), "n"),
    (lambda: tw.generate_corpus(100).split("dev"), "split"),
    (lambda: tw.entropy_floor([]), "stories"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_non_string_text_is_a_type_error():
    with pytest.raises(TypeError, match="text"):
        tw.log_prob(3)
    with pytest.raises(TypeError, match="text"):
        tw.tokenize_en(None)


def test_coreference_links_point_back_to_the_only_name_of_that_gender():
    examples = tw.coreference_examples(300, seed=4)
    assert len(examples) == 300 and all(ex.links for ex in examples)
    gender = {e.lower(): g for e, _, g in tw.PEOPLE}
    n_links = 0
    for ex in examples:
        assert list(ex.tokens) == tw.tokenize_en(ex.text)
        for pron, ante, name in ex.links:
            n_links += 1
            assert ex.tokens[pron] in ("he", "him", "she", "her")
            assert ante < pron and ex.tokens[ante] == name
            g = "m" if ex.tokens[pron] in ("he", "him") else "f"
            earlier = {t for t in ex.tokens[:pron] if gender.get(t) == g}
            assert earlier == {name}  # the grammar's rule: the only person of that gender so far
            assert name not in ex.tokens[ante + 1:pron]  # the most recent mention
    assert n_links > 300
    assert tw.coreference_examples(5, seed=4) == examples[:5]  # same seed, same stream


def test_coreference_bad_input():
    with pytest.raises(ValueError, match="n"):
        tw.coreference_examples(0)


def test_agreement_examples_are_possible_or_broken_by_one_pronoun():
    examples = tw.agreement_examples(300, seed=2)
    labels = [e.label for e in examples]
    assert 0.4 < sum(labels) / len(labels) < 0.65
    for e in examples:
        assert tuple(tw.tokenize_en(e.text)) == e.tokens
        assert any(t in ("he", "she", "him", "her") for t in e.tokens)
        possible = tw.story_log_prob(e.text) > -math.inf
        assert possible == (e.label == 1)
    assert tw.agreement_examples(5, seed=2) == examples[:5]
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        tw.agreement_examples(0)


def test_grammar_shares_count_sentences_and_stories():
    good = tw.tokenize_en(tw.generate_stories(1, seed=3)[0].en)
    bad = tw.tokenize_en("Alice sang. Alice sang the. He")   # 2nd sentence broken, unfinished tail
    sentence_share, story_share = tw.grammar_shares([good, bad])
    n_good = good.count(".")
    assert sentence_share == pytest.approx((n_good + 1) / (n_good + 2))
    assert story_share == 0.5
    with pytest.raises(ValueError, match="non-empty list of token lists"):
        tw.grammar_shares(["Alice sang."])
