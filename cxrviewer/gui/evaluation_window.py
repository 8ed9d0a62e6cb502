"""Windows that show evaluation figures: the Evaluate window (AI and reader against the truth) and
the Calibrate window (the proposed operating point, before anything is written).

Plots are the core's draw functions on embedded matplotlib canvases (the same plots
``cxrviewer evaluate`` and ``calibrate`` write as PNG).
"""

from __future__ import annotations

import html
import math
from pathlib import Path

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QTabWidget, QVBoxLayout, QWidget

from ..core.site.calibration import Calibration
from ..core.site.evaluation import LabelledScores, draw_threshold_sweep
from ..core.site.study_metrics import StudyReport
from ..core.training.report import draw_confusion, draw_reliability, draw_roc
from . import theme
from .keyboard import close_with_keys



def _f(v, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def _table(rows: list[tuple[str, ...]]) -> str:
    """An HTML table, the first row its header."""
    head = "".join(f"<th align='left'>{html.escape(c)}&nbsp;&nbsp;</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}&nbsp;&nbsp;</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table cellspacing='2'><tr>{head}</tr>{body}</table>"


class FigureTabs(QTabWidget):
    """Named tabs, each one embedded matplotlib figure, redrawn by a draw function ``fn(figure)``."""

    def __init__(self, names: list[str], parent: QWidget | None = None):
        super().__init__(parent)
        self.figures: dict[str, Figure] = {}
        for name in names:
            fig = Figure(figsize=(7, 4.5), layout="constrained")
            self.figures[name] = fig
            self.addTab(FigureCanvasQTAgg(fig), name)

    def draw(self, name: str, fn) -> None:
        fig = self.figures[name]
        fig.clear()
        fn(fig)
        fig.canvas.draw_idle()


def _positive_arrays(scores: LabelledScores, pos: int):
    return scores.labels == pos, scores.probs[:, pos]


class EvaluationWindow(QWidget):
    """Metrics and plots of the AI (and of the reader) against the truth; Refresh asks for new figures."""

    refreshRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("Evaluation - cxrviewer")
        self.summary = QLabel()
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setWordWrap(True)
        self.tabs = FigureTabs(["ROC", "Confusion", "Reliability", "Threshold sweep"])
        refresh = QPushButton("Refresh")
        refresh.setToolTip("Recompute from the table's current labels, reader verdicts and threshold")
        refresh.clicked.connect(self.refreshRequested)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(refresh, 0, Qt.AlignmentFlag.AlignTop)
        col = QVBoxLayout(self)
        col.addLayout(top)
        col.addWidget(self.tabs, 1)
        self.report: StudyReport | None = None
        self.close_keys = close_with_keys(self)  # Esc, Ctrl+W
        self.resize(980, 760)

    def show_report(self, report: StudyReport) -> None:
        """Show ``report``: the summary table and every plot."""
        self.report = report
        self.summary.setText(self._summary_html(report))
        names, pos, scores = report.scores.class_names, report.positive_index, report.scores
        self.tabs.draw("ROC", lambda fig: self._draw_roc(fig, report))
        self.tabs.draw("Confusion", lambda fig: self._draw_confusions(fig, report))
        self.tabs.draw("Reliability", lambda fig: draw_reliability(*fig.subplots(1, 2), scores.probs, scores.labels,
                                                                    "AI reliability"))
        if pos is not None:
            self.tabs.draw("Threshold sweep", lambda fig: draw_threshold_sweep(
                fig.subplots(), *_positive_arrays(scores, pos), {"threshold": report.threshold}))
        self.tabs.setTabEnabled(3, pos is not None and len(names) == 2)

    @staticmethod
    def _draw_roc(fig: Figure, report: StudyReport) -> None:
        pos, r = report.positive_index, report.reader
        if pos is None:
            fig.subplots().text(0.5, 0.5, "ROC: two-class models only", ha="center")
            return
        rates = (r.get("sensitivity", math.nan), r.get("specificity", math.nan))
        points = {"reader": rates} if all(math.isfinite(v) for v in rates) else None
        draw_roc(fig.subplots(), *_positive_arrays(report.scores, pos), report.threshold,
                 f"ROC, {report.ai['folder']} ({report.scores.class_names[pos]} positive)", points)

    @staticmethod
    def _draw_confusions(fig: Figure, report: StudyReport) -> None:
        names = report.scores.class_names
        ax_ai, ax_reader = fig.subplots(1, 2)
        draw_confusion(ax_ai, report.ai["confusion_matrix"], names, "AI")
        draw_confusion(ax_reader, report.reader["confusion_matrix"], names, "Reader")

    @staticmethod
    def _summary_html(report: StudyReport) -> str:
        ai, rd = report.ai, report.reader
        rows = [("", "images", "sensitivity", "specificity", "accuracy", "AUROC"),
                ("AI", str(ai["n"]), _f(ai.get("sensitivity")), _f(ai.get("specificity")), _f(ai["accuracy"]),
                 _f(ai.get("auroc"))),
                ("Reader", str(rd["n"]), _f(rd.get("sensitivity")), _f(rd.get("specificity")), _f(rd["accuracy"]), "")]
        t = report.threshold
        notes = [f"Truth from folder names in {html.escape(str(ai['folder']))}: "
                 + ", ".join(f"{html.escape(k)} {v}" for k, v in ai["images_per_class"].items()),
                 f"AI at threshold {_f(t)}" if t is not None else "AI: top class",
                 f"in scope {100 * ai['in_scope_rate']:.1f}%", f"ECE {_f(ai.get('ece'))}",
                 f"not yet read: {rd['unread']}", f"reader agrees with the AI on {_f(rd['agree_with_ai'])} of read images"]
        return _table(rows) + "<p>" + " &middot; ".join(notes) + "</p>"


def _refusal(problems: list[str]) -> str:
    """The reasons a calibration is refused, in red, first in the window; "" for a sound one."""
    if not problems:
        return ""
    items = "".join(f"<li>{html.escape(p)}</li>" for p in problems)
    return (f"<p style='color:{theme.ERROR}'><b>Refused: this calibration cannot be trusted</b><ul>{items}</ul>"
            "Save Anyway writes it all the same; its model card will say it was accepted as degenerate.</p>")


class CalibrationWindow(QWidget):
    """The operating point a calibration proposes, with its curves; nothing is written until Save."""

    saveRequested = Signal()

    def __init__(self, cal: Calibration, scores: LabelledScores, source_name: str, parent: QWidget | None = None):
        super().__init__(parent, Qt.WindowType.Window)
        self.cal, self.scores = cal, scores
        self.saved: Path | None = None
        self.setWindowTitle(f"Calibrate {source_name} for {scores.folder.name} - cxrviewer")
        self.summary = QLabel(self._summary_html())
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setWordWrap(True)
        self.tabs = FigureTabs(["ROC", "Threshold sweep", "Reliability"])
        self.save_button = QPushButton("Save Anyway..." if cal.problems else "Save as New Model...")
        self.save_button.setToolTip("Write a new model file: same weights, this threshold and temperature "
                                    "(the current model file is never changed)"
                                    + ("; this fit cannot be trusted, its card will say it was accepted as degenerate"
                                       if cal.problems else ""))

        self.save_button.clicked.connect(self.saveRequested)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.save_button)
        buttons.addWidget(close)
        col = QVBoxLayout(self)
        col.addWidget(self.summary)
        col.addWidget(self.tabs, 1)
        col.addLayout(buttons)
        self._draw()
        self.resize(900, 760)

    def _draw(self) -> None:
        cal, s = self.cal, self.scores
        pos = cal.after.get("positive_index")
        if pos is not None:
            y, p = s.labels == pos, cal.probs[:, pos]
            before = cal.before
            points = {f"before (t = {_f(before.get('threshold'))})": (before["sensitivity"], before["specificity"])}
            self.tabs.draw("ROC", lambda fig: draw_roc(fig.subplots(), y, p, cal.threshold,
                                                        f"ROC, {s.folder.name}: proposed operating point", points))
            self.tabs.draw("Threshold sweep", lambda fig: draw_threshold_sweep(
                fig.subplots(), y, p, {"before": before.get("threshold"), f"proposed ({cal.rule})": cal.threshold}))
        self.tabs.draw("Reliability", lambda fig: draw_reliability(*fig.subplots(1, 2), cal.probs, s.labels,
                                                                    "After calibration"))

    def _summary_html(self) -> str:
        cal, b, a = self.cal, self.cal.before, self.cal.after
        rows = [("", "threshold", "sensitivity", "specificity", "accuracy", "ECE"),
                ("now", _f(b.get("threshold")), _f(b.get("sensitivity")), _f(b.get("specificity")), _f(b["accuracy"]),
                 _f(b.get("ece"))),
                (f"proposed ({cal.rule})", _f(cal.threshold), _f(a.get("sensitivity")), _f(a.get("specificity")),
                 _f(a["accuracy"]), _f(a.get("ece")))]
        counts = ", ".join(f"{html.escape(k)} {v}" for k, v in self.scores.counts().items())
        extra = [f"{html.escape(self.scores.folder.name)}: {counts}", f"temperature {_f(cal.temperature)}"]
        if cal.scope_threshold is not None:
            extra.append(f"scope threshold {_f(cal.scope_threshold, 2)}")
        if self.saved is not None:
            written = (f"<p>Saved as {html.escape(str(self.saved))}" + (" (accepted as degenerate: its card says so)"
                                                                      if cal.problems else "") + ".</p>")
        else:
            written = ("<p>Nothing has been written yet: Save as New Model writes a new file with the same weights.</p>"
                       if not cal.problems else "<p>Nothing has been written.</p>")
        return _refusal(cal.problems) + _table(rows) + "<p>" + " &middot; ".join(extra) + "</p>" + written

    def mark_saved(self, path: Path) -> None:
        """The new model file has been written: say where (the summary no longer says nothing was)."""
        self.saved = Path(path)
        self.summary.setText(self._summary_html())
