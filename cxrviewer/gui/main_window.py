"""The main window: composes the results table, image view, details panel and status bar.

It owns no heavy work: every background job is a :class:`Task` of the window's
:class:`TaskGroup` (batches through a :class:`BatchRunner`, display images through an
:class:`ImageLoader`, model files through a :class:`ModelLoader`, exports directly), and closing the window
stops them all. Slots here only route plain data between widgets. Helpers holding a reference to the window
do the rest: :mod:`.menus` (actions, menus, toolbar), :class:`~.batch_control.BatchControl` (``runs``),
:class:`~.model_control.ModelControl` (``models``), :class:`~.export_control.ExportControl` (``exports``),
and the reader, site and PACS tools.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QEvent, QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtWidgets import QLabel, QMainWindow, QSplitter, QVBoxLayout, QWidget

from .. import __version__
from ..core.explain.catalog import EVIDENCE
from ..core.model.population import model_line
from ..core.results.columns import Batch, verdict_legend
from ..core.results.verdict import verdict
from . import dialogs
from .about import about_html
from .batch_control import BatchControl
from .canvas import ImageCanvas, Overlay
from .controls import ViewControls
from .details import DetailsPanel
from .display import choose_overlay, fixed_range
from .export_control import ExportControl
from .exporting import RenderOptions
from .image_loader import ImageLoader
from .keyboard import KeyForwarder, pass_shortcuts_through_text_fields
from .measure_tool import MeasureTool
from .menus import create_actions, create_menus, fill_recent_menu
from .method_maps import MapProgress, MethodMaps
from .model_control import ModelControl
from .model_loader import ModelLoader
from .pacs_tools import PacsTools
from .reader_controller import ReaderController
from .results_model import ERROR, ResultsModel
from .results_view import ResultsView
from .settings import Settings
from .shortcuts_dialog import ShortcutsDialog
from .site_tools import SiteTools
from .status import BatchStatus, MessageLabel
from .theme import CAPTION_NEGATIVE, CAPTION_OUT_OF_SCOPE, CAPTION_POSITIVE
from .view_state import ViewState
from .worker import BatchRunner, TaskGroup

LOADING_HINT_MS = 150
PREFETCH_AHEAD, PREFETCH_BEHIND = 3, 1  # rows decoded ahead of the reader (the cache keeps 8 images)


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
        self.inputs: list[Path] = []
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
        self._loading_timer = QTimer(self, singleShot=True, interval=LOADING_HINT_MS)

        self.models = ModelControl(self, device)
        self.runs = BatchControl(self)
        self.exports = ExportControl(self)
        self.reader = ReaderController(self)
        self.site = SiteTools(self)
        self.pacs = PacsTools(self)
        self._build_layout()
        create_actions(self)
        create_menus(self)
        self._connect()
        self._restore_settings()
        self._update_actions()
        if model_path is not None or load_default:
            self.models.load_initial(model_path)

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

    def _connect(self) -> None:
        KeyForwarder(self.canvas, self.results_view.table)  # Up/Down step rows after a click on the image
        pass_shortcuts_through_text_fields()  # Ctrl+E exports from the filter box too
        self.results_view.currentRowChanged.connect(self._show_row)
        self.results_model.dataChanged.connect(self._on_rows_changed)
        self.loader.loaded.connect(self._on_image_loaded)
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
        fill_recent_menu(self)
        self.loader.clear()
        self.windowing.clear()
        self.reader.start_study(inputs)
        self.results_model.set_paths([])
        self.canvas.show_message("Scanning...")
        self.details.clear("Scanning...")
        name = first.name if len(inputs) == 1 else f"{len(inputs)} items"
        self.setWindowTitle(f"{name} - cxrviewer")
        self.batch_status.set_idle(f"Scanning {name}...")
        self.runs.open(inputs)
        self._update_actions()

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
    @property
    def device(self):
        """The device models run on (``torch.device``); picked on first use, which imports torch."""
        return self.models.device

    def load_model_file(self, path: Path, quiet: bool = False) -> None:
        """Load ``path`` in the background (see :meth:`.ModelControl.load_file`)."""
        self.models.load_file(path, quiet)

    def precision_text(self) -> str:
        """The precision the model runs in here, and why ("" without a model)."""
        return self.models.precision_text()

    def cancel_batch(self) -> None:
        """Stop the batch and any model still loading (see :meth:`.BatchControl.cancel`)."""
        self.runs.cancel()

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

