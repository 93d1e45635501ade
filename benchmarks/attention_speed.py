"""Benchmark: forward + backward time of the fused attention path against the explicit path.

Run as `python benchmarks/attention_speed.py` (under a minute on 2 CPU cores). Not a test:
it prints figures. The fused path (need_weights=False) calls
torch.nn.functional.scaled_dot_product_attention (a flash-attention kernel on CPU for a
causal mask) and never materializes the weights; the explicit path (need_weights=True)
computes softmax(QK^T/sqrt(d_k)) step by step and keeps it for the backward pass.

Two tables: the attention core alone (q, k, v already projected: the part the two paths do
differently), and the whole MultiHeadAttention module, where the four d_model x d_model
projections, identical in both paths, dilute the difference at short lengths.
Target from the attention chapter: the fused path at least 1.3x faster at length 128 on CPU.
"""

from __future__ import annotations

import time

import torch

import torch.nn.functional as F

from lmbook_utils.attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention

BATCH, D_MODEL, HEADS, LENGTHS, REPEATS = 8, 128, 4, (32, 64, 128, 256, 512), 20


def median_time(step) -> float:
    """Median seconds of `step()` (a forward + backward pass) after 3 warm-up runs."""
    times = []
    for i in range(REPEATS + 3):
        start = time.perf_counter()
        step()
        if i >= 3:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def core_step(n: int, fused: bool):
    q, k, v = (torch.randn(BATCH, HEADS, n, D_MODEL // HEADS, requires_grad=True) for _ in range(3))
    mask = causal_mask(n)

    def step() -> None:
        if fused:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            out, _ = scaled_dot_product_attention(q, k, v, mask)
        out.sum().backward()
    return step


def module_step(mha: MultiHeadAttention, n: int, need_weights: bool):
    x = torch.randn(BATCH, n, D_MODEL, requires_grad=True)

    def step() -> None:
        mha.zero_grad(set_to_none=True)
        out, _ = mha(x, is_causal=True, need_weights=need_weights)
        out.sum().backward()
    return step


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    mha = MultiHeadAttention(D_MODEL, HEADS)
    print(f"batch {BATCH}, d_model {D_MODEL}, {HEADS} heads, causal; median of {REPEATS} "
          f"forward+backward passes; torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    for title, make in (("attention core (q, k, v given)", core_step),
                        ("whole MultiHeadAttention module", lambda n, f: module_step(mha, n, not f))):
        print(title)
        print(f"{'length':>6} {'explicit ms':>12} {'fused ms':>10} {'speed-up':>9}")
        for n in LENGTHS:
            explicit = median_time(make(n, False))
            fused = median_time(make(n, True))
            print(f"{n:>6} {explicit * 1e3:>12.2f} {fused * 1e3:>10.2f} {explicit / fused:>8.2f}x")
        print()


if __name__ == "__main__":
    main()
