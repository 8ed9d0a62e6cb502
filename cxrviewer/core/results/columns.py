"""The result columns, declared once: the CSV writer, the results table and the details panel read these specs.

A :class:`Column` says how to get one value from a :class:`~cxrviewer.core.results.file_result.FileResult`
(plus the :class:`Batch` every row of a run shares: classes, threshold, model name), how to
show it as text, how to sort it and how wide it wants to be. A new ``FileResult`` field
becomes a new column here and nowhere else::

    batch = Batch.of(model)
    for col in csv_columns(batch):
        print(col.header, col.text(result, batch))

Qt-free; the table model maps its display and sort roles onto :meth:`Column.text` and
:meth:`Column.sort_key`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .file_result import FileResult
from .reader_study import agreement


@dataclass(frozen=True)
class Batch:
    """What every row of one run shares: the model's classes, positive class, threshold and display name."""

    class_names: tuple[str, ...] = ()
    positive: str | None = None
    threshold: float | None = None
    model_name: str = ""

    @classmethod
    def of(cls, model: Any) -> Batch:
        """The batch facts of a :class:`~cxrviewer.core.model.classifier.CamClassifier` (``None``: no model)."""
        if model is None:
            return cls()
        pos = model.positive_index
        positive = model.class_names[pos] if pos is not None and model.threshold is not None else None
        return cls(tuple(model.class_names), positive, model.threshold, model.display_name)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _probability(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def percent(value: float | None) -> str:
    """A probability as people read it: one decimal, "> 99.9%" and "< 0.1%" at the ends (never "100.0%")."""
    if value is None:
        return ""
    if value > 0.999:
        return "> 99.9%"
    if value < 0.001:
        return "< 0.1%"
    return f"{100 * value:.1f}%"


def _missing_last(value: Any) -> tuple:
    """Sort key: present values in their natural order, missing ones (None, "") after them."""
    return (1, 0) if value is None or value == "" else (0, value)


@dataclass(frozen=True)
class Column:
    """One result column.

    ``key``: stable name (the CSV header); ``header``: what people read (table, details);
    ``get(result, batch)``: the raw value, ``None`` when there is none; ``fmt``: raw value ->
    text; ``sort``: raw value -> sort key; ``width``: a width hint in pixels; ``tip``: tooltip.
    """

    key: str
    header: str
    get: Callable[[FileResult, Batch], Any]
    fmt: Callable[[Any], str] = _text
    sort: Callable[[Any], Any] = _missing_last
    width: int = 80
    tip: str = ""

    def text(self, result: FileResult, batch: Batch) -> str:
        return self.fmt(self.get(result, batch))

    def sort_key(self, result: FileResult, batch: Batch) -> Any:
        return self.sort(self.get(result, batch))


def shown_probability(result: FileResult, batch: Batch) -> float | None:
    """The one probability a row shows: the positive class's (thresholded two-class model), else the predicted class's."""
    if not result.ok or not result.probs:
        return None
    if batch.positive and batch.positive in result.probs:
        return result.probs[batch.positive]
    return result.probs.get(result.label or "", max(result.probs.values()))


def _size(i: int) -> Callable[[FileResult, Batch], int | None]:
    return lambda r, b: r.image_size[i] if r.image_size else None


PATH = Column("path", "Path", lambda r, b: r.path, width=320, tip="The file as it was given or found")
NAME = Column("name", "File", lambda r, b: r.path.name, sort=lambda v: (v.casefold(), v), width=220)
LABEL = Column("label", "Class", lambda r, b: r.label if r.ok else None, width=96,
               tip="The model's decision; OUT_OF_SCOPE when the image is not one the model may answer")
IN_SCOPE = Column("in_scope", "In scope", lambda r, b: r.in_scope if r.ok else None,
                  fmt=lambda v: "" if v is None else ("yes" if v else "no"), width=70,
                  tip="Whether the image is a chest radiograph the model may answer")
SCOPE_SCORE = Column("scope_score", "Scope score", lambda r, b: r.scope_score if r.ok else None,
                     fmt=lambda v: "" if v is None else f"{v:.4f}", width=84,
                     tip="Distance of the image's features from the model's training radiographs (lower = more familiar)")
SCOPE_REASON = Column("scope_reason", "Out of scope because", lambda r, b: r.scope_reason if r.ok else None,
                      width=320, tip="Why the image is out of scope")
ERROR = Column("error", "Error", lambda r, b: r.error, width=240, tip="Why the file could not be classified")
THRESHOLD = Column("threshold", "Threshold", lambda r, b: b.threshold, fmt=_probability, width=80,
                   tip="Decision threshold on the positive class's probability")
WIDTH = Column("width", "Width", _size(0), width=62, tip="Width of the original image in pixels")
HEIGHT = Column("height", "Height", _size(1), width=62, tip="Height of the original image in pixels")
FORMAT = Column("format", "Format", lambda r, b: r.meta.get("format") or None, width=62)
MODEL = Column("model", "Model", lambda r, b: b.model_name or None, width=140)
PRECISION = Column("precision", "Precision", lambda r, b: r.precision if r.ok else None, width=80,
                   tip="Floating-point type the model ran in (float32, bfloat16, float16)")
OVERLAY = Column("overlay", "Overlay", lambda r, b: r.overlay, width=240, tip="The overlay PNG written for this file")


def _checks(get: Callable[[Any], Any]) -> Callable[[FileResult, Batch], Any]:
    """Getter of one field of a result's verdict checks (None when the checks did not run)."""
    return lambda r, b: get(r.checks) if r.ok and r.checks is not None else None


#: What the stability columns say when the check was not run (``predict`` without ``--stability``).
NOT_RUN = "not run"


def _stability(get: Callable[[Any], Any]) -> Callable[[FileResult, Batch], Any]:
    """Getter of one stability field: :data:`NOT_RUN` when the checks ran without the stability check."""
    return _checks(lambda c: get(c) if c.stability_checked else NOT_RUN)


def _ran_first(value: Any) -> tuple:
    """Sort key of a stability column: values, then :data:`NOT_RUN`, then missing ones."""
    return (2, 0) if value is None or value == "" else (1, 0) if value == NOT_RUN else (0, value)


def _yes_no(value: bool | str | None) -> str:
    return "" if value is None else value if isinstance(value, str) else ("yes" if value else "no")


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _shift(value: float | str | None) -> str:
    return "" if value is None else value if isinstance(value, str) else f"{value:+.2f}"


def _warnings(r: FileResult, b: Batch) -> str | None:
    return "; ".join(r.warnings()) if r.ok and r.checks is not None else None


EVIDENCE_OUTSIDE = Column("evidence_outside", "Evidence outside chest", _checks(lambda c: c.outside_share),
                          fmt=_share, width=96, tip="Share of the positive evidence for the predicted class that lies "
                          "outside the chest (edge band, marker corners, black frame)")
EVIDENCE_FLAG = Column("evidence_flag", "Check framing", _checks(lambda c: c.evidence_outside), fmt=_yes_no, width=80,
                       tip="Evidence outside the chest above the model's threshold, or a black frame that decides the "
                           "label: check the framing")
NO_POSITIVE = Column("no_positive_evidence", "No positive evidence", _checks(lambda c: c.no_positive_evidence),
                     fmt=_yes_no, width=80, tip="The map has (almost) no positive part for the predicted class")
UNSTABLE = Column("unstable", "Unstable", _stability(lambda c: c.unstable), fmt=_yes_no, sort=_ran_first, width=72,
                  tip="The label flips, or its log-odds move by more than 1, under a 10% black border or a slight "
                      "blur ('not run': the stability check was off)")
SHIFT_BORDER = Column("shift_border", "Log-odds shift (border)", _stability(lambda c: c.shifts.get("border")),
                      fmt=_shift, sort=_ran_first, width=80,
                      tip="Change of the verdict's calibrated log-odds with a 10% black border")
SHIFT_BLUR = Column("shift_blur", "Log-odds shift (blur)", _stability(lambda c: c.shifts.get("blur")), fmt=_shift,
                    sort=_ran_first, width=80,
                    tip="Change of the verdict's calibrated log-odds with a Gaussian blur of sigma 2 px")
FRAME_SHIFT = Column("shift_frame", "Log-odds shift (frame removed)", _checks(lambda c: c.frame_shift), fmt=_shift,
                     sort=_ran_first, width=80,
                     tip="Change of the verdict's calibrated log-odds when the image's black frame is cropped away "
                         "(empty: no black frame)")
CHECKS = Column("checks", "Checks", _warnings, width=200, tip="What the per-verdict checks found (empty: nothing)")


#: The CSV's columns of the per-verdict checks.
CHECK_COLUMNS = (EVIDENCE_OUTSIDE, EVIDENCE_FLAG, NO_POSITIVE, UNSTABLE, SHIFT_BORDER, SHIFT_BLUR, FRAME_SHIFT, CHECKS)


def _reader(get: Callable[[Any], Any]) -> Callable[[FileResult, Batch], Any]:
    """Getter of one field of a result's reader-study entry (None outside a reader study)."""
    return lambda r, b: get(r.reader) if r.reader is not None else None


TRUTH = Column("truth", "Truth", _reader(lambda e: e.truth), width=90,
               tip="The class named by the image's folder (ground truth for the reader study)")
READER_LABEL = Column("reader_label", "Reader", _reader(lambda e: e.label), width=90,
                      tip="The reader's own label (Y agree, X disagree, Ctrl+1..9 a class)")
AGREEMENT = Column("agreement", "Agreement", lambda r, b: agreement(r.reader, r.label if r.ok else None), width=80,
                   tip="Whether the reader agrees with the AI's label")
NOTE = Column("note", "Note", _reader(lambda e: e.note or None), width=200, tip="The reader's note")

#: The reader-study columns (the viewer's CSV and details panel).
READER_COLUMNS = (TRUTH, READER_LABEL, AGREEMENT, NOTE)


def probability_column(class_name: str) -> Column:
    """``p_<class>``: the calibrated probability of one class (six decimals)."""
    return Column(f"p_{class_name}", f"P({class_name})", lambda r, b: r.probs.get(class_name) if r.ok else None,
                  fmt=_probability, width=104, tip=f"Calibrated probability of {class_name}")


def shown_probability_column(batch: Batch) -> Column:
    """The table's probability column: :func:`shown_probability` as a percentage."""
    header = f"P({batch.positive})" if batch.positive else "Probability"
    tip = (f"Calibrated probability of {batch.positive}" if batch.positive
           else "Calibrated probability of the predicted class")
    return Column("p_shown", header, shown_probability, fmt=percent, width=104, tip=tip)


def csv_columns(batch: Batch, overlays: bool = False, reader: bool = False) -> list[Column]:
    """The CSV's columns: path, label, one ``p_<class>`` per class, in_scope, scope_score, scope_reason, error,
    threshold, width, height, format, model, precision, the checks, ``overlay`` when overlays are written, and
    truth, reader_label, agreement and note for the viewer's reader study."""
    return [PATH, LABEL, *map(probability_column, batch.class_names), IN_SCOPE, SCOPE_SCORE, SCOPE_REASON, ERROR,
            THRESHOLD, WIDTH, HEIGHT, FORMAT, MODEL, PRECISION, *CHECK_COLUMNS, *((OVERLAY,) if overlays else ()),
            *(READER_COLUMNS if reader else ())]


def table_columns(batch: Batch) -> list[Column]:
    """The result columns of the viewer's table (the row's status is the table's own)."""
    return [NAME, LABEL, shown_probability_column(batch), READER_LABEL]


def detail_columns(batch: Batch) -> list[Column]:
    """What the details panel lists for one file."""
    return [PATH, LABEL, *map(probability_column, batch.class_names), *READER_COLUMNS, IN_SCOPE, SCOPE_REASON,
            SCOPE_SCORE, CHECKS, EVIDENCE_FLAG, EVIDENCE_OUTSIDE, FRAME_SHIFT, UNSTABLE, SHIFT_BORDER, SHIFT_BLUR, THRESHOLD, WIDTH,
            HEIGHT, FORMAT, MODEL, PRECISION, ERROR]
