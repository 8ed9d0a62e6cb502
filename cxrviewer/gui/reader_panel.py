"""The reader-study panel under the details: the reader's verdict, a note, and the live threshold.

It only shows an entry and reports edits; :class:`~.reader_controller.ReaderController` records them.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import (QDoubleSpinBox, QGridLayout, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QSlider,
                               QVBoxLayout, QWidget)

from ..core.results.reader_study import ReaderEntry, agreement
from . import theme

STEPS = 1000  # slider resolution: thresholds in steps of 0.001


class ThresholdControl(QWidget):
    """A slider and spin box for the decision threshold, with a reset to the model's own."""

    thresholdChanged = Signal(object)  # float, or None: back to the model's threshold

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.model_threshold: float | None = None
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, STEPS)
        self.spin = QDoubleSpinBox(decimals=3, minimum=0.0, maximum=1.0, singleStep=0.01)
        self.reset = QPushButton("Reset")
        self.counts = QLabel()
        self.counts.setWordWrap(True)
        self.setToolTip("Live threshold on the positive class's probability: re-labels the batch from the stored "
                        "probabilities (the model file is not changed)")
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(QLabel("Threshold"))
        row.addWidget(self.spin)
        row.addStretch(1)
        row.addWidget(self.reset)
        col.addLayout(row)
        col.addWidget(self.slider)
        col.addWidget(self.counts)
        self.slider.valueChanged.connect(lambda v: self._edited(v / STEPS))
        self.spin.valueChanged.connect(self._edited)
        self.reset.clicked.connect(lambda: self.thresholdChanged.emit(None))
        self.set_threshold(None, None)

    def set_threshold(self, model_threshold: float | None, live: float | None) -> None:
        """Show ``live`` (or the model's threshold); disabled without a two-class threshold."""
        self.model_threshold = model_threshold
        value = live if live is not None else model_threshold
        self.setEnabled(model_threshold is not None)
        with QSignalBlocker(self.slider), QSignalBlocker(self.spin):
            self.slider.setValue(round((value or 0.5) * STEPS))
            self.spin.setValue(value or 0.5)
        self.reset.setToolTip("Back to the model file's threshold"
                              + (f" ({model_threshold:.3f})" if model_threshold is not None else ""))
        self.reset.setEnabled(live is not None)

    def set_counts(self, counts: dict[str, int]) -> None:
        """How many images each label has now (they follow the threshold)."""
        self.counts.setText(" \u00b7 ".join(f"{n} {label}" for label, n in counts.items() if n))

    def value(self) -> float:
        return self.spin.value()

    def _edited(self, value: float) -> None:
        if self.model_threshold is not None:
            self.thresholdChanged.emit(float(round(value, 3)))


class ReaderPanel(QWidget):
    """The reader's verdict on the current image (buttons mirror the A / X / Ctrl+1..9 keys) and a note."""

    actionRequested = Signal(str)  # "agree", "disagree", "clear" or a class name
    noteEdited = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = QLabel("<b>Reader study</b>")
        self.truth = QLabel()
        self.verdict = QLabel()
        self.verdict.setWordWrap(True)
        self.buttons = QGridLayout()
        self.note = QPlainTextEdit()
        self.note.setPlaceholderText("Note on this image (saved with the session)")
        self.note.setTabChangesFocus(True)
        self.threshold = ThresholdControl()
        col = QVBoxLayout(self)
        col.setContentsMargins(6, 4, 4, 4)
        for w in (self.title, self.truth, self.verdict):
            col.addWidget(w)
        col.addLayout(self.buttons)
        col.addWidget(self.note, 1)
        col.addWidget(self.threshold)
        self.note.textChanged.connect(lambda: self.noteEdited.emit(self.note.toPlainText()))
        self.set_classes([])
        self.show_entry(None, None)

    def set_classes(self, names: list[str]) -> None:
        """One button per action: Agree, Disagree, each class (its Ctrl+number), Clear."""
        while self.buttons.count():
            self.buttons.takeAt(0).widget().deleteLater()
        items = [("agree", "Agree (Y)", "The reader agrees with the AI (Y)"),
                 ("disagree", "Disagree (X)", "The reader disagrees with the AI (X)")]
        items += [(n, n, f"The reader's own label: {n}" + (f" (Ctrl+{i + 1})" if i < 9 else ""))
                  for i, n in enumerate(names)]
        items.append(("clear", "Clear", "Forget the reader's verdict on this image (Ctrl+0)"))
        for i, (action, text, tip) in enumerate(items):
            b = QPushButton(text, toolTip=tip)
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys keep going to the table
            b.clicked.connect(lambda _=False, a=action: self.actionRequested.emit(a))
            self.buttons.addWidget(b, i // 2, i % 2)

    def show_entry(self, entry: ReaderEntry | None, ai_label: str | None) -> None:
        """Show the entry of the current image (None: no image)."""
        self.setEnabled(entry is not None)
        truth = entry.truth if entry is not None else None
        self.truth.setText(f"Truth (folder name): <b>{truth}</b>" if truth else
                           f"<span style='color:{theme.MUTED}'>Truth: no class folder</span>")
        self.verdict.setText(self._verdict_text(entry, ai_label))
        text = entry.note if entry is not None else ""
        if self.note.toPlainText() != text:
            with QSignalBlocker(self.note):
                self.note.setPlainText(text)

    @staticmethod
    def _verdict_text(entry: ReaderEntry | None, ai_label: str | None) -> str:
        agrees = agreement(entry, ai_label)
        if entry is None or (entry.label is None and agrees is None):
            return f"<span style='color:{theme.MUTED}'>No reader verdict yet</span>"
        said = f"Reader: <b>{entry.label}</b>" if entry.label else "Reader"
        if agrees is None:
            return f"{said} &mdash; no AI verdict to compare"
        colour = theme.NEGATIVE if agrees == "agree" else theme.ERROR
        return f"{said} &mdash; <span style='color:{colour}'>{agrees}s with the AI</span>"
