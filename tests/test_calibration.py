"""calibration: reliability bins and ECE worked by hand, the bins against sklearn's calibration_curve,
temperature scaling recovering a planted temperature."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import log_softmax, softmax
from sklearn.calibration import calibration_curve

from lmbook_utils.calibration import (apply_temperature, expected_calibration_error, fit_temperature,
                                      maximum_calibration_error, reliability_bins)

# 4 bins: [0, 0.25], (0.25, 0.5], (0.5, 0.75], (0.75, 1] (Guo et al.: an edge value goes to the bin below)
_CONF = np.array([0.2, 0.25, 0.5, 0.4, 0.8, 1.0, 0.9, 0.9])
_RIGHT = np.array([False, True, True, False, True, True, False, True])


def test_ece_worked_by_hand():
    # bin 1 [0, 0.25]:     0.2 (wrong), 0.25 (right)           -> conf 0.225, acc 1/2, gap 0.275
    # bin 2 (0.25, 0.5]:   0.5 (right), 0.4 (wrong)            -> conf 0.45,  acc 1/2, gap 0.05
    # bin 3 (0.5, 0.75]:   empty
    # bin 4 (0.75, 1]:     0.8 (r), 1.0 (r), 0.9 (w), 0.9 (r)  -> conf 0.9,   acc 3/4, gap 0.15
    # ECE = 2/8 * 0.275 + 2/8 * 0.05 + 4/8 * 0.15 = 0.06875 + 0.0125 + 0.075 = 0.15625; MCE = 0.275
    # (with numpy.histogram's [lo, hi) bins, 0.25 and 0.5 would move up a bin and ECE would differ)
    assert expected_calibration_error(_CONF, _RIGHT, n_bins=4) == pytest.approx(0.15625)
    assert maximum_calibration_error(_CONF, _RIGHT, n_bins=4) == pytest.approx(0.275)
    bins = reliability_bins(_CONF, _RIGHT, n_bins=4)
    np.testing.assert_allclose(bins.edges, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_array_equal(bins.count, [2, 2, 0, 4])
    np.testing.assert_allclose(bins.confidence, [0.225, 0.45, np.nan, 0.9])  # nan == nan here
    np.testing.assert_allclose(bins.accuracy, [0.5, 0.5, np.nan, 0.75])


def test_ece_from_probabilities_and_labels_worked_by_hand():
    probs = np.array([[0.7, 0.2, 0.1],     # predicts 0, label 0: conf 0.7 right
                      [0.3, 0.6, 0.1],     # predicts 1, label 0: conf 0.6 wrong
                      [0.4, 0.4, 0.2],     # a tie: argmax is the first class, 0; label 1: conf 0.4 wrong
                      [0.5, 0.25, 0.25]])  # predicts 0, label 0: conf 0.5 right, in the first bin
    labels = np.array([0, 0, 1, 0])
    # 2 bins: [0, 0.5] holds 0.4 (w), 0.5 (r): conf 0.45, acc 0.5, gap 0.05;
    # (0.5, 1] holds 0.7 (r), 0.6 (w): conf 0.65, acc 0.5, gap 0.15. ECE = 0.5 * 0.05 + 0.5 * 0.15 = 0.1
    assert expected_calibration_error(probs, labels, n_bins=2) == pytest.approx(0.1)
    assert maximum_calibration_error(probs, labels, n_bins=2) == pytest.approx(0.15)


def test_ece_is_zero_when_calibrated_by_construction():
    # 10 predictions at 0.8 with 8 right, 5 at 0.6 with 3 right, 4 at 1.0 all right: every bin's
    # accuracy equals its confidence
    conf = np.array([0.8] * 10 + [0.6] * 5 + [1.0] * 4)
    right = np.array([True] * 8 + [False] * 2 + [True] * 3 + [False] * 2 + [True] * 4)
    assert expected_calibration_error(conf, right, n_bins=10) == pytest.approx(0.0, abs=1e-12)
    assert maximum_calibration_error(conf, right, n_bins=10) == pytest.approx(0.0, abs=1e-12)
    # the matrix form: [0.75, 0.25] four times with labels 0, 0, 0, 1: conf 0.75 and 3/4 right
    probs = np.tile([0.75, 0.25], (4, 1))
    assert expected_calibration_error(probs, np.array([0, 0, 0, 1])) == pytest.approx(0.0, abs=1e-12)
    # and the same rows with only 2 right are off by 0.25
    assert expected_calibration_error(probs, np.array([0, 0, 1, 1])) == pytest.approx(0.25)


@pytest.mark.parametrize("n_bins", [1, 4, 10, 15])
def test_bins_agree_with_sklearn_calibration_curve(n_bins):
    # calibration_curve is for a binary problem: y_prob is P(positive) and prob_true the share of
    # positives per bin. The top-label reliability diagram is that binary problem with
    # "the prediction is right" as the positive class and the confidence as y_prob, so we pass
    # (correct, confidence). sklearn's uniform bins are np.linspace(0, 1, n_bins + 1) with
    # searchsorted on the inner edges: (lo, hi], 0 in the first bin, the same as ours; it returns
    # the non-empty bins only. The edge values themselves are included to test that convention.
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=2.0, size=(400, 3))
    probs = softmax(logits, axis=1)
    labels = rng.integers(0, 3, size=400)
    probs = np.vstack([probs, [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.6, 0.4, 0.0]]])  # conf 1.0, 0.5, 0.6
    labels = np.concatenate([labels, [0, 1, 0]])
    conf, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    prob_true, prob_pred = calibration_curve(correct.astype(int), conf, n_bins=n_bins, strategy="uniform")
    for bins in (reliability_bins(probs, labels, n_bins), reliability_bins(conf, correct, n_bins)):
        full = bins.count > 0
        if n_bins == 15:  # confidences of 3 classes are >= 1/3: the low bins are empty and left out
            assert not full[:4].any()
        np.testing.assert_allclose(bins.accuracy[full], prob_true, rtol=1e-12)
        np.testing.assert_allclose(bins.confidence[full], prob_pred, rtol=1e-12)
        assert bins.count.sum() == len(conf)


def _planted(scale: float, n: int = 20000, n_classes: int = 5, seed: int = 0):
    """Labels drawn from softmax(true_logits) with a fixed generator, returned with true_logits."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(scale=2.0, size=(n, n_classes))
    cdf = np.cumsum(softmax(true_logits, axis=1), axis=1)
    labels = np.minimum((rng.random(n)[:, None] > cdf).sum(axis=1), n_classes - 1)
    return true_logits * scale, labels


def _nll(logits, labels, t):
    return -np.mean(log_softmax(logits / t, axis=1)[np.arange(len(labels)), labels])


def test_temperature_scaling_recovers_a_planted_temperature():
    # logits 3x too sharp, labels from the true softmax: the NLL's minimizer is T = 3 in
    # expectation. Its standard error at 20000 samples is about 0.02 (Fisher information of 1/T),
    # so 0.1 is about 5 standard errors
    logits, labels = _planted(scale=3.0)
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(3.0, abs=0.1)
    # the same fit from torch tensors, evaluated by torch on the tensor's device
    t_torch = fit_temperature(torch.from_numpy(logits), torch.from_numpy(labels))
    assert t_torch == pytest.approx(t, abs=1e-4)
    # and an underconfident model (logits 0.5x) wants T = 0.5; a calibrated one T = 1
    assert fit_temperature(*_planted(scale=0.5, seed=1)) == pytest.approx(0.5, abs=0.02)
    assert fit_temperature(*_planted(scale=1.0, seed=2)) == pytest.approx(1.0, abs=0.04)


@pytest.mark.parametrize("scale, seed", [(3.0, 3), (0.3, 4), (1.0, 5)])
def test_temperature_never_increases_nll_on_its_data(scale, seed):
    logits, labels = _planted(scale=scale, n=2000, seed=seed)
    t = fit_temperature(logits, labels)
    assert _nll(logits, labels, t) <= _nll(logits, labels, 1.0) + 1e-12
    if scale != 1.0:  # a miscalibrated model gains, so a fit that always returned 1 would fail
        assert _nll(logits, labels, t) < _nll(logits, labels, 1.0) - 1e-3
    # a minimum: 1% either way is no better
    assert _nll(logits, labels, t) <= min(_nll(logits, labels, t * 1.01), _nll(logits, labels, t / 1.01))


def test_temperature_scaling_lowers_ece_on_an_overconfident_model():
    logits, labels = _planted(scale=3.0, seed=6)
    before = expected_calibration_error(apply_temperature(logits, 1.0), labels)
    after = expected_calibration_error(apply_temperature(logits, fit_temperature(logits, labels)), labels)
    assert after < before / 3


def test_apply_temperature_one_is_the_softmax_and_keeps_the_argmax():
    rng = np.random.default_rng(7)
    logits = rng.normal(scale=3.0, size=(50, 6))
    np.testing.assert_allclose(apply_temperature(logits, 1.0), softmax(logits, axis=1), rtol=1e-12)
    np.testing.assert_allclose(apply_temperature(logits, 2.0), softmax(logits / 2, axis=1), rtol=1e-12)
    for t in (0.1, 0.5, 2.0, 10.0):
        p = apply_temperature(logits, t)
        np.testing.assert_array_equal(p.argmax(axis=1), logits.argmax(axis=1))
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
    # a higher temperature flattens: the top probability falls
    assert (apply_temperature(logits, 2.0).max(axis=1) < apply_temperature(logits, 1.0).max(axis=1)).all()
    x = torch.from_numpy(logits).float()
    out = apply_temperature(x, 1.0)
    assert isinstance(out, torch.Tensor) and out.device == x.device and out.dtype == torch.float32
    torch.testing.assert_close(out, torch.softmax(x, dim=-1))


_P = np.array([[0.6, 0.4], [0.1, 0.9]])
_Y = np.array([0, 1])


@pytest.mark.parametrize("args, kwargs, message", [
    ((_P, np.array([0, 1, 1])), {}, r"labels_or_correct must be a 1-D array of 2 labels"),
    ((np.array([0.5, 0.7]), np.array([True])), {}, r"labels_or_correct must have one entry per confidence"),
    ((np.array([[1.2, -0.2], [0.1, 0.9]]), _Y), {}, r"probs_or_confidences must be probabilities in \[0, 1\]"),
    ((np.array([1.5, 0.5]), np.array([True, False])), {}, r"probs_or_confidences must be probabilities in \[0, 1\]"),
    ((np.array([0.5, np.nan]), np.array([True, False])), {}, r"must be probabilities in \[0, 1\]"),
    ((np.array([[0.6, 0.3], [0.1, 0.9]]), _Y), {}, r"rows must sum to 1 \(within 0.0001\); row 0 sums to 0.9"),
    ((_P, _Y), {"n_bins": 0}, "n_bins must be an int >= 1, got 0"),
    ((_P, _Y), {"n_bins": 2.0}, "n_bins must be an int >= 1, got 2.0"),
    ((_P, np.array([0, 2])), {}, r"labels_or_correct must be class indices in \[0, 2\), got values from 0 to 2"),
    ((_P, np.array([-1, 0])), {}, r"labels_or_correct must be class indices in \[0, 2\)"),
    ((_P, np.array([0.0, 1.0])), {}, "labels_or_correct must hold integer class indices"),
    ((np.array([0.5, 0.7]), np.array([1, 0])), {}, "labels_or_correct must be booleans"),
    ((np.zeros((0, 3)), np.zeros(0, dtype=int)), {}, "probs_or_confidences is empty"),
    ((np.array([]), np.array([], dtype=bool)), {}, "probs_or_confidences is empty"),
    ((np.zeros((2, 2, 2)), _Y), {}, r"must be \(N, C\) probabilities or \(N,\) confidences"),
])
def test_ece_bad_input_names_the_argument(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        expected_calibration_error(*args, **kwargs)
    with pytest.raises(ValueError, match=message.replace("probs_or_confidences", "confidences")
                       .replace("labels_or_correct", "correct")):
        reliability_bins(*args, **kwargs)


@pytest.mark.parametrize("logits, labels, kwargs, message", [
    (np.zeros((3, 2)), np.array([0, 1]), {}, "labels must be a 1-D array of 3 labels"),
    (np.zeros((2, 2)), np.array([0, 2]), {}, r"labels must be class indices in \[0, 2\)"),
    (np.zeros((0, 2)), np.zeros(0, dtype=int), {}, r"logits must be a non-empty \(N, C\) array"),
    (np.zeros(3), np.array([0, 1, 0]), {}, r"logits must be a non-empty \(N, C\) array"),
    (np.array([[0.0, np.inf]]), np.array([0]), {}, "logits must be finite"),
    (torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), {}, r"logits must be a non-empty \(N, C\) tensor"),
    (torch.zeros(2, 2), torch.tensor([0, 5]), {}, r"labels must be class indices in \[0, 2\)"),
    (np.zeros((2, 2)), np.array([0, 1]), {"bounds": (1.5, 10.0)}, "bounds must be"),
])
def test_fit_temperature_bad_input_names_the_argument(logits, labels, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit_temperature(logits, labels, **kwargs)


@pytest.mark.parametrize("t", [0, -1.0, float("inf"), float("nan"), True, "2"])
def test_apply_temperature_rejects_a_bad_temperature(t):
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        apply_temperature(np.zeros((2, 3)), t)
