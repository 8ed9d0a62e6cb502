"""Window/level and four-corner text for the main window: presets, reset, the batch lock, anonymise.

A :class:`Windowing` owns the View-menu actions for these and the :class:`WindowMemory` of the
windows the reader set (per image, or one for the batch when locked). The window itself lives in
the main window's :class:`ViewState` (modality units; None = the image's own default).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QKeySequence

from ..core.io.corner_text import IDENTIFYING, corner_info
from ..core.io.window import PRESETS, Window, WindowMemory

AUTO_KEY = "A"  # auto-window (also preset 6)


class Windowing(QObject):
    """Window presets (keys 1-6, A), "Lock Window for Batch", corner text (T) and anonymise for ``main``."""

    def __init__(self, main):
        super().__init__(main)
        self.main = main
        self.memory = WindowMemory()
        self.path: Path | None = None
        self.image = None  # the DisplayImage on show
        self.preset_actions = [self._action(f"&{i} {text}", lambda _=False, k=key: self.apply_preset(k), str(i),
                                            f"Window: {text}") for i, (key, text, _q) in enumerate(PRESETS, 1)]
        self.auto_act = self._action("&Auto Window", lambda: self.apply_preset("auto"), AUTO_KEY,
                                     "Window the 0.5-99.5 percentiles of the image's values")
        self.lock_act = self._action("&Lock Window for Batch", self.lock, None,
                                     "Show every image with the current window (else each image keeps its own)", True)
        s = main.settings
        main.details.hidden_keys = IDENTIFYING if s.anonymise else frozenset()
        self.corners_act = self._action("Corner &Text", self.show_corners, "T",
                                        "Patient, study, window, zoom and position in the image's corners", True, s.show_corners)
        self.anonymise_act = self._action("A&nonymise", self.anonymise, None,
                                          "Hide patient name, ID, birth date and other identifying details "
                                          "(corner text and details panel)", True, s.anonymise)

    def _action(self, text, slot, shortcut=None, tip="", checkable=False, checked=False) -> QAction:
        a = QAction(text, self.main, statusTip=tip, checkable=checkable)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
        a.setChecked(checked)
        (a.toggled if checkable else a.triggered).connect(slot)
        self.main.addAction(a)
        return a

    def fill_menu(self, view_menu) -> None:
        presets = view_menu.addMenu("&Window Presets")
        presets.addActions([*self.preset_actions, self.auto_act])
        view_menu.addActions([self.lock_act, self.corners_act, self.anonymise_act])

    # -- the window ------------------------------------------------------------------
    def show_image(self, path: Path, image, index: int | None, count: int | None) -> Window | None:
        """``image`` is going on the canvas: scale the controls, describe the corners; returns its window."""
        self.path, self.image = path, image
        self.main.controls.set_scale(image.scale)
        info = corner_info(image.radiograph, index=index, count=count)
        self.main.canvas.set_corner_info(info, self.anonymise_act.isChecked())
        self.main.canvas.show_corners(self.corners_act.isChecked())
        return self.memory.window_for(path)

    def viewed(self, window: Window | None) -> None:
        """The view's window is now ``window``: remember it for this image (or the batch, when locked)."""
        if self.path is not None:
            self.memory.set(self.path, window)

    def set_window(self, window: Window | None) -> None:
        self.main.set_view(replace(self.main.view, window=window))

    def apply_preset(self, key: str) -> None:
        if self.image is not None and self.main.canvas.has_image and key in self.image.presets:
            self.set_window(self.image.presets[key])
            self.main.message.show_message(f"Window: {self._describe(self.image.presets[key])} ({key})", 4000)

    def reset(self) -> None:
        """F or a double-click: fit the image and show it with its own default window."""
        self.main.canvas.fit()
        self.set_window(None)

    def lock(self, on: bool) -> None:
        self.memory.lock(on, self.main.view.window)

    def clear(self) -> None:
        """A new batch: forget the windows set on the last one (the lock stays on with the default window)."""
        self.memory.clear()
        self.path = self.image = None

    def windows_for_export(self) -> tuple[Window | None, dict]:
        """(window for every image, per-image windows) that exports draw with."""
        if self.memory.locked:
            return self.memory.batch_window, {}
        return None, self.memory.per_image()

    # -- text ------------------------------------------------------------------------
    def show_corners(self, on: bool) -> None:
        self.main.settings.show_corners = on
        self.main.canvas.show_corners(on)

    def anonymise(self, on: bool) -> None:
        self.main.settings.anonymise = on
        self.main.details.hidden_keys = IDENTIFYING if on else frozenset()
        canvas = self.main.canvas
        canvas.set_corner_info(canvas.corners.info, on)
        self.main.refresh_details()

    def details_meta(self, meta: dict | None) -> dict | None:
        """``meta`` for the details panel, with the window shown first."""
        if meta is None or self.image is None or meta is not self.image.meta:
            return meta
        return {"window_shown": self._describe(self.main.view.window or self.image.scale.default_window), **meta}

    def _describe(self, window: Window) -> str:
        s = self.image.scale if self.image is not None else None
        if s is None:
            return f"W {window.width:g} L {window.center:g}"
        return f"W {s.format(window.width)} L {s.format(window.center)}" + (f" {s.unit}" if s.unit else "")
