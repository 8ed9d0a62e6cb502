"""Reader-study figures from the loaded batch: the AI and the reader, each against the truth.

The truth of a file is its :class:`~cxrviewer.core.results.reader_study.ReaderEntry`'s (from the folder names). The AI's
figures are those of :func:`~.evaluation.evaluation_metrics` on the stored probabilities (at the
live threshold); the reader's come from the confusion matrix of their labels. Qt-free.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..results.file_result import FileResult
from .evaluation import EvaluationError, LabelledScores, evaluation_metrics


def _truth(r: FileResult) -> str | None:
    entry = getattr(r, "reader", None)
    return entry.truth if entry is not None else None


def scores_from_results(results: Iterable[FileResult], class_names: list[str], folder: Path) -> LabelledScores:
    """The batch's scored files that have a truth, as :class:`LabelledScores` (no model run)."""
    names = list(class_names)
    rows = [r for r in results if r.ok and r.probs and r.logits is not None and _truth(r) in names]
    if not rows:
        raise EvaluationError(f"{Path(folder).name}: no classified image lies in a folder named as a class "
                              f"({', '.join(names)})")
    k = len(names)
    return LabelledScores(
        folder=Path(folder), class_names=names, paths=[r.path for r in rows],
        labels=np.array([names.index(_truth(r)) for r in rows], dtype=np.int64),
        logits=np.array([r.logits for r in rows], dtype=np.float64).reshape(-1, k),
        probs=np.array([[r.probs[c] for c in names] for r in rows], dtype=np.float64).reshape(-1, k),
        scope_scores=np.array([np.nan if r.scope_score is None else r.scope_score for r in rows]),
        in_scope=np.array([r.in_scope is not False for r in rows], dtype=bool),
        scope_reasons=[r.scope_reason for r in rows])


def confusion_matrix(truth: list[str], called: list[str], class_names: list[str]) -> np.ndarray:
    """K x K counts, rows the truth and columns the call, of the pairs whose both classes are in ``class_names``."""
    index = {c: i for i, c in enumerate(class_names)}
    cm = np.zeros((len(class_names), len(class_names)), dtype=np.int64)
    for t, c in zip(truth, called):
        if t in index and c in index:
            cm[index[t], index[c]] += 1
    return cm


def _ratio(a, b) -> float:
    return float(a / b) if b else float("nan")


def rates(cm: np.ndarray, positive_index: int | None) -> dict:
    """Accuracy, and for two classes the sensitivity and specificity of ``positive_index``, from counts."""
    cm = np.asarray(cm)
    out = {"n": int(cm.sum()), "accuracy": _ratio(np.trace(cm), cm.sum()), "confusion_matrix": cm.tolist()}
    if cm.shape == (2, 2) and positive_index is not None:
        p, q = positive_index, 1 - positive_index
        out.update(sensitivity=_ratio(cm[p, p], cm[p].sum()), specificity=_ratio(cm[q, q], cm[q].sum()))
    return out


def reader_metrics(results: Iterable[FileResult], class_names: list[str], positive: str | None) -> dict:
    """The reader's figures against the truth: confusion matrix, accuracy, sensitivity and specificity,
    plus ``unread`` (files with a truth but no reader label) and ``agree_with_ai`` (share of read files)."""
    names = list(class_names)
    with_truth = [r for r in results if _truth(r) in names]
    read = [r for r in with_truth if r.reader.label in names]
    cm = confusion_matrix([_truth(r) for r in read], [r.reader.label for r in read], names)
    out = rates(cm, names.index(positive) if positive in names else None)
    same = [r.reader.label == r.label for r in read if r.ok and r.label in names]
    out.update(unread=len(with_truth) - len(read), agree_with_ai=_ratio(sum(same), len(same)))
    return out


@dataclass
class StudyReport:
    """What the Evaluate window shows: the scores with truth, the AI's metrics at ``threshold``, the reader's."""

    scores: LabelledScores
    ai: dict
    reader: dict
    threshold: float | None
    positive_index: int | None


def study_report(results: list[FileResult], class_names: list[str], positive: str | None, threshold: float | None,
                 folder: Path) -> StudyReport:
    """The AI (at ``threshold``, from stored probabilities) and the reader against the truth of the loaded batch."""
    scores = scores_from_results(results, class_names, folder)
    pos = class_names.index(positive) if positive in class_names else None
    ai = evaluation_metrics(scores, threshold if pos is not None else None, pos)
    return StudyReport(scores, ai, reader_metrics(results, class_names, positive), threshold, pos)
