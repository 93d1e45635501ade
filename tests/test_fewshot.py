from __future__ import annotations

import random

import pytest
import torch

from lmbook_utils import fewshot
from lmbook_utils.fewshot import (LABELS, NEGATIVE, NOUNS, POSITIVE, SEP, accuracy, few_shot_prompts,
                                  optimal_accuracy, vocabulary)


def _pairs(p):
    body = list(p.tokens) + [p.answer]
    items = [body[i:i + 2] for i in range(0, len(body), 3)]
    assert all(body[i] == SEP for i in range(2, len(body) - 1, 3))
    return items


def test_prompts_follow_their_task():
    translate = {en: zh for en, zh, _ in NOUNS}
    measure = {en: clf for en, _, clf in NOUNS}
    for p in few_shot_prompts(300, seed=3):
        pairs = _pairs(p)
        assert len(pairs) == p.k + 1 and len(p.tokens) == 3 * p.k + 1
        if p.task == "translate":
            assert all(translate[x] == y for x, y in pairs)
        elif p.task == "measure_word":
            assert all(measure[x] == y for x, y in pairs)
        else:  # one label per polarity, two different labels, fixed within the prompt
            by_polarity = {x in POSITIVE: y for x, y in pairs}
            assert all(y == by_polarity[x in POSITIVE] for x, y in pairs)
            assert all(x in POSITIVE + NEGATIVE and y in LABELS for x, y in pairs)
            if len(by_polarity) == 2:
                assert by_polarity[True] != by_polarity[False]
    ks = [p.k for p in few_shot_prompts(900, seed=0)]
    assert set(ks) == set(range(9))
    assert few_shot_prompts(5, seed=1) == few_shot_prompts(5, seed=1)
    assert {p.k for p in few_shot_prompts(20, k=4)} == {4}


def test_prompt_text_and_vocabulary():
    p = few_shot_prompts(1, k=1, tasks=("translate",), seed=0)[0]
    assert p.text == " ".join(p.tokens) and p.tokens[2] == SEP
    vocab = vocabulary()
    for p in few_shot_prompts(200, seed=5):
        assert set(p.tokens) | {p.answer} <= set(vocab)


def _simulate_ideal_reader(k, n=40000, seed=0):
    """An independent Monte-Carlo of the arbitrary-label game, read by the best strategy."""
    rng, correct = random.Random(seed), 0
    for _ in range(n):
        labels = rng.sample(LABELS, 2)  # labels[0] positive, labels[1] negative
        classes = [rng.random() < 0.5 for _ in range(k + 1)]
        seen = {c: labels[0 if c else 1] for c in classes[:-1]}
        query = classes[-1]
        if query in seen:
            guess = seen[query]
        else:
            unseen = [lab for lab in LABELS if lab not in seen.values()]
            guess = rng.choice(unseen)
        correct += guess == labels[0 if query else 1]
    return correct / n


@pytest.mark.parametrize("k", [0, 1, 2, 4])
def test_optimal_accuracy_matches_a_simulation(k):
    assert optimal_accuracy("arbitrary_labels", k) == pytest.approx(_simulate_ideal_reader(k), abs=0.01)


def test_optimal_accuracy_task_recognition_and_bad_input():
    assert optimal_accuracy("translate", 0) == 0.5 and optimal_accuracy("measure_word", 3) == 1.0
    with pytest.raises(ValueError, match="task must be one of"):
        optimal_accuracy("sentiment", 1)
    with pytest.raises(ValueError, match="k must be an int >= 0"):
        optimal_accuracy("translate", -1)
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        few_shot_prompts(0)
    with pytest.raises(ValueError, match="task must be one of"):
        few_shot_prompts(3, tasks=("copy",))
    with pytest.raises(ValueError, match="tasks must be a non-empty tuple"):
        few_shot_prompts(3, tasks="translate")


class _Oracle(torch.nn.Module):
    """Predicts the answer of the prompt it was built for (or a fixed wrong token)."""

    def __init__(self, answers):
        super().__init__()
        self.answers, self.w = answers, torch.nn.Parameter(torch.zeros(1))

    def forward(self, ids, attention_mask=None):
        logits = torch.zeros(ids.shape[0], ids.shape[1], 10)
        for row in range(ids.shape[0]):
            real = ids[row] if attention_mask is None else ids[row][attention_mask[row]]
            logits[row, -1, self.answers.get(tuple(real.tolist()), 9)] = 1.0
        return type("Out", (), {"logits": logits})()


def test_accuracy_scores_the_last_position():
    prompts = few_shot_prompts(6, seed=2)
    ids = {t: i % 9 for i, t in enumerate(vocabulary())}
    right = {tuple([0] + [ids[t] for t in p.tokens]): ids[p.answer] for p in prompts[:4]}
    assert accuracy(_Oracle(right), prompts, ids.__getitem__, bos_id=0) == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="non-empty list of FewShotPrompt"):
        accuracy(_Oracle({}), [], ids.__getitem__)


def test_repeated_sequences_repeat_after_a_gap():
    seqs = fewshot.repeated_sequences(200, [5, 6, 7], length=4, max_gap=3, seed=1)
    gaps = set()
    for s in seqs:
        gap = len(s) - 8
        assert 0 <= gap <= 3 and s[:4] == s[-4:] and set(s) <= {5, 6, 7}
        gaps.add(gap)
    assert gaps == {0, 1, 2, 3}
    assert seqs == fewshot.repeated_sequences(200, [5, 6, 7], length=4, max_gap=3, seed=1)
    with pytest.raises(ValueError, match="max_gap must be an int >= 0"):
        fewshot.repeated_sequences(2, [1, 2], max_gap=-1)
    with pytest.raises(ValueError, match="at least 2 distinct ids"):
        fewshot.repeated_sequences(2, [1])


def test_accuracy_of_a_gpt_on_prompts_of_many_lengths_equals_one_prompt_at_a_time():
    from lmbook_utils.gpt import GPT, GPTConfig

    words = vocabulary()
    torch.manual_seed(0)
    model = GPT(GPTConfig.tiny(vocab_size=len(words) + 1, max_len=64)).eval()
    prompts = few_shot_prompts(40, seed=3)  # k varies: prompts of many lengths
    assert len({len(p.tokens) for p in prompts}) > 3
    bos = len(words)
    alone = []
    with torch.no_grad():
        for p in prompts:
            ids = torch.tensor([[bos] + [words.index(t) for t in p.tokens]])
            alone.append(int(model(ids).logits[0, -1].argmax()) == words.index(p.answer))
    assert accuracy(model, prompts, words.index, bos_id=bos, batch_size=7) == pytest.approx(sum(alone) / len(alone))
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        accuracy(model, prompts, words.index, batch_size=0)
