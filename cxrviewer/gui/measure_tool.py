"""Measuring on the image view: the distance, angle and CTR tools, and the measurements drawn over the image.

:class:`MeasureTool` keeps the batch's measurements in a core
:class:`~cxrviewer.core.results.measurements.MeasurementStore` (per image, in full-resolution
image pixels, whatever the zoom) and draws those of the image on show as matplotlib
artists on the canvas's axes. With a tool chosen, left clicks place the points (a
press-drag-release places two); the rubber band follows the pointer; Esc drops the
points placed so far, a second Esc leaves the tool. Without a tool, a click on a
measurement selects it (for Delete). Middle drag pans and the wheel zooms as always.
"""

from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from ..core.results.measurements import POINT_COUNT, Calibration, Measurement, MeasurementStore, label, segments_of
from .theme import CAPTION_BOX, MEASURE, MEASURE_DRAFT, MEASURE_SELECTED

PICK_PX = 8.0   # how near (screen pixels) a click must be to select a measurement
DRAG_PX = 5.0   # a press-release farther apart than this places two points


class MeasureTool(QObject):
    """The measuring tools of one :class:`~cxrviewer.gui.canvas.ImageCanvas` (installed as its ``tool``)."""

    changed = Signal()  # the measurements of the image on show, or the selection, changed
    edited = Signal()  # a measurement was added or deleted (unsaved work for a session)
    toolChanged = Signal(object)  # the tool's kind, or None

    def __init__(self, canvas, store: MeasurementStore | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.canvas = canvas
        self.store = store or MeasurementStore()
        self.kind: str | None = None
        self.image: str | None = None
        self.calibration = Calibration()
        self.selected: int | None = None
        self._scale = 1.0  # canvas (decoded) pixels per full-resolution pixel
        self._points: list[tuple[float, float]] = []
        self._cursor: tuple[float, float] | None = None
        self._press: tuple[float, float, float, float] | None = None  # screen x, y and image x, y of a press
        self._artists: list = []
        self._draft: list = []  # the rubber band (part of _artists)
        canvas.tool = self

    # -- state -----------------------------------------------------------------------------
    def show(self, image: str | Path | None, meta: dict | None = None, shape: tuple[int, int] | None = None) -> None:
        """Draw the measurements of ``image`` (None: nothing); ``meta`` gives its spacing and full size,
        ``shape`` (H, W) the size of the pixels on the canvas."""
        self.image = None if image is None else str(image)
        self.calibration = Calibration.from_meta(meta)
        full = (meta or {}).get("original_size")
        self._scale = shape[1] / full[0] if shape and full and full[0] else 1.0
        self._points, self.selected = [], None
        self._changed()

    def measurements(self) -> tuple[Measurement, ...]:
        return self.store.get(self.image) if self.image else ()

    def labels(self) -> list[str]:
        return [label(m, self.calibration) for m in self.measurements()]

    def set_kind(self, kind: str | None) -> None:
        """Choose a tool (``"distance"``, ``"angle"``, ``"ctr"``) or none; drops unfinished points."""
        self.kind, self._points = kind, []
        self.redraw()
        self.toolChanged.emit(kind)

    @property
    def busy(self) -> bool:
        """A tool is chosen (Esc has something to cancel)."""
        return self.kind is not None

    def cancel(self) -> bool:
        """Esc: drop the points placed so far, else leave the tool. False when there was nothing to cancel."""
        if self._points:
            self._points = []
            self.redraw()
            return True
        if self.kind is not None:
            self.set_kind(None)
            return True
        return False

    def delete_selected(self) -> bool:
        if self.image is None or self.selected is None or self.selected >= len(self.measurements()):
            return False
        self.store.remove(self.image, self.selected)
        self.selected = None
        self._changed()
        self.edited.emit()
        return True

    def clear(self) -> None:
        """Delete every measurement of the image on show."""
        if self.image is not None:
            self.store.clear(self.image)
        self.selected, self._points = None, []
        self._changed()
        self.edited.emit()

    def restore(self, data: dict) -> None:
        """Take a saved session's measurements (``{image path: [measurement dicts]}``); entries that do not
        read as measurements are skipped."""
        for image, items in data.items():
            try:
                self.store.set(image, [Measurement.from_dict(d) for d in items])
            except (KeyError, TypeError, ValueError):
                continue
        self.selected = None
        self._changed()

    def select(self, index: int | None) -> None:
        self.selected = index
        self._changed()

    def _changed(self) -> None:
        self.redraw()
        self.changed.emit()

    # -- canvas events (the canvas calls these first; True: handled) ---------------------------
    def on_press(self, event) -> bool:
        if self.image is None or event.button != 1 or event.xdata is None:
            return False
        if self.kind is None:
            return self._pick(event)
        if event.dblclick:
            return True
        point = self._to_image(event.xdata, event.ydata)
        self._press = (event.x, event.y, *point)
        self._add_point(point)
        return True

    def on_motion(self, event) -> None:
        if self.kind is None or not self._points or event.xdata is None or event.inaxes is not self.canvas.ax:
            return
        self._cursor = self._to_image(event.xdata, event.ydata)
        self._draw_draft()
        self.canvas.draw_idle()

    def on_release(self, event) -> bool:
        press, self._press = self._press, None
        if self.kind is None or press is None or event.x is None or event.xdata is None:
            return False
        if math.hypot(event.x - press[0], event.y - press[1]) > DRAG_PX and self._points:
            self._add_point(self._to_image(event.xdata, event.ydata))
        return True

    # -- internals --------------------------------------------------------------------------
    def _to_image(self, x: float, y: float) -> tuple[float, float]:
        return x / self._scale, y / self._scale

    def _add_point(self, point: tuple[float, float]) -> None:
        if self.kind == "ctr" and len(self._points) % 2 == 1:  # a span's second point: on its line
            point = (point[0], self._points[-1][1])
        self._points.append(point)
        if len(self._points) == POINT_COUNT[self.kind]:
            m = Measurement(self.kind, tuple(self._points))
            self._points = []
            self.selected = self.store.add(self.image, m)
            self._changed()
            self.edited.emit()
        else:
            self.redraw()

    def _pick(self, event) -> bool:
        """Select the measurement under the pointer (within :data:`PICK_PX`); False when there is none."""
        to_screen = self.canvas.ax.transData.transform
        best, index = PICK_PX, None
        for i, m in enumerate(self.measurements()):
            for a, b in m.segments():
                (ax, ay), (bx, by) = to_screen([self._to_view(a), self._to_view(b)])
                d = _distance_to_segment((event.x, event.y), (ax, ay), (bx, by))
                if d <= best:
                    best, index = d, i
        if index is None:
            if self.selected is not None:
                self.select(None)
            return False
        self.select(index)
        return True

    def _to_view(self, p: tuple[float, float]) -> tuple[float, float]:
        return p[0] * self._scale, p[1] * self._scale

    # -- drawing ----------------------------------------------------------------------------
    def redraw(self) -> None:
        for artist in self._artists:
            artist.remove()
        self._artists, self._draft = [], []
        if self.image is not None:
            for i, m in enumerate(self.measurements()):
                colour = MEASURE_SELECTED if i == self.selected else MEASURE
                self._draw(m.kind, m.points, colour, f"{i + 1}: {label(m, self.calibration)}")
        self._draw_draft()
        self.canvas.draw_idle()

    def _draw_draft(self) -> None:
        for artist in self._draft:
            artist.remove()
            self._artists.remove(artist)
        self._draft = []
        if self.kind is None or not self._points:
            return
        points = list(self._points)
        if self._cursor is not None:
            cursor = self._cursor
            if self.kind == "ctr" and len(points) % 2 == 1:
                cursor = (cursor[0], points[-1][1])
            points.append(cursor)
        self._draft = self._draw(self.kind, points, MEASURE_DRAFT, None)

    def _draw(self, kind: str, points, colour: str, text: str | None) -> list:
        ax, made = self.canvas.ax, []
        for a, b in segments_of(kind, points) or [(points[0], points[0])]:
            (x0, y0), (x1, y1) = self._to_view(a), self._to_view(b)
            made += ax.plot([x0, x1], [y0, y1], color=colour, lw=1.5, marker="+", ms=8, zorder=6)
        if text:
            x, y = self._to_view(points[-1])
            right = x > sum(ax.get_xlim()) / 2  # label on the side facing the middle of the view
            made.append(ax.annotate(text, (x, y), xytext=(-6 if right else 6, 6), textcoords="offset pixels",
                                    ha="right" if right else "left", color=colour, fontsize=9, zorder=7,
                                    bbox=dict(boxstyle="round,pad=0.2", fc=CAPTION_BOX, ec="none", alpha=0.6)))
        self._artists += made
        return made


def _distance_to_segment(p, a, b) -> float:
    (px, py), (ax, ay), (bx, by) = p, a, b
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / length2))
    return math.hypot(px - (ax + t * dx), py - (ay + t * dy))
