"""Calibrate a model for a site: a new model file whose operating point fits the site's labelled images.

Refitted on the folder: the temperature (NLL), the decision threshold (by a rule: ``youden``,
``sensitivity=0.95`` or ``specificity=0.90``) and the scope threshold (raised, never lowered,
so that 99% of the site's radiographs are in scope). The weights are copied byte for byte, the
provenance (folder, images per class, date, rule, metrics before and after) is recorded in
the metadata, and the model card is regenerated. The source model is never overwritten.

A fit that cannot be trusted is **degenerate** (:func:`degeneracy`) and is not written unless the
caller accepts it (``accept_degenerate``; the card then says so):

- the temperature at either bound of its search range (:data:`TEMPERATURE_BOUNDS`, within 1%): the NLL
  kept improving towards the bound, as it does when the logits separate the classes; the
  probabilities it gives are not calibrated (0.05 multiplies every log-odds by 20);
- the threshold within :data:`EDGE` of 0 or 1: a cut at the edge of the probability range;
- fewer than :data:`MIN_RELIABLE` images in a class (at 50 one image moves sensitivity or specificity by
  2 points and a 90% rule rests on the 5 images beyond the cut; below :data:`MIN_PER_CLASS` the folder is
  refused outright);
- the classes do not overlap (every positive scores above every negative): any threshold in the gap
  separates them, so the rule's choice within it is arbitrary (the gap is reported);
- the proposed figures disagree with a recount at the proposed threshold (a guard: they come from one
  computation, :func:`~cxrviewer.core.training.metrics.sensitivity_specificity`).
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..training import metrics as M
from .evaluation import EvaluationError, LabelledScores, evaluation_metrics

MIN_PER_CLASS = 20
MIN_RELIABLE = 50
TEMPERATURE_BOUNDS = (0.05, 20.0)
EDGE = 1e-3
RULES = ("youden", "sensitivity=0.90", "sensitivity=0.95", "sensitivity=0.98", "specificity=0.90", "specificity=0.95")
"""The rules offered in the viewer's choice list (``--rule`` takes any S between 0 and 1)."""
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
    problems: list[str] = field(default_factory=list)  # why the fit is degenerate (:func:`degeneracy`); empty: sound

    @property
    def degenerate(self) -> bool:
        return bool(self.problems)


class DegenerateCalibration(EvaluationError):
    """A calibration that would save nonsense, refused unless the caller accepts it."""

    def __init__(self, problems: list[str]):
        super().__init__("calibration refused, nothing written: " + "; ".join(problems)
                         + " (pass --accept-degenerate to write it anyway; its card will say so)")
        self.problems = problems


def check_calibration_folder(scores: LabelledScores) -> None:
    """Refuse a folder with fewer than MIN_PER_CLASS readable images in any class."""
    short = {c: n for c, n in scores.counts().items() if n < MIN_PER_CLASS}
    if short:
        raise EvaluationError(f"{scores.folder.name}: calibration needs at least {MIN_PER_CLASS} readable images per class; "
                              + ", ".join(f"{c} has {n}" for c, n in short.items()))


def check_population_for_calibration(scores: LabelledScores, refuse: bool = True) -> None:
    """Refuse (``refuse``) a folder holding images outside the model's intended population.

    A calibrated file's threshold applies to every later image while its intended use still names
    the training population: fitting it on patients the model never learned (adults, for a
    pediatric model) would make it look calibrated for them. Images with no usable age do not count.
    """
    outside = scores.outside_population()
    if refuse and outside:
        path, why = outside[0]
        raise EvaluationError(f"{scores.folder.name}: {len(outside)} of {len(scores.paths)} images are outside the model's "
                              f"intended population (e.g. {path.name}: {why}); the model cannot be calibrated for "
                              "patients it never learned (`cxrviewer calibrate --population flag` calibrates on them anyway)")


def fit_calibration(scores: LabelledScores, meta: dict, rule: str = "youden") -> Calibration:
    """Refit temperature, threshold (two classes) and scope threshold on ``scores``; the model is unchanged."""
    parse_rule(rule)
    check_calibration_folder(scores)
    names = scores.class_names
    pos = names.index(meta["positive_class"]) if meta.get("positive_class") in names else (1 if len(names) == 2 else None)
    old_t = meta.get("threshold") if pos is not None else None
    before = evaluation_metrics(scores, old_t, pos)
    temperature = M.fit_temperature(scores.logits, scores.labels, TEMPERATURE_BOUNDS)
    probs = M.softmax(scores.logits, temperature)
    threshold = threshold_for_rule(scores.labels == pos, probs[:, pos], rule) if pos is not None else None
    scope_threshold = _scope_threshold(scores, meta.get("scope"))
    refitted = LabelledScores(**{**scores.__dict__, "probs": probs})
    if scope_threshold is not None:
        refitted.in_scope = _in_scope_at(scores, meta["scope"]["threshold"], scope_threshold)
    after = evaluation_metrics(refitted, threshold, pos)
    cal = Calibration(rule, float(temperature), threshold, scope_threshold, before, after, probs)
    cal.problems = degeneracy(cal, scores.labels, pos)
    return cal


def degeneracy(cal: Calibration, labels: np.ndarray, pos: int | None) -> list[str]:
    """Why ``cal`` cannot be trusted, one plain sentence each (empty when it can); see the module's docstring."""
    problems = []
    lo, hi = TEMPERATURE_BOUNDS
    if cal.temperature <= lo * 1.01 or cal.temperature >= hi * 0.99:
        side = "lower" if cal.temperature <= lo * 1.01 else "upper"
        problems.append(f"the temperature {cal.temperature:.3g} is at the {side} bound of its search range "
                        f"({lo:g} to {hi:g}): the probabilities it gives are not calibrated")
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=cal.probs.shape[1])
    if counts.min() < MIN_RELIABLE:
        problems.append(f"too few images to fit an operating point ({', '.join(str(int(c)) for c in counts)} per class; "
                        f"at least {MIN_RELIABLE} per class are needed)")
    if pos is None or cal.threshold is None:
        return problems
    t = cal.threshold
    if t < EDGE or t > 1 - EDGE:
        problems.append(f"the threshold {t:.6f} is at the edge of the probability range")
    y = np.asarray(labels) == pos
    p = cal.probs[:, pos]
    if y.any() and (~y).any() and p[y].min() > p[~y].max():
        problems.append(f"the classes do not overlap: every threshold between {p[~y].max():.6g} and {p[y].min():.6g} "
                        "separates them perfectly, so the threshold is not identified (nor the temperature: the fit "
                        "sharpens without end)")
    sens, spec = M.sensitivity_specificity(y, p, t)
    if not (np.isclose(sens, cal.after.get("sensitivity", np.nan)) and np.isclose(spec, cal.after.get("specificity", np.nan))):
        problems.append(f"the figures disagree: sensitivity {sens:.3f} and specificity {spec:.3f} at the threshold, "
                        f"{cal.after.get('sensitivity')} and {cal.after.get('specificity')} in the table")
    return problems


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
        "folder": scores.folder.name, "folder_path": str(Path(scores.folder).resolve()), "images": scores.counts(),
        "accepted_degenerate": list(cal.problems),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "rule": cal.rule,
        "source_model": source.name, "weights_sha256": weights_digest(source),
        "previous": {"threshold": meta.get("threshold"), "temperature": meta.get("temperature"),
                     "scope_threshold": (meta.get("scope") or {}).get("threshold")},
        "metrics": _summary(cal.after), "metrics_before": _summary(cal.before),
        "population": scores.population_counts(),
    }
    return updates


def _summary(m: dict) -> dict:
    return {k: (None if isinstance(m[k], float) and not math.isfinite(m[k]) else m[k]) for k in _KEPT if k in m}


def write_calibrated(cal: Calibration, scores: LabelledScores, source: str | Path, out: str | Path,
                     overwrite: bool = False, accept_degenerate: bool = False) -> Path:
    """Write the calibrated model file ``out`` (weights byte-identical to ``source``) and its model card.

    A degenerate ``cal`` raises :class:`DegenerateCalibration` (nothing written) unless ``accept_degenerate``.
    """
    from ..model.checkpoint import read_header

    if cal.problems and not accept_degenerate:
        raise DegenerateCalibration(cal.problems)
    from ..model.model_update import write_with_metadata
    from ..training.model_card import write_model_card

    source = Path(source)
    path = write_with_metadata(source, out, calibration_metadata(cal, scores, source, read_header(source)), overwrite)
    write_model_card(path)
    return path
