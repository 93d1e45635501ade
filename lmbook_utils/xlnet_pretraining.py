"""XLNet pretrained as the paper did, on a text stream with memory: the batches, the loss, and
the one measurement that needs the memory.

Introduced in notebook 07b_xlnet_ablations. Chapter 07 pretrains XLNet on separate story
openings; the paper (Yang et al. 2019, after Transformer-XL, Dai et al. 2019) reads one long
stream of text in fixed-length segments and lets each segment attend to the cached states of
the one before (the memory). Three pieces make that possible with `train`:

- `segment_streams`: Transformer-XL's batching. The token stream is cut into `batch_size`
  contiguous rows and read `seg_len` tokens at a time, so row r of batch i+1 continues row r of
  batch i and the memory of one step is the context of the next. With `bi_data`, half of the
  rows are the same streams read backwards, the data half of the original code's
  "bidirectional data" (the model half is `XLNetConfig.bi_data`).
- `MemoryPermutationLoss`: a `train` loss function that keeps the memory from one call to the
  next (detached: no gradient flows into an earlier segment) and forgets it where the stream
  starts again; with `memory=False` every segment is read alone, the paper's "- memory".
  `MemoryDenoisingLoss` is the same with BERT's masked-LM objective on the content stream, the
  paper's "DAE + Transformer-XL" baseline: same network, same memory, another objective.
- `hidden_word_log_probs`: XLNet's log-probabilities for one hidden word per row, with the
  previous segment as memory or without it; read by the query stream, or, for a model trained
  as a denoiser, by the content stream at a `[MASK]`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .bert import mask_tokens
from .modeling import IGNORE_INDEX, check_attention_mask
from .permutation_lm import order_inputs
from .xlnet import XLNet, sample_permutation

__all__ = ["segment_streams", "MemoryPermutationLoss", "MemoryDenoisingLoss", "hidden_word_log_probs"]


def _whole(value: object, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return value


def segment_streams(token_ids: Sequence[int], batch_size: int, seg_len: int,
                    bi_data: bool = False) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(segment (batch_size, seg_len) long, starts: 0-dim bool), ...]: the stream cut into
    batch_size rows of equal length (the tail that does not fill a whole segment in every row is
    dropped), read seg_len tokens at a time. `starts` is True for the first segment, where no
    memory exists. With bi_data (batch_size even), rows batch_size/2.. are rows 0..batch_size/2-1
    reversed in time, so their segments run from the end of the text backwards, as in the
    original code's input pipeline."""
    if not isinstance(token_ids, Sequence) or isinstance(token_ids, (str, bytes)) or not all(
            isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in token_ids):
        raise ValueError("token_ids must be a sequence of token ids (ints >= 0)")
    _whole(batch_size, "batch_size", 1)
    _whole(seg_len, "seg_len", 1)
    if not isinstance(bi_data, bool):
        raise ValueError(f"bi_data must be a bool, got {bi_data!r}")
    if bi_data and batch_size % 2:
        raise ValueError(f"bi_data=True needs an even batch_size (half forward, half backward), got {batch_size}")
    rows = batch_size // 2 if bi_data else batch_size
    per_row = len(token_ids) // rows // seg_len * seg_len
    if per_row == 0:
        raise ValueError(f"token_ids holds {len(token_ids)} tokens, too few for {rows} rows of at least one "
                         f"segment of seg_len={seg_len}")
    stream = torch.tensor(list(token_ids[:rows * per_row]), dtype=torch.long).view(rows, per_row)
    if bi_data:
        stream = torch.cat([stream, stream.flip(1)], dim=0)
    return [(stream[:, i:i + seg_len].contiguous(), torch.tensor(i == 0))
            for i in range(0, per_row, seg_len)]


class MemoryPermutationLoss:
    """A `train` loss function for batches from `segment_streams`: XLNet's permutation-LM loss
    (`xlnet.sample_permutation`: the last 1/k of each order predicted; `sample_options`, such
    as span=True, go to it) on each segment, reading the previous segment's states as memory
    when `memory` is True. Tokens in special_ids are never predicted (context for every
    position). Returns (loss, number of targets), the pair `train` averages per target."""

    def __init__(self, k: int = 6, generator: torch.Generator | None = None, special_ids: Sequence[int] = (),
                 memory: bool = True, ignore_index: int = IGNORE_INDEX, **sample_options) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise ValueError(f"k must be an int >= 2 (predict the last 1/k of each order), got {k!r}")
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in special_ids):
            raise ValueError(f"special_ids must be token ids (ints), got {special_ids!r}")
        if not isinstance(memory, bool):
            raise ValueError(f"memory must be a bool, got {memory!r}")
        self.k, self.generator, self.memory, self.ignore_index = k, generator, memory, ignore_index
        self.special_ids, self.sample_options = list(special_ids), sample_options
        self.mems: list[torch.Tensor] | None = None

    def __call__(self, model: XLNet, batch) -> tuple[torch.Tensor, int]:
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise ValueError("batch must be (segment, starts), as segment_streams gives them")
        ids, starts = batch
        if bool(starts):
            self.mems = None  # the stream starts again: nothing before it
        fixed = torch.isin(ids, torch.tensor(self.special_ids, dtype=ids.dtype, device=ids.device))
        inputs, targets = self._inputs(ids, fixed)
        out = model(mems=self.mems if self.memory else None, use_mems=self.memory, targets=targets, **inputs)
        self.mems = out.mems if self.memory else None
        return out.loss, int((targets != self.ignore_index).sum())

    def _inputs(self, ids: torch.Tensor, fixed: torch.Tensor) -> tuple[dict, torch.Tensor]:
        p = sample_permutation(ids, k=self.k, generator=self.generator, ignore_index=self.ignore_index,
                               never_predict=fixed, **self.sample_options)
        return dict(input_ids=ids, perm_mask=p.perm_mask, target_mapping=p.target_mapping), p.targets


class MemoryDenoisingLoss(MemoryPermutationLoss):
    """`MemoryPermutationLoss` with BERT's objective instead of XLNet's: `bert.mask_tokens`
    hides 15% of the non-special tokens (80% [MASK], 10% a random token, 10% unchanged) and the
    content stream predicts them, with the same memory. special_ids must include mask_id."""

    def __init__(self, mask_id: int, vocab_size: int, generator: torch.Generator | None = None,
                 special_ids: Sequence[int] = (), memory: bool = True, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__(k=2, generator=generator, special_ids=special_ids, memory=memory, ignore_index=ignore_index)
        if mask_id not in self.special_ids:
            raise ValueError(f"mask_id ({mask_id!r}) must be one of special_ids {self.special_ids}")
        self.mask_id, self.vocab_size = mask_id, vocab_size

    def _inputs(self, ids: torch.Tensor, fixed: torch.Tensor) -> tuple[dict, torch.Tensor]:
        inputs, targets = mask_tokens(ids, self.special_ids, self.vocab_size, self.mask_id, generator=self.generator)
        return dict(input_ids=inputs), targets.masked_fill(targets == IGNORE_INDEX, self.ignore_index)


def hidden_word_log_probs(model: XLNet, segment: torch.Tensor, position: torch.Tensor,
                          attention_mask: torch.Tensor | None = None,
                          previous: torch.Tensor | None = None, mask_id: int | None = None) -> torch.Tensor:
    """(batch, vocab) log p(the token at `position` of each row | the rest of the row, and the
    previous segment as memory when `previous` (batch, P) is given), no gradient. The previous
    segment has no padding (all its states go into the memory, as in Hugging Face's XLNet, which
    has no mask for the memory); `segment` may be padded (attention_mask False at padding).
    With mask_id (a model trained by `MemoryDenoisingLoss`), the hidden token is replaced by
    mask_id and read from the content stream, as BERT reads a [MASK]; otherwise the query stream
    predicts it with the rest of the row as context."""
    if not isinstance(model, XLNet):
        raise TypeError(f"model must be an XLNet, got {type(model).__name__}")
    if not isinstance(segment, torch.Tensor) or segment.dim() != 2 or segment.dtype != torch.long:
        raise ValueError("segment must be a (batch, T) torch.long tensor of token ids")
    b, t = segment.shape
    if (not isinstance(position, torch.Tensor) or tuple(position.shape) != (b,) or position.dtype != torch.long
            or (b and (int(position.min()) < 0 or int(position.max()) >= t))):
        raise ValueError(f"position must be a ({b},) torch.long tensor of positions in [0, {t})")
    keep = None if attention_mask is None else check_attention_mask(attention_mask, (b, t))
    if keep is not None and not bool(keep.gather(1, position[:, None]).all()):
        raise ValueError("position points at padding (attention_mask False) in some row")
    if previous is not None and (not isinstance(previous, torch.Tensor) or previous.dim() != 2
                                 or previous.shape[0] != b or previous.dtype != torch.long):
        raise ValueError(f"previous must be None or a ({b}, P) torch.long tensor of token ids (no padding)")
    rows = torch.arange(b, device=segment.device)
    predict = torch.zeros(b, t, dtype=torch.bool, device=segment.device)
    predict[rows, position] = True
    if mask_id is None:
        order = torch.arange(t, device=segment.device).expand(b, t)
        perm_mask, _ = order_inputs(order, predict)  # the rest of the row is context
        inputs = dict(input_ids=segment, perm_mask=perm_mask, target_mapping=predict.float()[:, None, :])
    else:
        inputs = dict(input_ids=segment.masked_fill(predict, mask_id))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            mems = None if previous is None else model(previous, use_mems=True).mems
            logits = model(attention_mask=keep, mems=mems, use_mems=False, **inputs).logits
    finally:
        model.train(was_training)
    picked = logits[:, 0] if mask_id is None else logits[rows, position]
    return picked.log_softmax(-1)
