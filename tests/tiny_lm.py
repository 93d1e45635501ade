"""A tiny GPT and padded batches for the tests of gradient accumulation, checkpoints and
distributed training (imported by those tests and by distributed_worker.py, not a test itself).

Padding is on the right (pad id 0 in the inputs, -100 in the targets), and the rows have
very different numbers of real targets, so that a mean of per-batch (or per-rank) mean losses
differs from the mean over all targets together.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lmbook_utils.gpt import GPT, GPTConfig

VOCAB, T, PAD = 11, 8, 0


@pytest.fixture(autouse=True)
def one_thread():
    """Models this small run fastest on one thread, and a second thread on a busy machine
    costs milliseconds per operation in waiting (measured: 4 steps in 0.03 s against 4 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_gpt(dropout: float = 0.0, d_model: int = 16) -> GPT:
    return GPT(GPTConfig.tiny(vocab_size=VOCAB, max_len=16, pad_id=PAD, dropout=dropout, d_model=d_model))


def padded_batch(lengths: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, targets), (len(lengths), T): row i has lengths[i] real targets, then padding."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (len(lengths), T + 1), generator=g)
    x, y = ids[:, :-1].clone(), ids[:, 1:].clone()
    for i, n in enumerate(lengths):
        x[i, n:], y[i, n:] = PAD, -100
    return x, y


def cat(*batches: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of several batches (all of width T) as one batch."""
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


def rows(batch: tuple[torch.Tensor, torch.Tensor], rank: int, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows rank::world of a batch: what one rank of `world` trains on."""
    return batch[0][rank::world], batch[1][rank::world]


def grads_of(model: nn.Module, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
