"""Few-shot prompts of toy-world tasks and their best possible accuracy.

Introduced in chapter 06_gpt, for in-context learning in miniature (Brown et al. 2020). A
prompt is k solved examples and a query, ``x1 y1 ; x2 y2 ; ... ; xq``, and the model must
continue with ``yq``. An answer follows its input directly, so copying the answer of an
earlier example is the induction pattern [A][B] ... [A] -> [B]. Inputs and examples are drawn independently and uniformly, so the
query may repeat an example. Three tasks, chosen to separate the two things a prompt can do
(Pan et al. 2023):

- ``translate`` (a noun to its Chinese word, "cat 猫") and ``measure_word`` (a noun to its
  Chinese classifier, "cat 只") share their inputs. The answer is fixed knowledge, but a bare
  query does not say which of the two is wanted: the examples serve *task recognition*.
- ``arbitrary_labels``: sentiment words labeled with two of four meaningless labels (foo, bar,
  baz, qux), drawn afresh for each prompt together with which one means positive, like the
  "semantically unrelated labels" of Wei et al. (2023). The mapping exists only in the prompt:
  *task learning*.

`optimal_accuracy` is what a reader who knows every word and the rules of the game achieves,
the ceiling to set a model against; `repeated_sequences` are the data that grow copying heads
(`probes.induction_scores` measures them).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from .toyworld import ANIMALS, THINGS

__all__ = ["TASKS", "LABELS", "FewShotPrompt", "few_shot_prompts", "optimal_accuracy", "vocabulary",
           "accuracy", "repeated_sequences"]

TASKS = ("translate", "measure_word", "arbitrary_labels")
LABELS = ("foo", "bar", "baz", "qux")
NOUNS = tuple((en, zh, clf) for en, zh, clf in ANIMALS + sum(THINGS.values(), ()))
POSITIVE = ("happy", "excited", "proud", "great", "wonderful", "good")
NEGATIVE = ("sad", "angry", "scared", "boring", "terrible", "bad")
SEP = ";"


@dataclass(frozen=True)
class FewShotPrompt:
    """k solved examples and a query; `tokens` ends with the query. Introduced in chapter 06_gpt."""

    task: str
    k: int
    tokens: tuple[str, ...]
    answer: str

    @property
    def text(self) -> str:
        return " ".join(self.tokens)


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be an int >= 0 (the number of examples), got {k!r}")
    return k


def _check_task(task: object) -> str:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    return task  # type: ignore[return-value]


def _pairs(task: str, n: int, rng: random.Random) -> list[tuple[str, str]]:
    """n (input, answer) pairs of one prompt: the prompt's own label mapping for arbitrary_labels."""
    if task == "arbitrary_labels":
        pos_label, neg_label = rng.sample(LABELS, 2)
        out = []
        for _ in range(n):
            positive = rng.random() < 0.5
            out.append((rng.choice(POSITIVE if positive else NEGATIVE), pos_label if positive else neg_label))
        return out
    column = 1 if task == "translate" else 2
    return [(noun[0], noun[column]) for noun in (rng.choice(NOUNS) for _ in range(n))]


def few_shot_prompts(n: int, k: int | None = None, tasks: tuple[str, ...] = TASKS,
                     seed: int = 0) -> list[FewShotPrompt]:
    """n prompts; each picks a task uniformly from `tasks` and has k examples (k=None: k is
    uniform in 0..8 per prompt). Introduced in chapter 06_gpt."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    if k is not None:
        _check_k(k)
    if isinstance(tasks, str) or not tasks:
        raise ValueError(f"tasks must be a non-empty tuple of task names from {TASKS}, got {tasks!r}")
    for task in tasks:
        _check_task(task)
    rng, out = random.Random(seed), []
    for _ in range(n):
        task = rng.choice(tasks)
        shots = rng.randint(0, 8) if k is None else k
        pairs = _pairs(task, shots + 1, rng)
        tokens = [t for x, y in pairs[:-1] for t in (x, y, SEP)] + [pairs[-1][0]]
        out.append(FewShotPrompt(task, shots, tuple(tokens), pairs[-1][1]))
    return out


def optimal_accuracy(task: str, k: int) -> float:
    """The best expected accuracy with k examples, for a reader who knows every word.

    Introduced in chapter 06_gpt. translate / measure_word: a bare query is either task, so
    1/2; one example settles it. arbitrary_labels: with no example, one of 4 labels (1/4);
    otherwise the answer is known unless all k examples have one polarity (probability
    2^(1-k)) and the query the other (1/2), in which case the best guess is one of the 3
    unseen labels: 1 - 2^(1-k)/3."""
    _check_task(task)
    _check_k(k)
    if task != "arbitrary_labels":
        return 0.5 if k == 0 else 1.0
    return 1 / len(LABELS) if k == 0 else 1.0 - 2.0 ** (1 - k) / 3


def vocabulary() -> list[str]:
    """Every token a prompt or an answer can contain, sorted. Introduced in chapter 06_gpt."""
    words = {SEP, *LABELS, *POSITIVE, *NEGATIVE}
    words.update(t for noun in NOUNS for t in noun)
    return sorted(words)


@torch.no_grad()
def accuracy(model: torch.nn.Module, prompts: list[FewShotPrompt], token_to_id, bos_id: int | None = None,
             batch_size: int = 256) -> float:
    """Share of prompts whose most likely next token (over the whole vocabulary) is the answer.

    Introduced in chapter 06_gpt. The model follows `modeling`'s contract:
    `model(input_ids, attention_mask=...)` with left-padded prompts (True at real tokens),
    `.logits` (batch, T, vocab). token_to_id maps a token to its id; bos_id, if given, is put
    before every prompt. Prompts are batched by length, longest first, so a batch holds little
    padding."""
    if not prompts or not all(isinstance(p, FewShotPrompt) for p in prompts):
        raise ValueError("prompts must be a non-empty list of FewShotPrompt")
    if not callable(token_to_id):
        raise TypeError(f"token_to_id must be callable (token -> id), got {type(token_to_id).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ordered = sorted(prompts, key=lambda p: -len(p.tokens))
    correct = 0
    for i in range(0, len(ordered), batch_size):
        chunk = ordered[i:i + batch_size]
        rows = [([bos_id] if bos_id is not None else []) + [token_to_id(t) for t in p.tokens] for p in chunk]
        width = max(map(len, rows))
        ids = torch.tensor([[0] * (width - len(r)) + r for r in rows], device=device)  # left padding
        keep = None if all(len(r) == width for r in rows) else torch.tensor(
            [[False] * (width - len(r)) + [True] * len(r) for r in rows], device=device)
        pred = model(ids, attention_mask=keep).logits[:, -1].argmax(-1).tolist()
        correct += sum(int(a == token_to_id(p.answer)) for a, p in zip(pred, chunk))
    model.train(was_training)
    return correct / len(prompts)


def repeated_sequences(n: int, token_ids: list[int], length: int = 10, max_gap: int = 10,
                       seed: int = 0) -> list[list[int]]:
    """n sequences r g r: `length` random tokens r, 0..max_gap random tokens g, r again.

    Introduced in chapter 06_gpt. The second r is predictable only by looking back at what
    followed the same token the first time, so training on these grows induction heads; the
    varying gap stops a head from simply attending a fixed distance back."""
    for name, value, low in (("n", n, 1), ("length", length, 2), ("max_gap", max_gap, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if not token_ids or len(set(token_ids)) < 2:
        raise ValueError("token_ids must hold at least 2 distinct ids to draw from")
    rng, pool = random.Random(seed), sorted(set(token_ids))
    out = []
    for _ in range(n):
        r = [rng.choice(pool) for _ in range(length)]
        out.append(r + [rng.choice(pool) for _ in range(rng.randint(0, max_gap))] + r)
    return out
