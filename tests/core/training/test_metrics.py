"""Metrics against brute force, hand-checked examples and known synthetic truths."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cxrviewer.core.training.metrics import (
    auroc, choose_threshold, classification_metrics, expected_calibration_error, fit_temperature,
    best_epoch, nll, predict, reliability_bins, roc_curve, selection_auroc, sensitivity_specificity, softmax)


def brute_auroc(y, s):
    pos, neg = s[y == 1], s[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (pos.size * neg.size)


def test_auroc_known_values():
    y = np.array([0, 0, 1, 1])
    assert auroc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert auroc(y, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert auroc(y, np.full(4, 0.5)) == 0.5
    assert auroc(y, np.array([0.1, 0.4, 0.35, 0.8])) == 0.75


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_pair_count_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(300) < 0.3).astype(int)
    s = np.round(rng.random(300) + 0.3 * y, 1)  # coarse rounding makes many ties
    assert auroc(y, s) == pytest.approx(brute_auroc(y, s), abs=1e-12)


def test_auroc_nan_when_one_class_absent():
    assert math.isnan(auroc(np.ones(5, int), np.linspace(0, 1, 5)))
    assert math.isnan(auroc(np.zeros(5, int), np.linspace(0, 1, 5)))


def test_auroc_rejects_bad_input():
    with pytest.raises(ValueError, match="length"):
        auroc(np.array([0, 1]), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="0 or 1"):
        auroc(np.array([0, 2]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="NaN"):
        auroc(np.array([0, 1]), np.array([0.1, np.nan]))


def test_roc_curve_endpoints_monotone_and_area():
    rng = np.random.default_rng(1)
    y = (rng.random(200) < 0.6).astype(int)
    s = np.round(rng.random(200) + 0.5 * y, 2)
    fpr, tpr, thr = roc_curve(y, s)
    assert (fpr[0], tpr[0], thr[0]) == (0.0, 0.0, np.inf)
    assert (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert thr[-1] == s.min()
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0) and np.all(np.diff(thr) < 0)
    assert len(thr) == len(np.unique(s)) + 1
    area = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)  # trapezoids count ties as one half
    assert area == pytest.approx(auroc(y, s), abs=1e-12)
    # Each point is the rule score >= threshold.
    i = len(thr) // 2
    assert tpr[i] == pytest.approx(np.mean(s[y == 1] >= thr[i]))
    assert fpr[i] == pytest.approx(np.mean(s[y == 0] >= thr[i]))


@pytest.mark.parametrize("t_true", [0.5, 2.5])
def test_fit_temperature_recovers_known_temperature(t_true):
    rng = np.random.default_rng(7)
    z = rng.normal(0.0, 2.0, size=(6000, 3))
    p = softmax(z)
    labels = (rng.random((6000, 1)) > np.cumsum(p, axis=1)).sum(axis=1)  # sample from softmax(z)
    logits = z * t_true  # so that softmax(logits / t_true) is the true distribution
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(t_true, rel=0.1)
    assert nll(logits, labels, t) <= nll(logits, labels, 1.0) + 1e-12
    assert nll(logits, labels, t) <= min(nll(logits, labels, t * 1.2), nll(logits, labels, t / 1.2))


def test_fit_temperature_rejects_bad_input():
    with pytest.raises(ValueError, match="N x K"):
        fit_temperature(np.zeros((3, 2)), np.array([0, 1]))
    with pytest.raises(ValueError, match="class indices"):
        fit_temperature(np.zeros((2, 2)), np.array([0, 2]))
    assert fit_temperature(np.zeros((0, 2)), np.zeros(0, int)) == 1.0


def test_youden_threshold_separates_separable_set():
    neg = np.array([0.05, 0.1, 0.2, 0.3])
    pos = np.array([0.6, 0.7, 0.9, 0.95, 0.99])
    y = np.r_[np.zeros(4, int), np.ones(5, int)]
    p = np.r_[neg, pos]
    t = choose_threshold(y, p, "youden")
    assert neg.max() < t < pos.min()
    assert t == pytest.approx(0.45)  # midway between the classes
    assert np.array_equal(p >= t, y.astype(bool))


def test_youden_tie_takes_middle_of_plateau():
    # Candidates 0.25, 0.5 and 0.75 all give J = 1/3; the middle one wins.
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.4, 0.6, 0.4, 0.6, 0.9])
    assert choose_threshold(y, p, "youden") == pytest.approx(0.5)


@pytest.mark.parametrize("rule", ["youden", "f1"])
def test_threshold_is_optimal_over_a_dense_grid(rule):
    rng = np.random.default_rng(3)
    y = (rng.random(400) < 0.7).astype(int)
    p = 1 / (1 + np.exp(-(rng.normal(0, 1, 400) + 1.5 * (2 * y - 1))))

    def score(t):
        pred = p >= t
        tp, fp = np.sum(pred & (y == 1)), np.sum(pred & (y == 0))
        fn, tn = np.sum(~pred & (y == 1)), np.sum(~pred & (y == 0))
        if rule == "youden":
            return tp / (tp + fn) + tn / (tn + fp) - 1
        return 2 * tp / (2 * tp + fp + fn)

    t = choose_threshold(y, p, rule)
    assert 0 < t < 1
    assert not np.any(np.isclose(p, t))  # a midpoint, not a score
    best = max(score(g) for g in np.r_[np.linspace(0.0005, 0.9995, 2000), np.unique(p)])
    assert score(t) == pytest.approx(best, abs=1e-12)


def test_robust_threshold_averages_j_over_shifted_views():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    clean = np.array([0.01, 0.02, 0.03, 0.04, 0.9, 0.95, 0.97, 0.99])
    assert choose_threshold(y, clean, "youden") == pytest.approx(0.47)  # anywhere between the classes
    # Under a shift the negatives score up to 0.6 while the positives stay above 0.8:
    # only cuts in (0.6, 0.8) keep J = 1 on both views.
    shifted = np.array([0.3, 0.45, 0.55, 0.6, 0.8, 0.9, 0.95, 0.99])
    t = choose_threshold(y, clean, "robust", views=[shifted])
    assert 0.6 < t < 0.8
    assert np.array_equal(shifted >= t, y.astype(bool)) and np.array_equal(clean >= t, y.astype(bool))
    assert choose_threshold(y, clean, "robust") == choose_threshold(y, clean, "youden")  # no views: Youden
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        choose_threshold(y, clean, "robust", views=[shifted + 1])


def test_threshold_fixed_rule_and_errors():
    y, p = np.array([0, 1, 1]), np.array([0.2, 0.7, 0.9])
    assert choose_threshold(y, p, "0.5") == 0.5
    with pytest.raises(ValueError, match="unknown threshold rule"):
        choose_threshold(y, p, "magic")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        choose_threshold(y, np.array([0.2, 1.5, 0.9]))
    with pytest.warns(RuntimeWarning, match="both classes"):
        assert choose_threshold(np.ones(3, int), p) == 0.5


def test_threshold_stays_inside_unit_interval_at_extremes():
    y = np.array([0, 1, 0, 1])
    t = choose_threshold(y, np.array([0.0, 1.0, 0.0, 1.0]))
    assert 0 < t < 1 and t == pytest.approx(0.5)
    t = choose_threshold(np.array([1, 0]), np.array([0.0, 1.0]))  # reversed: degenerate rules only
    assert 0 < t < 1


def test_ece_zero_when_bins_are_calibrated():
    # Ten at confidence 0.8 with eight right, ten at 0.6 with six right.
    probs = np.r_[np.tile([0.2, 0.8], (10, 1)), np.tile([0.6, 0.4], (10, 1))]
    labels = np.r_[np.ones(8, int), np.zeros(2, int), np.zeros(6, int), np.ones(4, int)]
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-12)
    b = reliability_bins(probs, labels, n_bins=10)
    assert b["count"].sum() == 20 and b["count"][8] == 10 and b["count"][6] == 10
    assert b["accuracy"][8] == pytest.approx(0.8) and b["confidence"][6] == pytest.approx(0.6)
    assert np.isnan(b["accuracy"][0]) and len(b["bin_edges"]) == 11


def test_ece_positive_when_overconfident():
    probs = np.tile([0.1, 0.9], (10, 1))
    labels = np.r_[np.ones(5, int), np.zeros(5, int)]
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4)
    # A confidence of exactly 1 falls in the last bin.
    assert reliability_bins(np.array([[0.0, 1.0]]), np.array([1]), n_bins=15)["count"][-1] == 1


def test_binary_metrics_hand_checked():
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    p_pos = np.array([0.1, 0.35, 0.2, 0.25, 0.6, 0.9, 0.3])
    probs = np.c_[1 - p_pos, p_pos]
    m = classification_metrics(probs, labels, ["NORMAL", "PNEUMONIA"], threshold=0.3, positive_index=1)
    assert m["confusion_matrix"] == [[2, 1], [1, 3]]
    assert m["n"] == 7 and m["support"] == [3, 4]
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["sensitivity"] == pytest.approx(3 / 4)
    assert m["specificity"] == pytest.approx(2 / 3)
    assert m["precision"] == pytest.approx(3 / 4)
    assert m["npv"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(3 / 4)
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 2 / 3) / 2)
    assert m["auroc"] == pytest.approx(10 / 12)
    assert m["positive_class"] == "PNEUMONIA" and m["threshold"] == 0.3
    assert m["ece"] >= 0 and m["nll"] > 0
    json.loads(json.dumps(m))

    # Argmax without a threshold: 0.6 and 0.9 are the only positive calls.
    m = classification_metrics(probs, labels, ["NORMAL", "PNEUMONIA"], threshold=None, positive_index=1)
    assert m["confusion_matrix"] == [[3, 0], [2, 2]] and m["threshold"] is None
    assert m["specificity"] == 1.0 and m["sensitivity"] == 0.5


def test_binary_metrics_positive_index_zero():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]])
    m = classification_metrics(probs, labels, ["A", "B"], threshold=0.35, positive_index=0)
    # Class 0 is positive when probs[:, 0] >= 0.35: rows 0, 1 are called A.
    assert m["positive_class"] == "A"
    assert m["confusion_matrix"] == [[2, 0], [0, 2]]
    assert m["sensitivity"] == 1.0 and m["auroc"] == 1.0
    assert np.array_equal(predict(probs, 0.35, 0), [0, 0, 1, 1])


def test_three_class_metrics():
    labels = np.array([0, 0, 1, 1, 1, 2, 2, 2])
    probs = np.array([[.7, .2, .1], [.3, .6, .1], [.1, .8, .1], [.2, .5, .3], [.1, .3, .6],
                      [.1, .1, .8], [.2, .2, .6], [.5, .3, .2]])
    m = classification_metrics(probs, labels, ["a", "b", "c"], threshold=0.9, positive_index=None)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 1], [1, 0, 2]]  # threshold ignored: argmax
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 3 + 2 / 3) / 3)
    pc = m["per_class"]
    assert pc["b"]["recall"] == pytest.approx(2 / 3) and pc["b"]["precision"] == pytest.approx(2 / 3)
    assert pc["c"]["f1"] == pytest.approx(2 / 3) and pc["a"]["support"] == 2
    for i, name in enumerate("abc"):
        assert pc[name]["auroc"] == pytest.approx(brute_auroc((labels == i).astype(int), probs[:, i]))
    assert m["macro_auroc"] == pytest.approx(np.mean([pc[c]["auroc"] for c in "abc"]))
    assert m["auroc"] == m["macro_auroc"]
    assert "sensitivity" not in m
    json.loads(json.dumps(m))


def test_metrics_reject_bad_input():
    probs = np.array([[0.5, 0.5], [0.2, 0.8]])
    with pytest.raises(ValueError, match="class names"):
        classification_metrics(probs, [0, 1], ["a", "b", "c"], None, None)
    with pytest.raises(ValueError, match="length"):
        classification_metrics(probs, [0, 1, 1], ["a", "b"], None, None)
    with pytest.raises(ValueError, match="class indices"):
        classification_metrics(probs, [0, 2], ["a", "b"], None, None)
    with pytest.raises(ValueError, match="positive_index"):
        classification_metrics(probs, [0, 1], ["a", "b"], 0.5, 2)


def test_best_epoch_is_highest_auroc_then_lowest_loss():
    rows = [dict(epoch=1, val_auroc=0.9, val_loss=0.5), dict(epoch=2, val_auroc=float("nan")),
            dict(epoch=3, val_auroc=0.9, val_loss=0.4), dict(epoch=4, val_auroc=0.85, val_loss=0.1), {},
            dict(epoch=6, val_auroc=0.9 + 1e-7, val_loss=0.45)]  # a gain within the tolerance is a tie
    assert best_epoch(rows) == 2
    assert best_epoch(rows[:2]) == 0
    assert best_epoch([dict(epoch=1, train_loss=1.0)]) is None


def test_predict_is_the_models_decision_rule():
    import torch

    from cxrviewer.core.model import classifier as model_module
    from cxrviewer.core.training import metrics

    model = model_module.CamClassifier("resnet18", 2, meta={"class_names": ["PNEUMONIA", "NORMAL"],
                                                           "positive_class": "PNEUMONIA", "threshold": 0.3})
    p1 = np.random.default_rng(0).uniform(0, 1, 200)
    probs = np.stack([p1, 1 - p1], axis=1)
    expected = model.decide(torch.from_numpy(probs)).numpy()
    assert np.array_equal(predict(probs, model.threshold, model.positive_index), expected)
    assert set(expected) == {0, 1}
    assert metrics.decide is model_module.decide  # one home: the metrics call the model's rule, not a copy


def test_selection_auroc_two_and_three_classes():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]])
    assert selection_auroc(probs, labels, 1) == auroc(labels == 1, probs[:, 1]) == 1.0
    three = np.array([[.7, .2, .1], [.3, .6, .1], [.1, .8, .1], [.1, .1, .8]])
    y3 = np.array([0, 1, 1, 2])
    expected = np.mean([auroc(y3 == k, three[:, k]) for k in range(3)])
    assert selection_auroc(three, y3) == pytest.approx(expected)
    assert math.isnan(selection_auroc(probs, np.zeros(4, int), 1))


def test_sensitivity_specificity_at_a_threshold():
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.5, 0.2, 0.5, 0.4, 0.1, 0.0])
    assert sensitivity_specificity(y, p, 0.5) == (pytest.approx(2 / 3), pytest.approx(3 / 4))  # p >= t is positive
    sens, spec = sensitivity_specificity(np.ones(3, int), [0.1, 0.6, 0.7], 0.5)
    assert sens == pytest.approx(2 / 3) and math.isnan(spec)
