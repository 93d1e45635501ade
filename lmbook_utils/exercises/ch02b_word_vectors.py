"""Exercise checks of chapter 02b_word_vectors: the gradients of skip-gram's negative-sampling
loss for one pair, a PPMI matrix from co-occurrence counts, and the orthogonal Procrustes map.

Introduced in chapter 02b_word_vectors.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..word_vectors import ppmi as _ppmi
from ..word_vectors import procrustes as _procrustes
from ._common import _as_cpu, _call, _report

__all__ = ["check_sgns_gradients", "check_ppmi", "check_procrustes"]


def _where(diff: torch.Tensor) -> str:
    i = int(diff.abs().flatten().argmax())
    index = np.unravel_index(i, tuple(diff.shape)) if diff.ndim else ()
    return f"the largest difference, {float(diff.abs().flatten()[i]):.4f}, at index {tuple(int(j) for j in index)}"


# --- exercise 1: the gradients of the SGNS loss for one pair ------------------------------------


def _sgns_cases() -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(v, u_pos, u_neg): d and K differ, so a transposed answer has the wrong shape."""
    gen = torch.Generator().manual_seed(22)  # a private generator: the same cases on every call
    return [(torch.randn(d, generator=gen, dtype=torch.float64), torch.randn(d, generator=gen, dtype=torch.float64),
             torch.randn(k, d, generator=gen, dtype=torch.float64)) for d, k in ((4, 3), (6, 5))]


def _sgns_reference(v, u_pos, u_neg):
    v, u_pos, u_neg = (t.clone().requires_grad_(True) for t in (v, u_pos, u_neg))
    loss = -torch.nn.functional.logsigmoid(u_pos @ v) - torch.nn.functional.logsigmoid(-(u_neg @ v)).sum()
    loss.backward()
    return v.grad, u_pos.grad, u_neg.grad


def check_sgns_gradients(fn: Callable) -> bool:
    """Check ``fn(v, u_pos, u_neg) -> (grad_v, grad_u_pos, grad_u_neg)``: the gradients of one pair's
    skip-gram negative-sampling loss -log σ(u_pos·v) - Σ_k log σ(-u_k·v) with respect to the center
    word's input vector v (d,), the true context word's output vector u_pos (d,) and the K noise
    words' output vectors u_neg (K, d). Written out by hand, as word2vec.c does, not by autograd.

    Introduced in chapter 02b_word_vectors (exercise 1).
    """
    for v, u_pos, u_neg in _sgns_cases():
        d, k = v.shape[0], u_neg.shape[0]
        where = f"for d = {d} and K = {k} noise words"
        raw, error = _call(fn, v.clone(), u_pos.clone(), u_neg.clone())
        if error:
            return _report(False, f"{where}: {error}")
        if not isinstance(raw, (tuple, list)) or len(raw) != 3:
            n = f" of {len(raw)}" if isinstance(raw, (tuple, list)) else ""
            return _report(False, "return three gradients, (grad_v, grad_u_pos, grad_u_neg); you returned a "
                                  f"{type(raw).__name__}{n}")
        want = _sgns_reference(v, u_pos, u_neg)
        got = []
        for value, name, ref in zip(raw, ("grad_v", "grad_u_pos", "grad_u_neg"), want):
            value, error = _as_cpu(value, torch.float64)
            if error:
                return _report(False, f"{where}, your {name}: {error}")
            if tuple(value.shape) != tuple(ref.shape):
                return _report(False, f"{where}: your {name} has shape {tuple(value.shape)}; it has the shape of "
                                      f"what it differentiates, {tuple(ref.shape)}")
            got.append(value)
        s_pos, s_neg = torch.sigmoid(u_pos @ v), torch.sigmoid(u_neg @ v)      # σ(u·v) of each word
        alternatives = {
            "grad_v": [((1 - s_pos) * u_pos - (s_neg[:, None] * u_neg).sum(0),
                        "the signs are reversed: that is the gradient of the log-likelihood, which SGD would "
                        "climb; the loss's gradient is (σ(u_pos·v) - 1) u_pos + Σ_k σ(u_k·v) u_k"),
                       ((s_pos - 1) * u_pos, "your gradient for v leaves out the noise words: each of them adds "
                                             "σ(u_k·v) u_k"),
                       (s_pos * u_pos + (s_neg[:, None] * u_neg).sum(0),
                        "for the true context word, the derivative of -log σ(x) is σ(x) - 1, not σ(x)")],
            "grad_u_pos": [((1 - s_pos) * v, "the sign is reversed: d/dx of -log σ(x) is σ(x) - 1, which is "
                                             "negative, so the gradient for u_pos is (σ(u_pos·v) - 1) v"),
                           (s_pos * v, "the derivative of -log σ(x) is σ(x) - 1, not σ(x)")],
            "grad_u_neg": [(-s_neg[:, None] * v, "the sign is reversed: d/dx of -log σ(-x) is σ(x), which is "
                                                 "positive, so each noise word's gradient is σ(u_k·v) v"),
                           ((s_neg - 1)[:, None] * v, "a noise word's term is -log σ(-x), whose derivative is "
                                                      "σ(x), not σ(x) - 1: you treated it as a true context word"),
                           ((1 - s_neg)[:, None] * v, "a noise word's term -log σ(-x) has derivative σ(x), not "
                                                      "1 - σ(x) = σ(-x)")],
        }
        for value, name, ref in zip(got, ("grad_v", "grad_u_pos", "grad_u_neg"), want):
            if torch.allclose(value, ref, rtol=1e-5, atol=1e-7):
                continue
            for alt, message in alternatives[name]:
                if torch.allclose(value, alt, rtol=1e-5, atol=1e-7):
                    return _report(False, f"{where}: {message}")
            return _report(False, f"{where}: your {name} is off, {_where(value - ref)}. Differentiate "
                                  "-log σ(u_pos·v) - Σ_k log σ(-u_k·v) term by term")
    return _report(True, "the three gradients are right: (σ(u_pos·v) - 1) for the true word and σ(u_k·v) for each "
                         "noise word, times v for the output vectors, and their sum over the words' u for v")


# --- exercise 2: PPMI ---------------------------------------------------------------------------


def _count_cases() -> list[np.ndarray]:
    """Co-occurrence counts with zeros, not symmetric, with unequal row and column sums, so that
    swapped marginals and a forgotten clip both show."""
    rng = np.random.default_rng(23)
    cases = []
    for rows, cols in ((4, 5), (6, 6)):
        counts = rng.integers(0, 9, size=(rows, cols)).astype(np.float64)
        counts[0, 0], counts[1, 2] = 0, 0
        counts[2, :] += np.arange(cols)  # a row and columns of different sizes
        cases.append(counts)
    return cases


def check_ppmi(fn: Callable) -> bool:
    """Check ``fn(counts) -> ppmi``: plain positive pointwise mutual information,
    max(0, log P(w, c) / (P(w) P(c))) with natural logarithms, P(w) from the row sums, P(c) from the
    column sums, and 0 where a count is 0. counts is a numpy array (words, contexts).

    Introduced in chapter 02b_word_vectors (exercise 2).
    """
    for counts in _count_cases():
        where = f"for counts of shape {counts.shape}"
        raw, error = _call(fn, counts.copy())
        if error:
            return _report(False, f"{where}: {error}")
        got, error = _as_cpu(raw, torch.float64)
        if error:
            return _report(False, f"{where}: {error}")
        got = got.numpy()
        if got.shape != counts.shape:
            return _report(False, f"{where}: your matrix has shape {got.shape}; PPMI has one value per count")
        want = _ppmi(counts, alpha=1.0)
        if np.allclose(got, want, atol=1e-8):
            continue
        if not np.isfinite(got).all():
            return _report(False, f"{where}: your matrix has nan or inf where a count is 0 (log 0 = -inf); a "
                                  "pair never seen together has PPMI 0: use np.where(counts > 0, ..., 0)")
        total, rows, cols = counts.sum(), counts.sum(1, keepdims=True), counts.sum(0, keepdims=True)
        with np.errstate(divide="ignore"):
            pmi = np.log(counts * total / (rows * cols))
            swapped = np.log(counts * total / (cols.T * rows.T)) if counts.shape[0] == counts.shape[1] else pmi
            unnormalized = np.log(counts / (rows * cols))
        zero = counts > 0
        mistakes = [(np.where(zero, pmi, 0.0), "you did not clip at 0: PPMI is max(PMI, 0), so negative "
                                               "associations become 0"),
                    (np.where(zero, np.maximum(pmi / np.log(2), 0), 0.0),
                     "your PMI is in bits (log base 2); use natural logarithms, as the package does"),
                    (_ppmi(counts, alpha=0.75), "you smoothed the context distribution (counts^0.75); this "
                                                "exercise asks for plain PPMI, P(c) from the column sums as they are"),
                    (np.where(zero, np.maximum(unnormalized, 0), 0.0),
                     "you divided counts by counts: turn them into probabilities first, P(w, c) = #(w, c) / N, "
                     "P(w) = #w / N, P(c) = #c / N with N the total count")]
        if counts.shape[0] == counts.shape[1]:
            mistakes.append((np.where(zero, np.maximum(swapped, 0), 0.0),
                             "you swapped the marginals: P(w) comes from the row sums (axis 1), P(c) from the "
                             "column sums (axis 0)"))
        for alt, message in mistakes:
            if np.allclose(got, alt, atol=1e-8) and not np.allclose(alt, want, atol=1e-8):
                return _report(False, f"{where}: {message}")
        diff = torch.as_tensor(got - want)
        return _report(False, f"{where}: your PPMI is off, {_where(diff)}. PPMI(w, c) = max(0, log(#(w, c) N / "
                              "(#w #c))), and 0 where #(w, c) = 0")
    return _report(True, "your PPMI is right: natural-log PMI from the row and column sums, clipped at 0, and 0 "
                         "for pairs never seen together")


# --- exercise 3: orthogonal Procrustes -----------------------------------------------------------


def _procrustes_cases() -> list[tuple[np.ndarray, np.ndarray]]:
    """(X, Y) with Y close to a rotation of X: more rows than columns, not square."""
    rng = np.random.default_rng(24)
    cases = []
    for n, d in ((12, 4), (20, 6)):
        x = rng.standard_normal((n, d))
        r, _ = np.linalg.qr(rng.standard_normal((d, d)))
        cases.append((x, x @ r + 0.3 * rng.standard_normal((n, d))))
    return cases


def check_procrustes(fn: Callable) -> bool:
    """Check ``fn(X, Y) -> W``: the orthogonal (d, d) matrix W that minimizes ||X W - Y|| (Frobenius),
    for paired rows X, Y of shape (n, d). X and Y are numpy arrays.

    Introduced in chapter 02b_word_vectors (exercise 3).
    """
    for x, y in _procrustes_cases():
        n, d = x.shape
        where = f"for X and Y of shape ({n}, {d})"
        raw, error = _call(fn, x.copy(), y.copy())
        if error:
            return _report(False, f"{where}: {error}")
        got, error = _as_cpu(raw, torch.float64)
        if error:
            return _report(False, f"{where}: {error}")
        w = got.numpy()
        if w.shape != (d, d):
            return _report(False, f"{where}: your W has shape {w.shape}; it maps a {d}-dimensional row onto "
                                  f"another, so it is ({d}, {d})")
        want = _procrustes(x, y)
        if np.allclose(w, want, atol=1e-6):
            continue
        if np.allclose(w, want.T, atol=1e-6):
            return _report(False, f"{where}: you returned the transpose, V U^T, which maps Y onto X; X @ W ~ Y needs "
                                  "W = U V^T from the SVD U S V^T of X^T Y")
        lstsq = np.linalg.lstsq(x, y, rcond=None)[0]
        if np.allclose(w, lstsq, atol=1e-6):
            return _report(False, f"{where}: that is the unconstrained least-squares map (Mikolov et al.'s linear "
                                  "map); this exercise asks for the best *orthogonal* one, W = U V^T from the SVD "
                                  "of X^T Y")
        err = float(np.abs(w.T @ w - np.eye(d)).max())
        if err > 1e-6:
            return _report(False, f"{where}: your W is not orthogonal: W^T W differs from the identity by up to "
                                  f"{err:.3f}. Drop the singular values: W = U V^T")
        return _report(False, f"{where}: your W is orthogonal, but ||X W - Y|| is {np.linalg.norm(x @ w - y):.4f}; "
                              f"the best orthogonal map reaches {np.linalg.norm(x @ want - y):.4f}. Take the SVD of "
                              "X^T Y (in that order)")
    return _report(True, "your W is the orthogonal Procrustes solution: U V^T from the SVD of X^T Y, orthogonal "
                         "and the closest rotation of X onto Y")
