"""Calibration on validation (temperature, decision threshold, CAM display range) and the per-split scores.

Both run in float32, as the viewer and ``predict`` run the model, on every rank (evaluation gathers
the shards); only rank 0 writes what they return.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from ..model.classifier import CamClassifier
from ..results.overlay import class_evidence
from . import metrics
from .engine import evaluate
from .runtime import Runtime, all_gather, autocast
from .shift import SHIFTS


@dataclass(frozen=True)
class Calibration:
    """What :func:`calibrate` fitted, and the validation scores it fitted them on."""

    temperature: float
    threshold: float | None                 # on the positive class's probability; None = argmax
    cam_range: list[float]                  # fixed CAM display range, logit units
    val_probs: np.ndarray                   # calibrated validation probabilities, N x K
    val_labels: np.ndarray
    shifted: dict[str, np.ndarray]          # positive-class probabilities under each shift (robust rule)

    @property
    def meta(self) -> dict:
        """The model-file metadata it sets."""
        fitted = {"temperature": self.temperature, "cam_range": self.cam_range}
        return fitted if self.threshold is None else {**fitted, "threshold": self.threshold}


def calibrate(model: CamClassifier, val_loader, rt: Runtime, threshold_rule: str) -> Calibration:
    """Fit the temperature (NLL), the two-class decision threshold (``threshold_rule``, see
    :func:`.metrics.choose_threshold`) and the CAM display range on validation.

    With the ``robust`` rule the validation split is also scored under the acquisition shifts of
    :mod:`.shift`, and the threshold maximises Youden's J averaged over the clean and shifted views.
    """
    rt = dataclasses.replace(rt, amp=False)
    ev = evaluate(model, val_loader, rt)
    temperature = float(metrics.fit_temperature(ev["logits"], ev["labels"]))
    probs = metrics.softmax(ev["logits"], temperature)
    pos, threshold, shifted = model.positive_index, None, {}
    if pos is not None:
        if threshold_rule == "robust":
            for name, fn in SHIFTS.items():
                logits = evaluate(model, val_loader, rt, transform=fn)["logits"]
                shifted[name] = metrics.softmax(logits, temperature)[:, pos]
        y = (ev["labels"] == pos).astype(int)
        threshold = float(metrics.choose_threshold(y, probs[:, pos], threshold_rule, views=list(shifted.values())))
    return Calibration(temperature, threshold, cam_range(model, val_loader, rt), probs, ev["labels"], shifted)


def score_splits(model: CamClassifier, cal: Calibration, test_loader, rt: Runtime) -> dict[str, dict]:
    """Per-split reports at the calibrated temperature and threshold: ``validation`` (with ``shifted``
    summaries under the robust rule) and, with ``test_loader``, ``test`` (see :func:`.report.write_report`)."""
    splits = {"validation": _split_report(model, cal.val_probs, cal.val_labels, cal.threshold)}
    if cal.shifted:
        y = (cal.val_labels == model.positive_index).astype(int)
        splits["validation"]["shifted"] = {name: _shift_summary(y, p, cal.threshold) for name, p in cal.shifted.items()}
    if test_loader is not None:
        et = evaluate(model, test_loader, dataclasses.replace(rt, amp=False))
        splits["test"] = _split_report(model, metrics.softmax(et["logits"], cal.temperature), et["labels"], cal.threshold)
    return splits


@torch.inference_mode()
def cam_range(model: CamClassifier, loader, rt: Runtime) -> list[float]:
    """1st and 99th percentiles of the class-evidence maps on ``loader``: the shared 'fixed' display scale.

    Uses :func:`cxrviewer.core.results.overlay.class_evidence`, the map the viewer and exports draw.
    """
    model.eval()
    values = []
    for x, _ in loader:
        x = model.normalize(x.to(rt.device).float().div_(255.0))
        with autocast(rt.device, rt.amp):
            logits, cams = model.logits_and_cams(x)
        for lg, cm in zip(logits.float().cpu().numpy(), cams.float().cpu().numpy()):
            values += [class_evidence(cm, lg, k).ravel() for k in range(len(lg))]
    mine = np.concatenate(values) if values else np.zeros(0, np.float32)
    v = np.concatenate(all_gather(rt, mine))
    lo, hi = np.percentile(v, [1, 99])
    return [round(float(lo), 3), round(float(hi), 3)]


def _split_report(model: CamClassifier, probs, labels, threshold) -> dict:
    names, pos = model.class_names, model.positive_index
    return {"probs": probs, "labels": labels, "class_names": names, "positive_index": pos, "threshold": threshold,
            "metrics": metrics.classification_metrics(probs, labels, names, threshold, pos)}


def _shift_summary(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    sensitivity, specificity = metrics.sensitivity_specificity(y, p, threshold)
    return {"auroc": round(metrics.auroc(y, p), 4), "sensitivity": round(sensitivity, 4), "specificity": round(specificity, 4)}
