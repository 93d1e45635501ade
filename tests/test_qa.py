"""qa: SQuAD v1.1 normalization, exact match and F1 worked by hand, CMRC-style character F1, span decoding."""

from __future__ import annotations

import pytest
import torch

from lmbook_utils.qa import best_spans, char_f1, exact_match, f1_score, max_over_truths, normalize_answer, squad_scores


def test_normalize_answer_follows_the_official_order():
    # lower -> "the  cat, sat!", no punctuation -> "the  cat sat", no article -> "   cat sat", spaces -> "cat sat"
    assert normalize_answer("The  Cat, sat!") == "cat sat"
    # punctuation goes before articles: "the-cat" -> "thecat", one word, so its "the" stays
    # (removing articles first would have matched \bthe\b before the hyphen and left "cat")
    assert normalize_answer("the-cat") == "thecat"
    # articles are whole words only; "An" is lower-cased before the article rule sees it
    assert normalize_answer("An theater at a  bar") == "theater at bar"
    assert normalize_answer("") == ""


def test_exact_match_after_normalization():
    assert exact_match("an apple", "Apple.") == 1.0  # both normalize to "apple"
    assert exact_match("apples", "apple") == 0.0
    assert isinstance(exact_match("a", "b"), float)


def test_f1_worked_by_hand():
    # pred [big, red, dog] (the "the" is dropped), truth [red, dog]: 2 in common,
    # precision 2/3, recall 2/2, F1 = 2 * (2/3 * 1) / (2/3 + 1) = (4/3) / (5/3) = 0.8
    assert f1_score("the big red dog", "red dog") == pytest.approx(0.8)
    assert f1_score("Red dog!", "the red dog") == pytest.approx(1.0)
    assert f1_score("cat", "dog") == 0.0


def test_f1_counts_repeated_tokens_once_per_occurrence():
    # pred [dog, dog, dog], truth [dog, cat]: the Counter intersection keeps min(3, 1) = 1 dog,
    # precision 1/3, recall 1/2, F1 = 2 * (1/6) / (5/6) = 0.4. Sets would count the truth's one
    # dog as matching all three (precision 1, F1 2/3); with multiplicity it is 0.4.
    assert f1_score("dog dog dog", "dog cat") == pytest.approx(0.4)
    # pred [dog, dog], truth [dog, dog, cat]: min(2, 2) = 2, P = 1, R = 2/3, F1 = (4/3) / (5/3) = 0.8
    assert f1_score("dog dog", "dog dog cat") == pytest.approx(0.8)


def test_both_empty_after_normalization_follows_v1_1():
    # "The" and "" both normalize to "": equal strings, so exact match 1, but v1.1's F1 checks
    # num_same == 0 first and returns 0 (SQuAD v2's script would return 1 here)
    assert normalize_answer("The") == ""
    assert exact_match("The", "") == 1.0
    assert f1_score("The", "") == 0.0
    assert f1_score("", "dog") == 0.0


def test_max_over_truths_takes_the_best_gold_answer():
    # vs "a cat": no common token, 0; vs "big red dog": P 2/2, R 2/3, F1 0.8; vs "dog": P 1/2, R 1, F1 2/3
    assert max_over_truths(f1_score, "red dog", ["a cat", "big red dog", "dog"]) == pytest.approx(0.8)
    assert max_over_truths(exact_match, "dog", ("a cat", "The dog")) == 1.0
    with pytest.raises(ValueError, match="truths"):
        max_over_truths(f1_score, "dog", [])


def test_squad_scores_in_percent():
    references = {"q1": ["Paris"], "q2": ["red dog", "the red dog"], "q3": ["1912"]}
    predictions = {"q1": "paris.", "q2": "big red dog", "q3": "1913", "unused": "ignored"}
    # q1: EM 1, F1 1; q2: EM 0 against both, F1 0.8 (the worked example); q3: 0 and 0.
    # EM = 100 * 1 / 3, F1 = 100 * (1 + 0.8 + 0) / 3 = 60; the extra id is ignored
    scores = squad_scores(predictions, references)
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(60.0)
    assert scores["n"] == 3


@pytest.mark.parametrize("predictions, references, message", [
    ({"q1": "x"}, {"q1": ["x"], "q2": ["y"]}, r"predictions has no answer for 1 id\(s\) of references: \['q2'\]"),
    ({"q1": "x"}, {}, "references is empty"),
    ({}, {"q1": ["x"]}, "predictions is empty"),
    ({"q1": "x"}, {"q1": []}, r"references\['q1'\] has no gold answer"),
])
def test_squad_scores_bad_input_names_the_argument(predictions, references, message):
    with pytest.raises(ValueError, match=message):
        squad_scores(predictions, references)


def test_char_f1_worked_by_hand():
    # "北京" is a run of 2 characters inside "北京大学": precision 2/4, recall 2/2, F1 = 2 * 0.5 / 1.5 = 2/3
    assert char_f1("北京大学", "北京") == pytest.approx(2 / 3)
    assert char_f1("北京", "北京大学") == pytest.approx(2 / 3)  # the same with the roles swapped
    # the overlap is contiguous, as in CMRC 2018: "北大" shares only a run of 1 with "北京大学"
    # (北 or 大), precision 1/2, recall 1/4, F1 = 2 * (1/8) / (3/4) = 1/3; a bag of characters would give 2/3
    assert char_f1("北大", "北京大学") == pytest.approx(1 / 3)
    assert char_f1("上海", "北京") == 0.0


def test_char_f1_removes_whitespace_punctuation_and_case():
    # each side reduces to "北京大学": Chinese marks 《》。, ASCII , and !, and the space are removed
    assert char_f1("《北京大学》。", "北京 大学") == 1.0
    assert char_f1("北京, 大学!", "北京大学") == 1.0
    assert char_f1("“ELECTRA”模型（小）", "electra模型小") == 1.0  # Latin letters compared lower-cased
    # only punctuation against nothing: both empty, no common character, 0 as in f1_score
    assert char_f1("。！", "") == 0.0


def test_best_spans_skips_an_end_before_the_start():
    start = torch.tensor([0.0, 0.0, 0.0, 5.0, 0.0])
    end = torch.tensor([4.0, 0.0, 1.0, 0.0, 2.0])
    # the best pair is start 3 + end 0 = 9, but it ends before it starts; among valid pairs
    # (3, 4) = 5 + 2 = 7, then (3, 3) = 5 + 0 = 5, then (0, 0) = 0 + 4 = 4 (every other pair <= 2)
    assert best_spans(start, end, max_answer_len=5) == [(3, 4, 7.0)]
    assert best_spans(start, end, max_answer_len=5, n_best=3) == [(3, 4, 7.0), (3, 3, 5.0), (0, 0, 4.0)]


def test_best_spans_respects_max_answer_len_at_its_boundary():
    start = torch.tensor([5.0, 0.0, 0.0, 0.0, 0.0])
    end = torch.tensor([0.0, 1.0, 0.0, 0.0, 4.0])
    # (0, 4) = 9 has length 5: allowed when max_answer_len is 5, not when it is 4
    assert best_spans(start, end, max_answer_len=5) == [(0, 4, 9.0)]
    # then the best is start 0 with end 1 = 5 + 1 = 6 (spans ending at 4 start at >= 1 and score 4)
    assert best_spans(start, end, max_answer_len=4) == [(0, 1, 6.0)]
    # length 1 only: the diagonal, (0, 0) = 5 is the best of 5, 1, 0, 0, 4
    assert best_spans(start, end, max_answer_len=1, n_best=2) == [(0, 0, 5.0), (4, 4, 4.0)]


def test_best_spans_breaks_ties_by_start_then_end():
    zeros = torch.zeros(3)
    # every valid pair scores 0: (start, end) ascending; 6 valid pairs, so n_best=10 returns 6
    assert best_spans(zeros, zeros, max_answer_len=3, n_best=10) == [
        (0, 0, 0.0), (0, 1, 0.0), (0, 2, 0.0), (1, 1, 0.0), (1, 2, 0.0), (2, 2, 0.0)]
    start, end = torch.tensor([0.0, 1.0, 1.0]), torch.tensor([0.0, 2.0, 1.0])
    # pairs: (0,0)=0+0 (0,1)=0+2 (0,2)=0+1 (1,1)=1+2 (1,2)=1+1 (2,2)=1+1: 3 first, then the three 2s
    # in (start, end) order, then (0, 2) = 1 would be fifth
    assert best_spans(start, end, max_answer_len=3, n_best=4) == [(1, 1, 3.0), (0, 1, 2.0), (1, 2, 2.0), (2, 2, 2.0)]


def test_best_spans_tie_break_holds_for_many_ties():
    # 20 positions, odd starts score 1, the rest 0: 210 valid pairs in two tied groups. The order
    # within a group is (start, end) ascending only if the sort is stable (an unstable CPU sort of
    # this many equal keys reorders them); the expected list is written from that rule directly
    n = 20
    start, end = (torch.arange(n) % 2).float(), torch.zeros(n)
    pairs = [(i, j, float(i % 2)) for i in range(n) for j in range(i, n)]
    expected = [p for p in pairs if p[2] == 1.0] + [p for p in pairs if p[2] == 0.0]
    assert best_spans(start, end, n, n_best=len(pairs)) == expected


def test_best_spans_allowed_excludes_question_positions_and_checks_both_ends():
    # [question, question, context, context, context]: the question's (0, 0) = 18 would win otherwise
    start = torch.tensor([9.0, 0.0, 1.0, 0.0, 0.0])
    end = torch.tensor([9.0, 0.0, 0.0, 2.0, 0.0])
    context = torch.tensor([False, False, True, True, True])
    assert best_spans(start, end, 5)[0] == (0, 0, 18.0)
    # within the context: (2, 3) = 1 + 2 = 3 beats (3, 3) = 2, (2, 2) = (2, 4) = 1, (3, 4) = (4, 4) = 0
    assert best_spans(start, end, 5, allowed=context) == [(2, 3, 3.0)]
    start, end = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 0.0, 2.0, 0.0])
    no_end_at_3 = torch.tensor([True, True, True, False, True])
    # (x, 3) is out, so the best is start 2 = 1 with end 2 or 4 (both 1 + 0): the tie goes to (2, 2)
    assert best_spans(start, end, 5, allowed=no_end_at_3) == [(2, 2, 1.0)]
    no_start_at_2 = torch.tensor([True, True, False, True, True])
    # start 2 is out: every start with end 3 scores 0 + 2 = 2, the smallest start first
    assert best_spans(start, end, 5, allowed=no_start_at_2) == [(0, 3, 2.0)]


def test_best_spans_matches_a_brute_force_loop():
    g = torch.Generator().manual_seed(0)
    n, max_len = 12, 4
    start, end = torch.randn(n, generator=g), torch.randn(n, generator=g)
    allowed = torch.rand(n, generator=g) > 0.3
    # the reference: every pair by hand, sorted by (-score, start, end)
    pairs = [(i, j, float(start[i] + end[j])) for i in range(n) for j in range(i, min(n, i + max_len))
             if allowed[i] and allowed[j]]
    expected = sorted(pairs, key=lambda p: (-p[2], p[0], p[1]))
    assert len(expected) > 10
    assert best_spans(start, end, max_len, n_best=10, allowed=allowed) == expected[:10]
    assert best_spans(start, end, max_len, n_best=1000, allowed=allowed) == expected


def test_best_spans_works_in_float64_without_rounding_to_float32():
    start = torch.tensor([1.0, 1.0 + 1e-12], dtype=torch.float64)
    end = torch.zeros(2, dtype=torch.float64)
    # 1 + 1e-12 is a different float64 than 1 (but the same float32): position 1 wins in float64
    assert best_spans(start, end, 1) == [(1, 1, 1.0 + 1e-12)]
    assert best_spans(start.float(), end.float(), 1) == [(0, 0, 1.0)]  # a tie in float32: the smaller start
    # and a tensor that requires grad is read without error (scores are plain floats)
    spans = best_spans(start.clone().requires_grad_(True), end, 1)
    assert spans == [(1, 1, 1.0 + 1e-12)] and isinstance(spans[0][2], float)


_V = torch.zeros(4)


@pytest.mark.parametrize("kwargs, message", [
    (dict(start_logits=torch.zeros(2, 2), end_logits=torch.zeros(2, 2)), "start_logits must be a 1-D float tensor"),
    (dict(end_logits=torch.zeros(4, 1)), "end_logits must be a 1-D float tensor"),
    (dict(start_logits=torch.zeros(4, dtype=torch.long)), "start_logits must be a 1-D float tensor"),
    (dict(start_logits=[0.0] * 4), "start_logits must be a 1-D float tensor"),
    (dict(end_logits=torch.zeros(5)), r"start_logits and end_logits must have the same shape, got \(4,\) and \(5,\)"),
    (dict(max_answer_len=0), "max_answer_len must be an int >= 1, got 0"),
    (dict(max_answer_len=2.0), "max_answer_len must be an int >= 1, got 2.0"),
    (dict(max_answer_len=True), "max_answer_len must be an int >= 1, got True"),
    (dict(n_best=0), "n_best must be an int >= 1, got 0"),
    (dict(allowed=torch.ones(4, dtype=torch.long)), r"allowed must be a bool tensor of shape \(4,\)"),
    (dict(allowed=torch.ones(3, dtype=torch.bool)), r"allowed must be a bool tensor of shape \(4,\)"),
    (dict(allowed=[True] * 4), r"allowed must be a bool tensor of shape \(4,\)"),
    (dict(allowed=torch.zeros(4, dtype=torch.bool)), "allowed has no True position"),
])
def test_best_spans_bad_input_names_the_argument(kwargs, message):
    args = dict(start_logits=_V, end_logits=_V, max_answer_len=3) | kwargs
    with pytest.raises(ValueError, match=message):
        best_spans(**args)
