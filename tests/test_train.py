from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from lmbook_utils.repro import set_seed  # noqa: E402
from lmbook_utils.train import History, TrainConfig, evaluate, lr_at, train  # noqa: E402
from lmbook_utils.train_progress import _Progress  # noqa: E402


@dataclass
class Out:
    logits: torch.Tensor
    loss: torch.Tensor | None


class Regressor(nn.Module):
    """y = w.x + b with an MSE loss, in the book's (inputs, targets=None) -> Out convention."""

    def __init__(self, d: int = 3) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 1))

    def forward(self, x, targets=None):
        pred = self.net(x).squeeze(-1)
        return Out(pred, None if targets is None else ((pred - targets) ** 2).mean())


def make_batches(n_batches: int, seed: int, batch: int = 16):
    g = torch.Generator().manual_seed(seed)
    w = torch.tensor([1.0, -2.0, 0.5])
    out = []
    for _ in range(n_batches):
        x = torch.randn(batch, 3, generator=g)
        out.append((x, x @ w + 0.3))
    return out


CFG = dict(lr=0.03, min_lr=0.003, warmup_steps=5, eval_every=20, device="cpu")


def fit(steps=60, callbacks=(), **kw):
    set_seed(0, threads=None)
    model = Regressor()
    cfg = TrainConfig(max_steps=steps, **{**CFG, **kw})
    hist = train(model, make_batches(8, 1), cfg, eval_data=make_batches(3, 2),
                 callbacks=callbacks, progress=False)
    return model, hist


def test_loss_drops_and_history_is_complete():
    model, hist = fit()
    assert hist.steps == list(range(1, 61))
    assert len(hist.train_loss) == len(hist.lr) == len(hist.grad_norm) == 60
    assert hist.eval_steps == [20, 40, 60]
    assert hist.eval_loss[0] > hist.eval_loss[1] > hist.eval_loss[2]
    assert hist.final_eval_loss < 0.1 * hist.train_loss[0]
    assert sum(hist.train_loss[-8:]) < 0.1 * sum(hist.train_loss[:8])
    assert hist.best_eval_loss == min(hist.eval_loss)
    assert hist.tokens == []  # float inputs are not tokens
    assert not model.training  # left in eval mode


def test_same_seed_gives_bit_identical_history():
    assert fit(30)[1].to_dict() == fit(30)[1].to_dict()


def test_lr_schedule_known_points():
    cfg = TrainConfig(max_steps=110, lr=1.0, min_lr=0.1, warmup_steps=10)
    assert lr_at(0, cfg) == pytest.approx(0.1)  # 1/10 of the way up
    assert lr_at(4, cfg) == pytest.approx(0.5)
    assert lr_at(9, cfg) == pytest.approx(1.0)  # end of warmup: the peak
    assert lr_at(59, cfg) == pytest.approx(0.55)  # half way through the cosine: the middle
    assert lr_at(34, cfg) == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2)
    assert lr_at(109, cfg) == pytest.approx(0.1)  # last step: min_lr
    values = [lr_at(s, cfg) for s in range(110)]
    assert all(a >= b for a, b in zip(values[9:], values[10:]))  # decays monotonically
    flat = TrainConfig(max_steps=5, lr=0.2, min_lr=0.2)
    assert [lr_at(s, flat) for s in range(5)] == [0.2] * 5
    with pytest.raises(ValueError, match="step"):
        lr_at(110, cfg)


def test_history_records_the_schedule():
    _, hist = fit(40)
    cfg = TrainConfig(max_steps=40, **CFG)
    assert hist.lr == [lr_at(s, cfg) for s in range(40)]


def test_grad_clip_bounds_the_norm():
    seen = []

    class Norms:
        def on_step(self, state):  # gradients are still there after the update
            grads = [p.grad for p in state.model.parameters()]
            seen.append((state.grad_norm, float(torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(g) for g in grads])))))

    fit(20, callbacks=[Norms()], grad_clip=0.05, lr=0.01)
    assert all(after <= 0.05 * (1 + 1e-4) for _, after in seen)
    assert any(before > 0.5 for before, _ in seen)  # clipping did have work to do
    seen.clear()
    fit(5, callbacks=[Norms()], grad_clip=None)
    assert all(before == pytest.approx(after, rel=1e-5) for before, after in seen)


def test_eval_loss_matches_manual_computation():
    model, hist = fit(20, eval_batches=2)
    held_out = make_batches(3, 2)
    with torch.no_grad():
        manual = sum(float(model(x, y).loss) for x, y in held_out[:2]) / 2
    assert hist.final_eval_loss == pytest.approx(manual, rel=1e-6)
    assert evaluate(model, held_out, max_batches=2) == pytest.approx(manual, rel=1e-6)


def test_callbacks_called_the_right_number_of_times():
    class Counter:
        def __init__(self):
            self.calls = {"on_step": 0, "on_eval": 0, "on_end": 0}
            self.last = None

        def on_step(self, s):
            self.calls["on_step"] += 1

        def on_eval(self, s):
            self.calls["on_eval"] += 1
            assert s.eval_loss is not None and s.model.training is True

        def on_end(self, s):
            self.calls["on_end"] += 1
            self.last = s

    class OnlyEnd:
        ended = 0

        def on_end(self, s):
            OnlyEnd.ended += 1

    c = Counter()
    fit(50, callbacks=[c, OnlyEnd()], eval_every=20)  # evals at 20, 40 and the final 50
    assert c.calls == {"on_step": 50, "on_eval": 3, "on_end": 1}
    assert OnlyEnd.ended == 1
    assert c.last.step == 50 and len(c.last.history.steps) == 50


def test_dict_batches_loss_fn_and_token_count():
    class Bigram(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(5, 5)

        def forward(self, input_ids, targets=None):
            logits = self.emb(input_ids)
            loss = None if targets is None else nn.functional.cross_entropy(
                logits.view(-1, 5), targets.view(-1))
            return Out(logits, loss)

    ids = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    data = [{"input_ids": ids, "targets": (ids + 1) % 5}]
    set_seed(0, threads=None)
    hist = train(Bigram(), data, TrainConfig(max_steps=30, lr=0.3, device="cpu", eval_every=10),
                 eval_data=data, progress=False)
    assert hist.tokens == [8 * k for k in range(1, 31)]
    assert hist.final_eval_loss < hist.eval_loss[0]

    calls = []

    def loss_fn(model, batch):
        calls.append(batch["input_ids"].device.type)
        return model(**batch).loss

    train(Bigram(), data, TrainConfig(max_steps=3, device="cpu"), loss_fn=loss_fn, progress=False)
    assert calls == ["cpu"] * 3


def test_model_output_without_loss_raises_clearly():
    data = [(torch.randn(4, 3),)]  # no targets -> loss None
    with pytest.raises(ValueError, match="without a .loss"):
        train(Regressor(), data, TrainConfig(max_steps=2, device="cpu"), progress=False)
    with pytest.raises(ValueError, match="without a .loss"):
        train(nn.Linear(3, 1), data, TrainConfig(max_steps=2, device="cpu"), progress=False)


def test_bad_loss_and_bad_data():
    data = make_batches(2, 0)
    with pytest.raises(ValueError, match="scalar"):
        train(Regressor(), data, TrainConfig(max_steps=2, device="cpu"),
              loss_fn=lambda m, b: m(*b).logits, progress=False)
    with pytest.raises(FloatingPointError, match="step 1"):
        train(Regressor(), data, TrainConfig(max_steps=2, device="cpu"),
              loss_fn=lambda m, b: m(*b).loss * float("nan"), progress=False)
    with pytest.raises(ValueError, match="train_data yielded no batches"):
        train(Regressor(), iter(data), TrainConfig(max_steps=5, device="cpu"), progress=False)
    with pytest.raises(TypeError, match="train_data"):
        train(Regressor(), 3, TrainConfig(max_steps=5, device="cpu"), progress=False)
    with pytest.raises(TypeError, match="config"):
        train(Regressor(), data, {"max_steps": 5}, progress=False)


@pytest.mark.parametrize("field, value", [
    ("max_steps", 0), ("max_steps", 2.5), ("lr", 0.0), ("lr", float("nan")), ("min_lr", -1.0),
    ("weight_decay", -0.1), ("grad_clip", 0.0), ("eval_every", 0), ("eval_batches", 0),
    ("warmup_steps", -1), ("betas", (0.9,)), ("betas", (0.9, 1.0)), ("amp", "fp8"),
    ("seed", -1), ("device", 0), ("grad_accum_steps", 0), ("checkpoint_every", 0), ("checkpoint_dir", 1),
    ("parallel", "tp")])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"TrainConfig.{field}"):
        TrainConfig(**{field: value})


def test_config_relations():
    with pytest.raises(ValueError, match="min_lr must be <= lr"):
        TrainConfig(lr=1e-3, min_lr=1e-2)
    with pytest.raises(ValueError, match="warmup_steps must be <= max_steps"):
        TrainConfig(max_steps=10, warmup_steps=11)
    with pytest.raises(ValueError, match="amp='fp16' needs a CUDA"):
        fit(2, amp="fp16", warmup_steps=0)


def test_weight_decay_only_on_matrices():
    set_seed(0, threads=None)
    model = Regressor()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    # lr tiny, zero loss gradient: only weight decay moves parameters
    train(model, make_batches(1, 0), TrainConfig(max_steps=1, lr=0.5, min_lr=0.5,
                                                 weight_decay=0.2, device="cpu"),
          loss_fn=lambda m, b: 0.0 * m(*b).loss, progress=False)
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            torch.testing.assert_close(p.detach(), before[name] * (1 - 0.5 * 0.2))
        else:
            torch.testing.assert_close(p.detach(), before[name])


def test_history_round_trip_and_plot():
    _, hist = fit(20)
    again = History.from_dict(hist.to_dict())
    assert again == hist
    fig = hist.plot(logy=True)
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["train", "held-out"]
    plt.close(fig)
    with pytest.raises(ValueError, match="data must be a dict"):
        History.from_dict({"loss": [1.0]})
    assert History().best_eval_loss is None and History().final_eval_loss is None


def test_progress_outside_notebook_prints_deterministic_lines(capsys):
    set_seed(0, threads=None)
    model = Regressor()
    train(model, make_batches(4, 1), TrainConfig(max_steps=40, **CFG),
          eval_data=make_batches(2, 2), progress=True)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2  # one per non-final evaluation, then the final line
    assert lines[0].startswith("step 20/40 · train loss ")
    assert lines[-1].startswith("step 40/40 · train loss ") and "· held-out loss " in lines[-1]
    assert all("s/it" not in ln and "it/s" not in ln for ln in lines)


def test_progress_in_notebook_ends_where_it_started():
    class Handle:
        def __init__(self):
            self.shown = []

        def update(self, obj):
            self.shown.append(repr(obj))

    handle, first, printed = Handle(), [], []

    def display(obj, display_id):
        first.append(repr(obj))
        return handle

    p = _Progress(100, True, window=10, notebook=True, display=display, write=printed.append)
    for step in range(1, 101):
        p.step(step, 2.0 if step <= 90 else 1.0)
        if step % 50 == 0:
            p.eval(step, 1.5, final=step == 100)
    p.end(100, 1.23456)
    # nbval records only the first display; the stored notebook has the last update.
    assert first == [""] and handle.shown[-1] == ""
    assert handle.shown[-2].startswith("[####################] step 100/100")
    assert len(handle.shown) == 51
    assert printed == ["step 100/100 · train loss 1.000 · held-out loss 1.235"]


# ---- the numerical traps of the loop ------------------------------------------------------
class TokenLM(nn.Module):
    """A bigram LM over 6 tokens in the book's (ids, targets) -> Out convention, pad id 0."""

    pad_id = 0

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(6, 6)

    def forward(self, ids, targets=None):
        logits = self.emb(ids)
        loss = None if targets is None else nn.functional.cross_entropy(
            logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        return Out(logits, loss)


def padded_batches():
    # Two batches of very different sizes: a mean of per-batch means would weigh the 1 target
    # of the second batch as much as the 6 of the first.
    a = (torch.tensor([[1, 2, 3, 4], [2, 3, 0, 0]]), torch.tensor([[2, 3, 4, 5], [3, 4, -100, -100]]))
    b = (torch.tensor([[5, 0, 0, 0]]), torch.tensor([[1, -100, -100, -100]]))
    return [a, b]


def test_evaluate_weights_batches_by_their_targets():
    torch.manual_seed(0)
    model = TokenLM()
    data = padded_batches()
    with torch.no_grad():
        per_target = torch.cat([nn.functional.cross_entropy(model.emb(x).flatten(0, 1), y.flatten(),
                                                            reduction="none", ignore_index=-100)[y.flatten() != -100]
                                for x, y in data])
    assert evaluate(model, data) == pytest.approx(float(per_target.mean()), rel=1e-6)
    # a loss function may say how many targets its mean is over
    assert evaluate(model, data, loss_fn=lambda m, b: (m(*b).loss, int((b[1] != -100).sum()))) == \
        pytest.approx(float(per_target.mean()), rel=1e-6)


def test_evaluate_counts_the_transformer_padding_as_ignored():
    from lmbook_utils.train import count_targets
    from lmbook_utils.transformer import Transformer, TransformerConfig

    model = Transformer(TransformerConfig(7, 7, d_model=8, n_heads=2, n_layers=1, d_ff=16, pad_id=0))
    src = torch.tensor([[1, 2, 0]])
    assert count_targets(model, (src, torch.tensor([[1, 3, 0]]), torch.tensor([[3, 2, 0]]))) == 2


def test_history_tokens_count_real_tokens_only():
    set_seed(0, threads=None)
    hist = train(TokenLM(), padded_batches(), TrainConfig(max_steps=2, device="cpu"), progress=False)
    assert hist.tokens == [6, 7]  # 6 real input tokens in the first batch, 1 in the second


def test_a_batch_without_targets_is_named_as_such():
    data = [(torch.tensor([[1, 2]]), torch.tensor([[-100, -100]]))]
    with pytest.raises(ValueError, match="no target to predict"):
        train(TokenLM(), data, TrainConfig(max_steps=1, device="cpu"), progress=False)
    with pytest.raises(ValueError, match="no target to predict"):
        evaluate(TokenLM(), data)


def test_train_keeps_the_model_where_it_is(monkeypatch):
    import lmbook_utils.train as train_module

    def no_lookup(name=None):
        raise AssertionError("train() asked for a device although the model already has one")

    monkeypatch.setattr(train_module, "get_device", no_lookup)
    model = Regressor()
    train(model, make_batches(2, 0), TrainConfig(max_steps=2), progress=False)
    assert next(model.parameters()).device.type == "cpu"


def test_the_optimizer_is_fused_adamw_on_cpu():
    from lmbook_utils.train import _adamw

    opt = _adamw(Regressor(), TrainConfig(), torch.device("cpu"))
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["fused"]


def test_one_process_one_batch_is_the_reference_loop_bit_for_bit():
    """The default path (grad_accum_steps=1, one process) does the arithmetic the chapters'
    stored outputs were computed with: this loop, with dropout drawing from the seeded RNG."""
    from tiny_lm import padded_batch, tiny_gpt

    from lmbook_utils.train import _adamw

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # either count gives equal runs; one is fastest for a tiny model
    try:
        _check_reference_loop(padded_batch, tiny_gpt, _adamw)
    finally:
        torch.set_num_threads(threads)


def _check_reference_loop(padded_batch, tiny_gpt, _adamw):
    data = [padded_batch([8, 3, 6], 1), padded_batch([2, 8], 2), padded_batch([5, 5, 1, 8], 3)]
    cfg = TrainConfig(max_steps=7, lr=1e-2, min_lr=1e-3, warmup_steps=2, device="cpu")
    set_seed(0, threads=None)
    model = tiny_gpt(dropout=0.2)
    train(model, data, cfg, progress=False)
    set_seed(0, threads=None)
    ref = tiny_gpt(dropout=0.2)
    set_seed(cfg.seed, threads=None)
    opt = _adamw(ref, cfg, torch.device("cpu"))
    for step in range(cfg.max_steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss = ref(*data[step % len(data)]).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(ref.parameters()), cfg.grad_clip)
        opt.step()
    for (name, a), b in zip(model.named_parameters(), ref.parameters()):
        assert torch.equal(a, b), name


def test_snapshots_keep_independent_copies_at_the_given_steps():
    from lmbook_utils.train import Snapshots

    snaps = Snapshots([3, 10])
    model, _ = fit(steps=10, callbacks=[snaps])
    assert sorted(snaps.saved) == [3, 10]
    for name, value in model.state_dict().items():          # the last step's copy is the trained model
        assert torch.equal(snaps.saved[10][name], value)
    assert any(not torch.equal(snaps.saved[3][k], snaps.saved[10][k]) for k in snaps.saved[3])
    # a copy, not a view: training the model further leaves the snapshot as it was
    kept = {k: v.clone() for k, v in snaps.saved[10].items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert all(torch.equal(kept[k], snaps.saved[10][k]) for k in kept)
    # the same run snapshotted at step 3 alone gives the same copy (deterministic, no side effect)
    again = Snapshots([3])
    fit(steps=10, callbacks=[again])
    assert all(torch.equal(again.saved[3][k], snaps.saved[3][k]) for k in kept)


@pytest.mark.parametrize("steps", [[0], [2, -1], [1.5], ["3"], [True], 4])
def test_snapshots_refuse_bad_steps(steps):
    from lmbook_utils.train import Snapshots

    with pytest.raises(ValueError, match="steps must"):
        Snapshots(steps)
