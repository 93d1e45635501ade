"""Permutation language modeling, measured: the training loss, a given factorization order's
masks and log-probability, and the joint probability of two hidden tokens under BERT and XLNet.

Introduced in chapter 07_xlnet. `xlnet.sample_permutation` draws a random order per row for
training; the functions here take an order the caller chooses, which is what the chapter's
measurements need:

- `order_inputs(order, predict)`: XLNet's perm_mask and target_mapping for one order per row,
  predicting the positions where `predict` is True; the others are context that every position
  sees (and that sees no predicted position), the rule `sample_permutation` uses.
- `log_prob_under_order`: log p(x_predicted | context) = sum_t log p(x_{z_t} | context, x_{z_<t})
  for a given order z, in one forward pass (every prediction is a row of the query stream). A
  perfect model gives the same number for every order: the chain rule holds for each of them.
- `pair_log_probs_bert` and `pair_log_probs_xlnet`: log p(first = c, second = w | the rest) for
  two hidden positions. BERT masks both and multiplies its two softmaxes (the independence
  assumption); XLNet predicts the first, then the second given the first candidate.
- `permutation_lm_loss`: a `train` loss function for XLNet's pretraining objective.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .modeling import IGNORE_INDEX, check_attention_mask
from .xlnet import XLNet, check_span_args, sample_permutation

__all__ = ["order_inputs", "log_prob_under_order", "pair_log_probs_bert", "pair_log_probs_xlnet",
           "permutation_lm_loss"]


def _check_order(order: object, predict: object) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(order, torch.Tensor) or order.dim() != 2 or order.dtype != torch.long:
        raise ValueError("order must be a (batch, T) torch.long tensor: order[b, s] = the position at step s")
    b, t = order.shape
    if not isinstance(predict, torch.Tensor) or predict.dtype != torch.bool or tuple(predict.shape) != (b, t):
        got = f"{predict.dtype} {tuple(predict.shape)}" if isinstance(predict, torch.Tensor) else type(predict).__name__
        raise ValueError(f"predict must be a bool tensor of shape {(b, t)} (True = predicted), got {got}")
    if order.device.type != "meta":
        if b and bool(predict.all(1).any()):
            bad = int(predict.all(1).nonzero()[0])
            raise ValueError(f"predict[{bad}] is True everywhere: every row needs a context position (False), "
                             "since a query stream that may see no position at all attends to every position "
                             "(Hugging Face's -1e30 mask gives it uniform weights) and so reads what it predicts")
        steps = torch.arange(t, device=order.device).expand(b, t)
        if not torch.equal(order.sort(dim=1).values, steps):
            bad = int((order.sort(dim=1).values != steps).any(1).nonzero()[0])
            raise ValueError(f"order[{bad}] must be a permutation of 0..{t - 1}, got {order[bad].tolist()}")
    return order, predict


def order_inputs(order: torch.Tensor, predict: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(perm_mask (batch, T, T) float, target_mapping (batch, T, T) float) that make XLNet follow
    `order` (batch, T): position i may not see position j when j is predicted and does not come
    before i in the order (perm_mask = 1, Hugging Face's convention). Positions not predicted are
    context: everyone sees them, whatever their place in the order. Every row needs one: the
    first prediction of an order must see something (a query that may see nothing attends to
    everything, itself included, in Hugging Face's XLNet and in ours). target_mapping is the
    identity: one query-stream row per position (rows of unpredicted positions are computed and
    not used)."""
    order, predict = _check_order(order, predict)
    b, t = order.shape
    steps = torch.arange(t, device=order.device).expand(b, t)
    rank = torch.empty_like(order).scatter_(1, order, steps)  # rank[b, position] = its step
    rank = rank.masked_fill(~predict, -1)  # context comes before every prediction, wherever it is in the order
    perm_mask = predict[:, None, :] & (rank[:, None, :] >= rank[:, :, None])
    eye = torch.eye(t, device=order.device).expand(b, t, t)
    return perm_mask.float(), eye.clone()


def log_prob_under_order(model: XLNet, input_ids: torch.Tensor, order: torch.Tensor, predict: torch.Tensor,
                         attention_mask: torch.Tensor | None = None,
                         token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
    """(batch,) natural-log probability of the predicted tokens of each row given its context,
    factorized in that row's `order`: one forward pass, no gradient. `predict` must be False at
    padding (attention_mask False)."""
    order, predict = _check_order(order, predict)
    if not isinstance(model, XLNet):
        raise TypeError(f"model must be an XLNet, got {type(model).__name__}")
    if not isinstance(input_ids, torch.Tensor) or tuple(input_ids.shape) != tuple(order.shape):
        got = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
        raise ValueError(f"input_ids must have the shape of order {tuple(order.shape)}, got {got}")
    if attention_mask is not None:
        keep = check_attention_mask(attention_mask, tuple(input_ids.shape))
        if input_ids.device.type != "meta" and bool((predict & ~keep).any()):
            raise ValueError("predict is True at padding (attention_mask False): padding cannot be predicted")
    perm_mask, target_mapping = order_inputs(order, predict)
    with torch.no_grad():
        logits = model(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                       perm_mask=perm_mask, target_mapping=target_mapping, use_mems=False).logits
        logp = logits.log_softmax(-1).gather(-1, input_ids[..., None])[..., 0]
    return (logp * predict).sum(1)


def _check_positions(input_ids: torch.Tensor, first: int, second: int) -> None:
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.dtype != torch.long:
        raise ValueError("input_ids must be a (batch, T) torch.long tensor")
    t = input_ids.shape[1]
    for name, value in (("first", first), ("second", second)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < t:
            raise ValueError(f"{name} must be a position in 0..{t - 1}, got {value!r}")
    if first == second:
        raise ValueError(f"first and second must be two different positions, got {first} twice")
    if t < 3:
        raise ValueError(f"input_ids needs at least 3 positions (two hidden ones and some context), got {t}")


def _check_candidates(candidates: object, vocab_size: int) -> list[int]:
    if (not isinstance(candidates, Sequence) or not candidates
            or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < vocab_size for c in candidates)):
        raise ValueError(f"candidates must be a non-empty list of token ids in [0, {vocab_size}), got {candidates!r}")
    return list(candidates)


def pair_log_probs_bert(model: torch.nn.Module, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None,
                        first: int, second: int, candidates: Sequence[int], mask_id: int) -> torch.Tensor:
    """(batch, len(candidates), vocab): log p(first = c) + log p(second = w) from a BERT (chapter
    05) that sees [MASK] at both positions: its two predictions are independent given the rest,
    so the joint is their product (Yang et al. 2019's point about BERT)."""
    _check_positions(input_ids, first, second)
    cand = _check_candidates(candidates, model.config.vocab_size)
    masked = input_ids.clone()
    masked[:, [first, second]] = mask_id
    with torch.no_grad():
        logp = model(masked, token_type_ids, heads=("mlm",)).logits.log_softmax(-1)
    return logp[:, first, cand][:, :, None] + logp[:, second][:, None, :]


def pair_log_probs_xlnet(model: XLNet, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None,
                         first: int, second: int, candidates: Sequence[int],
                         attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """(batch, len(candidates), vocab): log p(first = c | rest) + log p(second = w | rest, first = c)
    from an XLNet, in the order "first, then second" with every other real token as context: one
    forward pass per candidate c, with c written at `first` (the query stream of `first` never
    reads its own token, so its prediction is the same in every pass)."""
    _check_positions(input_ids, first, second)
    if not isinstance(model, XLNet):
        raise TypeError(f"model must be an XLNet, got {type(model).__name__}")
    cand = _check_candidates(candidates, model.config.vocab_size)
    b, t = input_ids.shape
    predict = torch.zeros(b, t, dtype=torch.bool, device=input_ids.device)
    predict[:, [first, second]] = True
    rest = [p for p in range(t) if p not in (first, second)]
    order = torch.tensor(rest + [first, second], device=input_ids.device).expand(b, t)
    perm_mask, _ = order_inputs(order, predict)
    target_mapping = torch.zeros(b, 2, t, device=input_ids.device)
    target_mapping[:, 0, first] = target_mapping[:, 1, second] = 1.0
    out = []
    with torch.no_grad():
        for c in cand:
            ids = input_ids.clone()
            ids[:, first] = c
            logp = model(ids, attention_mask=attention_mask, token_type_ids=token_type_ids, perm_mask=perm_mask,
                         target_mapping=target_mapping, use_mems=False).logits.log_softmax(-1)
            out.append(logp[:, 0, c][:, None] + logp[:, 1])
    return torch.stack(out, dim=1)


def permutation_lm_loss(k: int = 6, generator: torch.Generator | None = None, pad_id: int | None = None,
                        ignore_index: int = IGNORE_INDEX, special_ids: Sequence[int] = (), span: bool = False,
                        max_span: int = 5) -> Callable:
    """A `train` loss function: for a batch (input_ids, token_type_ids) or (input_ids,), draw an
    order per row with `xlnet.sample_permutation` (the last 1/k of each order predicted; padding,
    the tokens equal to pad_id, never; nor the tokens in special_ids, such as [CLS] and [SEP],
    which are context for every position, as in the original code) and return XLNet's
    cross-entropy on those targets, with the number of targets for `train.evaluate`'s per-token
    average. With span=True the targets (as many as without) are contiguous spans of 1 to
    max_span tokens, as the original code's `_sample_mask` chooses them (`sample_permutation`'s
    span mode, over tokens: no word boundaries)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"k must be an int >= 2 (predict the last 1/k of each order), got {k!r}")
    check_span_args(span, max_span)
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in special_ids):
        raise ValueError(f"special_ids must be token ids (ints), got {special_ids!r}")
    specials = list(special_ids)

    def loss_fn(model: XLNet, batch) -> tuple[torch.Tensor, int]:
        ids, seg = (batch[0], batch[1] if len(batch) > 1 else None)
        keep = None if pad_id is None else ids != pad_id
        fixed = torch.isin(ids, torch.tensor(specials, dtype=ids.dtype, device=ids.device)) if specials else None
        p = sample_permutation(ids, k=k, attention_mask=keep, generator=generator, ignore_index=ignore_index,
                               never_predict=fixed, span=span, max_span=max_span)
        out = model(ids, attention_mask=keep, token_type_ids=seg, perm_mask=p.perm_mask,
                    target_mapping=p.target_mapping, targets=p.targets)
        return out.loss, int((p.targets != ignore_index).sum())

    return loss_fn
