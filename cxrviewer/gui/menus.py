"""The window's actions, menu bar, toolbar and File > Open Recent menu.

:func:`create_actions` makes the window's own actions (``window.open_folder_act`` and the rest, as attributes
the rest of the GUI and the tests use); :func:`create_menus` arranges them, with the actions its helpers own
(reader, site tools, PACS, measuring, exports, cache), into the menu bar and the toolbar.
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QStyle

from ..core.model.precision_policy import PRECISIONS
from .cache_menu import CacheActions
from .export_menu import ExportOptions
from .measure_menu import MeasureActions
from .windowing import Windowing

PRECISION_TIPS = (
    "Automatic: int8 on CPUs with VNNI or AVX2, else bfloat16 on CPUs that compute it natively (float16 on CUDA), "
    "when the model file records >= 99.5% label agreement with float32 on validation (and CAMs correlating >= 0.98 "
    "for int8), else float32",
    "float32: exact, slowest on CPUs with bfloat16 units",
    "bfloat16: about 3x faster where the CPU has bfloat16 units; probabilities move by ~0.01",
    "float16: for CUDA GPUs; slow on most CPUs",
    "int8: about 4x faster than float32 on CPUs with VNNI or AVX2; needs the model file's int8 calibration",
)


def create_actions(w) -> None:
    """Make the window ``w``'s actions (set as its attributes) and the helpers that own more of them."""
    def act(text, slot, shortcut=None, tip="", checkable=False):
        a = QAction(text, w, statusTip=tip, checkable=checkable)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
        (a.toggled if checkable else a.triggered).connect(slot)
        w.addAction(a)
        return a

    w.open_folder_act = act("&Open Folder...", w.open_folder, QKeySequence.StandardKey.Open,
                            "Classify every radiograph in a folder (and its subfolders)")
    w.open_files_act = act("Open &Files...", w.open_files, "Ctrl+Shift+O", "Classify chosen files")
    w.export_overlay_act = act("&Export Overlay...", w.exports.current_overlay, "Ctrl+E",
                               "Save the current image with its overlay as PNG, at the image's size")
    w.export_all_act = act("Export &All Overlays...", w.exports.all_overlays, "Ctrl+Shift+E",
                           "Save every classified image with its overlay into a folder")
    w.export_csv_act = act("Export Results &CSV...", w.exports.results_csv, "Ctrl+Shift+S",
                           "Save the results table as CSV")
    w.quit_act = act("&Quit", w.close, QKeySequence.StandardKey.Quit, "Quit cxrviewer")
    w.cancel_act = act("&Cancel Batch", w.runs.escape, "Esc", "Stop classifying (first: leave a measuring tool)")
    w.load_model_act = act("&Load Model...", w.models.choose, "Ctrl+M", "Load another model file")
    w.overlay_act = act("Show &Overlay", lambda on: w.set_view(replace(w.view, overlay=on)), "O",
                        "Show or hide the class activation map", checkable=True)
    w.invert_act = act("&Invert", lambda on: w.set_view(replace(w.view, invert=on)), "I",
                       "Invert the grey scale", True)
    w.windowing = Windowing(w)
    w.fit_act = act("&Fit and Reset Window", w.windowing.reset, "F",
                    "Show the whole image with its own window (or double-click the image)")
    w.zoom_in_act = act("Zoom &In", lambda: w.canvas.zoom(1.25), QKeySequence.StandardKey.ZoomIn)
    w.zoom_out_act = act("Zoom &Out", lambda: w.canvas.zoom(0.8), QKeySequence.StandardKey.ZoomOut)
    w.next_act = act("&Next Image", lambda: w.step(1), "N", "Go to the next row")
    w.prev_act = act("&Previous Image", lambda: w.step(-1), "P", "Go to the previous row")
    w.about_act = act("&About cxrviewer", w.show_about, None, "Model card and intended use")
    w.shortcuts_act = act("&Keyboard Shortcuts", w.show_shortcuts, "F1", "Every key of the viewer")
    w.stability_act = act("&Stability Check", w.models.set_stability, None, "Re-score each image with a black "
                          "border and a slight blur to flag unstable verdicts (two more forward passes per "
                          "image)", checkable=True)
    w.stability_act.setChecked(w.settings.stability)
    w.population_act = act("&Withhold Verdicts Outside the Intended Population", w.models.set_population_refuse, None,
                           "Withhold the verdict of an image whose DICOM age is outside the population the model "
                           "was trained on (off: the verdict is shown with a warning)", checkable=True)
    w.population_act.setChecked(w.settings.population_refuse)
    w.results_view.set_stability_checked(w.settings.stability)
    w.precision_group = QActionGroup(w, exclusive=True)
    for name, tip in zip(PRECISIONS, PRECISION_TIPS):
        a = QAction(name, w.precision_group, checkable=True, statusTip=tip, checked=name == w.settings.precision)
        a.triggered.connect(lambda _=False, n=name: w.models.set_precision(n))
    w.measure_actions = MeasureActions(w.measure, w)
    w.export_options = ExportOptions(w.settings, w)
    w.cache_actions = CacheActions(w)


def create_menus(w) -> None:
    """Fill the window ``w``'s menu bar (``w.recent_menu`` among them) and its toolbar."""
    bar = w.menuBar()
    file_menu = bar.addMenu("&File")
    file_menu.addActions([w.open_folder_act, w.open_files_act])
    w.recent_menu = file_menu.addMenu("Open &Recent")
    file_menu.addActions([w.pacs.open_act, w.pacs.send_act, w.pacs.settings_act])
    file_menu.addSeparator()
    file_menu.addActions([w.export_overlay_act, w.export_all_act, w.export_csv_act])
    file_menu.addMenu("Export &Options").addActions(w.export_options.actions)
    file_menu.addSeparator()
    file_menu.addActions([w.reader.open_act, w.reader.save_act])
    file_menu.addSeparator()
    file_menu.addAction(w.cancel_act)
    file_menu.addActions(w.cache_actions.actions)
    file_menu.addSeparator()
    file_menu.addAction(w.quit_act)
    view_menu = bar.addMenu("&View")
    view_menu.addActions([w.overlay_act, w.invert_act])
    view_menu.addSeparator()
    view_menu.addActions([w.fit_act, w.zoom_in_act, w.zoom_out_act])
    view_menu.addSeparator()
    w.windowing.fill_menu(view_menu)
    view_menu.addSeparator()
    view_menu.addActions([w.next_act, w.prev_act])
    model_menu = bar.addMenu("&Model")
    model_menu.addAction(w.load_model_act)
    model_menu.addMenu("&Precision").addActions(w.precision_group.actions())
    model_menu.addAction(w.stability_act)
    model_menu.addAction(w.population_act)
    model_menu.addSeparator()
    model_menu.addActions([w.site.evaluate_act, w.site.calibrate_act])
    reader_menu = bar.addMenu("&Reader")
    reader_menu.addActions([w.reader.agree_act, w.reader.disagree_act, *w.reader.label_acts,
                            w.reader.clear_act])
    reader_menu.addSeparator()
    reader_menu.addAction(w.site.study_act)
    w.measure_actions.fill(bar.addMenu("&Tools"))
    help_menu = bar.addMenu("&Help")
    help_menu.addActions([w.shortcuts_act, w.about_act])
    fill_recent_menu(w)
    _create_toolbar(w)


def _create_toolbar(w) -> None:
    style = w.style()
    icons = ((w.open_folder_act, QStyle.StandardPixmap.SP_DirOpenIcon),
             (w.open_files_act, QStyle.StandardPixmap.SP_FileIcon),
             (w.export_overlay_act, QStyle.StandardPixmap.SP_DialogSaveButton),
             (w.export_csv_act, QStyle.StandardPixmap.SP_FileDialogDetailedView),
             (w.load_model_act, QStyle.StandardPixmap.SP_DriveHDIcon))
    bar = w.addToolBar("Main")
    bar.setObjectName("main-toolbar")
    bar.setMovable(False)
    bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    for action, pixmap in icons:
        action.setIcon(style.standardIcon(pixmap))
        bar.addAction(action)
        if action is w.open_files_act or action is w.export_csv_act:
            bar.addSeparator()


def fill_recent_menu(w) -> None:
    """File > Open Recent from the settings' recent inputs (disabled when there are none)."""
    menu = w.recent_menu
    menu.clear()
    for entry in w.settings.recent:
        label = entry[0] if len(entry) == 1 else f"{entry[0]} (+{len(entry) - 1})"
        a = menu.addAction(label)
        a.triggered.connect(lambda _=False, e=entry: w.open_inputs(e))
    if w.settings.recent:
        menu.addSeparator()
        menu.addAction("Clear Menu", lambda: _clear_recent(w))
    menu.setEnabled(bool(w.settings.recent))


def _clear_recent(w) -> None:
    w.settings.clear_recent()
    fill_recent_menu(w)
