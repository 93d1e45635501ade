"""Training on several processes: torchrun's environment, the process group, DDP or FSDP2,
each process's share of a batch, and sums over processes.

Part of the training loop introduced in chapter 03_attention (see `train`), which runs
unchanged under ``torchrun --nproc_per_node=N``. When torchrun's variables say that there
are N > 1 processes (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) and no process
group exists yet, `setup` creates one: gloo on the CPU, NCCL on CUDA with the device
cuda:LOCAL_RANK. Each process pins torch to its share of the cores (cores // processes on
this machine), so that N processes do not fight over the same cores.

The split: every process reads the same batches in the same order and trains on rows
rank::N of each (`Ranks.share`). It is the simplest split, and the N shares are exactly the
batch, so that with the loss weighted by targets (see `train`) N processes compute the
one-process gradient, up to the order of float sums. It asks the data to be the same on
every process: a list, or `data.batches(...)`, whose order comes from its own seeded
generator, not from the global random number generator.

`wrap` puts the model under DistributedDataParallel (a full copy on every process, gradients
averaged during the backward pass) or FSDP2's `fully_shard` (parameters, gradients and
optimizer state split among the processes: each holds 1/N of them and gathers a layer's
weights just before using them). FSDP2 works on the CPU with gloo in the torch this book
pins (2.13; tested), so both modes run on a laptop. The model is sharded per block (each
entry of an nn.ModuleList: the book's models keep their blocks in one), then as a whole.

What each mode asks of a loss function: under DDP, one call ``model(...)`` per micro-batch
(DDP's hooks are on that call; the wrapper passes other attributes through to the model),
using every trainable parameter (find_unused_parameters is off, the faster setting). Under
FSDP2 the model stays sharded after `train`: running it is a collective, every process must
take part (`train`'s evaluation does; a rank-0 callback must not run it).
"""

from __future__ import annotations

import atexit
import itertools
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .checkpoint import load_named_optimizer_state, named_optimizer_state
from .train_batches import _rows

PARALLEL_MODES = ("ddp", "fsdp")
TORCHRUN_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def torchrun_env(environ: Mapping[str, str] | None = None) -> dict[str, int] | None:
    """rank, local_rank, world_size and local_world_size as torchrun sets them, or None when
    this process was not started by torchrun with more than one process."""
    environ = os.environ if environ is None else environ
    if any(name not in environ for name in TORCHRUN_VARS):
        return None
    try:
        world, rank, local = (int(environ[k]) for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"))
        local_world = int(environ.get("LOCAL_WORLD_SIZE", world))
    except ValueError:
        raise ValueError("torchrun's WORLD_SIZE, RANK, LOCAL_RANK and LOCAL_WORLD_SIZE must be integers, got "
                         f"{ {k: environ.get(k) for k in TORCHRUN_VARS[:3]} }") from None
    if world <= 1:
        return None
    return {"rank": rank, "local_rank": local, "world_size": world, "local_world_size": local_world}


@dataclass
class Ranks:
    """Where this process stands among the others; one process alone is Ranks()."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # where sums travel

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 prints, calls the callbacks and writes the checkpoints."""
        return self.rank == 0

    def share(self, batch: Any) -> Any:
        """Rows rank::world of every tensor whose first dimension is the batch's rows."""
        if not self.active:
            return batch
        n = _rows(batch)
        if n < self.world:
            raise ValueError(f"a batch of {n} rows cannot give each of {self.world} processes a row: "
                             "use a batch size of at least the number of processes")

        def cut(x: Any) -> Any:
            if isinstance(x, torch.Tensor):
                return x[self.rank::self.world].contiguous() if x.dim() > 0 and x.shape[0] == n else x
            if isinstance(x, Mapping):
                return {k: cut(v) for k, v in x.items()}
            if isinstance(x, (tuple, list)):
                return type(x)(cut(v) for v in x)
            return x

        return cut(batch)

    def sum(self, values: list[float]) -> list[float]:
        """The sums over processes, in float64 (sums and counts, never means of means)."""
        if not self.active:
            return list(values)
        total = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total.tolist()

    def gather(self, value: Any) -> list[Any] | None:
        """Every process's `value`, on rank 0 (None elsewhere)."""
        if not self.active:
            return [value]
        out = [None] * self.world if self.is_main else None
        dist.gather_object(value, out, dst=0)
        return out

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def setup(device: torch.device) -> tuple[Ranks, torch.device]:
    """(this process's Ranks, its device): joins the process group, creating it when torchrun
    started this process and none exists yet. One process alone: (Ranks(), device), untouched."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        rank, world = dist.get_rank(), dist.get_world_size()
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank % torch.cuda.device_count())))
            torch.cuda.set_device(device)
        return Ranks(rank, world, device if dist.get_backend() == "nccl" else torch.device("cpu")), device
    env = torchrun_env()
    if env is None:
        return Ranks(), device
    if not dist.is_available():
        raise RuntimeError("torchrun started several processes, but this torch has no torch.distributed")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"training on several processes needs the CPU (gloo) or CUDA (NCCL), got {device.type}")
    if device.type == "cuda":
        if env["local_rank"] >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK={env['local_rank']} but only {torch.cuda.device_count()} CUDA "
                               "device(s) are visible: start at most that many processes per machine")
        device = torch.device("cuda", env["local_rank"])
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    atexit.register(_destroy)
    torch.set_num_threads(max(1, _cores() // env["local_world_size"]))
    return Ranks(env["rank"], env["world_size"], device), device


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


class _DDP(DistributedDataParallel):
    """DistributedDataParallel that lets a loss function read the model's attributes
    (`model.config`, a method), as it could without the wrapper."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "module":
                raise
            return getattr(self.module, name)


def wrap(model: nn.Module, mode: str, ranks: Ranks, device: torch.device) -> nn.Module:
    """What the forward pass goes through: the model itself (one process), a DDP wrapper
    around it, or the model sharded in place by FSDP2."""
    if not ranks.active:
        return model
    if mode == "ddp":  # DDP copies rank 0's weights to every process when it starts
        return _DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if mode != "fsdp":
        raise ValueError(f"TrainConfig.parallel must be one of {PARALLEL_MODES}, got {mode!r}")
    from torch.distributed.fsdp import FSDPModule, fully_shard

    if isinstance(model, FSDPModule):  # trained before in this process: already sharded
        return model
    with torch.no_grad():  # every process starts from rank 0's weights, as under DDP
        for tensor in itertools.chain(model.parameters(), model.buffers()):
            dist.broadcast(tensor, src=0)
    for module in list(model.modules()):
        if isinstance(module, nn.ModuleList):
            for block in module:
                fully_shard(block)
    fully_shard(model)
    return model


@contextmanager
def gradient_sync(net: nn.Module, sync: bool) -> Iterator[None]:
    """Communicate gradients only on the last micro-batch of an update (`sync`): the others
    accumulate locally, and the last backward pass reduces their sum."""
    if isinstance(net, DistributedDataParallel):
        with (nullcontext() if sync else net.no_sync()):
            yield
        return
    setter = getattr(net, "set_requires_gradient_sync", None)  # FSDP2
    if setter is not None:
        setter(sync)
    yield


def _is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict | None, dict | None]:
    """(weights, optimizer state keyed by parameter name), whole, on rank 0; (None, None)
    elsewhere. Under FSDP2 every process must call it: the shards are gathered."""
    if dist.is_available() and dist.is_initialized() and _is_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        weights, state = get_state_dict(model, optimizer,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return (weights, state) if dist.get_rank() == 0 else (None, None)
    if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
        return None, None
    return model.state_dict(), named_optimizer_state(model, optimizer)


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict, name: str) -> None:
    """Load an optimizer state keyed by parameter name (every process holds all of it)."""
    if dist.is_available() and dist.is_initialized() and _is_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))
        return
    load_named_optimizer_state(model, optimizer, state, name)
