"""Calibration of a classifier: reliability bins, expected and maximum calibration error,
temperature scaling.

For the coming chapter 09 (applications), where an intent classifier's confidence decides
whether to answer or to hand over to a person: that needs a confidence that means what it says
(of the answers given with confidence 0.8, about 80% right). The metrics and the fix follow Guo
et al. 2017, "On Calibration of Modern Neural Networks" (ICML).

Two input forms, everywhere the metrics take predictions:

* (N, C) probabilities with (N,) integer labels: the top-label form. The confidence of a row is
  its largest probability and the row is correct when its argmax (the first maximal class, as
  numpy's and torch's argmax) equals the label. A binary classifier is passed this way too, as
  (N, 2): its confidences are max(p, 1 - p), in [0.5, 1].
* (N,) confidences with (N,) booleans saying whether each prediction was right, for callers who
  already have them. Booleans only: a float vector with 0/1 labels looks like a binary model's
  P(y = 1), which is a different question (sklearn's `calibration_curve` answers that one).

Bins follow Guo et al.: n_bins equal-width bins on [0, 1], bin m holding the confidences in
((m - 1) / n_bins, m / n_bins], so an edge value belongs to the bin below it, 1.0 to the last
bin, and 0.0 (which Guo et al.'s intervals leave out) to the first. This is also the convention
of sklearn's `calibration_curve(strategy="uniform")`, and not numpy.histogram's [lo, hi).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ROW_SUM_TOL", "ReliabilityBins", "reliability_bins", "expected_calibration_error",
           "maximum_calibration_error", "fit_temperature", "apply_temperature"]

# How far a row of probabilities may sum from 1: loose enough for a float32 softmax over many
# classes, tight enough to catch logits or unnormalized scores passed by mistake.
ROW_SUM_TOL = 1e-4


def _numpy(x: object) -> np.ndarray:
    """An array from a list, a numpy array or a torch tensor (any device, detached)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check_n_bins(n_bins: object) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be an int >= 1, got {n_bins!r}")
    return int(n_bins)


def _check_labels(labels: object, n: int, n_classes: int, name: str) -> np.ndarray:
    y = _numpy(labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must be a 1-D array of {n} labels (one per row), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices, got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"{name} must be class indices in [0, {n_classes}), "
                         f"got values from {y.min()} to {y.max()}")
    return y


def _top_label(predictions: object, targets: object, p_name: str, t_name: str) -> tuple[np.ndarray, np.ndarray]:
    """(confidences, correct) from either input form (see the module docstring), checked."""
    p = _numpy(predictions)
    if p.ndim not in (1, 2):
        raise ValueError(f"{p_name} must be (N, C) probabilities or (N,) confidences, got shape {p.shape}")
    if p.size == 0:
        raise ValueError(f"{p_name} is empty: there is no prediction to measure")
    if not np.issubdtype(p.dtype, np.number) or np.issubdtype(p.dtype, np.complexfloating):
        raise ValueError(f"{p_name} must hold real numbers, got dtype {p.dtype}")
    p = p.astype(np.float64)
    if not bool(((p >= 0) & (p <= 1)).all()):  # also catches nan
        raise ValueError(f"{p_name} must be probabilities in [0, 1]; it has values outside (or nan)")
    if p.ndim == 2:
        sums = p.sum(axis=1)
        bad = np.abs(sums - 1) > ROW_SUM_TOL
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(f"{p_name} rows must sum to 1 (within {ROW_SUM_TOL}); row {row} sums to "
                             f"{sums[row]:.6g}: pass softmax probabilities, not logits")
        y = _check_labels(targets, p.shape[0], p.shape[1], t_name)
        return p.max(axis=1), p.argmax(axis=1) == y
    correct = _numpy(targets)
    if correct.shape != p.shape:
        raise ValueError(f"{t_name} must have one entry per confidence, shape {p.shape}, got {correct.shape}")
    if correct.dtype != np.bool_:
        raise ValueError(f"{t_name} must be booleans (was each prediction right?) when {p_name} is 1-D, "
                         f"got dtype {correct.dtype}; for a binary model's P(y=1), pass (N, 2) probabilities")
    return p, correct


@dataclass
class ReliabilityBins:
    """A reliability diagram's numbers, one entry per bin. Empty bins have count 0 and nan
    confidence and accuracy, so that a plot leaves them out instead of drawing a point at 0."""

    edges: np.ndarray  # (n_bins + 1,) from 0 to 1; bin m is (edges[m], edges[m + 1]], the first includes 0
    count: np.ndarray  # (n_bins,) int: predictions in the bin
    confidence: np.ndarray  # (n_bins,) mean confidence in the bin
    accuracy: np.ndarray  # (n_bins,) share of right predictions in the bin


def reliability_bins(confidences, correct, n_bins: int = 15) -> ReliabilityBins:
    """Bin the predictions by confidence (Guo et al.'s right-closed bins, see the module
    docstring) and give each bin's count, mean confidence and accuracy. Takes either input form:
    (N,) confidences with booleans, or (N, C) probabilities with integer labels. 15 bins is Guo
    et al.'s choice."""
    n_bins = _check_n_bins(n_bins)
    conf, right = _top_label(confidences, correct, "confidences", "correct")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # searchsorted on the inner edges, side="left": a value equal to an edge goes to the bin below
    ids = np.searchsorted(edges[1:-1], conf, side="left")
    count = np.bincount(ids, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(ids, weights=conf, minlength=n_bins) / count
        accuracy = np.bincount(ids, weights=right.astype(np.float64), minlength=n_bins) / count
    return ReliabilityBins(edges=edges, count=count, confidence=confidence, accuracy=accuracy)


def _gaps(predictions, targets, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Each non-empty bin's share of the predictions and its |accuracy - confidence|."""
    n_bins = _check_n_bins(n_bins)
    conf, right = _top_label(predictions, targets, "probs_or_confidences", "labels_or_correct")
    bins = reliability_bins(conf, right, n_bins)
    full = bins.count > 0
    return bins.count[full] / conf.shape[0], np.abs(bins.accuracy[full] - bins.confidence[full])


def expected_calibration_error(probs_or_confidences, labels_or_correct, n_bins: int = 15) -> float:
    """ECE = sum over bins b of (n_b / N) |acc_b - conf_b| (Guo et al. 2017, eq. 3): the average
    gap between confidence and accuracy, weighted by how many predictions each bin holds.

    probs_or_confidences: (N, C) probabilities with labels_or_correct (N,) integer labels, or (N,)
    confidences with labels_or_correct (N,) booleans. 0 means calibrated at this binning; the value
    depends on n_bins, so compare models at the same n_bins."""
    weights, gaps = _gaps(probs_or_confidences, labels_or_correct, n_bins)
    return float(np.sum(weights * gaps))


def maximum_calibration_error(probs_or_confidences, labels_or_correct, n_bins: int = 15) -> float:
    """MCE = the largest |acc_b - conf_b| over the non-empty bins (Guo et al. 2017): the worst
    case, for when one badly calibrated confidence range is costly. Same inputs as
    `expected_calibration_error`. A bin with a single prediction counts fully, so MCE is noisy
    on small data."""
    _, gaps = _gaps(probs_or_confidences, labels_or_correct, n_bins)
    return float(gaps.max())


def _check_logits(logits: object, labels: object):
    """The logits as a float tensor or float64 array, and the labels as the same kind, checked."""
    if hasattr(logits, "detach") and hasattr(logits, "device"):  # a torch tensor: stay on its device
        import torch
        z = logits.detach()
        if z.dim() != 2 or z.shape[0] == 0 or z.shape[1] == 0:
            raise ValueError(f"logits must be a non-empty (N, C) tensor, got shape {tuple(z.shape)}")
        if not z.is_floating_point():
            raise ValueError(f"logits must be floating point, got {z.dtype}")
        if z.device.type != "mps":
            z = z.double()  # MPS has no float64; float32 is precise enough for a 1-D fit
        if not bool(torch.isfinite(z).all()):
            raise ValueError("logits must be finite (no nan or inf)")
        y = _check_labels(labels, z.shape[0], z.shape[1], "labels")
        return z, torch.as_tensor(y, dtype=torch.long, device=z.device)
    z = _numpy(logits)
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] == 0:
        raise ValueError(f"logits must be a non-empty (N, C) array, got shape {z.shape}")
    if not np.issubdtype(z.dtype, np.floating) and not np.issubdtype(z.dtype, np.integer):
        raise ValueError(f"logits must hold real numbers, got dtype {z.dtype}")
    z = z.astype(np.float64)
    if not np.isfinite(z).all():
        raise ValueError("logits must be finite (no nan or inf)")
    return z, _check_labels(labels, z.shape[0], z.shape[1], "labels")


def _nll(z, y, temperature: float) -> float:
    """Mean negative log-likelihood of softmax(z / T) at the labels, in numpy or torch."""
    if isinstance(z, np.ndarray):
        s = z / temperature
        m = s.max(axis=1, keepdims=True)
        log_norm = m[:, 0] + np.log(np.exp(s - m).sum(axis=1))
        return float(np.mean(log_norm - s[np.arange(len(y)), y]))
    import torch.nn.functional as F
    return float(F.cross_entropy(z / temperature, y))


def fit_temperature(logits, labels, bounds: tuple[float, float] = (0.01, 100.0)) -> float:
    """The temperature T > 0 that minimizes the mean negative log-likelihood of softmax(logits / T)
    on held-out (logits, labels) (Guo et al.'s temperature scaling). Fit it on a validation set,
    never on the test set it will be judged on.

    One parameter, and it does not move the argmax, so accuracy is untouched and only the
    confidences change (T > 1 softens an overconfident model). The NLL is convex in 1/T, hence
    unimodal in log T, which is all that scipy's bounded Brent search needs; it runs on log T in
    log(bounds), deterministically. The NLL is evaluated in numpy (float64) for arrays and on the
    tensor's own device for torch tensors. The result never has a higher NLL than T = 1 on the data
    it is fit on (T = 1 is returned if the search ends worse). A result at a bound means the optimum
    lies beyond it (say, data the model separates perfectly wants T -> 0)."""
    from scipy.optimize import minimize_scalar

    lo, hi = bounds
    if not (0 < lo < 1 < hi < np.inf):
        raise ValueError(f"bounds must be (low, high) with 0 < low < 1 < high, got {bounds!r}")
    z, y = _check_logits(logits, labels)
    result = minimize_scalar(lambda log_t: _nll(z, y, float(np.exp(log_t))), bounds=(np.log(lo), np.log(hi)),
                             method="bounded", options={"xatol": 1e-6})
    t = float(np.exp(result.x))
    return t if _nll(z, y, t) <= _nll(z, y, 1.0) else 1.0


def apply_temperature(logits, temperature: float):
    """The probabilities softmax(logits / T) along the last axis: a numpy array for an array-like,
    a tensor on the same device for a torch tensor. T = 1 is the plain softmax."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.number)) \
            or not 0 < temperature < np.inf:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if hasattr(logits, "detach") and hasattr(logits, "device"):
        if not logits.is_floating_point():
            raise ValueError(f"logits must be floating point, got {logits.dtype}")
        return (logits / float(temperature)).softmax(dim=-1)
    z = _numpy(logits).astype(np.float64)
    if z.ndim == 0 or z.size == 0:
        raise ValueError(f"logits must be a non-empty array of at least 1 dimension, got shape {z.shape}")
    s = z / float(temperature)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
