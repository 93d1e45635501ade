"""The one training loop of the book: AdamW, warmup + cosine schedule, clipping, evaluation.

Introduced in chapter 03_attention and reused by every later chapter. Like minGPT's trainer it
knows nothing about the model: a batch goes in, a scalar loss comes out, and everything else
(plots, checks, early printing) talks to it through callbacks. The schedule is the one of
GPT-2/GPT-3 (Radford et al. 2019; Brown et al. 2020): linear warmup, then cosine decay
(Loshchilov & Hutter 2017, SGDR) to `min_lr`; AdamW is Loshchilov & Hutter (2019).

Device: `train` trains the model where it finds it (the device of its parameters), unless
`TrainConfig.device` names another, and moves each batch there; a chapter picks its device once
(`repro.get_device()`) and moves its model before training.

Speed: AdamW runs as PyTorch's fused kernel (`fused=True`, deterministic, the fastest setting on
CPU and CUDA); on other devices the default implementation.

Batches: `train_data` is anything re-iterable (a list of batches, a DataLoader,
`data.batches(...)`); it is cycled until `max_steps`. A batch is a tensor, a tuple/list or a
dict of tensors, moved to the device. Default loss: ``model(*batch).loss`` (tuple),
``model(**batch).loss`` (dict) or ``model(batch).loss`` (tensor); or give
``loss_fn(model, batch) -> scalar tensor`` (batch already on the device).

Progress and stable notebook outputs: in Jupyter one line is displayed and updated in place
(the update messages are not recorded by nbval); when training ends that line is reset to the
content it started with (empty), and one final line without timings is printed, e.g.
``step 300/300 · train loss 1.234 · held-out loss 1.301``. Outside Jupyter one such line is
printed per evaluation. The train loss shown is the mean of the last `eval_every` steps.

Gradient accumulation (`grad_accum_steps` = k): one update takes k batches in order from the
cycled data ("micro-batches") and backpropagates each one's mean loss weighted by its number
of targets n_i, then divides the summed gradient by N = sum n_i. The gradient is then that of
the mean loss over all N targets, as if the k micro-batches were one batch, whatever their
padding; a plain mean of micro-batch means would give a micro-batch of 1 target the weight
of one of 1,000. The targets are counted as in `evaluate`: the loss function's count when it
returns (loss, n_targets), else `count_targets`, else the rows. History.tokens counts every
micro-batch, the train loss is the step's mean over its N targets.

Checkpoints (`checkpoint_dir`, `checkpoint_every`; ``train(..., resume_from=folder)``): see
`checkpoint`. A resumed run ends bit for bit where the uninterrupted one would have (tested).

Several processes: under ``torchrun --nproc_per_node=N`` the same call trains with DDP or
FSDP2 (`parallel`), each process on rows rank::N of every batch (see `distributed`). The
micro-batch weighting above then runs over all processes: N is summed across them, so that
the averaged gradient is the one-process gradient of the whole batch even when the
processes hold different numbers of real targets. Held-out losses sum losses and counts over
processes. Rank 0 alone prints, calls the callbacks and writes checkpoints; `model` is left
trained on every process (under FSDP2, still sharded: a callback must not run it alone).
One process with k = 1 runs exactly the arithmetic of the book's stored outputs.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from . import checkpoint as ckpt_io
from . import distributed, train_checkpoints
from .distributed import PARALLEL_MODES, Ranks
from .repro import get_device, set_seed
from .train_batches import _compute_loss, _count_tokens, _default_loss, _find, _to_device, _weight
from .train_batches import count_targets  # noqa: F401  (imported from here since chapter 03_attention)
from .train_progress import _Progress
from .train_step import _adamw, _autocast, _grad_norm, accumulate

AMP_MODES = ("auto", "off", "bf16", "fp16")


@dataclass
class TrainConfig:
    """Hyperparameters of `train`. Introduced in chapter 03_attention."""

    max_steps: int = 1000  # optimizer updates in total
    lr: float = 1e-3  # peak learning rate, reached at the end of warmup
    weight_decay: float = 0.1  # AdamW decay on >=2-D weights only (not biases, not norm gains)
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW moment decay rates (GPT-3 values)
    warmup_steps: int = 0  # linear warmup from lr/warmup_steps up to lr
    min_lr: float = 1e-4  # the cosine decays to this at the last step
    grad_clip: float | None = 1.0  # max global L2 norm of the gradient; None = no clipping
    eval_every: int = 100  # evaluate every this many steps (and always at the end)
    eval_batches: int | None = 10  # held-out batches per evaluation; None = all of eval_data
    amp: str = "auto"  # "auto": bf16 (or fp16 + GradScaler) on CUDA, off elsewhere; "off"/"bf16"/"fp16"
    seed: int | None = 0  # seeds dropout etc. at the start of train(); None = leave RNGs alone
    device: str | None = None  # None: train where the model is; "cpu", "cuda", "mps": move it there
    grad_accum_steps: int = 1  # micro-batches per update, each weighed by its number of targets
    checkpoint_dir: str | os.PathLike | None = None  # write checkpoints (step-NNNNNN folders) here
    checkpoint_every: int | None = None  # steps between checkpoints; None = only after the last step
    parallel: str = "ddp"  # under torchrun: "ddp" (a copy per process) or "fsdp" (FSDP2 shards)

    def __post_init__(self) -> None:
        def whole(name: str, low: int, allow_none: bool = False) -> None:
            value = getattr(self, name)
            if allow_none and value is None:
                return
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"TrainConfig.{name} must be an int >= {low}"
                                 f"{' or None' if allow_none else ''}, got {value!r}")

        def real(name: str, low: float, strict: bool, allow_none: bool = False) -> None:
            value = getattr(self, name)
            if allow_none and value is None:
                return
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or value < low or (strict and value == low):
                raise ValueError(f"TrainConfig.{name} must be a finite number "
                                 f"{'>' if strict else '>='} {low}"
                                 f"{' or None' if allow_none else ''}, got {value!r}")

        whole("max_steps", 1)
        whole("warmup_steps", 0)
        whole("eval_every", 1)
        whole("eval_batches", 1, allow_none=True)
        whole("seed", 0, allow_none=True)
        whole("grad_accum_steps", 1)
        whole("checkpoint_every", 1, allow_none=True)
        real("lr", 0.0, strict=True)
        real("min_lr", 0.0, strict=False)
        real("weight_decay", 0.0, strict=False)
        real("grad_clip", 0.0, strict=True, allow_none=True)
        if self.min_lr > self.lr:
            raise ValueError(f"TrainConfig.min_lr must be <= lr ({self.lr}), got {self.min_lr}")
        if self.warmup_steps > self.max_steps:
            raise ValueError(f"TrainConfig.warmup_steps must be <= max_steps ({self.max_steps}), "
                             f"got {self.warmup_steps}")
        betas = tuple(self.betas) if isinstance(self.betas, (tuple, list)) else None
        if betas is None or len(betas) != 2 or not all(
                isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"TrainConfig.betas must be two numbers in [0, 1), got {self.betas!r}")
        self.betas = (float(betas[0]), float(betas[1]))
        if self.amp not in AMP_MODES:
            raise ValueError(f"TrainConfig.amp must be one of {AMP_MODES}, got {self.amp!r}")
        if self.device is not None and not isinstance(self.device, str):
            raise ValueError(f"TrainConfig.device must be a str such as 'cpu' or None, "
                             f"got {self.device!r}")
        if self.checkpoint_dir is not None and not isinstance(self.checkpoint_dir, (str, os.PathLike)):
            raise ValueError(f"TrainConfig.checkpoint_dir must be a folder (str or Path) or None, "
                             f"got {self.checkpoint_dir!r}")
        if self.checkpoint_every is not None and self.checkpoint_dir is None:
            raise ValueError("TrainConfig.checkpoint_every needs TrainConfig.checkpoint_dir (where to write them)")
        if self.parallel not in PARALLEL_MODES:
            raise ValueError(f"TrainConfig.parallel must be one of {PARALLEL_MODES}, got {self.parallel!r}")


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate of update `step` (0-based): linear warmup, then cosine down to min_lr.

    Introduced in chapter 03_attention. With t = step + 1 updates done and W warmup steps,
    lr_t = lr * t / W for t <= W, then min_lr + (lr - min_lr) * (1 + cos(pi (t-W)/(T-W))) / 2,
    so the last warmup step uses exactly lr and the last step (t = T) exactly min_lr.
    """
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < config.max_steps:
        raise ValueError(f"step must be an int in [0, max_steps={config.max_steps}), got {step!r}")
    t, w, total = step + 1, config.warmup_steps, config.max_steps
    if t <= w:
        return config.lr * t / w
    progress = (t - w) / (total - w)
    return config.min_lr + (config.lr - config.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class History:
    """What happened during `train`: one entry per step, one per evaluation.

    Steps count updates done (1..max_steps). `tokens` is the running count of real input
    tokens, known when batches hold integer token ids: padding (the model's `pad_id`, found on
    the model or its config) does not count, so a compute axis C = 6 N D uses the tokens the
    model actually read.
    """

    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)  # before clipping
    tokens: list[int] = field(default_factory=list)  # empty when unknown
    eval_steps: list[int] = field(default_factory=list)
    eval_loss: list[float] = field(default_factory=list)

    @property
    def best_eval_loss(self) -> float | None:
        return min(self.eval_loss) if self.eval_loss else None

    @property
    def final_eval_loss(self) -> float | None:
        return self.eval_loss[-1] if self.eval_loss else None

    def to_dict(self) -> dict[str, list]:
        return {k: list(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        names = set(cls.__dataclass_fields__)
        if not isinstance(data, Mapping) or set(data) - names:
            extra = sorted(set(data) - names) if isinstance(data, Mapping) else data
            raise ValueError(f"data must be a dict with keys among {sorted(names)}, "
                             f"got unexpected {extra!r}")
        return cls(**{k: list(v) for k, v in data.items()})

    def plot(self, logy: bool = False, title: str | None = None, ax: Any = None):
        """Train vs held-out loss curves (a matplotlib Figure)."""
        from .plots import plot_losses

        return plot_losses(self, ax=ax, title=title, logy=logy)


@dataclass
class TrainState:
    """What a callback sees. Introduced in chapter 03_attention."""

    step: int  # updates done so far
    max_steps: int
    loss: float  # train loss of this step
    lr: float
    grad_norm: float  # global gradient norm before clipping
    model: nn.Module
    history: History
    eval_loss: float | None = None  # set in on_eval


class Snapshots:
    """A callback that keeps a copy of the weights after each of the given steps, in memory.

    Introduced in chapter 08_electra: checkpoints along one run (compute fractions of a
    budget), each fine-tuned afterwards; `saved` maps a step to a deep copy of the state dict.
    For checkpoints on disk that a run can resume from, see `TrainConfig.checkpoint_dir`."""

    def __init__(self, steps: Iterable[int]) -> None:
        if not isinstance(steps, Iterable) or isinstance(steps, (str, bytes)):
            raise ValueError(f"steps must be an iterable of ints >= 1, got {steps!r}")
        steps = list(steps)
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in steps):
            raise ValueError(f"steps must be ints >= 1 (updates done), got {steps!r}")
        self.steps, self.saved = set(steps), {}

    def on_step(self, state: TrainState) -> None:
        if state.step in self.steps:
            self.saved[state.step] = copy.deepcopy(state.model.state_dict())


def _cycle(data: Iterable, name: str):
    """Yield batches forever, re-iterating `data` at every epoch."""
    while True:
        empty = True
        for batch in data:
            empty = False
            yield batch
        if empty:
            raise ValueError(f"{name} yielded no batches (an exhausted iterator or generator "
                             "cannot be re-iterated: pass a list, a DataLoader or data.batches(...))")


@torch.no_grad()
def evaluate(model: nn.Module, data: Iterable, loss_fn: Callable | None = None,
             max_batches: int | None = None, device: torch.device | None = None) -> float:
    """Mean loss per predicted target over the first `max_batches` batches (all when None).

    Each batch's mean loss is weighted by the number of targets it predicts, so the result is
    the loss over all targets together, as if the held-out set were one batch; a mean of
    per-batch means would overweight short or heavily padded batches. The count: `loss_fn`
    may return (loss, n_targets); otherwise the targets are found by name (`count_targets`);
    a batch without targets we can find (a custom loss over, say, (ids, segments, labels))
    weighs its number of rows. The model's train/eval mode is restored afterwards.
    """
    total, weight = _eval_sums(model, data, loss_fn, max_batches, device, Ranks())
    return total / weight


def _eval_sums(model: nn.Module, data: Iterable, loss_fn: Callable | None, max_batches: int | None,
               device: torch.device | None, ranks: Ranks) -> tuple[float, int]:
    """(sum of losses times targets, targets) over this process's share of each batch."""
    loss_fn = loss_fn or _default_loss
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, weight, n = 0.0, 0, 0
    try:
        for batch in data:
            if max_batches is not None and n >= max_batches:
                break
            batch = _to_device(ranks.share(batch), device)
            loss, count = _compute_loss(loss_fn, model, batch, -1)
            count = _weight(model, batch, count)
            total += float(loss) * count
            weight += count
            n += 1
    finally:
        model.train(was_training)
    if n == 0:
        raise ValueError("eval_data yielded no batches")
    return total, weight


@torch.no_grad()
def _held_out_loss(model: nn.Module, data: Iterable, loss_fn: Callable, max_batches: int | None,
                   device: torch.device, ranks: Ranks) -> float:
    """`evaluate`, or over several processes the sums of all their shares."""
    if not ranks.active:
        return evaluate(model, data, loss_fn, max_batches, device)
    total, weight = ranks.sum(list(_eval_sums(model, data, loss_fn, max_batches, device, ranks)))
    return total / weight


# ---- the loop ----------------------------------------------------------------------------
def _model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters are (the CPU for a model without any)."""
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def _call(callbacks: Iterable[Any], hook: str, state: TrainState) -> None:
    for cb in callbacks:
        method = getattr(cb, hook, None)
        if method is not None:
            method(state)


def train(model: nn.Module, train_data: Iterable, config: TrainConfig,
          eval_data: Iterable | None = None, loss_fn: Callable | None = None,
          callbacks: Iterable[Any] = (), progress: bool = True,
          resume_from: str | os.PathLike | None = None) -> History:
    """Train `model` for `config.max_steps` updates and return its History.

    The model is trained where its parameters are (or moved to `config.device` when set),
    evaluated every `eval_every` steps and at the end on `eval_data`, and left in eval mode. Callbacks
    are objects with any of on_step(state), on_eval(state), on_end(state). `resume_from`: a
    checkpoint folder, or a `checkpoint_dir` (its latest checkpoint), to continue from; give
    the same data and config as the run that wrote it.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    for name, data in (("train_data", train_data), ("eval_data", eval_data)):
        if data is not None and not isinstance(data, Iterable):
            raise TypeError(f"{name} must be an iterable of batches, got {type(data).__name__}")
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable (model, batch) -> loss, got {type(loss_fn).__name__}")
    resumed = train_checkpoints.read_for_resume(resume_from, config) if resume_from is not None else None
    callbacks = list(callbacks)
    if config.seed is not None:
        set_seed(config.seed, threads=None)
    device = get_device(config.device) if config.device is not None else _model_device(model)
    ranks, device = distributed.setup(device)
    loss_fn = loss_fn or _default_loss
    model.to(device)
    if resumed is not None:
        ckpt_io.load_weights(model, resumed.weights, f"resume_from={str(resumed.path)!r}")
    net = distributed.wrap(model, config.parallel, ranks, device)  # what the forward pass goes through
    optimizer = _adamw(model, config, device)
    amp_dtype, use_scaler = _autocast(config, device)
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    params = [p for p in model.parameters() if p.requires_grad]
    pad_id = _find(model, "pad_id")
    history = History()
    shown = _Progress(config.max_steps, progress and ranks.is_main, window=config.eval_every)
    batches = _cycle(train_data, "train_data")
    if resumed is not None:
        history = History.from_dict(resumed.history)
        train_checkpoints.resume(resumed, model, optimizer, scaler, batches, ranks)
        shown.resume(history.train_loss[-config.eval_every:])
    if not ranks.is_main:
        callbacks = []
    start, consumed = (resumed.step, resumed.data_position) if resumed is not None else (0, 0)
    tokens, eval_loss = (history.tokens[-1] if history.tokens else 0), None
    one_batch = config.grad_accum_steps == 1 and not ranks.active  # the book's stored outputs' path
    net.train()
    for step in range(start, config.max_steps):
        lr = lr_at(step, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if one_batch:
            batch = _to_device(next(batches), device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss, _ = _compute_loss(loss_fn, model, batch, step + 1)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            value, n_tokens = float(loss.detach()), _count_tokens(batch, pad_id)
        else:
            value, n_tokens = accumulate(net, model, batches, loss_fn, step, config, ranks, device, amp_dtype,
                                         optimizer, scaler, params, pad_id)
        consumed += config.grad_accum_steps
        grad_norm = float(_grad_norm(params, config.grad_clip))
        scaler.step(optimizer)
        scaler.update()

        done = step + 1
        history.steps.append(done)
        history.train_loss.append(value)
        history.lr.append(lr)
        history.grad_norm.append(grad_norm)
        if n_tokens is not None:
            tokens += n_tokens
            history.tokens.append(tokens)
        shown.step(done, value)
        state = TrainState(done, config.max_steps, value, lr, grad_norm, model, history)
        _call(callbacks, "on_step", state)
        last = done == config.max_steps
        if eval_data is not None and (done % config.eval_every == 0 or last):
            eval_loss = _held_out_loss(model, eval_data, loss_fn, config.eval_batches, device, ranks)
            net.train()
            history.eval_steps.append(done)
            history.eval_loss.append(eval_loss)
            state.eval_loss = eval_loss
            shown.eval(done, eval_loss, final=last)
            _call(callbacks, "on_eval", state)
        if config.checkpoint_dir is not None and (last or (config.checkpoint_every is not None
                                                           and done % config.checkpoint_every == 0)):
            train_checkpoints.save(config, done, model, optimizer, scaler, history, consumed, ranks)
    model.eval()
    shown.end(config.max_steps, eval_loss)
    _call(callbacks, "on_end", state)
    return history
