"""The reader study in the window: verdict keys, notes, the live threshold and session files.

:class:`ReaderController` owns the reader's actions and the :class:`~.reader_panel.ReaderPanel`,
and keeps the results model's :class:`~cxrviewer.core.results.reader_study.ReaderStudy` (one per opened
batch). Sessions go where the user saves them; the index that finds a folder's session (and the
autosave of unsaved verdicts) lives in the app's own folder, never beside the images.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QKeySequence

from ..core.results.columns import Batch
from ..core.results.reader_study import AGREE, DISAGREE, ReaderStudy, record
from ..core.results.session import (
    SUFFIX, Session, SessionError, SessionIndex, load_session, restore, save_session, session_of,
)
from . import dialogs
from .reader_panel import ReaderPanel

MAX_LABEL_KEYS = 9


class ReaderController(QObject):
    """Reader-study actions and state for ``window`` (a :class:`~.main_window.MainWindow`)."""

    thresholdChanged = Signal()  # the live threshold moved: labels changed

    def __init__(self, window):
        super().__init__(window)
        self.w = window
        self.panel = ReaderPanel()
        self.index = SessionIndex(window.settings.sessions_folder)
        self.session_file: Path | None = None
        self.inputs: list[Path] = []  # what the study's batch opened (the window's may already be the next)
        self.dirty = False
        self._pending: Session | None = None  # a session opened by the user, restored once its folder is open
        self._row = -1  # the table's current source row (as the view reports it)
        # The measurement tools' hook: their per-image measurements as plain dicts, {path text: [dict]}.
        # ``export_measurements()`` gives them (saved with the session); ``import_measurements(d)``
        # takes a restored session's. None: the viewer keeps no measurements.
        self.export_measurements: Callable[[], dict[str, list[dict]]] | None = None
        self.import_measurements: Callable[[dict[str, list[dict]]], None] | None = None
        self._create_actions()
        self.panel.actionRequested.connect(self.record)
        self.panel.noteEdited.connect(self._on_note)
        self.panel.threshold.thresholdChanged.connect(self.set_threshold)
        window.results_view.currentRowChanged.connect(self._on_row)
        window.results_model.dataChanged.connect(lambda *_: self.refresh_panel())

    @property
    def study(self) -> ReaderStudy:
        return self.w.results_model.study

    # -- actions -----------------------------------------------------------------------
    def _act(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        a = QAction(text, self.w, statusTip=tip)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
        a.triggered.connect(slot)
        self.w.addAction(a)
        return a

    def _create_actions(self) -> None:
        self.agree_act = self._act("&Agree with the AI", lambda: self.record(AGREE), "Y",
                                   "Reader study: the reader agrees with the AI's label")
        self.disagree_act = self._act("&Disagree with the AI", lambda: self.record(DISAGREE), "X",
                                      "Reader study: the reader disagrees with the AI's label")
        self.label_acts = [self._act(f"Label {i + 1}", lambda _=False, i=i: self._label(i), f"Ctrl+{i + 1}")
                           for i in range(MAX_LABEL_KEYS)]
        self.clear_act = self._act("&Clear Verdict", lambda: self.record("clear"), "Ctrl+0",
                                   "Reader study: forget the reader's verdict on this image")
        self.save_act = self._act("Save Reader &Session...", self.save_session, None,
                                  "Save the reader's verdicts, notes, measurements and threshold")
        self.open_act = self._act("Open Reader Sess&ion...", self.open_session, None,
                                  "Open a saved reader session and its images")

    def menu_actions(self) -> list[QAction]:
        """The Reader menu's verdict actions (the label actions of the model's classes only)."""
        names = self.study.class_names
        return [self.agree_act, self.disagree_act, *self.label_acts[:len(names)], self.clear_act]

    def set_classes(self, names: list[str]) -> None:
        """The model's classes: label keys, panel buttons and every file's truth follow."""
        self.study.set_classes(names)
        for i, a in enumerate(self.label_acts):
            a.setEnabled(i < len(names))
            a.setVisible(i < len(names))
            if i < len(names):
                a.setText(f"Reader Label: {names[i]}")
        self.panel.set_classes(names)
        self.refresh_panel()

    def _label(self, i: int) -> None:
        names = self.study.class_names
        if i < len(names):
            self.record(names[i])

    # -- recording ---------------------------------------------------------------------
    def _on_row(self, row: int) -> None:
        self._row = row
        self.refresh_panel()

    def _current(self) -> tuple[Path | None, str | None]:
        """The table's current file and the AI's label for it (None: no row, or no verdict)."""
        i = self._row
        if not 0 <= i < self.w.results_model.rowCount():
            return None, None
        row = self.w.results_model.row(i)
        return row.path, row.result.label if row.result is not None and row.result.ok else None

    def record(self, action: str) -> None:
        """Record the reader's ``action`` on the current image."""
        path, ai_label = self._current()
        if path is not None:
            record(self.study.entry(path), action, ai_label, self.study.class_names)
            self._changed(path)

    def _on_note(self, text: str) -> None:
        path, _ = self._current()
        if path is not None and self.study.entry(path).note != text:
            self.study.entry(path).note = text
            self._changed(path)

    def _changed(self, path: Path) -> None:
        self.dirty = True
        m, row = self.w.results_model, self.w.results_model.row_of(path)
        if row is not None:
            m.dataChanged.emit(m.index(row, 0), m.index(row, m.columnCount() - 1))
        self.refresh_panel()

    def refresh_panel(self) -> None:
        path, ai_label = self._current()
        self.panel.show_entry(self.study.entry(path) if path is not None else None, ai_label)
        self.panel.threshold.set_threshold(Batch.of(self.w.model).threshold, self.study.threshold)
        self.panel.threshold.set_counts(Counter(r.label for r in self.w.results_model.results() if r.ok))

    # -- the live threshold --------------------------------------------------------------
    def live_batch(self, batch: Batch) -> Batch:
        """``batch`` with the live threshold, when there is one and the model has a positive class."""
        t = self.study.threshold
        return replace(batch, threshold=t) if t is not None and batch.positive else batch

    def set_threshold(self, value: float | None) -> None:
        """Re-label the batch at ``value`` (None: the model's threshold); the model file is unchanged."""
        w = self.w
        if w.model is None:
            return
        self.study.threshold = value
        self.dirty = True
        w.batch = self.live_batch(Batch.of(w.model))
        w.results_model.set_batch(w.batch)
        w.details.set_model(replace(w.details.model, batch=w.batch))
        self.refresh_panel()
        self.thresholdChanged.emit()

    # -- sessions ----------------------------------------------------------------------
    def start_study(self, inputs: list[Path]) -> None:
        """A new batch: save the old study's unsaved verdicts, then restore the new folder's session if any."""
        self.autosave()
        self.inputs = list(inputs)
        root = inputs[0] if len(inputs) == 1 and inputs[0].is_dir() else None
        self.w.results_model.study = ReaderStudy(root, self.study.class_names)
        pending, self._pending = self._pending, None
        found = self.index.lookup(root) if root is not None and pending is None else None
        self.session_file = found
        self.dirty = False
        session = pending or self._load_quietly(found, root)
        if session is not None:
            n = restore(self.study, session)
            self._measurements_in()
            self.w.message.show_message(f"Reader session restored: {n} images ({session_name(found or root)})", 10000)
            self.apply_restored_threshold()
        self.refresh_panel()

    def _load_quietly(self, path: Path | None, root: Path | None) -> Session | None:
        if path is None:
            return None
        try:
            return load_session(path, root)
        except SessionError as e:
            self.w.message.show_message(f"Reader session not restored: {e}", 15000)
            return None

    def apply_restored_threshold(self) -> None:
        """After a model is set: apply the study's live threshold (from a restored session) to the labels."""
        if self.study.threshold is not None and self.w.model is not None:
            self.set_threshold(self.study.threshold)
            self.dirty = False

    def save_session(self) -> bool:
        """File > Save Reader Session: to a file the user chooses (suggested: the app's sessions folder)."""
        root = self.study.root
        suggested = self.session_file or (self.index.default_file(root) if root else
                                          self.index.folder / f"session{SUFFIX}")
        path = dialogs.ask_save_file(self.w, "Save Reader Session", suggested, dialogs.SESSION_FILTER)
        if not path:
            return False
        return self._save(path if path.name.endswith(".json") else path.with_name(path.name + SUFFIX))

    def _measurements_out(self) -> None:
        """The measurement tools' current measurements into the study's entries (for saving)."""
        if self.export_measurements is None:
            return
        found = {Path(k): list(v) for k, v in self.export_measurements().items()}
        for path, e in self.study.entries.items():
            e.measurements = found.pop(path, [])
        for path, items in found.items():
            if self.w.results_model.row_of(path) is not None:
                self.study.entry(path).measurements = items

    def _measurements_in(self) -> None:
        """A restored session's measurements to the measurement tools."""
        if self.import_measurements is not None:
            self.import_measurements({str(p): list(e.measurements) for p, e in self.study.entries.items()
                                      if e.measurements})

    def measurements_changed(self) -> None:
        """The measurement tools changed something: the session has unsaved work."""
        self.dirty = True

    def _save(self, path: Path) -> bool:
        self._measurements_out()
        try:
            save_session(session_of(self.study, self.inputs, self.w.model_name()), path)
            if self.study.root is not None:
                self.index.remember(self.study.root, path)
        except OSError as e:
            dialogs.show_error(self.w, "Save Reader Session", f"Could not save the session:\n{e}")
            return False
        self.session_file, self.dirty = path, False
        self.w.message.show_message(f"Reader session saved: {path}", 10000)
        return True

    def autosave(self) -> None:
        """Unsaved verdicts of a folder go to its session file (or the app's sessions folder): nothing is lost."""
        self._measurements_out()
        if self.dirty and self.study.root is not None and self.study.recorded():
            self._save(self.session_file or self.index.default_file(self.study.root))

    def open_session(self) -> None:
        """File > Open Reader Session: open the session's folder and restore its verdicts."""
        path = dialogs.ask_open_file(self.w, "Open Reader Session", self.index.folder, dialogs.SESSION_FILTER)
        if not path:
            return
        try:
            session = load_session(path)
        except SessionError as e:
            dialogs.show_error(self.w, "Open Reader Session", str(e))
            return
        inputs = session.inputs or ([session.root] if session.root else [])
        if not inputs or not all(p.exists() for p in inputs):
            dialogs.show_error(self.w, "Open Reader Session", f"{path.name}: its images are not found "
                               f"({', '.join(map(str, inputs)) or 'no folder recorded'})")
            return
        self._pending = session
        self.w.open_inputs(inputs)
        self.session_file = path


def session_name(path: Path | None) -> str:
    return Path(path).name if path is not None else ""
