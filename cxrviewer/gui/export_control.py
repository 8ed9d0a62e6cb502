"""File > Export Overlay, Export All Overlays and Export Results CSV: ask where, then write on a background Task.

:class:`ExportControl` asks the user (through :mod:`.dialogs`), refuses to write into a folder that was opened
unless confirmed, and reports the outcome on the window's message line and its ``exportFinished`` signal.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject

from ..core.results.columns import csv_columns
from ..core.results.export import ExportError, check_output_dir, write_csv
from . import dialogs
from .export_menu import summary_text
from .exporting import export_overlay, export_overlays, suggested_name


class ExportControl(QObject):
    """The export actions of ``window`` (a :class:`~.main_window.MainWindow`)."""

    def __init__(self, window):
        super().__init__(window)
        self.w = window

    def _folder_start(self) -> Path:
        return self.w.settings.last_export_folder or Path.home()

    def current_overlay(self) -> None:
        """The current image with its overlay as a PNG at the image's size."""
        w = self.w
        result = w.current_result()
        if result is None or not result.ok:
            return
        options = w._render_options()
        suggested = self._folder_start() / suggested_name(result, options.view)
        path = dialogs.ask_save_file(w, "Export Overlay", suggested, "PNG image (*.png)")
        if not path:
            return
        path = path if path.suffix.lower() == ".png" else path.with_suffix(".png")
        w.settings.last_export_folder = path.parent
        image = w.loader.cached(result.path)  # decoded at full size; else the task decodes it
        rad = image.radiograph if image is not None else None
        task = w.tasks.start(lambda _cancel: export_overlay(result, options, path, rad), name="export")
        task.done.connect(self._on_exported)
        task.failed.connect(lambda msg: dialogs.show_error(w, "Export Overlay", f"Could not export:\n{msg}"))

    def all_overlays(self) -> None:
        """Every classified image with its overlay, into a folder (never one the batch was opened from, unasked)."""
        w = self.w
        results = [r for r in w.results_model.results() if r.ok]
        if not results:
            return
        folder = dialogs.ask_folder(w, self._folder_start(), "Export All Overlays Into")
        if not folder:
            return
        try:
            check_output_dir(folder, w.inputs)
        except ExportError as e:
            dialogs.show_error(w, "Export All Overlays", str(e))
            return
        sources = {(p if p.is_dir() else p.parent).resolve() for p in w.inputs}
        if folder.resolve() in sources and not dialogs.confirm(
                w, "Export All Overlays",
                f"{folder} is the folder you opened.\nWrite {len(results)} PNG files into it anyway?"):
            return
        w.settings.last_export_folder = folder
        options = w._render_options()
        task = w.tasks.start(lambda _cancel: export_overlays(results, options, folder), name="export-all")
        task.yielded.connect(lambda p: w.message.show_message(f"Exporting overlays: {p[0]} of {p[1]}"))
        task.done.connect(self._on_exported)
        task.failed.connect(lambda msg: dialogs.show_error(w, "Export All Overlays", f"Could not export:\n{msg}"))

    def results_csv(self) -> None:
        """The results table as CSV (with the reader's columns)."""
        w = self.w
        results = w.results_model.results()
        if not results or w.model is None:
            return
        suggested = self._folder_start() / "cxrviewer_results.csv"
        path = dialogs.ask_save_file(w, "Export Results CSV", suggested, "CSV file (*.csv)")
        if not path:
            return
        path = path if path.suffix.lower() == ".csv" else path.with_suffix(".csv")
        w.settings.last_export_folder = path.parent
        batch = w.batch
        columns = csv_columns(batch, reader=True)
        task = w.tasks.start(lambda _cancel: write_csv(results, path, batch, overwrite=True, columns=columns),
                             name="export-csv")
        task.done.connect(self._on_exported)
        task.failed.connect(lambda msg: dialogs.show_error(w, "Export Results CSV", f"Could not export:\n{msg}"))

    def _on_exported(self, outcome) -> None:
        text = summary_text(outcome) if isinstance(outcome, dict) else f"Saved {outcome}"
        self.w.message.show_message(text, 10000)
        self.w.exportFinished.emit(outcome)
