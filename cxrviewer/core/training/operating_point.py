"""The protocol's operating point written into a model file (``docs/selection-protocol.md``, section 6).

:func:`write_protocol_threshold` copies a model file with its decision threshold replaced by the
``protocol`` rule's, and the protocol's summary at that threshold in its metadata (``meta["protocol"]``),
which the model card shows. The weights are copied unchanged (same dtype). Given the clean validation
probabilities, the copy's validation metrics are recomputed at the new threshold; the trainer's ones (at its
own threshold) are kept beside them under another name, and the trainer's shifted-view table, which was
measured at the old threshold, is dropped (the protocol table replaces it). A file that already carries a
protocol threshold can be rescored the same way (say, once its recipe's cross-batch models exist): its
validation row is then replaced, not kept as a trainer's.
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path

import numpy as np
import torch

from ..errors import CxrError
from ..model.checkpoint import load_model, save_model
from . import metrics
from .model_card import write_model_card
from .report import jsonable


def protocol_summary(full: dict, cross_batch: list[dict], score: dict, command: str | None = None) -> dict:
    """What the card shows: sensitivity and specificity at the protocol threshold for clean validation
    and per suite family (mean over levels, and the worst level's specificity), the cross-batch check
    with each cross-batch model's training command, and ``command``: the scoring command that wrote it."""
    families: dict[str, list[dict]] = {}
    for v in full["views"]:
        families.setdefault(v["family"], []).append(v["at_protocol_threshold"])
    per_family = {fam: {"sensitivity": float(np.mean([r["sensitivity"] for r in rows])),
                        "specificity": float(np.mean([r["specificity"] for r in rows])),
                        "worst_specificity": float(min(r["specificity"] for r in rows))} for fam, rows in families.items()}
    xb = {c["held_out"]["batch"]: {"auroc": c["held_out"]["auroc"], "spec95": c["held_out"]["spec95"],
                                   "specificity_at_own_threshold": c["held_out"]["specificity"],
                                   **({"command": c["command"]} if c.get("command") else {})} for c in cross_batch}
    return {"rule": "protocol", "threshold": full["protocol_threshold"], "clean": full["clean_at_protocol_threshold"],
            "families": per_family, "cross_batch": xb, "score": score,
            **({"robustness": full["robustness"]} if full.get("robustness") else {}),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            **({"command": command} if command else {})}


def write_protocol_threshold(model_path: Path, out_path: Path, full: dict, cross_batch: list[dict], score: dict,
                             clean: tuple[np.ndarray, np.ndarray] | None = None, command: str | None = None) -> Path:
    """Write ``out_path``: ``model_path`` with the protocol threshold and summary, and its card beside it.

    ``clean``: (labels, positive-class probabilities) of the clean validation images, 1 = positive.
    ``command``: the scoring command, recorded so that the card can show how to reproduce it.
    """
    if not full.get("complete"):
        raise CxrError("the protocol threshold needs the whole suite scored (17 families)")
    if Path(out_path).resolve() == Path(model_path).resolve():
        raise CxrError("--write-threshold must name a new file; the scored model file stays as it is")
    if Path(out_path).exists():
        raise CxrError(f"{out_path} exists; choose a new name")
    model = load_model(model_path)
    from safetensors import safe_open

    with safe_open(str(model_path), framework="pt") as f:
        half = any(f.get_slice(k).get_dtype() == "F16" for k in f.keys())
    threshold = float(full["protocol_threshold"])
    # A file that already has a protocol threshold is being rescored (e.g. with cross-batch models scored
    # since): its notes already say where the weights came from, and its validation row is no trainer's.
    rescoring = isinstance(model.meta.get("protocol"), dict)
    training = dict(model.meta.get("training") or {})
    if rescoring:  # the latest rescoring replaces an earlier one's note
        before = re.sub(r"(; )?protocol summary rescored [^;]*", "", training.get("calibration") or "")
        training["calibration"] = (f"{before}; protocol summary rescored "
                                   f"{_dt.date.today().isoformat()} from {Path(model_path).name} (threshold {threshold:.4f})").lstrip("; ")
    else:
        before = f"{training['calibration']}; then the " if training.get("calibration") else ""
        training["calibration"] = before + (f"threshold set to {threshold:.4f} by the protocol rule "
                                   "(docs/selection-protocol.md, section 6) with cxrviewer.core.training.protocol; "
                                   f"weights and temperature those of {Path(model_path).name}, whose card has the training plots")
    meta = {"threshold": threshold, "protocol": jsonable(protocol_summary(full, cross_batch, score, command)),
            "training": training}
    if clean is not None:
        meta["metrics"] = _metrics_at(model, threshold, *clean, rescoring=rescoring)
    model.meta.pop("file", None)
    out = save_model(model.to(memory_format=torch.contiguous_format), out_path, meta=meta, half=half)
    write_model_card(out)
    return out


def _metrics_at(model, threshold: float, labels: np.ndarray, positive_probs: np.ndarray, rescoring: bool = False) -> dict:
    """The model's metrics with ``validation`` recomputed at ``threshold`` (the trainer's kept as
    ``validation, trainer's threshold T``; when ``rescoring``, the old row is a previous protocol
    threshold's and is replaced) and without the trainer's shifted views."""
    old = dict(model.meta.get("metrics") or {})
    pos = model.positive_index
    p = np.asarray(positive_probs, dtype=np.float64)
    probs = np.stack([1 - p, p], axis=1) if pos == 1 else np.stack([p, 1 - p], axis=1)
    y = np.where(np.asarray(labels) == 1, pos, 1 - pos)
    new = {"validation": metrics.classification_metrics(probs, y, model.class_names, threshold=threshold, positive_index=pos)}
    trainer = old.pop("validation", None)
    if not rescoring and isinstance(trainer, dict) and trainer.get("threshold") is not None:
        new[f"validation, trainer's threshold {trainer['threshold']:.3f}"] = trainer
    old.pop("validation_shifted", None)
    return jsonable({**new, **old})
