"""Measurements on a radiograph: distance, angle and cardiothoracic ratio (CTR). Qt-free, plain data.

Points are ``(x, y)`` in the pixels of the full-resolution image (x to the right, y down,
pixel centres at whole numbers), whatever the zoom or pan of a view. A
:class:`Calibration` turns pixels into millimetres: DICOM Pixel Spacing, else Imager Pixel
Spacing (at the detector, so not corrected for the radiographic magnification), else none
(raster images: lengths stay in pixels). Spacing is (row, column): the distance between
rows (along y) and between columns (along x).

- ``distance``: two points, the length between them;
- ``angle``: three points, the angle at the middle one (0-180 degrees, in physical space);
- ``ctr``: four points, a cardiac span (points 0, 1) and a thoracic span (points 2, 3), each
  horizontal (drawn at the height of its first point); the ratio of their widths.

:class:`MeasurementStore` keeps the measurements of a batch per image; ``to_dict`` /
``from_dict`` give JSON-ready data for sessions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

KINDS = ("distance", "angle", "ctr")
POINT_COUNT = {"distance": 2, "angle": 3, "ctr": 4}
TITLES = {"distance": "Distance", "angle": "Angle", "ctr": "CTR"}

Point = tuple[float, float]
Segment = tuple[Point, Point]


@dataclass(frozen=True)
class Calibration:
    """Millimetres per pixel: ``row_mm`` (along y) and ``col_mm`` (along x), or None for pixels;
    ``source`` names the DICOM attribute used ("Pixel Spacing" or "Imager Pixel Spacing")."""

    row_mm: float | None = None
    col_mm: float | None = None
    source: str = ""

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any] | None) -> Calibration:
        """From a radiograph's ``meta`` (``pixel_spacing``, ``pixel_spacing_source``, as the loader
        writes them); pixels when there is no valid spacing."""
        meta = meta or {}
        try:
            row, col = (float(v) for v in meta.get("pixel_spacing") or ())
        except (TypeError, ValueError):
            return cls()
        if not (row > 0 and col > 0 and math.isfinite(row) and math.isfinite(col)):
            return cls()
        return cls(row, col, str(meta.get("pixel_spacing_source") or "Pixel Spacing"))

    @property
    def unit(self) -> str:
        return "mm" if self.row_mm else "px"

    def describe(self) -> str:
        """One line saying where lengths come from."""
        if not self.row_mm:
            return "lengths in pixels (the image has no pixel spacing)"
        text = f"mm from {self.source} {self.row_mm:g} x {self.col_mm:g} mm"
        if self.source == "Imager Pixel Spacing":
            text += " (at the detector: not corrected for magnification)"
        return text

    def short(self) -> str:
        """A few words for captions: ``"lengths in mm (Pixel Spacing)"``."""
        if not self.row_mm:
            return "lengths in px"
        at = ", at the detector" if self.source == "Imager Pixel Spacing" else ""
        return f"lengths in mm ({self.source}{at})"

    def vector(self, p: Point, q: Point) -> Point:
        """``q - p`` in the calibrated unit (mm or px)."""
        sx, sy = (self.col_mm, self.row_mm) if self.row_mm else (1.0, 1.0)
        return (q[0] - p[0]) * sx, (q[1] - p[1]) * sy

    def length(self, p: Point, q: Point) -> float:
        return math.hypot(*self.vector(p, q))

    def to_dict(self) -> dict[str, Any]:
        return {"row_mm": self.row_mm, "col_mm": self.col_mm, "source": self.source}


@dataclass(frozen=True)
class Reading:
    """What a measurement reads: ``value`` in ``unit`` ("mm", "px", "deg" or "ratio"), a short
    ``text`` for labels, and for a CTR the two spans (``parts``, in the length unit)."""

    value: float
    unit: str
    text: str
    parts: tuple[float, ...] = ()


@dataclass(frozen=True)
class Measurement:
    """One measurement: ``kind`` (one of :data:`KINDS`) and its ``points`` in image pixels."""

    kind: str
    points: tuple[Point, ...]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        points = tuple((float(x), float(y)) for x, y in self.points)
        if len(points) != POINT_COUNT[self.kind]:
            raise ValueError(f"a {self.kind} needs {POINT_COUNT[self.kind]} points, got {len(points)}")
        if not all(math.isfinite(v) for p in points for v in p):
            raise ValueError("measurement points must be finite numbers")
        object.__setattr__(self, "points", points)

    def segments(self) -> list[Segment]:
        """The lines to draw (a CTR's spans made horizontal at the height of their first point)."""
        return segments_of(self.kind, self.points)

    def read(self, calibration: Calibration = Calibration()) -> Reading:
        """The value of this measurement under ``calibration``."""
        p, unit = self.points, calibration.unit
        if self.kind == "distance":
            d = calibration.length(p[0], p[1])
            return Reading(d, unit, f"{d:.1f} {unit}")
        if self.kind == "angle":
            a = _angle(calibration.vector(p[1], p[0]), calibration.vector(p[1], p[2]))
            return Reading(a, "deg", f"{a:.1f}°")
        cardiac, thoracic = (abs(calibration.vector(a, b)[0]) for a, b in self.segments())
        ratio = cardiac / thoracic if thoracic > 0 else float("nan")
        return Reading(ratio, "ratio", f"CTR {ratio:.2f} (cardiac {cardiac:.1f} / thoracic {thoracic:.1f} {unit})",
                       (cardiac, thoracic))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "points": [list(p) for p in self.points]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measurement:
        return cls(str(data["kind"]), tuple(tuple(p) for p in data["points"]))


def segments_of(kind: str, points: Iterable[Point]) -> list[Segment]:
    """The lines of a measurement of ``kind`` through ``points`` (also a partial one being drawn)."""
    p = list(points)
    if kind != "ctr":
        return list(zip(p, p[1:]))
    spans = [p[i:i + 2] for i in (0, 2) if len(p) > i + 1]
    return [(a, (b[0], a[1])) for a, b in spans]


def _angle(u: Point, v: Point) -> float:
    nu, nv = math.hypot(*u), math.hypot(*v)
    if nu == 0 or nv == 0:
        return float("nan")
    cos = max(-1.0, min(1.0, (u[0] * v[0] + u[1] * v[1]) / (nu * nv)))
    return math.degrees(math.acos(cos))


def label(m: Measurement, calibration: Calibration = Calibration()) -> str:
    """``"Distance 52.3 mm"``, ``"Angle 31.0°"``, ``"CTR 0.48 (cardiac 120.0 / thoracic 250.0 mm)"``."""
    text = m.read(calibration).text
    return text if m.kind == "ctr" else f"{TITLES[m.kind]} {text}"


class MeasurementStore:
    """The measurements of a batch, per image (keyed by the image's path as text)."""

    def __init__(self) -> None:
        self._by_image: dict[str, list[Measurement]] = {}

    def get(self, image: Any) -> tuple[Measurement, ...]:
        return tuple(self._by_image.get(str(image), ()))

    def add(self, image: Any, m: Measurement) -> int:
        """Add ``m`` to ``image``; returns its index."""
        items = self._by_image.setdefault(str(image), [])
        items.append(m)
        return len(items) - 1

    def set(self, image: Any, items: Iterable[Measurement]) -> None:
        """Replace the measurements of ``image`` (e.g. restored from a session)."""
        items = list(items)
        if items:
            self._by_image[str(image)] = items
        else:
            self._by_image.pop(str(image), None)

    def remove(self, image: Any, index: int) -> Measurement:
        items = self._by_image[str(image)]
        m = items.pop(index)
        if not items:
            del self._by_image[str(image)]
        return m

    def clear(self, image: Any = None) -> None:
        """Forget the measurements of ``image`` (None: of every image)."""
        if image is None:
            self._by_image.clear()
        else:
            self._by_image.pop(str(image), None)

    def snapshot(self) -> dict[str, tuple[Measurement, ...]]:
        """An immutable copy, safe to hand to a background export."""
        return {k: tuple(v) for k, v in self._by_image.items()}

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_image.values())

    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        """``{image path: [measurement dicts]}``, JSON-ready."""
        return {k: [m.to_dict() for m in v] for k, v in self._by_image.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Iterable[Mapping[str, Any]]]) -> MeasurementStore:
        store = cls()
        for image, items in data.items():
            for item in items:
                store.add(image, Measurement.from_dict(item))
        return store
