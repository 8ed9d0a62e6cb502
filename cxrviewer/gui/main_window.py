"""The main window: composes the results table, image view, details panel and status bar.

It owns no heavy work: every background job is a :class:`Task` of the window's
:class:`TaskGroup` (batches through a :class:`BatchRunner`, display images through an
:class:`ImageLoader`, model files through a :class:`ModelLoader`, exports directly), and closing the window
stops them all. Slots here only route plain data between widgets.
"""

from __future__ import annotations

import copy
import time
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QEvent, QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QSplitter, QStyle, QVBoxLayout, QWidget

from .. import __version__
from ..core.explain.catalog import EVIDENCE, default_method
from ..core.model.population import NOT_RECORDED, model_line
from ..core.model.precision_policy import PRECISIONS
from ..core.paths import default_model_path
from ..core.results.columns import Batch, csv_columns, verdict_legend
from ..core.results.export import ExportError, check_output_dir, write_csv
from ..core.results.verdict import verdict
from . import dialogs
from .about import about_html
from .cache_menu import CacheActions
from .canvas import ImageCanvas, Overlay
from .controls import ViewControls
from .details import DetailsPanel, ModelInfo
from .display import choose_overlay, fixed_range
from .export_menu import ExportOptions, summary_text
from .exporting import RenderOptions, export_overlay, export_overlays, suggested_name
from .image_loader import ImageLoader
from .keyboard import KeyForwarder, pass_shortcuts_through_text_fields
from .measure_menu import MeasureActions
from .pacs_tools import PacsTools
from .measure_tool import MeasureTool
from .method_maps import MapProgress, MethodMaps
from .model_loader import ModelLoader
from .reader_controller import ReaderController
from .results_model import CANCELLED, DONE, ERROR, NO_MODEL, QUEUED, ResultsModel
from .results_view import ResultsView
from .settings import Settings
from .shortcuts_dialog import ShortcutsDialog
from .site_tools import SiteTools
from .status import BatchStatus, MessageLabel
from .theme import CAPTION_NEGATIVE, CAPTION_OUT_OF_SCOPE, CAPTION_POSITIVE
from .view_state import ViewState
from .windowing import Windowing
from .worker import BatchRunner, TaskGroup

LOADING_HINT_MS = 150
PREFETCH_AHEAD, PREFETCH_BEHIND = 3, 1  # rows decoded ahead of the reader (the cache keeps 8 images)


PRECISION_TIPS = (
    "Automatic: int8 on CPUs with VNNI or AVX2, else bfloat16 on CPUs that compute it natively (float16 on CUDA), "
    "when the model file records >= 99.5% label agreement with float32 on validation (and CAMs correlating >= 0.98 "
    "for int8), else float32",
    "float32: exact, slowest on CPUs with bfloat16 units",
    "bfloat16: about 3x faster where the CPU has bfloat16 units; probabilities move by ~0.01",
    "float16: for CUDA GPUs; slow on most CPUs",
    "int8: about 4x faster than float32 on CPUs with VNNI or AVX2; needs the model file's int8 calibration",
)


#: Esc asks before it cancels a batch that has run longer than this (the Cancel button never asks).
ESC_CONFIRM_SECONDS = 5.0


def _audit_texts(audited: dict | None) -> tuple[dict[str, str], str]:
    """The per-method notes and the one-line audit of a model file's explanations ({} and "" without an audit)."""
    if not audited:
        return {}, ""
    from ..core.explain.audit import audit_line, method_notes

    return method_notes(audited), audit_line(audited)

class MainWindow(QMainWindow):
    """cxrviewer's window. ``model_path``: a model file to load at start (default: the saved or shipped one)."""

    modelChanged = Signal()      # a model finished loading (or failed: check .model)
    batchFinished = Signal(bool)  # True: completed, False: cancelled
    imageShown = Signal(object)   # Path of the image now on the canvas
    exportFinished = Signal(object)  # summary dict / written Path

    def __init__(self, settings: Settings | None = None, model_path: Path | None = None, load_default: bool = True,
                 device: str | None = None):
        super().__init__()
        self.settings = settings or Settings()
        self.model = None
        self.model_path: Path | None = None
        self._device_choice, self._device = device, None  # resolved (with torch) when first needed
        self.inputs: list[Path] = []
        self._batch_start = 0.0
        self._current_row = -1
        self._auto_path: Path | None = None  # the file selected for the user when the batch opened
        self.view = ViewState()
        self.batch = Batch()

        self.setWindowTitle("cxrviewer")
        self.setAcceptDrops(True)
        self.results_model = ResultsModel(self)
        self.results_view = ResultsView(self.results_model)
        self.canvas = ImageCanvas()
        self.measure = MeasureTool(self.canvas, parent=self)
        self.controls = ViewControls()
        self.details = DetailsPanel()
        self.batch_status = BatchStatus()
        self.message = MessageLabel()
        self.model_label = QLabel("No model")
        self.hover_label = QLabel("")
        self.tasks = TaskGroup(self)
        self.runner = BatchRunner(self.tasks, self)
        self.loader = ImageLoader(self.tasks, parent=self)
        self.model_loader = ModelLoader(self.tasks, self)
        self.method_maps = MethodMaps(self.tasks, parent=self)  # Grad-CAM, occlusion: on demand, off the GUI thread
        self.map_progress = MapProgress()
        self._quiet_load = False
        self._loading_timer = QTimer(self, singleShot=True, interval=LOADING_HINT_MS)

        self.reader = ReaderController(self)
        self.site = SiteTools(self)
        self.pacs = PacsTools(self)
        self._build_layout()
        self._create_actions()
        self._create_menus()
        self._connect()
        self._restore_settings()
        self._update_actions()
        if model_path is not None or load_default:
            self._load_initial_model(model_path)

    # -- construction ----------------------------------------------------------------
    def _build_layout(self) -> None:
        centre = QWidget()
        col = QVBoxLayout(centre)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(0)
        col.addWidget(self.controls)
        col.addWidget(self.canvas, 1)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.results_view)
        self.splitter.addWidget(centre)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.details)
        right.addWidget(self.reader.panel)
        right.setSizes([600, 300])
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 0)
        self.splitter.setSizes([470, 860, 290])
        self.splitter.setChildrenCollapsible(False)
        self.results_view.setMinimumWidth(300)
        self.details.setMinimumWidth(240)
        self.setCentralWidget(self.splitter)
        bar = self.statusBar()
        bar.addWidget(self.batch_status)
        bar.addWidget(self.message, 1)
        bar.addPermanentWidget(self.map_progress)
        bar.addPermanentWidget(self.hover_label)
        bar.addPermanentWidget(self.model_label)
        self.resize(1600, 960)

    def _create_actions(self) -> None:
        def act(text, slot, shortcut=None, tip="", checkable=False):
            a = QAction(text, self, statusTip=tip, checkable=checkable)
            if shortcut is not None:
                a.setShortcut(QKeySequence(shortcut))
            (a.toggled if checkable else a.triggered).connect(slot)
            self.addAction(a)
            return a

        self.open_folder_act = act("&Open Folder...", self.open_folder, QKeySequence.StandardKey.Open,
                                   "Classify every radiograph in a folder (and its subfolders)")
        self.open_files_act = act("Open &Files...", self.open_files, "Ctrl+Shift+O", "Classify chosen files")
        self.export_overlay_act = act("&Export Overlay...", self.export_current_overlay, "Ctrl+E",
                                      "Save the current image with its overlay as PNG, at the image's size")
        self.export_all_act = act("Export &All Overlays...", self.export_all_overlays, "Ctrl+Shift+E",
                                  "Save every classified image with its overlay into a folder")
        self.export_csv_act = act("Export Results &CSV...", self.export_results_csv, "Ctrl+Shift+S",
                                  "Save the results table as CSV")
        self.quit_act = act("&Quit", self.close, QKeySequence.StandardKey.Quit, "Quit cxrviewer")
        self.cancel_act = act("&Cancel Batch", self._escape, "Esc", "Stop classifying (first: leave a measuring tool)")
        self.load_model_act = act("&Load Model...", self.choose_model, "Ctrl+M", "Load another model file")
        self.overlay_act = act("Show &Overlay", lambda on: self.set_view(replace(self.view, overlay=on)), "O",
                               "Show or hide the class activation map", checkable=True)
        self.invert_act = act("&Invert", lambda on: self.set_view(replace(self.view, invert=on)), "I",
                              "Invert the grey scale", True)
        self.windowing = Windowing(self)
        self.fit_act = act("&Fit and Reset Window", self.windowing.reset, "F",
                           "Show the whole image with its own window (or double-click the image)")
        self.zoom_in_act = act("Zoom &In", lambda: self.canvas.zoom(1.25), QKeySequence.StandardKey.ZoomIn)
        self.zoom_out_act = act("Zoom &Out", lambda: self.canvas.zoom(0.8), QKeySequence.StandardKey.ZoomOut)
        self.next_act = act("&Next Image", lambda: self.step(1), "N", "Go to the next row")
        self.prev_act = act("&Previous Image", lambda: self.step(-1), "P", "Go to the previous row")
        self.about_act = act("&About cxrviewer", self.show_about, None, "Model card and intended use")
        self.shortcuts_act = act("&Keyboard Shortcuts", self.show_shortcuts, "F1", "Every key of the viewer")
        self.stability_act = act("&Stability Check", self.set_stability, None, "Re-score each image with a black "
                                 "border and a slight blur to flag unstable verdicts (two more forward passes per "
                                 "image)", checkable=True)
        self.stability_act.setChecked(self.settings.stability)
        self.population_act = act("&Withhold Verdicts Outside the Intended Population", self.set_population_refuse, None,
                                  "Withhold the verdict of an image whose DICOM age is outside the population the model "
                                  "was trained on (off: the verdict is shown with a warning)", checkable=True)
        self.population_act.setChecked(self.settings.population_refuse)
        self.results_view.set_stability_checked(self.settings.stability)
        self.precision_group = QActionGroup(self, exclusive=True)
        for name, tip in zip(PRECISIONS, PRECISION_TIPS):
            a = QAction(name, self.precision_group, checkable=True, statusTip=tip, checked=name == self.settings.precision)
            a.triggered.connect(lambda _=False, n=name: self.set_precision(n))
        self.measure_actions = MeasureActions(self.measure, self)
        self.export_options = ExportOptions(self.settings, self)
        self.cache_actions = CacheActions(self)

    def _create_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addActions([self.open_folder_act, self.open_files_act])
        self.recent_menu = file_menu.addMenu("Open &Recent")
        file_menu.addActions([self.pacs.open_act, self.pacs.send_act, self.pacs.settings_act])
        file_menu.addSeparator()
        file_menu.addActions([self.export_overlay_act, self.export_all_act, self.export_csv_act])
        file_menu.addMenu("Export &Options").addActions(self.export_options.actions)
        file_menu.addSeparator()
        file_menu.addActions([self.reader.open_act, self.reader.save_act])
        file_menu.addSeparator()
        file_menu.addAction(self.cancel_act)
        file_menu.addActions(self.cache_actions.actions)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_act)
        view_menu = bar.addMenu("&View")
        view_menu.addActions([self.overlay_act, self.invert_act])
        view_menu.addSeparator()
        view_menu.addActions([self.fit_act, self.zoom_in_act, self.zoom_out_act])
        view_menu.addSeparator()
        self.windowing.fill_menu(view_menu)
        view_menu.addSeparator()
        view_menu.addActions([self.next_act, self.prev_act])
        model_menu = bar.addMenu("&Model")
        model_menu.addAction(self.load_model_act)
        model_menu.addMenu("&Precision").addActions(self.precision_group.actions())
        model_menu.addAction(self.stability_act)
        model_menu.addAction(self.population_act)
        model_menu.addSeparator()
        model_menu.addActions([self.site.evaluate_act, self.site.calibrate_act])
        reader_menu = bar.addMenu("&Reader")
        reader_menu.addActions([self.reader.agree_act, self.reader.disagree_act, *self.reader.label_acts,
                                self.reader.clear_act])
        reader_menu.addSeparator()
        reader_menu.addAction(self.site.study_act)
        self.measure_actions.fill(bar.addMenu("&Tools"))
        help_menu = bar.addMenu("&Help")
        help_menu.addActions([self.shortcuts_act, self.about_act])
        self._fill_recent_menu()
        self._create_toolbar()

    def _create_toolbar(self) -> None:
        style = self.style()
        icons = ((self.open_folder_act, QStyle.StandardPixmap.SP_DirOpenIcon),
                 (self.open_files_act, QStyle.StandardPixmap.SP_FileIcon),
                 (self.export_overlay_act, QStyle.StandardPixmap.SP_DialogSaveButton),
                 (self.export_csv_act, QStyle.StandardPixmap.SP_FileDialogDetailedView),
                 (self.load_model_act, QStyle.StandardPixmap.SP_DriveHDIcon))
        bar = self.addToolBar("Main")
        bar.setObjectName("main-toolbar")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for action, pixmap in icons:
            action.setIcon(style.standardIcon(pixmap))
            bar.addAction(action)
            if action is self.open_files_act or action is self.export_csv_act:
                bar.addSeparator()

    def _connect(self) -> None:
        KeyForwarder(self.canvas, self.results_view.table)  # Up/Down step rows after a click on the image
        pass_shortcuts_through_text_fields()  # Ctrl+E exports from the filter box too
        self.results_view.currentRowChanged.connect(self._show_row)
        self.results_model.dataChanged.connect(self._on_rows_changed)
        self.runner.scanned.connect(self._on_scanned)
        self.runner.results.connect(self.results_model.apply)
        self.runner.progress.connect(self.batch_status.update)
        self.runner.problem.connect(self._on_problem)
        self.runner.finished.connect(self._on_batch_finished)
        self.batch_status.cancel_button.clicked.connect(self.cancel_batch)
        self.loader.loaded.connect(self._on_image_loaded)
        self.model_loader.loaded.connect(self._on_model_loaded)
        self.model_loader.failed.connect(self._on_model_failed)
        self.model_loader.cancelled.connect(self._on_model_cancelled)
        self.method_maps.ready.connect(self._on_method_map)
        self.method_maps.failed.connect(self._on_method_map)
        self.method_maps.progress.connect(self.map_progress.set_progress)
        self.canvas.fitBoxChanged.connect(self._update_fit_box)
        self.loader.failed.connect(self._on_image_failed)
        self._loading_timer.timeout.connect(self._show_loading_hint)
        self.controls.viewEdited.connect(self.set_view)
        self.controls.fitRequested.connect(self.canvas.fit)
        self.controls.choiceMade.connect(self.results_view.table.setFocus)
        self.canvas.windowDragged.connect(self.windowing.set_window)
        self.windowing.follow_rows(self.results_view.proxy)
        self.canvas.resetRequested.connect(self.windowing.reset)
        self.canvas.hovered.connect(self.hover_label.setText)
        self.reader.export_measurements = self.measure.store.to_dict  # measurements travel with reader sessions
        self.reader.import_measurements = self.measure.restore
        self.measure.edited.connect(self.reader.measurements_changed)
        self.measure.changed.connect(lambda: self.details.set_measurements(self.measure.labels(),
                                                                           self.measure.calibration.describe()))
        self.measure.toolChanged.connect(self._update_actions)

    # -- settings ---------------------------------------------------------------------
    def _restore_settings(self) -> None:
        s = self.settings
        if s.geometry is not None:
            self.restoreGeometry(s.geometry)
        if s.splitter:
            self.splitter.setSizes(s.splitter)
        self.set_view(replace(self.view, opacity=s.opacity))

    def _save_settings(self) -> None:
        s = self.settings
        s.geometry = self.saveGeometry()
        s.splitter = self.splitter.sizes()
        s.opacity = self.view.opacity
        s.sync()

    # -- opening ------------------------------------------------------------------------
    def open_folder(self) -> None:
        folder = dialogs.ask_folder(self, self.settings.last_folder)
        if folder:
            self.open_inputs([folder])

    def open_files(self) -> None:
        files = dialogs.ask_files(self, self.settings.last_folder)
        if files:
            self.open_inputs(files)

    def open_inputs(self, inputs: list[str | Path]) -> None:
        """Scan ``inputs`` (files and folders) and classify what is found, in the background."""
        inputs = [Path(p) for p in inputs]
        missing = [p for p in inputs if not p.exists()]
        if missing:
            self.message.show_message(f"Not found: {missing[0]}", 8000)
            inputs = [p for p in inputs if p.exists()]
            if not inputs:
                return
        self.inputs = inputs
        first = inputs[0]
        self.settings.last_folder = first if first.is_dir() else first.parent
        self.settings.add_recent(inputs)
        self._fill_recent_menu()
        self.loader.clear()
        self.windowing.clear()
        self.reader.start_study(inputs)
        self.results_model.set_paths([])
        self.canvas.show_message("Scanning...")
        self.details.clear("Scanning...")
        name = first.name if len(inputs) == 1 else f"{len(inputs)} items"
        self.setWindowTitle(f"{name} - cxrviewer")
        self.batch_status.set_idle(f"Scanning {name}...")
        self._batch_start = time.monotonic()
        self._start_run(inputs)
        self._update_actions()

    def _on_scanned(self, paths: list) -> None:
        waiting = self.model is not None or self.model_loader.loading  # a model on its way classifies them when ready
        self.results_model.set_paths(paths, QUEUED if waiting else NO_MODEL)
        if not paths:
            self.canvas.show_message("No radiographs found (JPEG, PNG, BMP, TIFF or DICOM).")
            self.details.clear("No radiographs found.")
            self.batch_status.set_idle("No radiographs found")
        elif self.model is not None:
            self.batch_status.start(len(paths))
        elif self.model_loader.loading:
            self.batch_status.set_idle(f"{len(paths)} files - loading the model...")
        else:
            self.batch_status.set_idle(f"{len(paths)} files - " + ("loading the model..." if self.model_loader.loading
                                                                   else "no model loaded (Model > Load Model...)"))
        self.results_view.select_first()
        self._auto_path = self.current_path()  # chosen for the user: moves on if this file turns out damaged
        self._update_actions()

    def _on_problem(self, message: str) -> None:
        self.message.show_message(f"Problem: {message} (the batch goes on)", 15000)

    def _on_batch_finished(self, completed: bool) -> None:
        m = self.results_model
        if not completed:
            m.mark_unfinished(CANCELLED)
        total, done, errors = m.rowCount(), m.count(DONE), m.count(ERROR)
        if self.model is not None and total:
            seconds = time.monotonic() - self._batch_start
            verb = "Done" if completed else "Cancelled"
            rate = f" ({(done + errors) / seconds:.1f} img/s)" if seconds > 0 and done + errors else ""
            self.batch_status.set_idle(f"{verb}: {done + errors} of {total} files in {seconds:.1f} s{rate}"
                                       + (f", {errors} failed" if errors else ""))
        self._update_actions()
        self.batchFinished.emit(completed)

    def _escape(self) -> None:
        """Esc: leave the measuring tool first, else cancel the batch; a batch running for more than
        ESC_CONFIRM_SECONDS is cancelled only once the user confirms (a stray Esc costs nothing)."""
        if self.measure.cancel():
            return
        if self.runner.running and time.monotonic() - self._batch_start > ESC_CONFIRM_SECONDS:
            done, total = self.batch_status.bar.value(), self.batch_status.bar.maximum()
            kept = ("Results so far are kept: opening the folder again resumes the batch."
                    if self.settings.results_cache else "Results so far are not kept (File > Keep Results Between Runs is off).")
            if not dialogs.confirm(self, "Cancel Batch", f"Stop classifying? {done} of {total} files are done.\n\n{kept}"):
                return
        self.cancel_batch()

    def cancel_batch(self) -> None:
        """Esc / Cancel: stop the batch (rows not reached become cancelled) and any model still loading."""
        if self.runner.cancel():
            self.batch_status.set_cancelling()
        self.model_loader.cancel()
        self._update_actions()

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for entry in self.settings.recent:
            label = entry[0] if len(entry) == 1 else f"{entry[0]} (+{len(entry) - 1})"
            a = self.recent_menu.addAction(label)
            a.triggered.connect(lambda _=False, e=entry: self.open_inputs(e))
        if self.settings.recent:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear Menu", self._clear_recent)
        self.recent_menu.setEnabled(bool(self.settings.recent))

    def _clear_recent(self) -> None:
        self.settings.clear_recent()
        self._fill_recent_menu()

    # -- the current image --------------------------------------------------------------
    def step(self, delta: int) -> None:
        """Move the table's current row by ``delta`` in view order."""
        table, proxy = self.results_view.table, self.results_view.proxy
        if not proxy.rowCount():
            return
        idx = table.currentIndex()
        row = min(max((idx.row() if idx.isValid() else -1) + delta, 0), proxy.rowCount() - 1)
        self.results_view.select_source_row(proxy.mapToSource(proxy.index(row, 0)).row())

    def current_path(self) -> Path | None:
        return self.results_model.row(self._current_row).path if self._current_row >= 0 else None

    def current_result(self):
        return self.results_model.row(self._current_row).result if self._current_row >= 0 else None

    def _show_row(self, row: int) -> None:
        self._current_row = row
        self.method_maps.cancel()  # a map still computing is for the image we leave
        self.measure.show(None)
        self._update_actions()
        if row < 0:
            hidden = self.results_model.rowCount() > 0  # every row hidden by the filter
            self.canvas.show_message("No file matches the filter" if hidden else "Open a folder (Ctrl+O) or drop radiographs here")
            self.details.clear("No file matches the filter." if hidden else "No file selected.")
            return
        r = self.results_model.row(row)
        if r.result is not None and r.result.error:
            self._loading_timer.stop()
            self.canvas.show_message(f"{r.path.name}\n\n{r.result.error}")
            self.details.show_file(r.path, r.status, r.result)
            self.imageShown.emit(r.path)
            return
        rad = self.loader.request(r.path)
        self.loader.prefetch([self.results_model.row(i).path for i in self.results_view.neighbour_rows(PREFETCH_AHEAD, PREFETCH_BEHIND)])
        if rad is not None:
            self._display(r.path, rad)
        else:
            self._loading_timer.start()
            self.details.show_file(r.path, r.status, r.result)

    def _display(self, path: Path, image) -> None:
        self._loading_timer.stop()
        r = self.results_model.row(self._current_row)
        overlay = self._overlay_for(r.result, image.pixels.shape)
        window = self.windowing.show_image(path, image, *self._position())
        self.canvas.set_image(image.pixels, image.preview, overlay=overlay, scale=image.scale)
        self.set_view(replace(self.view, window=window))
        self._update_caption(r.result)
        self.details.show_file(path, r.status, r.result, self.windowing.details_meta(image.meta))
        self.measure.show(path, image.meta, image.pixels.shape)
        self.imageShown.emit(path)

    def _position(self) -> tuple[int, int]:
        """(i, n): the current row's place in the table as sorted and filtered (from 1), and the rows shown."""
        proxy = self.results_view.proxy
        return proxy.mapFromSource(self.results_model.index(self._current_row, 0)).row() + 1, proxy.rowCount()

    def _update_fit_box(self) -> None:
        """Have the loader make previews at the size the view draws them (unless the view is tiny)."""
        box = self.canvas.fit_box()
        self.loader.fit_box = box if min(box) >= 64 else None

    def _on_image_loaded(self, path: Path, rad) -> None:
        if path == self.current_path():
            self._display(path, rad)

    def _on_image_failed(self, path: Path, reason: str) -> None:
        if path == self.current_path():
            self._loading_timer.stop()
            self.canvas.show_message(f"{path.name}\n\n{reason}")
            self.imageShown.emit(path)

    def _show_loading_hint(self) -> None:
        path = self.current_path()
        if path is not None:
            self.canvas.show_message(f"Loading {path.name}...")

    def _on_rows_changed(self, top, bottom, _roles=()) -> None:
        if self._auto_path is not None and self._auto_path == self.current_path() \
                and self.results_model.row(self._current_row).status == ERROR:  # never open a batch on a broken file
            row = self.results_view.first_readable_row()
            if row >= 0:
                self._auto_path = self.results_model.row(row).path
                self.results_view.select_source_row(row)
                return
        if top.row() <= self._current_row <= bottom.row():
            r = self.results_model.row(self._current_row)
            if r.result is not None and r.result.error:
                self._show_row(self._current_row)
            elif self.canvas.has_image:
                self._refresh_overlay()
        if self._current_row < 0 and self.results_model.rowCount():
            self.results_view.select_first()
        self._update_actions()

    # -- the view ------------------------------------------------------------------------
    def set_view(self, view: ViewState) -> None:
        """Show the image as ``view`` says: controls, canvas, actions and the overlay follow."""
        old, self.view = self.view, view
        self.controls.set_view(view)
        self.canvas.set_view(view)
        if old.window != view.window:
            self.windowing.viewed(view.window)
            self.refresh_details()
        for action, on in ((self.overlay_act, view.overlay), (self.invert_act, view.invert)):
            with QSignalBlocker(action):
                action.setChecked(on)
        if (old.class_name, old.scale, old.method, old.overlay) != (view.class_name, view.scale, view.method, view.overlay):
            self._refresh_overlay()

    def _overlay_for(self, result, image_hw) -> Overlay | None:
        """The overlay the view asks for (class, scale) of ``result`` on an image of ``image_hw``."""
        meta = self.model.meta if self.model is not None else None
        overlay = choose_overlay(result, self.view.class_name, self.view.scale, fixed_range(meta), image_hw)
        if overlay is None or self.view.method == EVIDENCE or not self.view.overlay:
            return overlay
        image = self.loader.cached(result.path)
        return self.method_maps.overlay(result, self.view, self.model, image.pixels if image else None)

    def _on_method_map(self, key, _found_or_why) -> None:
        """An on-demand map (or its failure) arrived: draw it if it is of the image on screen."""
        if key.path == self.current_path() and self.canvas.has_image:
            self._refresh_overlay(draw_details=False)

    def _render_options(self) -> RenderOptions:
        """What exports draw: the view, plus the model's fixed colour range and name (and, for an on-demand
        method, the maps already made and a private copy of the model for the others)."""
        meta = self.model.meta if self.model is not None else None
        window, windows = self.windowing.windows_for_export()
        other_method = self.model is not None and self.view.method != EVIDENCE
        return RenderOptions(replace(self.view, window=window), fixed_range(meta), self.model_caption(), windows,
                             measurements=self.measure.store.snapshot(), corners=self.settings.export_corners,
                             anonymise=self.settings.anonymise, dicom=self.settings.export_dicom,
                             maps=self.method_maps.maps_of(self.view.method, self.model) if other_method else {},
                             model=copy.deepcopy(self.model) if other_method else None,  # hooks never shared
                             batch=self.batch)

    def model_name(self) -> str:
        """The model's display name (the core's, as the CLI writes it)."""
        return self.model.display_name if self.model is not None else ""

    def model_caption(self) -> str:
        """The model as exports name it: its display name and its intended use (the core's, as the CLI writes it)."""
        return model_line(self.model.display_name, self.model.meta) if self.model is not None else ""

    def _refresh_overlay(self, draw_details: bool = True) -> None:
        result = self.current_result()
        self.canvas.set_overlay(self._overlay_for(result, self.canvas.image_shape))
        self._update_caption(result)
        if draw_details:
            self.refresh_details()

    def refresh_details(self) -> None:
        """Redraw the details panel for the current row (its window, anonymised or not)."""
        if self._current_row >= 0:
            r = self.results_model.row(self._current_row)
            image = self.loader.cached(r.path)
            self.details.show_file(r.path, r.status, r.result, self.windowing.details_meta(image.meta if image else None))

    def _update_caption(self, result) -> None:
        shown = (result.predicted or result.label) if result is not None and result.ok else None
        self.canvas.setToolTip(verdict_legend(self.batch, shown, result))
        if result is not None and result.ok and result.in_scope is False:  # a banner over the image and its CAM
            self.canvas.set_caption(f"OUT OF SCOPE (no verdict): {result.scope_reason}",  # the model's call: in details
                                    CAPTION_OUT_OF_SCOPE)
        elif result is not None and result.ok and result.label:
            positive = result.label == self.batch.positive
            self.canvas.set_caption(verdict(result, self.batch), CAPTION_POSITIVE if positive else CAPTION_NEGATIVE)
        else:
            self.canvas.set_caption("")

    # -- model ---------------------------------------------------------------------------
    def _load_initial_model(self, path: Path | None) -> None:
        if path is None:
            saved = self.settings.model_path
            path = saved if saved is not None and saved.is_file() else default_model_path()
        if path is None:
            self._set_model(None, None)
            self.message.show_message("No model installed: choose a model file with Model > Load Model... (Ctrl+M)")
            self.canvas.show_message("No model is installed yet.\nModel > Load Model... (Ctrl+M) to choose one;\n"
                                     "images can still be viewed.")
            self.modelChanged.emit()
            return
        self.load_model_file(path, quiet=True)

    def choose_model(self) -> None:
        start = self.model_path.parent if self.model_path else self.settings.last_folder
        path = dialogs.ask_model_file(self, start)
        if path:
            self.load_model_file(path)

    def load_model_file(self, path: Path, quiet: bool = False) -> None:
        """Load ``path`` in the background (replacing a load still running; Esc cancels it);
        on failure say why and keep the current model."""
        self._quiet_load = quiet
        self.model_label.setText(f"Loading {Path(path).name}...")
        self.model_loader.load(path)
        self._update_actions()

    def _on_model_cancelled(self, _path: Path) -> None:
        self._set_model(self.model, self.model_path)
        self.message.show_message("Model loading cancelled", 5000)

    def _on_model_loaded(self, path: Path, model) -> None:
        self.reader.study.threshold = None  # a live threshold belongs to the model it was set on
        self._set_model(model, path)
        self.settings.model_path = path
        self.message.show_message(f"Model loaded: {path.name}", 5000)
        if self.inputs:
            self._reclassify()
        self.modelChanged.emit()

    def _reclassify(self) -> None:
        """Run the new model over the rows on show, keeping the current row and the scroll position
        (rows not yet scanned: scan again)."""
        paths = self.results_model.paths
        self.results_model.reset_status(QUEUED)
        self._batch_start = time.monotonic()
        if paths:
            self.batch_status.start(len(paths))
            self._start_run(paths=paths)
        else:
            self._start_run(self.inputs)
        self._update_actions()

    def _start_run(self, inputs=(), paths: list[Path] | None = None) -> None:
        """Classify with the model and the Model menu's choices (precision, stability check)."""
        device = self.device if self.model is not None else self._device_choice  # no model: no torch needed yet
        self.runner.start(inputs, paths=paths, model=self.model, device=device,
                          precision=self.settings.precision, stability=self.settings.stability,
                          cache=self.settings.results_cache,
                          population="refuse" if self.settings.population_refuse else "flag")

    def _on_model_failed(self, path: Path, message: str) -> None:
        self._set_model(self.model, self.model_path)
        if self.model is None and self.results_model.paths:  # the rows that waited for it
            self.results_model.reset_status(NO_MODEL)
            self.batch_status.set_idle(f"{len(self.results_model.paths)} files - no model loaded (Model > Load Model...)")
        text = f"Could not load the model {path.name}:\n{message}"
        if self.model is not None:
            text += f"\n\nStill using {self.model_path.name}."
        if self._quiet_load:
            self.message.show_message(text.replace("\n", " "))
        else:
            dialogs.show_error(self, "Load Model", text)
        self.modelChanged.emit()

    def _set_model(self, model, path: Path | None) -> None:
        self.model, self.model_path = model, path
        self.method_maps.clear()
        self.batch = self.reader.live_batch(Batch.of(model))
        names = list(self.batch.class_names)
        self.reader.set_classes(names)
        self.results_model.set_batch(self.batch)
        self.results_view.set_classes(names)
        self.controls.set_classes(names)
        audited = ((model.meta.get("metrics") or {}).get("explanations") if model is not None else None)
        notes, audit_text = _audit_texts(audited)
        method, why = default_method(audited)
        if why:
            notes[method] = f"{notes[method]}.\n{why}" if notes.get(method) else why
        self.controls.set_method_notes(notes)
        if self.view.class_name not in names or self.view.method != method:
            self.set_view(replace(self.view, class_name=self.view.class_name if self.view.class_name in names else None,
                                  method=method))
        device = str(self.device) if model is not None else ""
        precision = self.precision_text()
        self.model_label.setText(f"Model: {self.batch.model_name}  ·  {self.device.type.upper()}  ·  "
                                 f"{precision.split(' ')[0]}" if model else "No model")
        self.model_label.setToolTip(f"Runs in {precision}\nTrained on: {self.batch.intended_for or NOT_RECORDED}" if model else "")
        self.details.set_model(ModelInfo(self.batch, device, precision, audit_text))
        self._update_actions()

    @property
    def device(self):
        """The device models run on (``torch.device``); picked on first use, which imports torch."""
        if self._device is None:
            from ..core.batch.inference import pick_device

            self._device = pick_device(self._device_choice)
        return self._device

    def precision_text(self) -> str:
        """The precision the model runs in here, and why ("" without a model)."""
        if self.model is None:
            return ""
        from ..core.model.precision import choose_precision

        choice = choose_precision(self.settings.precision, self.device, self.model)
        return f"{choice.name} ({choice.reason})"

    def set_precision(self, name: str) -> None:
        """Model > Precision: keep the choice and classify again with it."""
        if name == self.settings.precision:
            return
        self.settings.precision = name
        for a in self.precision_group.actions():
            a.setChecked(a.text() == name)
        self._set_model(self.model, self.model_path)
        self.message.show_message(f"Precision: {self.precision_text() or name}", 8000)
        if self.model is not None and self.inputs:
            self._reclassify()

    def set_population_refuse(self, on: bool) -> None:
        """Model > Withhold Verdicts Outside the Intended Population: keep the choice and classify again with it."""
        if on == self.settings.population_refuse:
            return
        self.settings.population_refuse = on
        self.message.show_message("Verdicts outside the intended population are withheld" if on else
                                  "Verdicts outside the intended population are shown, flagged", 8000)
        if self.model is not None and self.inputs:
            self._reclassify()

    def set_stability(self, on: bool) -> None:
        """Model > Stability Check: keep the choice; switched on, classify again to fill in the badges."""
        if on == self.settings.stability:
            return
        self.settings.stability = on
        self.results_view.set_stability_checked(on)
        self.message.show_message("Stability check on" if on else "Stability check off from the next batch", 8000)
        if on and self.model is not None and self.inputs:
            self._reclassify()

    # -- exports -------------------------------------------------------------------------
    def _export_folder_start(self) -> Path:
        return self.settings.last_export_folder or Path.home()

    def export_current_overlay(self) -> None:
        result = self.current_result()
        if result is None or not result.ok:
            return
        options = self._render_options()
        suggested = self._export_folder_start() / suggested_name(result, options.view)
        path = dialogs.ask_save_file(self, "Export Overlay", suggested, "PNG image (*.png)")
        if not path:
            return
        path = path if path.suffix.lower() == ".png" else path.with_suffix(".png")
        self.settings.last_export_folder = path.parent
        image = self.loader.cached(result.path)  # decoded at full size; else the task decodes it
        rad = image.radiograph if image is not None else None
        task = self.tasks.start(lambda _cancel: export_overlay(result, options, path, rad), name="export")
        task.done.connect(self._on_exported)
        task.failed.connect(lambda msg: dialogs.show_error(self, "Export Overlay", f"Could not export:\n{msg}"))

    def export_all_overlays(self) -> None:
        results = [r for r in self.results_model.results() if r.ok]
        if not results:
            return
        folder = dialogs.ask_folder(self, self._export_folder_start(), "Export All Overlays Into")
        if not folder:
            return
        try:
            check_output_dir(folder, self.inputs)
        except ExportError as e:
            dialogs.show_error(self, "Export All Overlays", str(e))
            return
        sources = {(p if p.is_dir() else p.parent).resolve() for p in self.inputs}
        if folder.resolve() in sources and not dialogs.confirm(
                self, "Export All Overlays",
                f"{folder} is the folder you opened.\nWrite {len(results)} PNG files into it anyway?"):
            return
        self.settings.last_export_folder = folder
        options = self._render_options()
        task = self.tasks.start(lambda _cancel: export_overlays(results, options, folder), name="export-all")
        task.yielded.connect(lambda p: self.message.show_message(f"Exporting overlays: {p[0]} of {p[1]}"))
        task.done.connect(self._on_exported)
        task.failed.connect(lambda msg: dialogs.show_error(self, "Export All Overlays", f"Could not export:\n{msg}"))

    def export_results_csv(self) -> None:
        results = self.results_model.results()
        if not results or self.model is None:
            return
        suggested = self._export_folder_start() / "cxrviewer_results.csv"
        path = dialogs.ask_save_file(self, "Export Results CSV", suggested, "CSV file (*.csv)")
        if not path:
            return
        path = path if path.suffix.lower() == ".csv" else path.with_suffix(".csv")
        self.settings.last_export_folder = path.parent
        batch = self.batch
        columns = csv_columns(batch, reader=True)
        task = self.tasks.start(lambda _cancel: write_csv(results, path, batch, overwrite=True, columns=columns),
                                name="export-csv")
        task.done.connect(self._on_exported)
        task.failed.connect(lambda msg: dialogs.show_error(self, "Export Results CSV", f"Could not export:\n{msg}"))

    def _on_exported(self, outcome) -> None:
        if isinstance(outcome, dict):
            text = summary_text(outcome)
        else:
            text = f"Saved {outcome}"
        self.message.show_message(text, 10000)
        self.exportFinished.emit(outcome)

    # -- help ----------------------------------------------------------------------------
    def show_about(self) -> None:
        dialogs.show_about(self, "About cxrviewer", about_html(self.model, self.model_path, self.device, __version__))

    def show_shortcuts(self) -> None:
        dialogs.show_dialog(ShortcutsDialog(self))

    # -- state, drag and drop, closing -----------------------------------------------------
    def _update_actions(self) -> None:
        result = self.current_result()
        has_results = any(r.ok for r in self.results_model.results()) if self.results_model.rowCount() else False
        self.export_overlay_act.setEnabled(result is not None and result.ok)
        self.export_all_act.setEnabled(has_results)
        self.pacs.update_actions(has_results)
        self.export_csv_act.setEnabled(self.model is not None and bool(self.results_model.results()))
        self.cancel_act.setEnabled(self.runner.running or self.model_loader.loading or self.measure.busy)

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.StatusTip:  # menu hints go to the message line, not over the batch's progress
            self.message.show_message(event.tip())
            return True
        return super().event(event)

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_inputs(paths)

    def closeEvent(self, event) -> None:
        self._save_settings()
        self.reader.autosave()
        self.tasks.shutdown()  # every background task: cancelled, and waited for
        super().closeEvent(event)

