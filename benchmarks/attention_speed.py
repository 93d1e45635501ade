"""Benchmark: forward + backward time of the attention kernels, and which one "auto" picks.

Run as `python benchmarks/attention_speed.py` (about a minute on 2 CPU cores). Not a test: it
prints figures measured side by side in one run. Three ways to compute the same attention:

- reference (need_weights=True): softmax(QK^T/sqrt(d_k)) written out step by step, the
  weights kept and returned (for bertviz);
- sdpa (kernel="sdpa"): torch.nn.functional.scaled_dot_product_attention, PyTorch's fused
  kernel (a flash-attention kernel on CPU for a causal mask), which never stores the weights;
- softmax (kernel="explicit"): the plain softmax in batched matrix products, the scale and
  the -inf mask added inside one `baddbmm`, weights not returned.

Two tables: the attention core alone (q, k, v given as contiguous tensors), and the whole
MultiHeadAttention module, where q, k and v are views of one projection, as in the models.
The two can disagree: on the 2-core machine the book was timed on, the fused kernel wins the
core alone, while the whole module runs faster with the plain softmax up to 64 keys.
MultiHeadAttention's default, kernel="auto", takes the plain softmax on a CPU up to
attention.EXPLICIT_MAX_KEYS keys and PyTorch's fused kernel beyond (and on GPUs); the last
column says which is faster here, so the threshold can be checked on another machine.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lmbook_utils.repro import pin_cpu_numerics  # noqa: E402

pin_cpu_numerics()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from lmbook_utils.attention import (EXPLICIT_MAX_KEYS, MultiHeadAttention, _causal_bias,  # noqa: E402
                                    _softmax_attention, causal_mask, scaled_dot_product_attention)

# Chapter 06's GPT: width 64, 4 heads, batches of 32.
BATCH, D_MODEL, HEADS, LENGTHS, REPEATS = 32, 64, 4, (32, 48, 64, 128, 256, 512), 20
KERNELS = ("reference", "sdpa", "softmax")


def median_time(step) -> float:
    """Median seconds of `step()` (a forward + backward pass) after 3 warm-up runs."""
    times = []
    for i in range(REPEATS + 3):
        start = time.perf_counter()
        step()
        if i >= 3:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def core_step(n: int, kernel: str):
    q, k, v = (torch.randn(BATCH, HEADS, n, D_MODEL // HEADS, requires_grad=True) for _ in range(3))
    mask = causal_mask(n)
    bias = _causal_bias(n, n, q.device, q.dtype)

    def step() -> None:
        if kernel == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif kernel == "softmax":  # the module's own plain-softmax kernel
            out = _softmax_attention(q, k, v, bias, 0.0)
        else:
            out, _ = scaled_dot_product_attention(q, k, v, mask)
        out.sum().backward()
    return step


def module_step(n: int, kernel: str):
    mha = MultiHeadAttention(D_MODEL, HEADS, kernel={"softmax": "explicit"}.get(kernel, "sdpa"))
    x = torch.randn(BATCH, n, D_MODEL, requires_grad=True)

    def step() -> None:
        mha.zero_grad(set_to_none=True)
        out, _ = mha(x, is_causal=True, need_weights=kernel == "reference")
        out.sum().backward()
    return step


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    print(f"batch {BATCH}, d_model {D_MODEL}, {HEADS} heads, causal; median of {REPEATS} "
          f"forward+backward passes; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"'auto' takes the plain softmax up to {EXPLICIT_MAX_KEYS} keys on a CPU\n")
    for title, make in (("attention core (q, k, v given)", core_step),
                        ("whole MultiHeadAttention module", module_step)):
        print(title)
        print(f"{'length':>6} {'reference ms':>13} {'sdpa ms':>8} {'softmax ms':>11} "
              f"{'reference / sdpa':>17} {'sdpa / softmax':>15} {'faster here':>12}")
        for n in LENGTHS:
            ms = {kernel: median_time(make(n, kernel)) * 1e3 for kernel in KERNELS}
            faster = "softmax" if ms["softmax"] < ms["sdpa"] else "sdpa"
            print(f"{n:>6} {ms['reference']:>13.2f} {ms['sdpa']:>8.2f} {ms['softmax']:>11.2f} "
                  f"{ms['reference'] / ms['sdpa']:>16.2f}x {ms['sdpa'] / ms['softmax']:>14.2f}x {faster:>12}")
        print()


if __name__ == "__main__":
    main()
