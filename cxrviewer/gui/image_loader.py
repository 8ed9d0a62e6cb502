"""Full-resolution display images, decoded by background tasks (two at a time) with an LRU cache.

The GUI thread never decodes: :meth:`ImageLoader.request` answers from the cache
at once or queues a decode task; ``loaded``/``failed`` arrive on the GUI thread.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from PySide6.QtCore import QObject, Signal

from ..core.errors import RadiographError
from ..core.io.radiograph import Radiograph
from ..core.io.reading import load_radiograph
from ..core.io.window import ValueScale, Window, presets
from .canvas import fit_size
from .worker import TaskGroup, lower_thread_priority


PREVIEW_MAX = 1024  # longest side of the copy drawn when the whole image is in view


@dataclass
class DisplayImage:
    """A decoded radiograph plus a reduced copy for fast drawing (``preview`` is ``pixels`` when small) and
    its window presets (modality units)."""

    radiograph: Radiograph
    preview: np.ndarray
    presets: dict[str, Window] = field(default_factory=dict)

    @property
    def pixels(self) -> np.ndarray:
        """The linear grey the canvas draws through a window."""
        return self.radiograph.linear_pixels

    @property
    def scale(self) -> ValueScale:
        return self.radiograph.scale

    @property
    def meta(self) -> dict:
        return self.radiograph.meta


def make_preview(pixels: np.ndarray, longest: int = PREVIEW_MAX, size: tuple[int, int] | None = None) -> np.ndarray:
    """A reduced copy of ``pixels`` for drawing the whole image.

    ``size`` (H, W): exactly that size (bilinear with a box pre-reduction), when smaller than the image:
    the picture the fitted view draws pixel for pixel. Otherwise reduced by a whole factor (box average)
    so that the longest side is at most ``longest``.
    """
    if size is not None and size[0] < pixels.shape[0] and size[1] < pixels.shape[1]:
        reduced = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.float32), mode="F").resize(
            (size[1], size[0]), Image.Resampling.BILINEAR, reducing_gap=2.0)
        return np.asarray(reduced, dtype=np.float32)
    factor = math.ceil(max(pixels.shape) / longest)
    if factor <= 1:
        return pixels
    reduced = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.float32), mode="F").reduce(factor)
    return np.asarray(reduced, dtype=np.float32)


class ImageLoader(QObject):
    """Decodes radiographs for display as :class:`Task` objects (``threads`` at a time); keeps the
    ``capacity`` most recent ones. The image asked for last is decoded before prefetches."""

    loaded = Signal(object, object)   # Path, DisplayImage
    failed = Signal(object, str)      # Path, one-line reason

    def __init__(self, tasks: TaskGroup, capacity: int = 8, threads: int = 2, parent: QObject | None = None):
        super().__init__(parent)
        self.tasks = tasks
        self.capacity = capacity
        self.threads = threads
        self.fit_box: tuple[float, float] | None = None  # (H, W) the view fits images into: previews are made at that size
        self._cache: OrderedDict[Path, DisplayImage] = OrderedDict()
        self._queue: deque[Path] = deque()
        self._running: set[Path] = set()

    def cached(self, path: Path) -> DisplayImage | None:
        rad = self._cache.get(Path(path))
        if rad is not None:
            self._cache.move_to_end(Path(path))
        return rad

    def request(self, path: str | Path) -> DisplayImage | None:
        """Return the image if cached; else decode it next and emit ``loaded`` (or ``failed``) later."""
        path = Path(path)
        rad = self.cached(path)
        if rad is None:
            self._enqueue(path, first=True)
        return rad

    def prefetch(self, paths: list[Path]) -> None:
        """Decode ``paths`` ahead of time (e.g. the next and previous rows)."""
        for p in paths:
            if Path(p) not in self._cache:
                self._enqueue(Path(p))

    def clear(self) -> None:
        """Forget cached images and queued decodes (running ones finish into the cache)."""
        self._cache.clear()
        self._queue.clear()

    def _enqueue(self, path: Path, first: bool = False) -> None:
        if path in self._running:
            return
        if path in self._queue:
            self._queue.remove(path)
        if first:
            self._queue.appendleft(path)
        else:
            self._queue.append(path)
        self._pump()

    def _pump(self) -> None:
        while self._queue and len(self._running) < self.threads and not self.tasks.closed:
            path = self._queue.popleft()
            self._running.add(path)
            task = self.tasks.start(_decode, path, self.fit_box, name="decode")
            task.done.connect(lambda outcome, p=path: self._on_decoded(p, *outcome))
            task.finished.connect(lambda _completed, p=path: self._on_finished(p))

    def _on_decoded(self, path: Path, image: DisplayImage | None, error: str | None) -> None:
        if image is None:
            self.failed.emit(path, error or "cannot read")
            return
        self._cache[path] = image
        self._cache.move_to_end(path)
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        self.loaded.emit(path, image)

    def _on_finished(self, path: Path) -> None:
        self._running.discard(path)
        self._pump()


def _decode(cancel, path: Path, box: tuple[float, float] | None) -> tuple[DisplayImage | None, str | None]:
    """The decode task: ``(image, None)`` or ``(None, reason)``; never raises."""
    lower_thread_priority()  # prefetching must not slow the GUI thread down
    try:
        rad = load_radiograph(path)
        grey = rad.linear_pixels
        preview = make_preview(grey, size=fit_size(grey.shape, box) if box else None)
        return DisplayImage(rad, preview, presets(rad.scale, grey)), None
    except RadiographError as e:
        return None, e.reason
    except Exception as e:  # noqa: BLE001 - a viewer never crashes on one file
        return None, f"{type(e).__name__}: {e}"
