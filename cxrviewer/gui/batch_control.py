"""A batch in the window: start it with the Model menu's choices, follow its scan and end, cancel it.

:class:`BatchControl` routes the :class:`~.worker.BatchRunner`'s signals to the results table and the
status bar, and owns Esc: leave a measuring tool first, else cancel, asking first once the batch has
run longer than :data:`ESC_CONFIRM_SECONDS` (the Cancel button never asks).
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QObject

from . import dialogs
from .results_model import CANCELLED, DONE, ERROR, NO_MODEL, QUEUED

#: Esc asks before it cancels a batch that has run longer than this (the Cancel button never asks).
ESC_CONFIRM_SECONDS = 5.0


class BatchControl(QObject):
    """Starting, following and cancelling the batches of ``window`` (a :class:`~.main_window.MainWindow`)."""

    def __init__(self, window):
        super().__init__(window)
        self.w = window
        self.started_at = 0.0  # time.monotonic() when the batch on show started
        runner = window.runner
        runner.scanned.connect(self.on_scanned)
        runner.results.connect(window.results_model.apply)
        runner.progress.connect(window.batch_status.update)
        runner.problem.connect(self._on_problem)
        runner.finished.connect(self._on_finished)
        window.batch_status.cancel_button.clicked.connect(self.cancel)

    def run(self, inputs=(), paths: list[Path] | None = None) -> None:
        """Classify with the model and the Model menu's choices (precision, stability check)."""
        w, s = self.w, self.w.settings
        device = w.device if w.model is not None else w.models.device_choice  # no model: no torch needed yet
        w.runner.start(inputs, paths=paths, model=w.model, device=device, precision=s.precision,
                       stability=s.stability, cache=s.results_cache,
                       population="refuse" if s.population_refuse else "flag")

    def open(self, inputs: list[Path]) -> None:
        """Scan and classify ``inputs`` from now."""
        self.started_at = time.monotonic()
        self.run(inputs)

    def reclassify(self) -> None:
        """Run the new model over the rows on show, keeping the current row and the scroll position
        (rows not yet scanned: scan again)."""
        w = self.w
        paths = w.results_model.paths
        w.results_model.reset_status(QUEUED)
        self.started_at = time.monotonic()
        if paths:
            w.batch_status.start(len(paths))
            self.run(paths=paths)
        else:
            self.run(w.inputs)
        w._update_actions()

    def on_scanned(self, paths: list) -> None:
        """The scan found ``paths``: rows for them, queued when a model is (or will be) there to classify them."""
        w = self.w
        waiting = w.model is not None or w.model_loader.loading  # a model on its way classifies them when ready
        w.results_model.set_paths(paths, QUEUED if waiting else NO_MODEL)
        if not paths:
            w.canvas.show_message("No radiographs found (JPEG, PNG, BMP, TIFF or DICOM).")
            w.details.clear("No radiographs found.")
            w.batch_status.set_idle("No radiographs found")
        elif w.model is not None:
            w.batch_status.start(len(paths))
        elif w.model_loader.loading:
            w.batch_status.set_idle(f"{len(paths)} files - loading the model...")
        else:
            w.batch_status.set_idle(f"{len(paths)} files - " + ("loading the model..." if w.model_loader.loading
                                                                else "no model loaded (Model > Load Model...)"))
        w.results_view.select_first()
        w._auto_path = w.current_path()  # chosen for the user: moves on if this file turns out damaged
        w._update_actions()

    def _on_problem(self, message: str) -> None:
        self.w.message.show_message(f"Problem: {message} (the batch goes on)", 15000)

    def _on_finished(self, completed: bool) -> None:
        w = self.w
        m = w.results_model
        if not completed:
            m.mark_unfinished(CANCELLED)
        total, done, errors = m.rowCount(), m.count(DONE), m.count(ERROR)
        if w.model is not None and total:
            seconds = time.monotonic() - self.started_at
            verb = "Done" if completed else "Cancelled"
            rate = f" ({(done + errors) / seconds:.1f} img/s)" if seconds > 0 and done + errors else ""
            w.batch_status.set_idle(f"{verb}: {done + errors} of {total} files in {seconds:.1f} s{rate}"
                                    + (f", {errors} failed" if errors else ""))
        w._update_actions()
        w.batchFinished.emit(completed)

    def escape(self) -> None:
        """Esc: leave the measuring tool first, else cancel the batch; a batch running for more than
        ESC_CONFIRM_SECONDS is cancelled only once the user confirms (a stray Esc costs nothing)."""
        w = self.w
        if w.measure.cancel():
            return
        if w.runner.running and time.monotonic() - self.started_at > ESC_CONFIRM_SECONDS:
            done, total = w.batch_status.bar.value(), w.batch_status.bar.maximum()
            kept = ("Results so far are kept: opening the folder again resumes the batch."
                    if w.settings.results_cache else "Results so far are not kept (File > Keep Results Between Runs is off).")
            if not dialogs.confirm(w, "Cancel Batch", f"Stop classifying? {done} of {total} files are done.\n\n{kept}"):
                return
        self.cancel()

    def cancel(self) -> None:
        """Esc / Cancel: stop the batch (rows not reached become cancelled) and any model still loading."""
        w = self.w
        if w.runner.cancel():
            w.batch_status.set_cancelling()
        w.model_loader.cancel()
        w._update_actions()
