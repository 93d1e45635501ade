"""`python -m lmbook_utils.cli train`, in one process: what it prints, what its options do,
and that errors in the arguments name the argument. (Under torchrun: test_distributed.py.)"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from tiny_lm import one_thread  # noqa: F401  (a fixture)

from lmbook_utils import cli

SMALL = ["train", "--steps", "4", "--batch-size", "6", "--eval-every", "2", "--n-chars", "4000", "--d-model", "16",
         "--n-layers", "1", "--n-heads", "2", "--lr", "1e-2", "--device", "cpu", "--threads", "1"]


def run(capsys, *extra):
    assert cli.main([*SMALL, *extra]) == 0
    return capsys.readouterr().out.splitlines()


def weights(folder):
    return load_file(folder / "model.safetensors")


def test_one_line_per_evaluation(capsys, tmp_path):
    lines = run(capsys, "--checkpoint-dir", str(tmp_path))
    assert lines[0].startswith("GPT d_model=16, 1 layer, ") and "1 process on cpu" in lines[0]
    assert [ln.split(" · ")[0] for ln in lines[1:]] == ["step 2/4", "step 4/4"]
    assert all("held-out loss" in ln for ln in lines[1:])
    trainer = json.loads((tmp_path / "step-000004" / "trainer.json").read_text())
    assert trainer["config"]["max_steps"] == 4 and trainer["config"]["warmup_steps"] == 0  # 4 // 10


def test_resume_continues_bit_identically(capsys, tmp_path):
    whole = run(capsys, "--dropout", "0.1", "--checkpoint-dir", str(tmp_path / "a"), "--checkpoint-every", "2")
    resumed = run(capsys, "--dropout", "0.1", "--checkpoint-dir", str(tmp_path / "b"),
                  "--resume", str(tmp_path / "a" / "step-000002"))
    a, b = weights(tmp_path / "a" / "step-000004"), weights(tmp_path / "b" / "step-000004")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed[-1] == whole[-1]  # the same final line, train loss window included


def test_grad_accum_of_half_batches_trains_the_full_batch_model(capsys, tmp_path):
    # Batches of 3 stories, 2 per update, are the rows of batches of 6 (the same seeded order),
    # padded to their own longest story: the token-weighted loss makes that padding irrelevant.
    run(capsys, "--checkpoint-dir", str(tmp_path / "six"))
    run(capsys, "--checkpoint-dir", str(tmp_path / "three"), "--batch-size", "3", "--grad-accum", "2")
    a, b = weights(tmp_path / "six" / "step-000004"), weights(tmp_path / "three" / "step-000004")
    for name in a:  # tolerance of test_grad_accum.py's parameters
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=5e-5, msg=name)


@pytest.mark.parametrize("args, named", [
    (["--steps", "0"], "--steps"), (["--steps", "x"], "--steps"), (["--batch-size", "0"], "--batch-size"),
    (["--grad-accum", "0"], "--grad-accum"), (["--lr", "0"], "--lr"), (["--parallel", "tp"], "--parallel"),
    (["--n-heads", "3"], "--n-heads"), (["--dropout", "1"], "--dropout"), (["--device", "tpu"], "--device"),
    (["--checkpoint-every", "2"], "--checkpoint-every"), (["--warmup", "9"], "--warmup"),
    (["--resume", "/nonexistent/run"], "--resume")])
def test_argument_errors_name_the_argument(capsys, args, named):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*SMALL, *args])
    assert exit_info.value.code == 2
    assert f"argument {named}" in capsys.readouterr().err


def test_resume_errors_name_the_argument(capsys, tmp_path):
    run(capsys, "--checkpoint-dir", str(tmp_path))
    for args, says in ((["--resume", str(tmp_path)], "at step 4, --steps is 4"),
                       (["--steps", "6", "--d-model", "24", "--resume", str(tmp_path)], "shapes differ")):
        with pytest.raises(SystemExit):
            cli.main([*SMALL, *args])
        err = capsys.readouterr().err
        assert "argument --resume" in err and says in err, err


def test_python_dash_m_runs_the_entry_point():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "lmbook_utils.cli", "train", "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and "--grad-accum" in result.stdout and "--parallel" in result.stdout
