"""Evaluate a model on a site's labelled folder: metrics.json and plots.

A labelled folder holds one sub-folder per class, named as the model's classes (the layout
the trainer reads). Every image is scored by the same :class:`~cxrviewer.core.batch.inference.Predictor` that
``predict`` and the viewer use, so the figures are those of the app at its operating point.
Metrics cover every readable image (out-of-scope ones included: their probabilities are
kept); the in-scope rate and each out-of-scope file with its reason are reported beside them.
"""

from __future__ import annotations

import datetime as _dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CxrError
from ..model.classifier import CamClassifier
from ..training import metrics as M
from ..training.data import Sample, list_samples


class EvaluationError(CxrError):
    """A labelled folder that cannot be used (one class, too few images, classes not the model's)."""


@dataclass
class LabelledScores:
    """The model's output on a labelled folder: one row per readable image."""

    folder: Path
    class_names: list[str]
    paths: list[Path]
    labels: np.ndarray            # N, index into class_names
    logits: np.ndarray            # N x K
    probs: np.ndarray             # N x K, at the model's temperature
    scope_scores: np.ndarray      # N, NaN without scope statistics
    in_scope: np.ndarray          # N, bool
    scope_reasons: list[str | None]
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {c: int((self.labels == i).sum()) for i, c in enumerate(self.class_names)}


def read_labelled_folder(folder: str | Path, class_names: list[str], min_per_class: int = 1) -> list[Sample]:
    """The images of ``folder/CLASS/``, labelled by the model's class index; refusals raise :class:`EvaluationError`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EvaluationError(f"{folder}: no such folder")
    subdirs = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(subdirs) < 2:
        raise EvaluationError(f"{folder.name}: needs one sub-folder per class ({', '.join(class_names)}); "
                              f"found {len(subdirs)} ({', '.join(subdirs) or 'none'})")
    if set(subdirs) != set(class_names):
        raise EvaluationError(f"{folder.name}: its classes ({', '.join(subdirs)}) do not match the model's "
                              f"({', '.join(class_names)})")
    samples = list_samples(folder, list(class_names))
    counts = {c: sum(s.label == i for s in samples) for i, c in enumerate(class_names)}
    short = {c: n for c, n in counts.items() if n < min_per_class}
    if short:
        raise EvaluationError(f"{folder.name}: needs at least {min_per_class} images per class; "
                              + ", ".join(f"{c} has {n}" for c, n in short.items()))
    return samples


def score_folder(model: CamClassifier, samples: list[Sample], folder: str | Path, device=None, batch_size: int = 16,
                 cancel: threading.Event | None = None,
                 progress: Callable[[int, int], None] | None = None) -> LabelledScores:
    """Run the model over ``samples`` with the app's batch engine; unreadable files are listed in ``failed``."""
    from ..batch.inference import Predictor

    predictor = Predictor(model, device=device, batch_size=batch_size)
    rows, failed = [], []
    for r in predictor.predict([s.path for s in samples], cancel=cancel, progress=progress):
        if r.ok:
            rows.append(r)
        else:
            failed.append((r.path, r.error))
    if cancel is not None and cancel.is_set():
        raise EvaluationError("cancelled")
    label_of = {s.path: s.label for s in samples}
    k = len(model.class_names)
    return LabelledScores(
        folder=Path(folder), class_names=model.class_names, paths=[r.path for r in rows],
        labels=np.array([label_of[r.path] for r in rows], dtype=np.int64),
        logits=np.array([r.logits for r in rows], dtype=np.float64).reshape(-1, k),
        probs=np.array([[r.probs[c] for c in model.class_names] for r in rows], dtype=np.float64).reshape(-1, k),
        scope_scores=np.array([np.nan if getattr(r, "scope_score", None) is None else r.scope_score for r in rows]),
        in_scope=np.array([bool(getattr(r, "in_scope", True)) for r in rows], dtype=bool),
        scope_reasons=[getattr(r, "scope_reason", None) for r in rows], failed=failed)


def evaluation_metrics(scores: LabelledScores, threshold: float | None, positive_index: int | None) -> dict:
    """JSON-ready metrics of ``scores`` at ``threshold`` (see :func:`cxrviewer.core.training.metrics.classification_metrics`),
    plus the in-scope rate, the files out of scope and the files that failed."""
    if len(scores.labels) == 0:
        raise EvaluationError(f"{scores.folder.name}: no image could be read")
    m = M.classification_metrics(scores.probs, scores.labels, scores.class_names, threshold, positive_index)
    m.update(
        folder=scores.folder.name, images_per_class=scores.counts(),
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        in_scope_rate=float(scores.in_scope.mean()),
        out_of_scope=[{"file": str(p), "reason": r} for p, r, ok in zip(scores.paths, scores.scope_reasons, scores.in_scope) if not ok],
        failed=[{"file": str(p), "error": e} for p, e in scores.failed])
    return m


def faithfulness_on_folder(model: CamClassifier, scores: LabelledScores, images: int,
                           device=None, seed: int = 0) -> dict | None:
    """Deletion and insertion (:func:`cxrviewer.core.explain.audit.faithfulness_section`) on at most ``images`` of the scored files.

    The files are drawn as evenly as possible per predicted class (seeded), read exactly as
    ``predict`` reads them, and scored for their predicted class: the evidence map, Grad-CAM
    (peer), a random and a centred-prior map (floors), mean and blur fill. None when ``images`` is 0.
    """
    import torch

    from ..explain.audit import faithfulness_section, stratified_subset
    from ..io.reading import load_radiograph
    from ..io.radiograph import to_model_input

    if images <= 0 or len(scores.paths) == 0:
        return None
    predicted = torch.as_tensor(M.predict(scores.probs, model.threshold, model.positive_index))
    decided = torch.nonzero(predicted >= 0).flatten()
    pick = decided[stratified_subset(predicted[decided], images, seed)].tolist()
    size = model.input_size
    grey = torch.from_numpy(np.stack([to_model_input(load_radiograph(scores.paths[i], target_size=size).pixels, size)
                                      for i in pick]))[:, None]
    was_training, where = model.training, next(model.parameters()).device
    model.eval().to(device or "cpu")
    try:
        x = grey.to(next(model.parameters()).device)
        section = faithfulness_section(model, x, predicted[pick].to(x.device), seed=seed)
    finally:
        model.train(was_training).to(where)
    section["files"] = [str(scores.paths[i]) for i in pick]
    return section


def disagreements(scores: LabelledScores, threshold: float | None, positive_index: int | None) -> dict[Path, str]:
    """Files whose predicted class differs from their folder's label: path -> the folder's class name."""
    pred = M.predict(scores.probs, threshold, positive_index)
    return {p: scores.class_names[y] for p, y, q in zip(scores.paths, scores.labels, pred) if y != q}


def plot_threshold_sweep(y_pos, p_pos, path, marks: dict[str, float] | None = None,
                         title: str = "Sensitivity and specificity against threshold") -> Path:
    """Sensitivity and specificity of ``p >= t`` for t in [0, 1], with vertical lines at ``marks`` (label -> t)."""
    from ..training.report import _figure, _save

    fig, ax = _figure(7, 4.5)
    draw_threshold_sweep(ax, y_pos, p_pos, marks, title)
    return _save(fig, path)


def draw_threshold_sweep(ax, y_pos, p_pos, marks: dict[str, float] | None = None,
                         title: str = "Sensitivity and specificity against threshold") -> None:
    """:func:`plot_threshold_sweep` on ``ax``."""
    y = np.asarray(y_pos).astype(bool)
    p = np.asarray(p_pos, dtype=np.float64)
    t = np.linspace(0.0, 1.0, 501)
    pred = p[None, :] >= t[:, None]
    with np.errstate(invalid="ignore"):
        sens = pred[:, y].mean(axis=1) if y.any() else np.full(t.shape, np.nan)
        spec = (~pred[:, ~y]).mean(axis=1) if (~y).any() else np.full(t.shape, np.nan)
    ax.plot(t, sens, color="tab:red", lw=2, label="sensitivity")
    ax.plot(t, spec, color="tab:blue", lw=2, label="specificity")
    for (name, value), style in zip((marks or {}).items(), ("--", ":", "-.")):
        if value is not None:
            i = int(np.argmin(np.abs(t - value)))
            ax.axvline(value, color="black", ls=style, lw=1,
                       label=f"{name}: t = {value:.3f} (sens {sens[i]:.3f}, spec {spec[i]:.3f})")
    ax.set(xlim=(0, 1), ylim=(-0.01, 1.01), title=title, xlabel="threshold on the positive-class probability",
           ylabel="rate")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)


def write_evaluation(out_dir: str | Path, scores: LabelledScores, metrics: dict,
                     marks: dict[str, float] | None = None) -> list[Path]:
    """Write ``metrics.json`` and ``roc.png``, ``confusion.png``, ``reliability.png`` (and for two classes
    ``threshold_sweep.png``) into ``out_dir``; return the paths."""
    from ..training.report import _plot_roc_ovr, plot_confusion, plot_reliability, plot_roc, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names, threshold, pos = scores.class_names, metrics.get("threshold"), metrics.get("positive_index")
    written = []
    if len(names) == 2:
        y = scores.labels == pos
        written.append(plot_roc(y, scores.probs[:, pos], out / "roc.png", threshold,
                                title=f"ROC, {metrics['folder']} ({names[pos]} positive)"))
        written.append(plot_threshold_sweep(y, scores.probs[:, pos], out / "threshold_sweep.png",
                                            marks or {"model threshold": threshold}))
    else:
        written.append(_plot_roc_ovr(scores.probs, scores.labels, names, out / "roc.png",
                                     title=f"ROC one-vs-rest, {metrics['folder']}"))
    written.append(plot_confusion(metrics["confusion_matrix"], names, out / "confusion.png",
                                  title=f"{metrics['folder']} confusion"))
    written.append(plot_reliability(scores.probs, scores.labels, out / "reliability.png",
                                    title=f"{metrics['folder']} reliability"))
    write_json(metrics, out / "metrics.json")
    return [out / "metrics.json", *written]
