"""`train` under torchrun: 2 processes on the CPU (gloo, on 127.0.0.1, offline) compute what one
process computes on the whole batch, with DDP and with FSDP2; and the entry point a reader
types, ``torchrun ... -m lmbook_utils.cli train``, trains the model one process would.

The batches are padded so that the two processes hold different numbers of real targets (23
and 4 in the first batch): a mean of the per-process mean losses, which is what averaging
each process's ordinary gradient gives, would differ by more than 1e-3 (shown).

Tolerance: as in test_grad_accum.py (same float32 sums in another order): gradients rtol=1e-5,
atol=1e-7 (measured: 6e-8); parameters after 4 AdamW steps rtol=1e-4, atol=5e-5 (AdamW
amplifies rounding noise where the exact gradient is zero, such as the attention's key bias,
by up to lr / eps; measured: 4e-6). A resumed distributed run equals the uninterrupted one bit
for bit (torch.equal).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file
from tiny_lm import cat, grads_of, max_difference, rows, tiny_gpt
from tiny_lm import one_thread  # noqa: F401  (a fixture: tiny models run fastest on one thread)

from lmbook_utils.checkpoint import load_checkpoint
from lmbook_utils.repro import set_seed
from lmbook_utils.train import History, TrainConfig, _adamw, evaluate, train

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="needs torch.distributed with gloo")

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
GRAD_TOL = dict(rtol=1e-5, atol=1e-7)
PARAM_TOL = dict(rtol=1e-4, atol=5e-5)
import distributed_worker as worker  # noqa: E402  (tests/ is on the path, as for tiny_lm)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args: list[str], cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    """python -m torch.distributed.run --nproc_per_node=2 ... on 127.0.0.1, this package first."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTS), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    if sys.platform.startswith("linux") and Path("/sys/class/net/lo").exists():
        env["GLOO_SOCKET_IFNAME"] = "lo"  # offline: the loopback, whatever the host name resolves to
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", *args]
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def ranks_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("two_ranks")
    result = torchrun([str(TESTS / "distributed_worker.py"), str(out)], cwd=ROOT)
    (out / "stdout.txt").write_text(result.stdout)
    return out


def test_only_rank_0_prints(ranks_out):
    lines = (ranks_out / "stdout.txt").read_text().splitlines()
    assert [ln.split(" · ")[0] for ln in lines if ln.startswith("step ")] == ["step 2/4", "step 4/4"] * 2  # ddp, fsdp


def one_process(steps: int, data, **kw):
    set_seed(0, threads=None)
    model = tiny_gpt()
    config = TrainConfig(max_steps=steps, lr=worker.LR, min_lr=worker.LR / 10, device="cpu", **kw)
    history = train(model, data, config, eval_data=worker.HELD_OUT, progress=False)
    return model, history


def test_gradients_equal_one_process_on_the_whole_batch(ranks_out):
    set_seed(0, threads=None)
    model = tiny_gpt()
    whole = grads_of(model, model(*worker.FIRST).loss)
    per_rank_means = {k: (a + b) / 2 for (k, a), b in zip(
        grads_of(model, model(*rows(worker.FIRST, 0, 2)).loss).items(),
        grads_of(model, model(*rows(worker.FIRST, 1, 2)).loss).values())}
    assert max_difference(per_rank_means, whole) > 1e-3  # what an unweighted average would give
    for mode in ("ddp", "fsdp"):
        grads = load_file(ranks_out / f"{mode}_grads.safetensors")
        for name in whole:
            torch.testing.assert_close(grads[name], whole[name], **GRAD_TOL, msg=f"{mode} {name}")


def test_parameters_and_losses_equal_one_process(ranks_out):
    d = worker.DATA  # 2 processes x 2 micro-batches per update = one process on 2 batches' rows
    model, history = one_process(worker.STEPS, [cat(d[0], d[1]), cat(d[2], d[0]), cat(d[1], d[2])], eval_every=2)
    for mode in ("ddp", "fsdp"):
        params = load_file(ranks_out / f"{mode}_params.safetensors")
        for name, p in model.named_parameters():
            torch.testing.assert_close(params[name], p.detach(), **PARAM_TOL, msg=f"{mode} {name}")
        theirs = History.from_dict(json.loads((ranks_out / f"{mode}_history.json").read_text()))
        assert theirs.steps == history.steps and theirs.eval_steps == history.eval_steps == [2, 4]
        assert theirs.tokens == history.tokens  # every process's tokens, all micro-batches
        assert theirs.train_loss == pytest.approx(history.train_loss, rel=1e-5)
        assert theirs.grad_norm == pytest.approx(history.grad_norm, rel=1e-4)
        assert theirs.eval_loss == pytest.approx(history.eval_loss, rel=1e-6)  # sums, not means of means
    per_rank = [evaluate(model, [rows(b, r, 2) for b in worker.HELD_OUT]) for r in (0, 1)]
    assert abs(sum(per_rank) / 2 - evaluate(model, worker.HELD_OUT)) > 1e-3


def test_a_resumed_run_on_two_processes_is_bit_identical(ranks_out):
    # with dropout: each rank's generators must come back as that rank left them
    for mode in ("ddp", "fsdp"):
        a = load_file(ranks_out / f"{mode}_dropout.safetensors")
        b = load_file(ranks_out / f"{mode}_resumed.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a), mode
        assert not all(torch.equal(a[k], c) for k, c in load_file(ranks_out / f"{mode}_params.safetensors").items())
        sa = torch.load(ranks_out / f"{mode}_dropout_ckpt" / "step-000004" / "state.pt", weights_only=True)
        sb = torch.load(ranks_out / f"{mode}_resumed_ckpt" / "step-000004" / "state.pt", weights_only=True)
        for name, state in sa["optimizer"]["state"].items():
            for key, value in state.items():
                assert torch.equal(value, sb["optimizer"]["state"][name][key]), (mode, name, key)
        assert len(sa["rng"]) == 2 and not torch.equal(sa["rng"][0]["torch"], sa["rng"][1]["torch"])


def test_a_checkpoint_of_two_processes_loads_in_one(ranks_out):
    # FSDP2 shards are gathered into one whole checkpoint, with the same names as one process's.
    for mode in ("ddp", "fsdp"):
        model = tiny_gpt()
        optimizer = _adamw(model, TrainConfig(), torch.device("cpu"))
        ckpt = load_checkpoint(ranks_out / f"{mode}_ckpt", model, optimizer)
        assert ckpt.step == 4 and ckpt.world_size == 2 and ckpt.data_position == 8
        params = load_file(ranks_out / f"{mode}_params.safetensors")
        assert all(torch.equal(p.detach(), params[n]) for n, p in model.named_parameters())


CLI_ARGS = ["train", "--steps", "4", "--batch-size", "6", "--eval-every", "2", "--n-chars", "4000",
            "--d-model", "16", "--n-layers", "1", "--n-heads", "2", "--lr", "1e-2", "--device", "cpu", "--threads", "1"]


def test_the_cli_under_torchrun_trains_what_one_process_trains(tmp_path, capsys):
    from lmbook_utils import cli

    result = torchrun(["-m", "lmbook_utils.cli", *CLI_ARGS, "--parallel", "fsdp", "--checkpoint-dir",
                       str(tmp_path / "two")], cwd=tmp_path)
    assert cli.main([*CLI_ARGS, "--checkpoint-dir", str(tmp_path / "one")]) == 0
    one_lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("step ")]
    two_lines = [ln for ln in result.stdout.splitlines() if ln.startswith("step ")]
    assert len(one_lines) == len(two_lines) == 2  # one line per evaluation, printed by rank 0 only
    for a, b in zip(one_lines, two_lines):
        assert a.split(" · ")[0] == b.split(" · ")[0]
        numbers = [[float(part.split()[-1]) for part in ln.split(" · ")[1:]] for ln in (a, b)]
        assert numbers[0] == pytest.approx(numbers[1], abs=1.5e-3)  # printed to 3 decimals
    a = load_file(tmp_path / "one" / "step-000004" / "model.safetensors")
    b = load_file(tmp_path / "two" / "step-000004" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], **PARAM_TOL, msg=name)
