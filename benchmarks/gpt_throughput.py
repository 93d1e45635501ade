"""Benchmark: GPT training throughput against Hugging Face's GPT-2, and train() against a plain loop.

Run as `python benchmarks/gpt_throughput.py` (about three minutes on 2 CPU cores; `--quick` for a
smoke run). Not a test: it prints ratios measured side by side in one run.

1. Our GPT (lmbook_utils.gpt) against `transformers.GPT2LMHeadModel` with the same sizes,
   the same AdamW, the same random tokens and the same plain training loop, at two sizes:
   nanoGPT's CPU configuration (Karpathy's `train_shakespeare_char` on CPU: 4 layers, 4 heads,
   width 128, context 64, batch 12, vocabulary 65, no dropout) and chapter 06's largest model
   (width 64, 2 layers, 4 heads, context 48, batch 32). The runs are interleaved (ours, theirs,
   ours, ...) and each figure is the best of several, so a slow moment of the machine hits
   both. Target: ours at least 1.25x GPT2LMHeadModel's tokens per second (nanoGPT's own
   `model.py` measured about 1.26x on this kind of machine).
2. `lmbook_utils.train.train` against a hand-written loop doing the same work (schedule,
   fused AdamW, gradient clipping, the loss read every step) on the same model and data.
   Target: train() within 5% of the plain loop.
3. Attention with its weights returned (need_weights=True: the reference softmax, weights
   kept) against without (the module's kernel="auto"), and the achieved FLOP/s against a
   float32 matrix product, with the usual estimate of training FLOPs per token,
   6 N + 12 L d T (Chowdhery et al. 2022, PaLM, appendix B).

The CPU kernels are the book's pinned AVX2 ones (repro.PINNED_CPU_ENV), as in the chapters.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lmbook_utils.repro import pin_cpu_numerics  # noqa: E402

pin_cpu_numerics()  # before torch computes anything

import torch  # noqa: E402

from lmbook_utils.gpt import GPT, GPTConfig  # noqa: E402
from lmbook_utils.train import TrainConfig, lr_at, train  # noqa: E402

THREADS = 2
SIZES = {  # name: (vocab, d_model, layers, heads, context, batch)
    "nanoGPT CPU config": (65, 128, 4, 4, 64, 12),
    "chapter 06 (d=64)": (64, 64, 2, 4, 48, 32),
}


def adamw(model: torch.nn.Module) -> torch.optim.AdamW:
    """The optimizer both models get: AdamW, fused (the fastest deterministic setting here)."""
    return torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)


def make_ours(vocab, d, layers, heads, context) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=vocab, d_model=d, n_layers=layers, n_heads=heads, max_len=context))


def make_hf(vocab, d, layers, heads, context):
    import transformers

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=vocab, n_positions=context, n_embd=d, n_layer=layers,
                                  n_head=heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                  activation_function="gelu_new", tie_word_embeddings=True,
                                  bos_token_id=None, eos_token_id=None, attn_implementation="sdpa")
    return transformers.GPT2LMHeadModel(cfg)


def data(vocab: int, context: int, batch: int, n: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (n, batch, context + 1), generator=g)
    return [(x[:, :-1].contiguous(), x[:, 1:].contiguous()) for x in ids]


def loop_throughput(model, batches, steps: int, hf: bool) -> float:
    """Tokens per second of a plain loop: forward with loss, zero_grad, backward, AdamW step."""
    opt = adamw(model)
    model.train()
    for i in range(3):  # warm-up steps, untimed
        x, y = batches[i % len(batches)]
        loss = model(input_ids=x, labels=x).loss if hf else model(x, y).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    start = time.perf_counter()
    for i in range(steps):
        x, y = batches[i % len(batches)]
        # GPT2LMHeadModel shifts labels itself: labels=x predicts x[1:] from x[:-1], the same
        # number of predictions per row (T - 1) as ours with explicit targets (T) up to one.
        loss = model(input_ids=x, labels=x).loss if hf else model(x, y).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return x.numel() * steps / (time.perf_counter() - start)


def interleaved(runs: dict, repeats: int) -> dict[str, float]:
    """Best tokens/s of each run, the runs taking turns `repeats` times, and under "ratio" the
    median over the rounds of first run / second run: a round's runs are seconds apart, so a
    slow phase of a shared machine slows both and their ratio stays put."""
    best = {name: 0.0 for name in runs}
    ratios = []
    for _ in range(repeats):
        this = {name: run() for name, run in runs.items()}
        for name, value in this.items():
            best[name] = max(best[name], value)
        first, second = this.values()
        ratios.append(first / second)
    best["ratio"] = sorted(ratios)[len(ratios) // 2]
    return best


def plain_train_loop(model, batches, config: TrainConfig) -> float:
    """What train() does per step, written out: schedule, fused AdamW, clipping, loss read."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=config.lr,
                            betas=config.betas, fused=True)
    params = list(model.parameters())
    model.train()
    start = time.perf_counter()
    losses = []
    for step in range(config.max_steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, config)
        x, y = batches[step % len(batches)]
        loss = model(x, y).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        opt.step()
        losses.append(float(loss.detach()))
    return x.numel() * config.max_steps / (time.perf_counter() - start)


def train_throughput(model, batches, config: TrainConfig) -> float:
    start = time.perf_counter()
    train(model, batches, config, progress=False)
    x, _ = batches[0]
    return x.numel() * config.max_steps / (time.perf_counter() - start)


def matmul_peak(n: int = 1024, repeats: int = 10) -> float:
    """FLOP/s of an n x n float32 matrix product (2 n^3 FLOPs), the best of `repeats`."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


def attention_paths(model: GPT, batches, steps: int) -> tuple[float, float]:
    """(weights returned, not returned) tokens/s: need_weights=True keeps the reference softmax's
    weights, False lets the module pick its kernel."""
    def run(explicit: bool) -> float:
        opt = adamw(model)
        start = time.perf_counter()
        for i in range(steps):
            x, y = batches[i % len(batches)]
            loss = model(x, y, need_weights=explicit).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return x.numel() * steps / (time.perf_counter() - start)

    best = interleaved({"explicit": lambda: run(True), "fused": lambda: run(False)}, 3)
    return best["explicit"], best["fused"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps: check that it runs")
    args = parser.parse_args(argv)
    steps, repeats = (5, 1) if args.quick else (20, 11)
    torch.set_num_threads(THREADS)
    print(f"torch {torch.__version__}, {THREADS} threads, CPU kernels {os.environ['ATEN_CPU_CAPABILITY']}; "
          f"{repeats} interleaved rounds of {steps} steps: best tokens/s of each, median of the "
          "per-round ratios; both models: AdamW(fused=True)\n")

    print(f"{'size':<20} {'ours tok/s':>11} {'GPT2LMHeadModel':>16} {'ours / HF':>10}   target >= 1.25")
    for name, (vocab, d, layers, heads, context, batch) in SIZES.items():
        batches = data(vocab, context, batch)
        ours, theirs = make_ours(vocab, d, layers, heads, context), make_hf(vocab, d, layers, heads, context)
        best = interleaved({"ours": lambda: loop_throughput(ours, batches, steps, hf=False),
                            "hf": lambda: loop_throughput(theirs, batches, steps, hf=True)}, repeats)
        print(f"{name:<20} {best['ours']:>11,.0f} {best['hf']:>16,.0f} {best['ratio']:>10.2f}")

    print(f"\n{'size':<20} {'train() tok/s':>14} {'plain loop':>11} {'train / plain':>14}   target >= 0.95")
    for name, (vocab, d, layers, heads, context, batch) in SIZES.items():
        batches = data(vocab, context, batch)
        config = TrainConfig(max_steps=steps * 2, lr=1e-3, warmup_steps=2, grad_clip=1.0,
                             eval_every=10_000, seed=None)
        best = interleaved({"train": lambda: train_throughput(make_ours(vocab, d, layers, heads, context),
                                                              batches, config),
                            "plain": lambda: plain_train_loop(make_ours(vocab, d, layers, heads, context),
                                                              batches, config)}, repeats)
        print(f"{name:<20} {best['train']:>14,.0f} {best['plain']:>11,.0f} {best['ratio']:>14.3f}")

    peak = matmul_peak()
    print(f"\nmeasured float32 matmul peak: {peak / 1e9:.1f} GFLOP/s")
    print("with the weights returned (the reference softmax) against without (the module's 'auto' kernel)")
    print(f"{'size':<20} {'params':>9} {'weights tok/s':>15} {'no-weights tok/s':>17} {'speed-up':>9} "
          f"{'GFLOP/s':>8} {'of peak':>8}")
    for name, (vocab, d, layers, heads, context, batch) in SIZES.items():
        model = make_ours(vocab, d, layers, heads, context)
        n = sum(p.numel() for k, p in model.named_parameters() if not k.startswith(("wte", "wpe")))
        explicit, fused = attention_paths(model, data(vocab, context, batch), steps)
        achieved = fused * (6 * n + 12 * layers * d * context)
        print(f"{name:<20} {n:>9,} {explicit:>15,.0f} {fused:>17,.0f} {fused / explicit:>8.2f}x "
              f"{achieved / 1e9:>8.2f} {achieved / peak:>8.1%}")


if __name__ == "__main__":
    main()
