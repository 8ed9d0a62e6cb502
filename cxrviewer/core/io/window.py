"""Window/level in modality units: each image's value scale, its presets, and the value <-> grey map.

Modality units are the values a radiologist windows: for DICOM the stored values after the
Modality LUT (rescale slope and intercept), for 8-bit rasters 0-255, for 16-bit rasters 0-65535.
The viewer draws a *linear grey* image: those values mapped linearly onto [0, 1], dense bright
(for MONOCHROME1 high values are dark, so the map runs downhill). A :class:`Window` (centre and
width in modality units) becomes the grey limits that the core's ``compose(window=...)`` takes
through :meth:`ValueScale.grey_window`.

Presets (:data:`PRESETS`, keys 1-6). CT's Hounsfield presets (lung W 1500 L -600) mean nothing on a
projection radiograph, whose values depend on the detector and processing, so the tissue presets are
percentiles of the image's own linear grey (0 = least dense, 1 = densest), converted back to modality
units; they follow every image's range:

- ``file``: the DICOM file's first WindowCenter / WindowWidth (full range when it has none); for
  raster images their type's range (0-255, 0-65535): the file shown as stored.
- ``full``: the image's minimum to maximum value.
- ``lung``: grey percentiles 2 to 60: the darker part (air-filled lung), bone and mediastinum white.
- ``bone``: grey percentiles 40 to 99.8: the denser part (ribs, spine, mediastinum).
- ``soft``: grey percentiles 15 to 95: the middle of the range (soft tissue).
- ``auto``: grey percentiles 0.5 to 99.5: the whole image with outliers (labels, markers) clipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Hashable

import numpy as np

#: (key, menu text, grey percentiles or None for a window the scale itself knows)
PRESETS: tuple[tuple[str, str, tuple[float, float] | None], ...] = (
    ("file", "File's Own Window", None),
    ("full", "Full Range", None),
    ("lung", "Lung (darker part)", (2.0, 60.0)),
    ("bone", "Bone (denser part)", (40.0, 99.8)),
    ("soft", "Soft Tissue (middle)", (15.0, 95.0)),
    ("auto", "Auto (0.5-99.5 percentiles)", (0.5, 99.5)),
)
_SAMPLE_SIDE = 512  # percentiles are taken on a grid of at most this many pixels per side


@dataclass(frozen=True)
class Window:
    """A VOI window in modality units: ``center`` and ``width`` (> 0)."""

    center: float
    width: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.center) and np.isfinite(self.width) and self.width > 0):
            raise ValueError(f"a window needs a finite centre and a width > 0, got {self.center!r}, {self.width!r}")
        object.__setattr__(self, "center", float(self.center))
        object.__setattr__(self, "width", float(self.width))

    @classmethod
    def spanning(cls, low: float, high: float) -> Window:
        """The window from ``low`` to ``high`` (either order; an empty span becomes width 1)."""
        low, high = sorted((float(low), float(high)))
        return cls((low + high) / 2, high - low if high > low else 1.0)

    @property
    def limits(self) -> tuple[float, float]:
        """(low, high) edges in modality units."""
        return self.center - self.width / 2, self.center + self.width / 2


@dataclass(frozen=True)
class ValueScale:
    """How one image's modality values map to its linear grey: ``grey = (value - origin) / span``.

    ``span`` < 0 when high values are shown dark (MONOCHROME1). ``low``/``high``: the image's
    minimum and maximum value; ``unit``: e.g. "HU", or "" for plain stored values; ``file_window``:
    the file's own window; ``integer``: values are whole numbers (for printing).
    """

    origin: float = 0.0
    span: float = 1.0
    low: float = 0.0
    high: float = 1.0
    unit: str = ""
    file_window: Window | None = None
    integer: bool = False

    def __post_init__(self) -> None:
        if not (np.isfinite(self.origin) and np.isfinite(self.span) and self.span != 0):
            raise ValueError(f"a value scale needs a finite origin and a non-zero span, got {self.origin}, {self.span}")

    def value(self, grey: float) -> float:
        """The modality value of linear grey ``grey``."""
        return self.origin + float(grey) * self.span

    def grey(self, value: float) -> float:
        """The linear grey of modality value ``value``."""
        return (float(value) - self.origin) / self.span

    def grey_window(self, window: Window | None) -> tuple[float, float]:
        """(low, high) grey limits of ``window`` (None: :attr:`default_window`), for ``compose``."""
        lo, hi = (window or self.default_window).limits
        return tuple(sorted((self.grey(lo), self.grey(hi))))

    def window_from_grey(self, low: float, high: float) -> Window:
        """The window whose grey limits are ``low``..``high``."""
        return Window.spanning(self.value(low), self.value(high))

    @property
    def full_window(self) -> Window:
        return Window.spanning(self.low, self.high)

    @property
    def default_window(self) -> Window:
        """The file's own window, else the full range."""
        return self.file_window or self.full_window

    @property
    def range_width(self) -> float:
        """The image's value range (high - low), at least the smallest useful step."""
        return max(self.high - self.low, 1.0 if self.integer else 1e-6)

    def format(self, value: float) -> str:
        """``value`` as a reader wants it: whole numbers for integer data, else up to 4 significant digits."""
        if self.integer or abs(value) >= 1000:
            return f"{value:.0f}"
        return f"{value:.4g}"


def linear_scale(low: float, high: float, *, inverted: bool = False, unit: str = "", file_window: Window | None = None,
                 integer: bool = False, origin: float | None = None, span: float | None = None) -> ValueScale:
    """A scale whose linear grey runs from ``low`` (0) to ``high`` (1), or the other way when ``inverted``;
    ``origin``/``span`` override the mapping (e.g. 0 and 255 for 8-bit rasters)."""
    width = high - low if high > low else 1.0
    if origin is None:
        origin, span = (high if high > low else low + 1.0, -width) if inverted else (low, width)
    return ValueScale(float(origin), float(span), float(low), float(high), unit, file_window, integer)


def presets(scale: ValueScale, grey: np.ndarray) -> dict[str, Window]:
    """Every :data:`PRESETS` window of an image with linear grey ``grey`` (H x W) and ``scale``."""
    sample = np.asarray(grey)[:: max(1, grey.shape[0] // _SAMPLE_SIDE), :: max(1, grey.shape[1] // _SAMPLE_SIDE)]
    wanted = sorted({q for _key, _text, pair in PRESETS if pair for q in pair})
    found = dict(zip(wanted, np.percentile(sample, wanted))) if sample.size else {}
    out = {"file": scale.default_window, "full": scale.full_window}
    for key, _text, pair in PRESETS:
        if pair is not None:
            lo, hi = (found.get(q, i) for q, i in zip(pair, (0.0, 1.0)))
            out[key] = scale.window_from_grey(lo, hi) if hi > lo else scale.full_window
    return out


@dataclass
class WindowMemory:
    """The windows a reader set: per image, or one locked for the whole batch.

    Unlocked, each image keeps its own window (None: its default); locked, every image shows the
    locked window (None: each its default).
    """

    locked: bool = False
    batch_window: Window | None = None
    _per_image: dict[Hashable, Window | None] = field(default_factory=dict)

    def window_for(self, key: Hashable) -> Window | None:
        """The window to show image ``key`` with (None: the image's default)."""
        return self.batch_window if self.locked else self._per_image.get(key)

    def set(self, key: Hashable, window: Window | None) -> None:
        """The reader set ``window`` on image ``key`` (for the batch, when locked)."""
        if self.locked:
            self.batch_window = window
        elif window is None:
            self._per_image.pop(key, None)
        else:
            self._per_image[key] = window

    def lock(self, on: bool, current: Window | None) -> None:
        """Lock (every image shows ``current``) or unlock (each image its own again)."""
        self.locked = bool(on)
        self.batch_window = current if on else None

    def clear(self) -> None:
        self._per_image.clear()
        self.batch_window = None

    def per_image(self) -> Mapping[Hashable, Window | None]:
        """The windows set per image (for exports)."""
        return dict(self._per_image)

