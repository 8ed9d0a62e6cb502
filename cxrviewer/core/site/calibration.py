"""Calibrate a model for a site: a new model file whose operating point fits the site's labelled images.

Refitted on the folder: the temperature (NLL), the decision threshold (by a rule: ``youden``,
``sensitivity=0.95`` or ``specificity=0.90``) and the scope threshold (raised, never lowered,
so that 99% of the site's radiographs are in scope). The weights are copied byte for byte, the
provenance (folder name, images per class, date, rule, metrics before and after) is recorded in
the metadata, and the model card is regenerated. The source model is never overwritten.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..training import metrics as M
from .evaluation import EvaluationError, LabelledScores, evaluation_metrics

MIN_PER_CLASS = 20
RULE_HELP = "youden | sensitivity=S | specificity=S (S between 0 and 1, e.g. sensitivity=0.95)"
_KEPT = ("n", "auroc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "precision", "npv", "f1",
         "ece", "nll", "threshold", "confusion_matrix", "in_scope_rate")


def parse_rule(text: str) -> tuple[str, float | None]:
    """``"youden"`` -> ("youden", None); ``"sensitivity=0.95"`` -> ("sensitivity", 0.95); else ValueError."""
    text = str(text).strip().lower()
    if text == "youden":
        return "youden", None
    m = re.fullmatch(r"(sensitivity|specificity)\s*=\s*([0-9.]+)", text)
    if m:
        target = float(m.group(2))
        if 0.0 < target < 1.0:
            return m.group(1), target
    raise ValueError(f"unknown rule {text!r}; use {RULE_HELP}")


def threshold_for_rule(y_pos, p_pos, rule: str) -> float:
    """Threshold on ``p_pos`` (applied as ``p >= t``) chosen by ``rule`` on binary labels ``y_pos``.

    ``youden``: maximal sensitivity + specificity - 1. ``sensitivity=S``: the highest threshold whose
    sensitivity is at least S (best specificity under that constraint); ``specificity=S``: the lowest
    threshold whose specificity is at least S. Candidates lie midway between adjacent scores.
    """
    kind, target = parse_rule(rule)
    y = np.asarray(y_pos).astype(bool)
    p = np.clip(np.asarray(p_pos, dtype=np.float64), 0.0, 1.0)
    if kind == "youden":
        return M.choose_threshold(y, p, "youden")
    u = np.unique(p)
    cand = np.clip(np.r_[u[0] / 2.0, (u[1:] + u[:-1]) / 2.0, (u[-1] + 1.0) / 2.0], 1e-6, 1 - 1e-6)
    pred = p[None, :] >= cand[:, None]
    if kind == "sensitivity":
        ok = np.flatnonzero(pred[:, y].mean(axis=1) >= target - 1e-12)
        return float(cand[ok.max()])
    ok = np.flatnonzero((~pred[:, ~y]).mean(axis=1) >= target - 1e-12)
    return float(cand[ok.min()])


@dataclass
class Calibration:
    """A site's refitted operating point, with the metrics before (the model as it is) and after."""

    rule: str
    temperature: float
    threshold: float | None
    scope_threshold: float | None
    before: dict
    after: dict
    probs: np.ndarray  # N x K at the new temperature


def check_calibration_folder(scores: LabelledScores) -> None:
    """Refuse a folder with fewer than MIN_PER_CLASS readable images in any class."""
    short = {c: n for c, n in scores.counts().items() if n < MIN_PER_CLASS}
    if short:
        raise EvaluationError(f"{scores.folder.name}: calibration needs at least {MIN_PER_CLASS} readable images per class; "
                              + ", ".join(f"{c} has {n}" for c, n in short.items()))


def fit_calibration(scores: LabelledScores, meta: dict, rule: str = "youden") -> Calibration:
    """Refit temperature, threshold (two classes) and scope threshold on ``scores``; the model is unchanged."""
    parse_rule(rule)
    check_calibration_folder(scores)
    names = scores.class_names
    pos = names.index(meta["positive_class"]) if meta.get("positive_class") in names else (1 if len(names) == 2 else None)
    old_t = meta.get("threshold") if pos is not None else None
    before = evaluation_metrics(scores, old_t, pos)
    temperature = M.fit_temperature(scores.logits, scores.labels)
    probs = M.softmax(scores.logits, temperature)
    threshold = threshold_for_rule(scores.labels == pos, probs[:, pos], rule) if pos is not None else None
    scope_threshold = _scope_threshold(scores, meta.get("scope"))
    refitted = LabelledScores(**{**scores.__dict__, "probs": probs})
    if scope_threshold is not None:
        refitted.in_scope = _in_scope_at(scores, meta["scope"]["threshold"], scope_threshold)
    after = evaluation_metrics(refitted, threshold, pos)
    return Calibration(rule, float(temperature), threshold, scope_threshold, before, after, probs)


def _scope_threshold(scores: LabelledScores, scope: dict | None) -> float | None:
    """The model's scope threshold, raised to keep 99% of the site's images in scope (rule-rejected ones aside)."""
    if not isinstance(scope, dict) or "threshold" not in scope:
        return None
    old = float(scope["threshold"])
    s = scores.scope_scores
    by_rule = ~scores.in_scope & (s <= old)  # out of scope although the score is within range: a rule said so
    usable = s[np.isfinite(s) & ~by_rule]
    if usable.size == 0:
        return old
    return max(old, float(np.quantile(usable, 0.99, method="lower")))


def _in_scope_at(scores: LabelledScores, old: float, new: float) -> np.ndarray:
    s = scores.scope_scores
    by_rule = ~scores.in_scope & (s <= old)
    return ~by_rule & ~(s > new)


def calibration_metadata(cal: Calibration, scores: LabelledScores, source: Path, meta: dict) -> dict:
    """The metadata updates of the calibrated model file."""
    from ..model.model_update import weights_digest

    updates: dict = {"temperature": cal.temperature}
    if cal.threshold is not None:
        updates["threshold"] = cal.threshold
    if cal.scope_threshold is not None:
        updates["scope"] = {**meta["scope"], "threshold": cal.scope_threshold}
    updates["site_calibration"] = {
        "folder": scores.folder.name, "images": scores.counts(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "rule": cal.rule,
        "source_model": source.name, "weights_sha256": weights_digest(source),
        "previous": {"threshold": meta.get("threshold"), "temperature": meta.get("temperature"),
                     "scope_threshold": (meta.get("scope") or {}).get("threshold")},
        "metrics": _summary(cal.after), "metrics_before": _summary(cal.before),
    }
    return updates


def _summary(m: dict) -> dict:
    return {k: (None if isinstance(m[k], float) and not math.isfinite(m[k]) else m[k]) for k in _KEPT if k in m}


def write_calibrated(cal: Calibration, scores: LabelledScores, source: str | Path, out: str | Path,
                     overwrite: bool = False) -> Path:
    """Write the calibrated model file ``out`` (weights byte-identical to ``source``) and its model card."""
    from ..model.checkpoint import read_header
    from ..model.model_update import write_with_metadata
    from ..training.model_card import write_model_card

    source = Path(source)
    path = write_with_metadata(source, out, calibration_metadata(cal, scores, source, read_header(source)), overwrite)
    write_model_card(path)
    return path
