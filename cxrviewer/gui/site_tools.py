"""Model > Evaluate on Labelled Folder, Reader > Evaluate Reader Study and Model > Calibrate for This Site.

Evaluation reads the loaded batch (the folder is opened first when it is not the one on show),
so the figures, the table's labels and its rows marked against the folder's class all agree.
Calibration scores the folder with a fresh copy of the current model file off the GUI thread,
shows the proposed operating point, and writes a new model file only when the user saves it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import copy
import threading
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QAction

from ..core.errors import CxrError
from . import dialogs

if TYPE_CHECKING:
    from .evaluation_window import CalibrationWindow, EvaluationWindow


def _snapshot(results) -> list:
    """Copies of the results (no maps) for a background task: the GUI may relabel the originals meanwhile."""
    return [replace(r, cams=None, reader=copy.copy(r.reader)) for r in results]


def check_folder(_cancel: threading.Event, folder: Path, class_names: list[str], min_per_class: int = 1) -> Path:
    """The refusals of a labelled folder (one class, class mismatch, too few images), off the GUI thread."""
    from ..core.site.evaluation import read_labelled_folder  # imports torch: never before the window's first paint

    read_labelled_folder(folder, class_names, min_per_class)
    return folder


def calibrate(_cancel: threading.Event, source: Path, folder: Path, rule: str, device, progress):
    """Score ``folder`` with a fresh copy of ``source`` and fit the site's operating point (nothing written);
    a folder with images outside the model's intended population is refused, as ``cxrviewer calibrate`` does."""
    from ..core.model.checkpoint import load_model, read_header
    from ..core.site.calibration import MIN_PER_CLASS, check_population_for_calibration, fit_calibration
    from ..core.site.evaluation import read_labelled_folder, score_folder

    model = load_model(source, device="cpu")
    samples = read_labelled_folder(folder, model.class_names, MIN_PER_CLASS)
    scores = score_folder(model, samples, folder, device, cancel=_cancel, progress=progress)
    check_population_for_calibration(scores)
    return fit_calibration(scores, read_header(source), rule), scores


class SiteTools(QObject):
    """The evaluate and calibrate actions of ``window`` and the windows they open."""

    progress = Signal(int, int)  # calibration scoring: done, total (emitted from the task's thread)
    reportShown = Signal(object)  # StudyReport
    calibrationShown = Signal(object)  # CalibrationWindow
    calibratedWritten = Signal(object)  # Path of the new model file

    def __init__(self, window):
        super().__init__(window)
        self.w = window
        self.evaluation: EvaluationWindow | None = None
        self.calibration: CalibrationWindow | None = None
        self._evaluate_after_batch: Path | None = None
        self._refresh = QTimer(self, singleShot=True, interval=300)
        self._refresh.timeout.connect(self._refresh_if_shown)
        self.evaluate_act = self._act("&Evaluate on Labelled Folder...", self.evaluate_folder,
                                      "Classify a folder with one sub-folder per class and show the metrics and plots")
        self.study_act = self._act("&Evaluate Reader Study...", self.evaluate_study,
                                   "The AI and the reader against the truth from folder names, for the loaded batch")
        self.calibrate_act = self._act("&Calibrate for This Site...", self.calibrate_site,
                                       "Fit the threshold and temperature to a labelled folder; save as a new model file")
        self.progress.connect(lambda done, total: self.w.message.show_message(f"Calibrating: {done} of {total} images"))
        window.batchFinished.connect(self._on_batch_finished)
        window.reader.thresholdChanged.connect(self._refresh.start)

    def _act(self, text: str, slot, tip: str) -> QAction:
        a = QAction(text, self.w, statusTip=tip)
        a.triggered.connect(slot)
        return a

    def _refuse(self, title: str, message: str) -> None:
        dialogs.show_error(self.w, title, message)

    # -- evaluation ----------------------------------------------------------------------
    def evaluate_folder(self) -> None:
        """Ask for a labelled folder, check it off the GUI thread, then evaluate it (opening it first if needed)."""
        if self.w.model is None:
            return self._refuse("Evaluate", "Load a model first (Model > Load Model...).")
        folder = dialogs.ask_folder(self.w, self.w.settings.last_folder, "Evaluate on Labelled Folder")
        if folder:
            task = self.w.tasks.start(check_folder, folder, self.w.model.class_names, name="check-folder")
            task.done.connect(self._evaluate_checked)
            task.failed.connect(lambda msg: self._refuse("Evaluate on Labelled Folder", msg))

    def _evaluate_checked(self, folder: Path) -> None:
        loaded = [p.resolve() for p in self.w.inputs] == [folder.resolve()]
        if loaded and not self.w.runner.running:
            return self.evaluate_study()
        self._evaluate_after_batch = folder
        if not loaded:
            self.w.open_inputs([folder])
        self.w.message.show_message(f"Evaluating {folder.name}: classifying its images...")

    def _on_batch_finished(self, completed: bool) -> None:
        folder, self._evaluate_after_batch = self._evaluate_after_batch, None
        if folder is not None and completed:
            self.evaluate_study()
        elif folder is not None:
            self.w.message.show_message(f"Evaluation of {folder.name} cancelled", 10000)

    def evaluate_study(self) -> None:
        """Compute the loaded batch's figures (AI and reader against the truth) off the GUI thread and show them."""
        w = self.w
        if w.model is None or not w.results_model.results():
            return self._refuse("Evaluate", "Open a folder whose sub-folders are named as the model's classes first.")
        folder = w.reader.study.root or (w.inputs[0] if w.inputs else Path("batch"))
        b = w.batch
        from ..core.site.study_metrics import study_report  # imports torch: only once the user asks

        task = w.tasks.start(lambda _c, rs: study_report(rs, list(b.class_names), b.positive, b.threshold, folder),
                             _snapshot(w.results_model.results()), name="evaluate")
        task.done.connect(self._show_report)
        task.failed.connect(lambda msg: self._refuse("Evaluate", msg))

    def _show_report(self, report) -> None:
        if self.evaluation is None:
            from .evaluation_window import EvaluationWindow  # imports torch: only once the user asks

            self.evaluation = EvaluationWindow(self.w)
            self.evaluation.refreshRequested.connect(self.evaluate_study)
        self.evaluation.show_report(report)
        self.w.message.show_message(f"Evaluated {report.ai['n']} images with a truth in {report.ai['folder']}", 10000)
        self.evaluation.show()
        self.evaluation.raise_()
        self.reportShown.emit(report)

    def _refresh_if_shown(self) -> None:
        if self.evaluation is not None and self.evaluation.isVisible():
            self.evaluate_study()

    # -- calibration ---------------------------------------------------------------------
    def calibrate_site(self) -> None:
        """Ask for a labelled folder and a rule, then fit the operating point off the GUI thread."""
        w, title = self.w, "Calibrate for This Site"
        if w.model is None or w.model_path is None:
            return self._refuse(title, "Load a model file first (Model > Load Model...).")
        folder = dialogs.ask_folder(w, w.settings.last_folder, "Calibrate on Labelled Folder")
        if not folder:
            return
        from ..core.site.calibration import RULES

        rule = dialogs.ask_item(w, title, "How the threshold is chosen (youden: best sensitivity + specificity; "
                                "sensitivity=S: the best specificity with at least that sensitivity; specificity=S: "
                                "the reverse):", list(RULES), editable=False)
        if not rule:
            return
        try:
            from ..core.site.calibration import parse_rule  # imports torch: only once the user asks

            parse_rule(rule)
        except ValueError as e:
            return self._refuse(title, str(e))
        source = w.model_path
        task = w.tasks.start(calibrate, source, folder, rule, w.device, self.progress.emit, name="calibrate")
        task.done.connect(lambda out: self._show_calibration(source, *out))
        task.failed.connect(lambda msg: self._refuse(title, msg))
        w.message.show_message(f"Calibrating {source.name} on {folder.name}...")

    def _show_calibration(self, source: Path, cal, scores) -> None:
        if self.calibration is not None:
            self.calibration.close()
        from .evaluation_window import CalibrationWindow

        self.calibration = CalibrationWindow(cal, scores, source.name, self.w)
        self.calibration.saveRequested.connect(lambda: self.save_calibrated(source, cal, scores))
        self.calibration.show()
        proposed = "Calibration refused (see its window)" if cal.problems else f"Proposed threshold {cal.threshold:.3f}"
        self.w.message.show_message(f"{proposed}: nothing written yet", 10000)
        self.calibrationShown.emit(self.calibration)

    def save_calibrated(self, source: Path, cal, scores) -> None:
        """Ask where the new model goes (never the source), write it off the GUI thread, offer to switch."""
        title = "Save Calibrated Model"
        if cal.problems and not dialogs.confirm(
                self.w, title, "This calibration cannot be trusted:\n\n- " + "\n- ".join(cal.problems)
                + "\n\nSave it anyway? Its model card will say it was accepted as degenerate."):
            return
        start = self.w.settings.last_export_folder or Path.home()
        path = dialogs.ask_save_file(self.w, title, start / f"{source.stem}_{scores.folder.name}.safetensors",
                                     dialogs.MODEL_FILTER)
        if not path:
            return
        path = path if path.suffix.lower() == ".safetensors" else path.with_suffix(".safetensors")
        try:
            from ..core.model.model_update import check_output

            check_output(source, path, overwrite=True)  # the dialog asked before replacing another file
        except CxrError as e:
            return self._refuse(title, str(e))
        from ..core.site.calibration import write_calibrated

        task = self.w.tasks.start(lambda _c: write_calibrated(cal, scores, source, path, overwrite=True,
                                                              accept_degenerate=bool(cal.problems)),
                                  name="calibrate-write")
        task.done.connect(self._on_written)
        task.failed.connect(lambda msg: self._refuse(title, f"Could not write the new model:\n{msg}"))

    def _on_written(self, path: Path) -> None:
        self.w.message.show_message(f"Saved {path.name} (weights unchanged)", 10000)
        if self.calibration is not None:
            self.calibration.mark_saved(path)
        self.calibratedWritten.emit(path)
        if dialogs.confirm(self.w, "Calibrated Model Saved", f"Saved {path}.\n\nSwitch the viewer to this model now?"):
            self.w.load_model_file(path)
