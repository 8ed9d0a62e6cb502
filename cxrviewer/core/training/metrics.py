"""Evaluation metrics for the trainer: AUROC, ROC, calibration, thresholds, summaries, the best epoch.

numpy (and scipy's bounded scalar minimiser). Probabilities are rows of an ``N x K`` array,
labels are class indices. Class decisions are the model's own rule, :func:`cxrviewer.core.model.classifier.decide`.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.optimize import minimize_scalar

from ..model.classifier import decide

THRESHOLD_RULES = ("robust", "youden", "f1", "0.5")

# A threshold is kept this far inside (0, 1) so that it stays a usable probability cut.
_EPS = 1e-6


def _binary_inputs(y_true, score) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length ({y.size} vs {s.size})")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinite values")
    if y.size and not np.all((y == 0) | (y == 1)):
        raise ValueError("binary labels must be 0 or 1")
    return y.astype(bool), s


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``; tied values share the mean of their ranks."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    # Start index of each run of equal values, and the run's mean rank.
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], xs.size]
    mean_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def auroc(y_true, score) -> float:
    """Area under the ROC curve (Mann-Whitney U / (n_pos n_neg); ties count one half).

    Returns NaN when either class is absent.
    """
    y, s = _binary_inputs(y_true, score)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(s)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_curve(y_true, score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC points ``(fpr, tpr, thresholds)`` for the rule ``score >= threshold``.

    Starts at (0, 0) with threshold +inf and ends at (1, 1) with the lowest score; one point per
    distinct score. A rate whose class is absent is NaN.
    """
    y, s = _binary_inputs(y_true, score)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # Last index of each run of equal scores (descending).
    last = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True]) if s.size else np.array([], int)
    tp = np.cumsum(y_sorted)[last]
    fp = (last + 1) - tp
    n_pos, n_neg = int(y.sum()), int(y.size - y.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.r_[0, tp] / n_pos if n_pos else np.full(last.size + 1, np.nan)
        fpr = np.r_[0, fp] / n_neg if n_neg else np.full(last.size + 1, np.nan)
    thresholds = np.r_[np.inf, s_sorted[last]]
    return fpr.astype(np.float64), tpr.astype(np.float64), thresholds


def _check_probs_labels(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels).ravel()
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probabilities must be an N x K array with K >= 2, got shape {p.shape}")
    if p.shape[0] != y.size:
        raise ValueError(f"probabilities and labels differ in length ({p.shape[0]} vs {y.size})")
    if not np.all(np.isfinite(p)):
        raise ValueError("probabilities contain NaN or infinite values")
    yf = y.astype(np.float64)
    if y.size and not (np.all(np.mod(yf, 1) == 0) and yf.min() >= 0 and yf.max() < p.shape[1]):
        raise ValueError(f"labels must be class indices in [0, {p.shape[1] - 1}]")
    return p, y.astype(np.int64)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` (float64)."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    return np.exp(_log_softmax(z))


def nll(logits, labels, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / temperature)``."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    y = np.asarray(labels).ravel().astype(np.int64)
    return float(-_log_softmax(z)[np.arange(y.size), y].mean())


def fit_temperature(logits, labels, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """Temperature ``T`` minimising the NLL of ``softmax(logits / T)`` on held-out data.

    A bounded 1-D search over ``log T`` within ``bounds``; returns 1.0 for empty input.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels).ravel()
    if z.ndim != 2 or z.shape[0] != y.size:
        raise ValueError(f"logits must be N x K matching {y.size} labels, got shape {z.shape}")
    if not np.all(np.isfinite(z)):
        raise ValueError("logits contain NaN or infinite values")
    if y.size == 0:
        return 1.0
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise ValueError(f"labels must be class indices in [0, {z.shape[1] - 1}]")
    rows = np.arange(y.size)

    def objective(log_t: float) -> float:
        return float(-_log_softmax(z / math.exp(log_t))[rows, y].mean())

    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    res = minimize_scalar(objective, bounds=(lo, hi), method="bounded", options={"xatol": 1e-5})
    return float(math.exp(res.x))


def _binary_counts(y: np.ndarray, p: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, ...]:
    """tp, fp, fn, tn for each threshold in ``t`` under the rule ``p >= t``."""
    pos = np.sort(p[y])
    neg = np.sort(p[~y])
    tp = pos.size - np.searchsorted(pos, t, side="left")
    fp = neg.size - np.searchsorted(neg, t, side="left")
    return tp, fp, pos.size - tp, neg.size - fp


def choose_threshold(y_pos, p_pos, rule: str = "youden", views=()) -> float:
    """Decision threshold on the positive-class probability, applied as ``p >= t``.

    Rules: ``"youden"`` maximises sensitivity + specificity - 1 (independent of prevalence),
    ``"robust"`` maximises that J averaged over ``p_pos`` and ``views`` (the same images' scores
    under acquisition shifts, see :mod:`.shift`; same labels), ``"f1"`` maximises F1 of the
    positive class, ``"0.5"`` is fixed. Candidates lie midway between adjacent distinct scores
    (and beyond the extremes), so the cut generalises; among equally good candidates the one
    nearest the middle of their span wins. The result is strictly inside (0, 1).
    Falls back to 0.5 with a warning when one class is absent.
    """
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"unknown threshold rule {rule!r}; choose one of {', '.join(THRESHOLD_RULES)}")
    y, p = _binary_inputs(y_pos, p_pos)
    if rule == "0.5":
        return 0.5
    scores = [p] + ([_binary_inputs(y_pos, v)[1] for v in views] if rule == "robust" else [])
    for i, v in enumerate(scores):
        if v.size and (v.min() < -1e-6 or v.max() > 1 + 1e-6):
            raise ValueError("positive-class probabilities must lie in [0, 1]")
        scores[i] = np.clip(v, 0.0, 1.0)  # float32 rounding may step just outside
    if y.all() or not y.any():
        warnings.warn("choose_threshold: both classes are needed; using 0.5", RuntimeWarning, stacklevel=2)
        return 0.5
    u = np.unique(np.concatenate(scores))
    cand = np.r_[u[0] / 2.0, (u[1:] + u[:-1]) / 2.0, (u[-1] + 1.0) / 2.0]
    cand = np.clip(cand, _EPS, 1.0 - _EPS)
    score = np.zeros_like(cand)
    for v in scores:
        tp, fp, fn, tn = _binary_counts(y, v, cand)
        if rule == "f1":
            score += 2.0 * tp / np.maximum(2 * tp + fp + fn, 1)
        else:
            score += tp / (tp + fn) + tn / (tn + fp) - 1.0
    score /= len(scores)
    best = np.flatnonzero(score >= score.max() - 1e-12)
    middle = (cand[best[0]] + cand[best[-1]]) / 2.0
    return float(cand[best[np.argmin(np.abs(cand[best] - middle))]])


def reliability_bins(probs, labels, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Top-label reliability table over ``n_bins`` equal-width confidence bins on [0, 1].

    Returns ``bin_edges`` (n_bins + 1), and per bin the mean ``confidence``, the ``accuracy``
    (NaN for empty bins) and the ``count``. Bins are ``[lo, hi)``, the last one closed.
    """
    p, y = _check_probs_labels(probs, labels)
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    idx = np.clip((conf * n_bins).astype(np.int64), 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(idx, weights=conf, minlength=n_bins) / count
        accuracy = np.bincount(idx, weights=correct, minlength=n_bins) / count
    return dict(bin_edges=np.linspace(0.0, 1.0, n_bins + 1), confidence=confidence,
                accuracy=accuracy, count=count)


def expected_calibration_error(probs, labels, n_bins: int = 15) -> float:
    """Top-label ECE: count-weighted mean of |accuracy - confidence| over confidence bins."""
    b = reliability_bins(probs, labels, n_bins)
    n = b["count"].sum()
    if n == 0:
        return float("nan")
    filled = b["count"] > 0
    gap = np.abs(b["accuracy"][filled] - b["confidence"][filled])
    return float((b["count"][filled] * gap).sum() / n)


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


def predict(probs, threshold: float | None = None, positive_index: int | None = None) -> np.ndarray:
    """Class index per row by the model's decision rule, :func:`cxrviewer.core.model.classifier.decide`: for two
    classes ``probs[:, pos] >= threshold`` (``pos`` defaults to 1, as in the model), else argmax."""
    p = np.asarray(probs, dtype=np.float64)
    return decide(p, threshold, 1 if positive_index is None else int(positive_index)).astype(np.int64)


def sensitivity_specificity(y_pos, p_pos, threshold: float) -> tuple[float, float]:
    """Sensitivity and specificity of the decision rule at ``threshold`` on the positive-class probability
    ``p_pos`` (binary labels ``y_pos``); NaN where a class is absent."""
    y, p = _binary_inputs(y_pos, p_pos)
    called = predict(np.stack([1 - p, p], axis=1), threshold, positive_index=1) == 1
    return _ratio(np.sum(called & y), np.sum(y)), _ratio(np.sum(~called & ~y), np.sum(~y))


def selection_auroc(probs, labels, positive_index: int | None = None) -> float:
    """The AUROC that chooses the best epoch: the positive class's, or the mean one-vs-rest AUROC of the
    classes present (NaN when none is defined)."""
    p, y = np.asarray(probs), np.asarray(labels)
    if positive_index is not None:
        return auroc(y == positive_index, p[:, positive_index])
    values = [auroc(y == k, p[:, k]) for k in range(p.shape[1])]
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def best_epoch(history: list[dict], tol: float = 1e-6) -> int | None:
    """Index into ``history`` of the best epoch: the highest finite ``val_auroc`` (a gain must exceed
    ``tol``); within ``tol`` of it, the lower ``val_loss``. None when no epoch has a finite AUROC."""
    best, best_auc, best_loss = None, -math.inf, math.inf
    for i, row in enumerate(history):
        auc, loss = _finite_or(row.get("val_auroc"), math.nan), _finite_or(row.get("val_loss"), math.inf)
        if math.isfinite(auc) and (auc > best_auc + tol or (abs(auc - best_auc) <= tol and loss < best_loss)):
            best, best_auc, best_loss = i, auc, loss
    return best


def _finite_or(value, default: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return default
    return value if math.isfinite(value) else default


def classification_metrics(probs, labels, class_names, threshold: float | None = None,
                           positive_index: int | None = None, n_bins: int = 15) -> dict:
    """Summary metrics of calibrated ``probs`` (N x K) against ``labels`` (N), JSON-ready.

    Always: ``n``, ``class_names``, ``support``, ``accuracy``, ``balanced_accuracy``,
    ``confusion_matrix`` (rows true, columns predicted), ``ece``, ``nll``, ``per_class``
    (recall, precision, f1, one-vs-rest auroc, support) and ``auroc``. Two classes add
    ``positive_class``, ``threshold`` (None = argmax), ``sensitivity``, ``specificity``,
    ``precision``, ``npv``, ``f1``, and ``auroc`` is that of the positive class; for K > 2
    ``auroc`` equals ``macro_auroc`` (mean one-vs-rest over classes present). Undefined ratios are NaN.
    """
    p, y = _check_probs_labels(probs, labels)
    names = [str(c) for c in class_names]
    k = p.shape[1]
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for {k} probability columns")
    pos = None
    if k == 2:
        pos = 1 if positive_index is None else int(positive_index)
        if pos not in (0, 1):
            raise ValueError(f"positive_index must be 0 or 1, got {positive_index}")
    pred = predict(p, threshold if k == 2 else None, pos)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y, pred), 1)
    n = int(y.size)
    per_class = _per_class(cm, p, y, names)
    recalls = [c["recall"] for c in per_class.values() if c["support"]]
    out = dict(
        n=n, class_names=names, support=[int(s) for s in cm.sum(axis=1)],
        accuracy=_ratio(np.trace(cm), n),
        balanced_accuracy=float(np.mean(recalls)) if recalls else float("nan"),
        confusion_matrix=cm.tolist(),
        ece=expected_calibration_error(p, y, n_bins) if n else float("nan"),
        nll=float(-np.log(np.clip(p[np.arange(n), y], 1e-12, 1.0)).mean()) if n else float("nan"),
        per_class=per_class,
    )
    if k == 2:
        out.update(_binary_summary(cm, pos, names, threshold), auroc=auroc(y == pos, p[:, pos]))
    else:
        macro = selection_auroc(p, y)
        out.update(macro_auroc=macro, auroc=macro)
    return out


def _per_class(cm: np.ndarray, p: np.ndarray, y: np.ndarray, names: list[str]) -> dict[str, dict]:
    """Recall, precision, F1, one-vs-rest AUROC and support of each class."""
    out = {}
    for i, name in enumerate(names):
        tp, support, called = cm[i, i], cm[i].sum(), cm[:, i].sum()
        out[name] = dict(recall=_ratio(tp, support), precision=_ratio(tp, called), f1=_ratio(2 * tp, support + called),
                         auroc=auroc(y == i, p[:, i]), support=int(support))
    return out


def _binary_summary(cm: np.ndarray, pos: int, names: list[str], threshold: float | None) -> dict:
    """The two-class figures of the positive class ``pos`` from the confusion matrix."""
    neg = 1 - pos
    tp, fn, fp, tn = cm[pos, pos], cm[pos, neg], cm[neg, pos], cm[neg, neg]
    return dict(positive_class=names[pos], positive_index=pos, threshold=None if threshold is None else float(threshold),
                sensitivity=_ratio(tp, tp + fn), specificity=_ratio(tn, tn + fp), precision=_ratio(tp, tp + fp),
                npv=_ratio(tn, tn + fn), f1=_ratio(2 * tp, 2 * tp + fp + fn))
