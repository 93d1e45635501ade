"""Benchmark: GPT training throughput, fused against explicit attention, and achieved FLOP/s.

Run as `python benchmarks/gpt_throughput.py` (about a minute on 2 CPU cores). Not a test: it
prints figures. The same GPT (lmbook_utils.gpt) is trained for a few AdamW steps on random
tokens, once with the fused attention path (need_weights=False: PyTorch's
scaled_dot_product_attention) and once with the explicit path (need_weights=True: softmax of
QK^T/sqrt(d_k) written out, weights kept). Throughput is tokens per second.

Achieved FLOP/s uses the usual estimate of training FLOPs per token, 6 N + 12 L d T
(N parameters outside the embeddings, L layers, width d, context T: Chowdhery et al. 2022,
PaLM, appendix B; Kaplan et al. 2020 without the attention term), divided by the time, and
is compared with the peak of this machine measured as a large float32 matrix product.
"""

from __future__ import annotations

import time

import torch

from lmbook_utils.gpt import GPT, GPTConfig

THREADS, BATCH, CONTEXT, STEPS, WARMUP = 2, 16, 128, 12, 3


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


def train_throughput(model: GPT, explicit: bool) -> float:
    """Tokens per second over STEPS training steps after WARMUP untimed ones."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (BATCH, CONTEXT + 1), generator=g)
    x, y = ids[:, :-1], ids[:, 1:]
    model.train()
    for step in range(WARMUP + STEPS):
        if step == WARMUP:
            start = time.perf_counter()
        loss = model(x, y, need_weights=explicit).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return BATCH * CONTEXT * STEPS / (time.perf_counter() - start)


def main() -> None:
    torch.set_num_threads(THREADS)
    peak = matmul_peak()
    print(f"torch {torch.__version__}, {THREADS} threads; measured float32 matmul peak: {peak / 1e9:.1f} GFLOP/s\n")
    print(f"{'model':>22} {'params':>9} {'explicit tok/s':>15} {'fused tok/s':>12} {'speed-up':>9} "
          f"{'fused GFLOP/s':>14} {'of peak':>8}")
    for d, layers, heads in ((64, 2, 4), (128, 4, 4), (256, 4, 8)):
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=512, d_model=d, n_layers=layers, n_heads=heads, max_len=CONTEXT))
        n = sum(p.numel() for name, p in model.named_parameters() if not name.startswith(("wte", "wpe")))
        explicit = train_throughput(model, explicit=True)
        fused = train_throughput(model, explicit=False)
        flops_per_token = 6 * n + 12 * layers * d * CONTEXT
        achieved = fused * flops_per_token
        print(f"{f'd={d}, {layers} layers':>22} {n:>9,} {explicit:>15,.0f} {fused:>12,.0f} {fused / explicit:>8.2f}x "
              f"{achieved / 1e9:>14.2f} {achieved / peak:>8.1%}")


if __name__ == "__main__":
    main()
