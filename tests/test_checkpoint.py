"""Checkpoints: a run stopped after step k and resumed from its checkpoint in a fresh process
(here: a fresh model and a fresh `train` call) ends bit for bit where the uninterrupted run
ends: weights, optimizer state and History. The model has dropout, so the random number
generators' states matter (shown by resuming without them).
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from tiny_lm import padded_batch, tiny_gpt
from tiny_lm import one_thread  # noqa: F401  (a fixture: tiny models run fastest on one thread)

import lmbook_utils.checkpoint as checkpoint_module
from lmbook_utils.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from lmbook_utils.repro import set_seed
from lmbook_utils.train import History, TrainConfig, _adamw, train

# Three different batches, so that resuming at the wrong data position gives other updates.
DATA = [padded_batch([8, 3, 6], 1), padded_batch([2, 8], 2), padded_batch([5, 5, 1, 8], 3)]
HELD_OUT = [padded_batch([8, 4, 2], 9)]
STEPS, EVERY = 5, 2


class Crash(Exception):
    pass


class CrashAt:
    """Stops the run at `step`, as a killed process would: after the checkpoint before it."""

    def __init__(self, step):
        self.step = step

    def on_step(self, state):
        if state.step == self.step:
            raise Crash


def config(k=1, **kw):
    return TrainConfig(max_steps=STEPS, grad_accum_steps=k, lr=1e-2, min_lr=1e-3, warmup_steps=1,
                       eval_every=2, device="cpu", **kw)


def fresh_model(seed=0):
    set_seed(seed, threads=None)
    return tiny_gpt(dropout=0.2)


def states_of(folder):
    """Everything a checkpoint holds, as tensors and plain values, for comparing two runs."""
    weights = load_file(folder / "model.safetensors")
    state = torch.load(folder / "state.pt", weights_only=True)
    trainer = json.loads((folder / "trainer.json").read_text())
    del trainer["config"]["checkpoint_dir"]  # the one difference between the runs
    return weights, state["optimizer"], state["rng"], trainer


def assert_same(a, b):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b


@pytest.mark.parametrize("k", [1, 2])
def test_an_interrupted_run_resumes_bit_identically(tmp_path, k):
    plain = fresh_model()
    plain_history = train(plain, DATA, config(k), eval_data=HELD_OUT, progress=False)

    whole = fresh_model()
    history = train(whole, DATA, config(k, checkpoint_dir=tmp_path / "whole", checkpoint_every=EVERY),
                    eval_data=HELD_OUT, progress=False)
    for a, b in zip(plain.parameters(), whole.parameters()):  # writing checkpoints changes nothing
        assert torch.equal(a, b)
    assert history == plain_history
    assert sorted(p.name for p in (tmp_path / "whole").iterdir()) == ["step-000002", "step-000004", "step-000005"]

    with pytest.raises(Crash):
        train(fresh_model(), DATA, config(k, checkpoint_dir=tmp_path / "crashed", checkpoint_every=EVERY),
              eval_data=HELD_OUT, callbacks=[CrashAt(3)], progress=False)
    assert latest_checkpoint(tmp_path / "crashed").name == "step-000002"

    resumed = fresh_model(seed=123)  # other initial weights: the checkpoint must replace them
    resumed_history = train(resumed, DATA, config(k, checkpoint_dir=tmp_path / "resumed", checkpoint_every=EVERY),
                            eval_data=HELD_OUT, progress=False, resume_from=tmp_path / "crashed")
    for (name, a), b in zip(whole.named_parameters(), resumed.parameters()):
        assert torch.equal(a, b), name
    assert resumed_history == history  # the steps before the checkpoint are in it too
    # the optimizer states (AdamW's moments and step counts) and the rest agree bit for bit
    assert_same(states_of(tmp_path / "resumed" / "step-000005"), states_of(tmp_path / "whole" / "step-000005"))
    trainer = json.loads((tmp_path / "crashed" / "step-000002" / "trainer.json").read_text())
    assert trainer["step"] == 2 and trainer["data_position"] == 2 * k


def resumed_parameters(tmp_path, monkeypatch, broken: str):
    """The parameters after resuming with one piece of the checkpoint deliberately ignored."""
    if broken == "rng":
        monkeypatch.setattr(checkpoint_module, "set_rng_state", lambda state: None)
    if broken == "data position":
        real = checkpoint_module.read_checkpoint

        def forgetful(*args, **kw):
            ckpt = real(*args, **kw)
            ckpt.data_position = 0
            return ckpt

        monkeypatch.setattr(checkpoint_module, "read_checkpoint", forgetful)
    model = fresh_model()
    train(model, DATA, config(), progress=False, resume_from=tmp_path / "whole" / "step-000002")
    monkeypatch.undo()
    return list(model.parameters())


def test_resuming_without_the_rng_state_or_the_data_position_differs(tmp_path, monkeypatch):
    whole = fresh_model()
    train(whole, DATA, config(checkpoint_dir=tmp_path / "whole", checkpoint_every=EVERY), progress=False)
    right = resumed_parameters(tmp_path, monkeypatch, broken="")
    assert all(torch.equal(a, b) for a, b in zip(whole.parameters(), right))
    for broken in ("rng", "data position"):  # each piece matters: without it the run differs
        wrong = resumed_parameters(tmp_path, monkeypatch, broken)
        assert not all(torch.equal(a, b) for a, b in zip(whole.parameters(), wrong)), broken


def test_state_files_load_without_unpickling_objects(tmp_path):
    model = fresh_model()
    train(model, DATA, config(checkpoint_dir=tmp_path), progress=False)  # only the final one
    folder = latest_checkpoint(tmp_path)
    assert folder.name == "step-000005" and sorted(p.name for p in folder.iterdir()) == [
        "model.safetensors", "state.pt", "trainer.json"]
    state = torch.load(folder / "state.pt", weights_only=True)  # tensors, numbers, strings only
    assert set(state) == {"optimizer", "scaler", "rng"}
    assert set(state["optimizer"]["state"]) == {n for n, _ in model.named_parameters()}
    trainer = json.loads((folder / "trainer.json").read_text())
    assert History.from_dict(trainer["history"]).steps == [1, 2, 3, 4, 5]
    assert trainer["config"]["max_steps"] == STEPS


def test_save_and_load_checkpoint_by_hand(tmp_path):
    model = fresh_model()
    optimizer = _adamw(model, config(), torch.device("cpu"))
    model(*DATA[0]).loss.backward()
    optimizer.step()
    folder = save_checkpoint(tmp_path / "mine", model, optimizer, step=1, data_position=1)
    other = fresh_model(seed=7)
    other_optimizer = _adamw(other, config(), torch.device("cpu"))
    ckpt = load_checkpoint(folder, other, other_optimizer)
    assert ckpt.step == 1 and ckpt.data_position == 1
    for a, b in zip(model.parameters(), other.parameters()):
        assert torch.equal(a, b)
    assert_same(optimizer.state_dict(), other_optimizer.state_dict())


def test_bad_resume_from_raises_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="resume_from"):
        train(fresh_model(), DATA, config(), progress=False, resume_from=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="resume_from.*no checkpoint"):
        train(fresh_model(), DATA, config(), progress=False, resume_from=tmp_path / "empty")
    train(fresh_model(), DATA, config(checkpoint_dir=tmp_path / "run", checkpoint_every=EVERY), progress=False)
    with pytest.raises(ValueError, match=r"resume_from.*step 5.*max_steps=5"):
        train(fresh_model(), DATA, config(), progress=False, resume_from=tmp_path / "run")
    set_seed(0, threads=None)
    wider = tiny_gpt(d_model=24)
    with pytest.raises(ValueError, match=r"resume_from.*shape.*wte.weight"):
        train(wider, DATA, config(), progress=False, resume_from=tmp_path / "run" / "step-000002")
    other = torch.nn.Sequential(torch.nn.Embedding(11, 11))
    with pytest.raises(ValueError, match=r"resume_from.*parameter names.*missing.*0.weight"):
        train(other, DATA, config(), progress=False, resume_from=tmp_path / "run" / "step-000002")


@pytest.mark.parametrize("field, value", [("checkpoint_every", 0), ("checkpoint_every", 2.0),
                                          ("checkpoint_dir", 3)])
def test_bad_checkpoint_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"TrainConfig.{field}"):
        TrainConfig(**{field: value}, **({"checkpoint_dir": "x"} if field == "checkpoint_every" else {}))


def test_checkpoint_every_needs_a_folder():
    with pytest.raises(ValueError, match="TrainConfig.checkpoint_every needs TrainConfig.checkpoint_dir"):
        TrainConfig(checkpoint_every=10)
