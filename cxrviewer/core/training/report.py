"""Training report: ``metrics.json`` and PNG plots (history, ROC, confusion, reliability).

Figures are drawn on ``matplotlib.figure.Figure`` with the Agg canvas: no pyplot, no GUI.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from .. import atomic
from . import metrics as M

DPI = 120


def report_dir(model_path: str | Path) -> Path:
    """The folder beside a model file that holds its training report and checkpoint: ``<name>_report/``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + "_report")


def _figure(width: float, height: float, ncols: int = 1, **kw) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, ncols, **kw)


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def _num(v) -> float:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return float("nan")
    return v


def plot_history(history: list[dict], path) -> Path:
    """Loss (train, validation) and validation AUROC per epoch, best epoch marked."""
    fig, (ax_loss, ax_auc) = _figure(10, 4, ncols=2)
    epochs = np.array([_num(r.get("epoch", i + 1)) for i, r in enumerate(history)])

    def series(key):
        v = np.array([_num(r.get(key)) for r in history])
        ok = np.isfinite(v) & np.isfinite(epochs)
        return epochs[ok], v[ok]

    for key, label, style in (("train_loss", "train", "o-"), ("val_loss", "validation", "s-")):
        x, v = series(key)
        if x.size:
            ax_loss.plot(x, v, style, ms=3, label=label)
    x, v = series("val_auroc")
    if x.size:
        ax_auc.plot(x, v, "o-", ms=3, color="tab:green", label="validation AUROC")
    x_lr, lr = series("lr")
    ax_lr = None
    if x_lr.size and np.any(lr > 0):
        ax_lr = ax_auc.twinx()
        ax_lr.plot(x_lr, lr, ":", color="grey", label="learning rate")
        ax_lr.set_ylabel("learning rate", color="grey")
        ax_lr.tick_params(axis="y", colors="grey")
        ax_lr.set_ylim(0, lr.max() * 1.05)
        ax_lr.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))
    best = M.best_epoch(history)
    if best is not None:
        e, auc = epochs[best], _num(history[best]["val_auroc"])
        for ax in (ax_loss, ax_auc):
            ax.axvline(e, color="tab:red", ls="--", lw=1, label=f"best epoch {e:g}")
        ax_auc.plot([e], [auc], "*", ms=12, color="tab:red", label=f"best AUROC {auc:.4f}")
    ax_loss.set(title="Loss", xlabel="epoch", ylabel="loss")
    ax_auc.set(title="Validation AUROC", xlabel="epoch", ylabel="AUROC")
    for ax in (ax_loss, ax_auc):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        handles, labels = ax.get_legend_handles_labels()
        if ax is ax_auc and ax_lr is not None:
            more = ax_lr.get_legend_handles_labels()
            handles, labels = handles + more[0], labels + more[1]
        if handles:
            ax.legend(handles, labels, loc="best", fontsize=8)
    if not history:
        ax_loss.text(0.5, 0.5, "no epochs", ha="center", va="center", transform=ax_loss.transAxes)
    return _save(fig, path)


def _roc_axes(ax, title: str) -> None:
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="chance")
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), aspect="equal", title=title,
           xlabel="false positive rate (1 - specificity)", ylabel="true positive rate (sensitivity)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)


def plot_roc(y_pos, p_pos, path, threshold: float | None = None, title: str = "ROC curve") -> Path:
    """ROC curve of ``p_pos`` for binary labels ``y_pos``, with the operating point at ``threshold``."""
    fig, ax = _figure(6, 4.5)
    draw_roc(ax, y_pos, p_pos, threshold, title)
    return _save(fig, path)


def draw_roc(ax, y_pos, p_pos, threshold: float | None = None, title: str = "ROC curve",
             points: dict[str, tuple[float, float]] | None = None) -> None:
    """:func:`plot_roc` on ``ax``; ``points``: more operating points, label -> (sensitivity, specificity)."""
    fpr, tpr, _ = M.roc_curve(y_pos, p_pos)
    auc = M.auroc(y_pos, p_pos)
    ax.plot(fpr, tpr, color="tab:blue", lw=2, label=f"ROC (AUROC {auc:.4f})")
    if threshold is not None:
        sens, spec = M.sensitivity_specificity(y_pos, p_pos, threshold)
        ax.plot([1 - spec], [sens], "o", ms=8, color="tab:red",
                label=f"p >= {threshold:.3f}: sens {sens:.3f}, spec {spec:.3f}")
    for (name, (sens, spec)), marker in zip((points or {}).items(), "s^Dv"):
        ax.plot([1 - spec], [sens], marker, ms=8, color="tab:green", label=f"{name}: sens {sens:.3f}, spec {spec:.3f}")
    _roc_axes(ax, title)


def _plot_roc_ovr(probs, labels, class_names, path, title: str) -> Path:
    """One-vs-rest ROC curves, one per class."""
    fig, ax = _figure(6, 4.5)
    labels = np.asarray(labels)
    for i, name in enumerate(class_names):
        y = labels == i
        if y.all() or not y.any():
            continue
        fpr, tpr, _ = M.roc_curve(y, probs[:, i])
        ax.plot(fpr, tpr, lw=1.5, label=f"{name} vs rest ({M.auroc(y, probs[:, i]):.3f})")
    _roc_axes(ax, title)
    return _save(fig, path)


def plot_confusion(cm, class_names, path, title: str = "Confusion matrix") -> Path:
    """Confusion matrix (rows true, columns predicted): counts and row percentages."""
    k = np.asarray(cm).shape[0]
    size = max(4.5, 1.2 * k + 2.5)
    fig, ax = _figure(size + 1.5, size)
    draw_confusion(ax, cm, class_names, title)
    return _save(fig, path)


def draw_confusion(ax, cm, class_names, title: str = "Confusion matrix") -> None:
    """:func:`plot_confusion` on ``ax`` (its figure gets the colour bar)."""
    cm = np.asarray(cm, dtype=np.int64)
    k = cm.shape[0]
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    ax.figure.colorbar(im, ax=ax, label="fraction of true class")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{cm[i, j]}\n{100 * frac[i, j]:.1f}%", ha="center", va="center",
                    color="white" if frac[i, j] > 0.5 else "black", fontsize=11)
    names = [str(c) for c in class_names]
    ax.set_xticks(range(k), names)
    ax.set_yticks(range(k), names)
    ax.set(title=f"{title} (n = {int(cm.sum())})", xlabel="predicted class", ylabel="true class")


def plot_reliability(probs, labels, path, title: str = "Reliability", n_bins: int = 15) -> Path:
    """Reliability diagram (accuracy per confidence bin against the diagonal) and bin counts."""
    fig, (ax, ax_n) = _figure(10, 4, ncols=2)
    draw_reliability(ax, ax_n, probs, labels, title, n_bins)
    return _save(fig, path)


def draw_reliability(ax, ax_n, probs, labels, title: str = "Reliability", n_bins: int = 15) -> None:
    """:func:`plot_reliability` on ``ax`` (the diagram) and ``ax_n`` (the bin counts)."""
    b = M.reliability_bins(probs, labels, n_bins)
    ece = M.expected_calibration_error(probs, labels, n_bins)
    edges, count = b["bin_edges"], b["count"]
    width = np.diff(edges)
    filled = count > 0
    ax.bar(edges[:-1][filled], b["accuracy"][filled], width=width[filled], align="edge",
           color="tab:blue", edgecolor="black", lw=0.5, alpha=0.8, label="accuracy")
    acc, conf = b["accuracy"][filled], b["confidence"][filled]
    ax.bar(edges[:-1][filled], np.abs(acc - conf), bottom=np.minimum(acc, conf), width=width[filled],
           align="edge", color="tab:red", alpha=0.3, hatch="//", edgecolor="tab:red", lw=0.5,
           label="gap to mean confidence")
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), title=f"{title} (ECE {ece:.4f})",
           xlabel="confidence (top-label probability)", ylabel="accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    ax_n.bar(edges[:-1], count, width=width, align="edge", color="tab:grey", edgecolor="black", lw=0.5)
    ax_n.set(xlim=(0, 1), title=f"Predictions per bin (n = {int(count.sum())})",
             xlabel="confidence (top-label probability)", ylabel="count")
    if count.max(initial=0) > 0 and count[filled].max() > 20 * max(count[filled].min(), 1):
        ax_n.set_yscale("log")
    ax_n.grid(alpha=0.3)


def jsonable(obj):
    """Plain-JSON copy of ``obj``: numpy scalars/arrays unwrapped, NaN and inf become None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(data, path: Path) -> None:
    """Write ``data`` as strict JSON, atomically (temporary file, then rename)."""
    atomic.write_json(path, jsonable(data), allow_nan=False)


def write_report(out_dir, history: list[dict], splits: dict[str, dict],
                 extra: dict | None = None) -> list[Path]:
    """Write ``metrics.json`` and the plots for each split into ``out_dir``; return the paths.

    ``splits`` maps a split name to ``dict(probs, labels, metrics, class_names, positive_index,
    threshold)``; ``metrics`` is computed with :func:`classification_metrics` when missing.
    ``metrics.json`` holds ``{"splits": {name: metrics}, "history": [...], **extra}`` with NaN
    written as null. Files of the same names in ``out_dir`` are replaced.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    history = list(history or [])
    written = [plot_history(history, out / "history.png")]
    summary = {}
    for name, s in splits.items():
        probs = np.asarray(s["probs"], dtype=np.float64)
        labels = np.asarray(s["labels"]).astype(np.int64)
        names = list(s.get("class_names") or [str(i) for i in range(probs.shape[1])])
        threshold, pos = s.get("threshold"), s.get("positive_index")
        m = s.get("metrics") or M.classification_metrics(probs, labels, names, threshold, pos)
        summary[name] = m
        label = name.capitalize()
        if probs.shape[1] == 2:
            pos = 1 if pos is None else int(pos)
            written.append(plot_roc(labels == pos, probs[:, pos], out / f"roc_{name}.png", threshold,
                                    title=f"ROC, {name} ({names[pos]} positive)"))
        else:
            written.append(_plot_roc_ovr(probs, labels, names, out / f"roc_{name}.png",
                                         title=f"ROC one-vs-rest, {name}"))
        written.append(plot_confusion(m["confusion_matrix"], names, out / f"confusion_{name}.png",
                                      title=f"{label} confusion"))
        written.append(plot_reliability(probs, labels, out / f"reliability_{name}.png",
                                        title=f"{label} reliability"))
    data = {"splits": summary, "history": history, **(extra or {})}
    write_json(data, out / "metrics.json")
    written.insert(0, out / "metrics.json")
    return written
