"""Gradient accumulation: k micro-batches per update give the update of one batch of all their
rows, because each micro-batch's mean loss is weighted by its number of targets.

Tolerance: the two runs compute the same sums in another order, in float32 (2^-24 = 6e-8 of
relative rounding per operation). Gradients agree to 5e-8 (measured): we allow rtol=1e-5,
atol=1e-7, while the plain mean of micro-batch means, the mistake this guards against, is off
by more than 1e-3. Parameters after 5 AdamW steps agree to 1e-5 (measured 8e-6), not 1e-7:
AdamW divides each gradient by its running RMS plus eps = 1e-8, so where the exact gradient
is zero and the computed one is rounding noise (the attention's key bias, which softmax
ignores: adding a constant to every score changes nothing; its gradient is 1e-12), a noise
difference d moves the weight by up to lr * d / eps per step. We allow rtol=1e-4, atol=5e-5,
0.1% of the 0.05 that lr = 0.01 moves a weight in 5 steps.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from tiny_lm import cat, grads_of, max_difference, padded_batch, tiny_gpt
from tiny_lm import one_thread  # noqa: F401  (a fixture: tiny models run fastest on one thread)

from lmbook_utils.repro import set_seed
from lmbook_utils.train import TrainConfig, train

GRAD_TOL = dict(rtol=1e-5, atol=1e-7)
PARAM_TOL = dict(rtol=1e-4, atol=5e-5)

# Micro-batches of 23 and 1 targets, then of 11 and 5: a mean of their means would weigh the
# single target of the second micro-batch as much as the 23 of the first.
MB = [padded_batch([8, 7, 8], 1), padded_batch([1], 2), padded_batch([2, 8, 1], 3), padded_batch([5], 4)]
BIG = [cat(MB[0], MB[1]), cat(MB[2], MB[3])]


def run(data, k, steps, callbacks=(), **kw):
    set_seed(0, threads=None)
    model = tiny_gpt()
    config = TrainConfig(max_steps=steps, grad_accum_steps=k, lr=1e-2, min_lr=1e-3, device="cpu",
                         eval_every=steps, **kw)
    history = train(model, data, config, callbacks=callbacks, progress=False)
    return model, history


class FirstGrads:
    """The gradients of the first update (train leaves them on the parameters after the step)."""

    def __init__(self):
        self.grads = None

    def on_step(self, state):
        if state.step == 1:
            self.grads = {n: p.grad.detach().clone() for n, p in state.model.named_parameters()}


def test_k_micro_batches_give_the_gradient_of_one_large_batch():
    big, micro = FirstGrads(), FirstGrads()
    run(BIG, 1, 1, callbacks=[big], grad_clip=None)
    run(MB, 2, 1, callbacks=[micro], grad_clip=None)
    for name in big.grads:
        torch.testing.assert_close(micro.grads[name], big.grads[name], **GRAD_TOL, msg=name)
    # The mistake this guards against: a plain mean of the micro-batch means.
    set_seed(0, threads=None)
    model = tiny_gpt()
    plain = grads_of(model, (model(*MB[0]).loss + model(*MB[1]).loss) / 2)
    assert max_difference(plain, big.grads) > 1e-3


def test_k_micro_batches_give_the_parameters_of_one_large_batch():
    big_model, big_hist = run(BIG, 1, 5)
    micro_model, micro_hist = run(MB, 2, 5)
    for (name, a), b in zip(big_model.named_parameters(), micro_model.parameters()):
        torch.testing.assert_close(b, a, **PARAM_TOL, msg=name)
    assert micro_hist.steps == big_hist.steps == [1, 2, 3, 4, 5]
    # the train loss of a step is the token mean over its micro-batches
    assert micro_hist.train_loss == pytest.approx(big_hist.train_loss, rel=1e-5)
    # every micro-batch's real tokens count: (23 + 1), (11 + 5), ...
    assert micro_hist.tokens == big_hist.tokens == [24, 40, 64, 80, 104]
    assert micro_hist.lr == big_hist.lr


def test_a_count_returned_by_the_loss_function_is_the_weight():
    # Dict batches under names count_targets does not know: only the loss function can say
    # how many targets its mean is over.
    def loss_fn(model, batch):
        y = batch["next"]
        return model(batch["ids"], y).loss, int((y != -100).sum())

    as_dicts = [{"ids": x, "next": y} for x, y in MB]
    big = [{"ids": x, "next": y} for x, y in BIG]
    first, second = FirstGrads(), FirstGrads()
    for data, k, seen in ((big, 1, first), (as_dicts, 2, second)):
        set_seed(0, threads=None)
        train(tiny_gpt(), data, TrainConfig(max_steps=1, grad_accum_steps=k, grad_clip=None, device="cpu"),
              loss_fn=loss_fn, callbacks=[seen], progress=False)
    for name in first.grads:
        torch.testing.assert_close(second.grads[name], first.grads[name], **GRAD_TOL, msg=name)


def test_batches_without_targets_weigh_their_rows():
    # A regression batch (float inputs, MSE per row): the weight of a micro-batch is its rows.
    class Linear(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 1)

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 3, generator=g), torch.randn(5, generator=g)

    def loss_fn(model, batch):
        return ((model.lin(batch[0]).squeeze(-1) - batch[1]) ** 2).mean()

    first, second = FirstGrads(), FirstGrads()
    for data, k, seen in (([(x, y)], 1, first), ([(x[:4], y[:4]), (x[4:], y[4:])], 2, second)):
        torch.manual_seed(0)
        train(Linear(), data, TrainConfig(max_steps=1, grad_accum_steps=k, grad_clip=None, device="cpu"),
              loss_fn=loss_fn, callbacks=[seen], progress=False)
    for name in first.grads:
        torch.testing.assert_close(second.grads[name], first.grads[name], **GRAD_TOL, msg=name)


@pytest.mark.parametrize("value", [0, -1, 1.5, True, None])
def test_bad_grad_accum_steps_names_the_field(value):
    with pytest.raises(ValueError, match="TrainConfig.grad_accum_steps"):
        TrainConfig(grad_accum_steps=value)
