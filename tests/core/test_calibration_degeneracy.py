"""A calibration that cannot be trusted is named degenerate, with its reasons; the threshold sweep's legend
counts at the threshold itself, as the tables do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from cxrviewer.core.site.calibration import MIN_RELIABLE, RULES, fit_calibration, parse_rule
from cxrviewer.core.site.evaluation import LabelledScores, draw_threshold_sweep
from cxrviewer.core.training import metrics as M

META = {"class_names": ["NORMAL", "PNEUMONIA"], "positive_class": "PNEUMONIA", "threshold": 0.5, "temperature": 1.0}


def _scores(pos_logodds, neg_logodds) -> LabelledScores:
    """Scores whose PNEUMONIA log-odds are ``pos_logodds`` for PNEUMONIA images and ``neg_logodds`` for NORMAL ones."""
    d = np.r_[neg_logodds, pos_logodds].astype(np.float64)
    logits = np.stack([-d / 2, d / 2], axis=1)
    labels = np.r_[np.zeros(len(neg_logodds)), np.ones(len(pos_logodds))].astype(np.int64)
    n = len(d)
    return LabelledScores(folder=Path("/sites/Ward7"), class_names=["NORMAL", "PNEUMONIA"],
                          paths=[Path(f"{i}.png") for i in range(n)], labels=labels, logits=logits,
                          probs=M.softmax(logits), scope_scores=np.full(n, np.nan), in_scope=np.ones(n, bool),
                          scope_reasons=[None] * n)


def test_perfectly_separated_small_set_is_degenerate_for_every_reason_it_has():
    """The issue's case: 25 + 25 images the model separates perfectly."""
    rng = np.random.default_rng(0)
    cal = fit_calibration(_scores(rng.normal(2, 0.5, 25), rng.normal(-2, 0.5, 25)), META, "youden")
    text = " | ".join(cal.problems)
    assert cal.degenerate
    assert "lower bound of its search range" in text and cal.temperature == pytest.approx(0.05, rel=0.02)
    assert "too few images" in text and f"at least {MIN_RELIABLE} per class" in text
    assert "the classes do not overlap: every threshold between" in text
    assert "figures disagree" not in text


def test_a_healthy_overlapping_set_is_not_degenerate():
    rng = np.random.default_rng(1)
    cal = fit_calibration(_scores(rng.normal(1.0, 1.5, 120), rng.normal(-1.0, 1.5, 150)), META, "youden")
    assert cal.problems == [] and 0.2 < cal.temperature < 5 and 0.01 < cal.threshold < 0.99


def test_a_threshold_at_the_edge_is_named():
    rng = np.random.default_rng(2)
    pos, neg = rng.normal(1.0, 1.5, 120), rng.normal(-1.0, 1.5, 150)
    cal = fit_calibration(_scores(pos, neg), META, "specificity=0.95")
    assert not any("edge" in p for p in cal.problems)
    pos[:] = np.r_[rng.normal(12, 0.3, 119), -3]  # every positive but one far above any negative
    neg[:] = rng.normal(-1.0, 1.5, 150)
    neg[0] = 11.5
    cal = fit_calibration(_scores(pos, neg), META, "specificity=0.999")
    assert any("at the edge of the probability range" in p for p in cal.problems), cal.problems


def test_the_sweep_legend_counts_at_the_threshold_itself():
    """The issue: 'after: t = 1.000 (sens 0.480)' beside a table saying 1.000. A grid point is not the threshold."""
    rng = np.random.default_rng(3)
    y = np.r_[np.ones(25, bool), np.zeros(25, bool)]
    p = np.r_[1 - rng.uniform(1e-7, 8e-7, 25) * np.r_[np.ones(12), np.ones(13) * 1e-3], rng.uniform(0, 0.3, 25)]
    t = 0.999999
    sens, spec = M.sensitivity_specificity(y, p, t)
    ax = Figure().subplots()
    draw_threshold_sweep(ax, y, p, {"proposed": t})
    label = [lab for lab in ax.get_legend_handles_labels()[1] if lab.startswith("proposed")][0]
    assert label == f"proposed: t = 0.999999 (sens {sens:.3f}, spec {spec:.3f})"
    assert sens == 1.0


def test_the_viewers_rules_are_all_valid():
    assert all(parse_rule(r) for r in RULES) and "youden" in RULES
