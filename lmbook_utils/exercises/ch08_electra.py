"""Exercise checks of chapter 08_electra: the discriminator's targets (which tokens were
replaced), its loss (binary cross-entropy over real tokens), and the optimal discriminator.

Introduced in chapter 08_electra.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..electra import optimal_replaced_probability
from ._common import _as_cpu, _call, _report

__all__ = ["check_replaced_labels", "check_discriminator_loss", "check_optimal_discriminator"]


def _label_cases() -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(original, corrupted, masked): unmasked positions unchanged; among the masked ones, some
    samples equal the original. The last case has a row with no masked position at all."""
    original = torch.tensor([[5, 8, 3, 9, 4, 7]])
    masked = torch.tensor([[False, True, True, False, True, False]])
    corrupted = torch.tensor([[5, 6, 3, 9, 2, 7]])  # position 2: the generator sampled the original 3
    cases = [(original, corrupted, masked)]
    gen = torch.Generator().manual_seed(8)  # a private generator: the same cases on every call
    for batch, t in ((3, 10), (2, 5)):
        original = torch.randint(1, 6, (batch, t), generator=gen)  # 5 ids: samples often equal the original
        masked = torch.rand(batch, t, generator=gen) < 0.4
        masked[0] = False  # a row the masking left alone: nothing in it is replaced
        masked[-1, :3] = True
        sample = torch.randint(1, 6, (batch, t), generator=gen)
        sample[-1, 0] = original[-1, 0]  # at least one sample equal to the original
        cases.append((original, torch.where(masked, sample, original), masked))
    return cases


def check_replaced_labels(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> bool:
    """Check ``fn(original, corrupted, masked) -> (batch, T) bool``: the discriminator's targets,
    True ("replaced") at a masked position whose token differs from the original, False
    elsewhere. A masked position where the generator sampled the original token is original,
    as in `electra.ElectraPretraining`. 0/1 numbers are accepted in place of bools.

    Introduced in chapter 08_electra (exercise 1).
    """
    numbers = None
    for original, corrupted, masked in _label_cases():
        want = masked & (corrupted != original)
        got, error = _call(fn, original.clone(), corrupted.clone(), masked.clone())
        if error:
            return _report(False, error)
        got, error = _as_cpu(got)
        if error:
            return _report(False, error)
        if tuple(got.shape) != tuple(want.shape):
            return _report(False, f"for a batch of {want.shape[0]} sequences of {want.shape[1]} tokens the "
                                  f"targets need shape {tuple(want.shape)}, one per token; yours has "
                                  f"{tuple(got.shape)}")
        if got.dtype != torch.bool:
            if not bool(((got == 0) | (got == 1)).all()):
                return _report(False, f"the targets must be True/False (or 1/0) at every position; yours hold "
                                      f"the values {sorted(set(got.flatten().tolist()))[:6]}")
            numbers, got = got.dtype, got != 0
        if torch.equal(got, want):
            continue
        if torch.equal(got, masked):
            b, i = (int(v) for v in torch.nonzero(masked & (corrupted == original))[0])
            return _report(False, f"you marked every masked position replaced, but at row {b}, position {i} the "
                                  f"generator sampled {int(original[b, i])}, the original token: a sample equal "
                                  "to the original is original (False). Compare corrupted with original")
        if torch.equal(got, ~want):
            return _report(False, "yours is True where the token is original; True must mean replaced")
        b, i = (int(v) for v in torch.nonzero(got != want)[0])
        state = (f"masked, the original {int(original[b, i])}, the corrupted {int(corrupted[b, i])}"
                 if masked[b, i] else f"not masked, so unchanged: {int(original[b, i])}")
        return _report(False, f"at row {b}, position {i} ({state}) the target is {bool(want[b, i])}, yours is "
                              f"{bool(got[b, i])}. Replaced means masked and different from the original")
    note = (f" (you returned {numbers} 0/1 values, which the loss reads the same way; ElectraPretraining "
            "keeps a bool tensor)" if numbers is not None else "")
    return _report(True, "the targets are right, samples equal to the original counted as original" + note)


def _loss_rule(logits: torch.Tensor, replaced: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """ElectraDiscriminator's loss: binary cross-entropy with logits, the mean over real tokens."""
    per_token = F.binary_cross_entropy_with_logits(logits, replaced.to(logits.dtype), reduction="none")
    return (per_token * keep).sum() / keep.sum()


def check_discriminator_loss(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> bool:
    """Check ``fn(logits, replaced, attention_mask) -> scalar``: the discriminator's loss, binary
    cross-entropy with logits (logit > 0 means "replaced", replaced True = 1) averaged over the
    real tokens (attention_mask True) only, as `electra.ElectraDiscriminator` computes it. The
    loss must stay a tensor with a gradient back to the logits.

    Introduced in chapter 08_electra (exercise 2).
    """
    gen = torch.Generator().manual_seed(80)
    for batch, t, lengths in ((2, 6, (6, 3)), (3, 8, (8, 5, 2)), (1, 4, (4,))):
        keep = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]  # padding at the ends
        logits = 2 * torch.randn(batch, t, generator=gen)
        replaced = (torch.rand(batch, t, generator=gen) < 0.3) & keep
        replaced[0, 0] = True  # at least one replaced token
        want = _loss_rule(logits, replaced, keep)
        given = logits.clone().requires_grad_(True)
        raw, error = _call(fn, given, replaced.clone(), keep.clone())
        if error:
            if "bool" in error.lower():
                error += ". replaced is a bool tensor: the loss needs numbers, replaced.float()"
            return _report(False, error)
        got, error = _as_cpu(raw, dtype=torch.float32)
        if error:
            return _report(False, error)
        sizes = f"{batch} sequences of {t} positions, real lengths {list(lengths)}"
        if got.numel() != 1:
            per_token = "you returned a loss per token; " if tuple(got.shape) == (batch, t) else ""
            return _report(False, f"for {sizes}: {per_token}the loss is one number, the mean over real tokens; "
                                  f"yours has shape {tuple(got.shape)}")
        got = got.reshape(())
        if torch.isclose(got, want, rtol=1e-4, atol=1e-5):
            if not (isinstance(raw, torch.Tensor) and raw.requires_grad):
                return _report(False, "the value is right, but it carries no gradient back to the logits (a "
                                      "Python number, or .item(), .detach() or numpy on the way): training "
                                      "could not use it. Keep it a tensor computed from logits")
            continue
        per_token = F.binary_cross_entropy_with_logits(logits, replaced.float(), reduction="none")
        known = [
            (per_token.mean(), "you averaged over every position, padding included: average over the real "
                               "tokens only (attention_mask True), dividing by their number"),
            ((per_token * keep).mean(), "you zeroed the padding but divided by all positions: divide by the "
                                        "number of real tokens, attention_mask.sum()"),
            ((per_token * keep).sum(), "you summed the losses: take their mean over the real tokens, so that "
                                       "the loss does not grow with the batch and the sequence length"),
            (per_token.sum(), "you summed the losses over every position, padding included: take the mean over "
                              "the real tokens only"),
            (_loss_rule(torch.sigmoid(logits), replaced, keep),
             "you fed probabilities where logits are expected: binary_cross_entropy_with_logits applies the "
             "sigmoid itself, so pass the raw logits (or use binary_cross_entropy on sigmoid(logits))"),
            (_loss_rule(logits, ~replaced, keep), "your labels are flipped: the target is 1 for a replaced "
                                                  "token and 0 for an original one (a logit > 0 means replaced)"),
        ]
        for value, message in known:
            if torch.isclose(got, value, rtol=1e-4, atol=1e-5) and not torch.isclose(value, want):
                return _report(False, f"for {sizes}: {message}")
        return _report(False, f"for {sizes}: the loss should be {want.item():.4f}, yours is {got.item():.4f}. "
                              "It is the binary cross-entropy of each real token's logit against its label, "
                              "averaged over the real tokens")
    return _report(True, "the discriminator's loss is right: binary cross-entropy on the logits, averaged "
                         "over real tokens, padding left out")


def check_optimal_discriminator(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> bool:
    """Check ``fn(p_data, p_gen, mask_prob) -> P(replaced)``, for each token w shown at one
    position: the best possible discriminator's probability that w is a replacement, given
    the data's and the generator's probabilities of w there and the masking rate m:
    m p_gen (1 - p_data) / ((1 - m) p_data + m p_gen), `electra.optimal_replaced_probability`.

    Introduced in chapter 08_electra (exercise 3).
    """
    gen = torch.Generator().manual_seed(3)
    cases = [
        (torch.tensor([0.5, 0.3, 0.15, 0.05, 0.0]), torch.tensor([0.3, 0.3, 0.1, 0.2, 0.1]), 0.15),
        (torch.tensor([1.0, 0.0, 0.0, 0.0]), torch.tensor([0.7, 0.2, 0.05, 0.05]), 0.25),
        (torch.softmax(torch.randn(3, 6, generator=gen), -1), torch.softmax(torch.randn(3, 6, generator=gen), -1),
         0.15),
    ]
    for p_data, p_gen, m in cases:
        p_data, p_gen = p_data.double(), p_gen.double()
        want = optimal_replaced_probability(p_data, p_gen, m)
        got, error = _call(fn, p_data.clone(), p_gen.clone(), m)
        if error:
            return _report(False, error)
        got, error = _as_cpu(got, dtype=torch.float64)
        if error:
            return _report(False, error)
        if tuple(got.shape) != tuple(want.shape):
            return _report(False, f"give one probability per token, the shape of p_data {tuple(want.shape)}; "
                                  f"yours has shape {tuple(got.shape)}")
        if torch.allclose(got, want, atol=1e-6):
            continue
        shown = (f"with mask_prob = {m}, p_data = {[round(v, 2) for v in p_data.tolist()]}, p_gen = "
                 f"{[round(v, 2) for v in p_gen.tolist()]}" if p_data.dim() == 1 else f"with mask_prob = {m}")
        known = [
            (p_data / (p_data + p_gen), "you wrote the GAN's optimal D* = p_data / (p_data + p_gen), the "
             "probability that w is real when real and generated samples are equally likely. Here only a "
             "fraction mask_prob of the positions is masked, a sample equal to the original is original, and "
             "the discriminator outputs P(replaced)"),
            (p_gen / (p_data + p_gen), "p_gen / (p_data + p_gen) forgets two things: only a fraction mask_prob of "
             "the positions is masked (weigh p_gen by m and p_data by 1 - m), and a sample equal to the original "
             "counts as original (multiply by 1 - p_data)"),
            (m * p_gen / ((1 - m) * p_data + m * p_gen), "a sample equal to the original counts as original: a "
             "masked position shows a replaced w only when the original was not w, so multiply the numerator "
             "by 1 - p_data"),
            (p_gen * (1 - p_data) / (p_data + p_gen), "you left out the masking prior, as if half the positions "
             "were masked: the original shows w with probability (1 - m) p_data, the generator with m p_gen"),
            (optimal_replaced_probability(p_data, p_gen, 1 - m), "you swapped m and 1 - m: a position is masked, "
             "and shows the generator's sample, with probability m = mask_prob"),
            (1 - want, "yours is P(original); the discriminator outputs P(replaced), 1 minus it"),
        ]
        for value, message in known:
            if torch.allclose(got, value, atol=1e-6) and not torch.allclose(value, want, atol=1e-6):
                return _report(False, f"{shown}: {message}")
        idx = tuple(int(v) for v in torch.nonzero(~torch.isclose(got, want, atol=1e-6))[0])
        where = f"token {idx[0]}" if len(idx) == 1 else f"row {idx[0]}, token {idx[1]}"
        return _report(False, f"{shown}: at {where} (p_data = {p_data[idx].item():.3f}, p_gen = "
                              f"{p_gen[idx].item():.3f}) P(replaced) should be {want[idx].item():.4f}, yours is "
                              f"{got[idx].item():.4f}. Bayes' rule: P(shown and replaced) / P(shown)")
    return _report(True, "the optimal discriminator is right, masking prior and samples equal to the original "
                         "included")
