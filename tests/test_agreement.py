"""Pronoun agreement at a distance: the cases the grammar decides, and two ways to score them."""

import math

import pytest
import torch

from lmbook_utils import toyworld as tw
from lmbook_utils.agreement import accuracy_by_distance, model_margins, ngram_margins, pronoun_cases
from lmbook_utils.neural_lm import RNNLM, RNNLMConfig
from lmbook_utils.ngram import NGramLM


def test_cases_by_hand():
    story = "bob saw a cat . he ran . alice saw bob . she laughed . he sang .".split()
    cases = pronoun_cases([story])
    # "he" (5): only Bob, no woman -> "she" impossible; distance 1 sentence end, 5 tokens.
    # "she" (13): Alice and Bob named -> "he" is possible too (one man): not a test.
    # "he" (16): Bob's latest mention is 10, one woman named -> "she" possible: not a test.
    assert [(c.position, c.right, c.wrong, c.distance, c.token_distance) for c in cases] == [(5, "he", "she", 1, 5)]
    two_women = "alice saw carol . carol saw bob . he sang . he laughed .".split()
    cases = pronoun_cases([two_women], first_only=False)
    # two women named: "she" is forbidden at both pronouns; the second is not Bob's first pronoun since his mention
    assert [(c.position, c.distance) for c in cases] == [(8, 1), (11, 2)]
    assert [c.position for c in pronoun_cases([two_women])] == [8]


def test_every_case_of_real_stories_is_forbidden_by_the_grammar():
    stories = tw.generate_stories(300, seed=3)
    cases = pronoun_cases([tw.tokenize_en(s.en) for s in stories], first_only=False)
    assert len(cases) > 50
    for case in cases[:60]:   # the exact parser agrees: the other form makes the story impossible
        broken = list(case.tokens)
        broken[case.position] = case.wrong
        assert tw.story_log_prob(tw.detokenize_en(broken)) == -math.inf
        assert tw.story_log_prob(tw.detokenize_en(list(case.tokens))) > -math.inf


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="stories must be a list of token lists, got str"):
        pronoun_cases("bob ran .")
    with pytest.raises(ValueError, match=r"stories\[0\] must be a list of tokens"):
        pronoun_cases(["bob ran ."])
    with pytest.raises(ValueError, match=r"stories\[0\] is not toy-world text: 'he' at 0 with 0 earlier names"):
        pronoun_cases([["he", "ran", "."]])
    with pytest.raises(ValueError, match=r"margins must have one entry per case \(1\), got 0"):
        accuracy_by_distance(pronoun_cases([["bob", "ran", ".", "he", "ran", "."]]), [])


def test_ngram_margins_are_log2_ratios():
    train = [["bob", "ran", ".", "he", "ran", "."], ["alice", "ran", ".", "she", "ran", "."]] * 3
    model = NGramLM(n=2, smoothing="add_k", k=1.0).fit(train)
    cases = pronoun_cases([["bob", "ran", ".", "he", "ran", "."]])
    expected = math.log2(model.prob("he", ["."]) / model.prob("she", ["."]))
    assert ngram_margins(model, cases) == [pytest.approx(expected)]
    assert expected == pytest.approx(0.0)   # a bigram model sees "." only: it cannot tell


def test_model_margins_equal_the_direct_log_softmax():
    vocab = ["<bos>", "bob", "alice", "tom", "ran", ".", "he", "she", "saw"]
    ids = {w: i for i, w in enumerate(vocab)}
    stories = [["bob", "ran", ".", "he", "ran", "."], ["alice", "saw", "tom", ".", "tom", "ran", ".", "she", "ran", "."]]
    cases = pronoun_cases(stories)
    torch.manual_seed(0)
    model = RNNLM(RNNLMConfig(vocab_size=len(vocab), d_embed=6, d_hidden=6)).eval()
    margins = model_margins(model, ids.__getitem__, 0, cases, batch_size=1)
    for case, margin in zip(cases, margins):
        x = torch.tensor([[0] + [ids[t] for t in case.tokens[:case.position]]])
        logp = model(x).logits[0, -1].log_softmax(-1)
        assert margin == pytest.approx(float((logp[ids[case.right]] - logp[ids[case.wrong]]).detach()) / math.log(2), abs=1e-5)
    assert model_margins(model, ids.__getitem__, 0, cases, batch_size=7) == pytest.approx(margins, abs=1e-6)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        model_margins(model, ids.__getitem__, 0, cases, batch_size=0)


def test_accuracy_by_distance_pools_and_counts_ties_as_half():
    story = "alice saw carol . carol saw bob . he sang . he laughed .".split()
    cases = pronoun_cases([story], first_only=False)      # distances 1 and 2
    assert accuracy_by_distance(cases, [1.0, -2.0]) == {1: (1.0, 1), 2: (0.0, 1)}
    assert accuracy_by_distance(cases, [0.0, 3.0], max_distance=1) == {1: (0.75, 2)}
    with pytest.raises(ValueError, match="max_distance must be an int >= 0 or None, got -1"):
        accuracy_by_distance(cases, [0.0, 0.0], max_distance=-1)
