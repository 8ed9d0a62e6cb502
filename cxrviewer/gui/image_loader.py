"""Full-resolution display images, decoded on a small thread pool with an LRU cache.

The GUI thread never decodes: :meth:`ImageLoader.request` answers from the cache
at once or queues a decode; ``loaded``/``failed`` arrive on the GUI thread.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from PySide6.QtCore import QObject, QThreadPool, Signal, Slot

from ..core.errors import RadiographError
from ..core.imaging import Radiograph, load_radiograph
from .canvas import fit_size
from .worker import lower_thread_priority


PREVIEW_MAX = 1024  # longest side of the copy drawn when the whole image is in view


@dataclass
class DisplayImage:
    """A decoded radiograph plus a reduced copy for fast drawing (``preview`` is ``pixels`` when small)."""

    radiograph: Radiograph
    preview: np.ndarray

    @property
    def pixels(self) -> np.ndarray:
        return self.radiograph.pixels

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
    """Decodes radiographs for display; keeps the ``capacity`` most recent ones."""

    loaded = Signal(object, object)   # Path, DisplayImage
    failed = Signal(object, str)      # Path, one-line reason
    _decoded = Signal(object, object, object)  # from pool threads: Path, DisplayImage | None, error | None

    def __init__(self, capacity: int = 8, threads: int = 2, parent: QObject | None = None):
        super().__init__(parent)
        self.capacity = capacity
        self.fit_box: tuple[float, float] | None = None  # (H, W) the view fits images into: previews are made at that size
        self._cache: OrderedDict[Path, DisplayImage] = OrderedDict()
        self._pending: set[Path] = set()
        self._wanted: Path | None = None
        self._closed = False
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(threads)
        self._decoded.connect(self._on_decoded)

    def cached(self, path: Path) -> DisplayImage | None:
        rad = self._cache.get(Path(path))
        if rad is not None:
            self._cache.move_to_end(Path(path))
        return rad

    def request(self, path: str | Path) -> DisplayImage | None:
        """Return the image if cached; else decode it in the background and emit ``loaded`` later."""
        path = Path(path)
        self._wanted = path
        rad = self.cached(path)
        if rad is None:
            self._submit(path)
        return rad

    def prefetch(self, paths: list[Path]) -> None:
        """Decode ``paths`` ahead of time (e.g. the next and previous rows)."""
        for p in paths:
            if Path(p) not in self._cache:
                self._submit(Path(p))

    def clear(self) -> None:
        self._cache.clear()
        self._wanted = None

    def shutdown(self) -> None:
        """Drop queued decodes and wait for running ones; nothing is emitted afterwards."""
        self._closed = True
        self._pool.clear()
        self._pool.waitForDone()

    def _submit(self, path: Path) -> None:
        if self._closed or path in self._pending:
            return
        self._pending.add(path)
        self._pool.start(lambda: self._decode(path))

    def _decode(self, path: Path) -> None:  # runs on a pool thread
        lower_thread_priority()  # prefetching must not slow the GUI thread down
        try:
            rad = load_radiograph(path)
            box = self.fit_box
            image = DisplayImage(rad, make_preview(rad.pixels, size=fit_size(rad.pixels.shape, box) if box else None))
        except RadiographError as e:
            self._decoded.emit(path, None, e.reason)
        except Exception as e:  # noqa: BLE001 - a viewer never crashes on one file
            self._decoded.emit(path, None, f"{type(e).__name__}: {e}")
        else:
            self._decoded.emit(path, image, None)

    @Slot(object, object, object)
    def _on_decoded(self, path: Path, rad: DisplayImage | None, error: str | None) -> None:
        self._pending.discard(path)
        if self._closed:
            return
        if rad is None:
            self.failed.emit(path, error or "cannot read")
            return
        self._cache[path] = rad
        self._cache.move_to_end(path)
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        self.loaded.emit(path, rad)
