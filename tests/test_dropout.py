"""lmbook_utils.dropout: the same function as torch.nn.functional.dropout, drawn faster on a CPU."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lmbook_utils.dropout import Dropout, dropout


def test_keeps_each_entry_with_probability_one_minus_p_and_scales_it():
    torch.manual_seed(0)
    x = torch.ones(400_000)
    y = dropout(x, 0.1)
    kept = y != 0
    # 400,000 draws: the kept share is within 5 standard deviations (0.0024) of 0.9
    assert abs(kept.float().mean().item() - 0.9) < 0.0024
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.9))
    assert y.mean().item() == pytest.approx(1.0, abs=0.003)  # expectation unchanged


def test_gradient_flows_through_the_kept_entries_only():
    torch.manual_seed(1)
    x = torch.randn(50, 20, requires_grad=True)
    y = dropout(x, 0.3)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y != 0).float() / 0.7)


def test_identity_in_eval_mode_and_at_p_zero_and_seeded_by_the_global_generator():
    x = torch.randn(8, 8)
    assert dropout(x, 0.5, training=False) is x and dropout(x, 0.0) is x
    layer = Dropout(0.5).eval()
    assert layer(x) is x and isinstance(layer, nn.Dropout)
    torch.manual_seed(3)
    a = Dropout(0.5).train()(x)
    torch.manual_seed(3)
    assert torch.equal(a, dropout(x, 0.5))


def test_bad_p_is_named():
    with pytest.raises(ValueError, match="p must be a number in"):
        dropout(torch.ones(2), 1.0)
