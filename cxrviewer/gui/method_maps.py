"""The second explanation methods in the viewer: computed for the image on screen, off the GUI thread, cached.

The evidence map (CAM) comes with every result; Grad-CAM and occlusion
(:mod:`cxrviewer.core.explain.methods`) need more passes of the model, so
:class:`MethodMaps` runs :func:`~cxrviewer.core.explain.on_demand.explain_image` as a
:class:`~.worker.Task` when the view asks for one. Only the newest request runs:
asking for another image, class or method cancels it, and a map arrives with the
:class:`MapKey` it was made for, so the window draws it only on that image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QProgressBar

from ..core.errors import CxrError
from ..core.explain.catalog import CATALOG
from .canvas import Overlay
from .display import method_overlay, pending_overlay
from .worker import Task, TaskGroup, lower_thread_priority

if TYPE_CHECKING:
    from ..core.explain.on_demand import MethodMap


@dataclass(frozen=True)
class MapKey:
    """What a map is of: the file, the class, the method, and the model (by identity) that made it."""

    path: Path
    class_name: str
    method: str
    model: int


class _Stopped(CxrError):
    """Raised inside a computation that was cancelled (reported by nobody)."""


def explain_image(model, pixels, class_name, method, progress=None):
    """:func:`cxrviewer.core.explain.on_demand.explain_image`, imported (with torch) on the thread that computes."""
    from ..core.explain.on_demand import explain_image as explain

    return explain(model, pixels, class_name, method, progress)


def compute_map(cancel: threading.Event, model, pixels: np.ndarray, key: MapKey, report) -> MethodMap:
    """The task: ``key.method``'s map of ``pixels`` for ``key.class_name``; stops at the next progress step once cancelled."""
    lower_thread_priority()

    def progress(done: int, total: int) -> None:
        if cancel.is_set():
            raise _Stopped("cancelled")
        report(key, done, total)

    from ..core.explain import get_method

    return explain_image(model, pixels, key.class_name, get_method(key.method), progress)


class MethodMaps(QObject):
    """Maps of the on-demand methods: :meth:`request` answers from the cache or starts one computation.

    ``ready(key, MethodMap)`` and ``failed(key, message)`` report the newest request only;
    ``progress(done, total)`` follows it, and ``(0, 0)`` means nothing is running.
    """

    ready = Signal(object, object)
    failed = Signal(object, str)
    progress = Signal(int, int)
    _reported = Signal(object, int, int)  # from the task's thread: key, done, total

    def __init__(self, tasks: TaskGroup, capacity: int = 32, parent: QObject | None = None):
        super().__init__(parent)
        self.tasks = tasks
        self.capacity = capacity
        self._cache: OrderedDict[MapKey, MethodMap] = OrderedDict()
        self._task: Task | None = None
        self._key: MapKey | None = None
        self._failures: dict[MapKey, str] = {}
        self._reported.connect(self._on_reported)

    @property
    def pending(self) -> MapKey | None:
        """The key being computed, or None."""
        return self._key

    def cached(self, key: MapKey) -> MethodMap | None:
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
        return found

    def maps_of(self, method: str, model) -> dict[tuple[Path, str], MethodMap]:
        """The cached maps of ``method`` made with ``model``, by (file, class): what an export can reuse."""
        return {(k.path, k.class_name): m for k, m in self._cache.items() if k.method == method and k.model == id(model)}

    def failure(self, key: MapKey) -> str | None:
        """Why the map of ``key`` could not be made (not retried until :meth:`clear`), or None."""
        return self._failures.get(key)

    def overlay(self, result, view, model, pixels: np.ndarray | None) -> Overlay | None:
        """The overlay of ``view.method`` for ``result``'s image: the map when ready, else a note (computing, failed)."""
        if result is None or not result.ok or model is None or pixels is None or not result.probs:
            return None
        name = view.class_name if view.class_name in result.probs else (result.predicted or result.label)
        key = MapKey(Path(result.path), name, view.method, id(model))
        label = CATALOG[view.method].label
        if self.failure(key):
            return Overlay(cam=None, vmin=0.0, vmax=1.0, label="", note=f"{label} failed: {self.failure(key)}")
        found = self.request(key, model, pixels)
        return method_overlay(found) if found is not None else pending_overlay(label)

    def request(self, key: MapKey, model, pixels: np.ndarray) -> MethodMap | None:
        """The map of ``key`` at once when cached; else start computing it (replacing any other) and return None."""
        found = self.cached(key)
        if found is not None or key == self._key or key in self._failures:
            return found
        self.cancel()
        self._key = key
        task = self.tasks.start(compute_map, model, pixels, key, self._reported.emit, name=f"map-{key.method}")
        task.done.connect(lambda m, k=key: self._on_done(k, m))
        task.failed.connect(lambda msg, k=key: self._on_failed(k, msg))
        self._task = task
        self.progress.emit(0, 1)
        return None

    def cancel(self) -> None:
        """Stop the computation in progress (it reports nothing)."""
        if self._task is not None:
            self._task.cancel()
        self._task = self._key = None
        self.progress.emit(0, 0)

    def clear(self) -> None:
        """Forget every map (another model) and stop the computation."""
        self.cancel()
        self._cache.clear()
        self._failures.clear()

    @Slot(object, int, int)
    def _on_reported(self, key: MapKey, done: int, total: int) -> None:
        if key == self._key:
            self.progress.emit(done, total)

    def _on_done(self, key: MapKey, found: MethodMap) -> None:
        self._cache[key] = found
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        if key == self._key:
            self._task = self._key = None
            self.progress.emit(0, 0)
            self.ready.emit(key, found)

    def _on_failed(self, key: MapKey, message: str) -> None:
        self._failures[key] = message
        if key == self._key:
            self._task = self._key = None
            self.progress.emit(0, 0)
            self.failed.emit(key, message)


class MapProgress(QProgressBar):
    """The status bar's indicator of an on-demand map being computed (hidden when none is)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFixedWidth(110)
        self.setTextVisible(False)
        self.setToolTip("Computing the explanation map for the image on screen")
        self.hide()

    def set_progress(self, done: int, total: int) -> None:
        """``done`` of ``total`` steps; busy until the first is done; ``total`` 0 hides it."""
        self.setVisible(total > 0)
        if total > 0:
            self.setRange(0, total if done else 0)
            self.setValue(done)
