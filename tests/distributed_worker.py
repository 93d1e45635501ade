"""One rank of tests/test_distributed.py, started by torchrun: trains the tiny GPT with `train`
under DDP and FSDP2 and writes, from rank 0, what the test compares with one process.

    python -m torch.distributed.run --nproc_per_node=2 tests/distributed_worker.py OUT

For each mode (ddp, fsdp), into OUT:
  {mode}_grads.safetensors   the full gradients of the first update (no clipping)
  {mode}_params.safetensors  the full parameters after STEPS updates of 2 micro-batches each
                             (held-out evaluation, clipping, checkpoints)
  {mode}_history.json        the History of that run; {mode}_ckpt/ its checkpoints
  {mode}_dropout.safetensors the same with dropout 0.2, {mode}_dropout_ckpt/ its checkpoints
  {mode}_resumed.safetensors that run resumed in a fresh model from its step-2 checkpoint,
                             {mode}_resumed_ckpt/ its checkpoints
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file
from tiny_lm import padded_batch, tiny_gpt

from lmbook_utils.repro import set_seed
from lmbook_utils.train import TrainConfig, train

# The data every rank reads; each rank trains on rows rank::2 of every batch. Rows have very
# different numbers of real targets, so the two ranks hold different numbers of tokens.
FIRST = padded_batch([8, 1, 7, 1, 8, 2], 1)
DATA = [FIRST, padded_batch([3, 8, 8, 1, 6], 2), padded_batch([1, 1, 8, 8], 3)]
HELD_OUT = [padded_batch([8, 1, 8, 2, 5], 9), padded_batch([1, 7], 10)]
STEPS, LR = 4, 1e-2


def config(mode: str, **kw) -> TrainConfig:
    return TrainConfig(lr=LR, min_lr=LR / 10, device="cpu", parallel=mode, **kw)


def full(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor: FSDP2 keeps a shard on each rank (a DTensor), DDP a full copy."""
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def gathered(model: torch.nn.Module, grads: bool = False) -> dict[str, torch.Tensor]:
    return {name: full(p.grad if grads else p.detach()).detach().clone().contiguous()
            for name, p in model.named_parameters()}


def main(out: Path) -> None:
    for mode in ("ddp", "fsdp"):
        set_seed(0, threads=None)
        model = tiny_gpt()
        train(model, [FIRST], config(mode, max_steps=1, grad_clip=None), progress=False)
        grads = gathered(model, grads=True)  # a collective for FSDP: every rank takes part

        set_seed(0, threads=None)
        model = tiny_gpt()
        history = train(model, DATA, config(mode, max_steps=STEPS, grad_accum_steps=2, eval_every=2,
                                            checkpoint_dir=out / f"{mode}_ckpt", checkpoint_every=2),
                        eval_data=HELD_OUT)  # prints on rank 0 only
        params = gathered(model)

        # With dropout, whose masks differ between the ranks (they hold different numbers of
        # rows): an uninterrupted run, and one resumed from its step-2 checkpoint.
        runs = {}
        for name, seed, resume in (("dropout", 0, None), ("resumed", 7, out / f"{mode}_dropout_ckpt" / "step-000002")):
            set_seed(seed, threads=None)
            model = tiny_gpt(dropout=0.2)
            train(model, DATA, config(mode, max_steps=STEPS, grad_accum_steps=2, eval_every=2,
                                      checkpoint_dir=out / f"{mode}_{name}_ckpt", checkpoint_every=2),
                  eval_data=HELD_OUT, progress=False, resume_from=resume)
            runs[name] = gathered(model)
        if dist.get_rank() == 0:
            save_file(grads, str(out / f"{mode}_grads.safetensors"))
            save_file(params, str(out / f"{mode}_params.safetensors"))
            save_file(runs["dropout"], str(out / f"{mode}_dropout.safetensors"))
            save_file(runs["resumed"], str(out / f"{mode}_resumed.safetensors"))
            (out / f"{mode}_history.json").write_text(json.dumps(history.to_dict()))
        dist.barrier()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
