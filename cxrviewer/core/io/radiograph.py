"""The decoded radiograph: :class:`Radiograph` (grey float32 pixels in [0, 1], dense = bright), the file
suffixes and size limit every reader shares, and the resize to the model's input.

Beside the display pixels, every radiograph carries its *linear grey* (modality values mapped linearly
onto [0, 1], no window; :mod:`cxrviewer.core.io.window`) and the :class:`ValueScale` that maps it back,
so a viewer can window in modality units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .window import ValueScale, Window, linear_scale

#: File name suffixes recognised as radiographs (lower case; compare with ``suffix.lower()``).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".dcm", ".dicom"})
DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})

#: Largest image accepted, in pixels per frame (Pillow's own default limit, ~89.5 MP, so
#: Pillow never warns about an image the readers accept). Larger ones are refused unread.
MAX_PIXELS = 89_478_485

#: With a ``target_size``, large images are decoded no smaller than this many times it.
REDUCE_MARGIN = 2


@dataclass
class Radiograph:
    """A decoded radiograph as a radiologist reads it.

    ``pixels``: float32, 2-D (H x W), values in [0, 1], dense structures bright.
    ``meta``: ``format`` (e.g. "JPEG", "DICOM"), ``original_size`` (W, H) of the
    full-resolution image as displayed, ``decoded_size`` (W, H) of ``pixels``, and for
    DICOM the display pipeline and a few identifying tags.
    ``linear``: the linear grey (modality values through ``scale``), or None when ``pixels`` are it;
    ``scale``: the map between linear grey and modality values, with the file's own window.
    """

    path: Path
    pixels: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    linear: np.ndarray | None = None
    scale: ValueScale = field(default_factory=ValueScale)

    @property
    def linear_pixels(self) -> np.ndarray:
        """The linear grey: modality values mapped by ``scale`` onto [0, 1], no window."""
        return self.pixels if self.linear is None else self.linear


def to_model_input(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize grey ``pixels`` to ``size`` (H, W) with antialiasing, aspect not kept (as in training)."""
    h, w = size
    if pixels.shape == (h, w):
        return np.ascontiguousarray(pixels, dtype=np.float32)
    im = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.float32))  # mode "F"
    return np.asarray(im.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=None), dtype=np.float32)




def raster_scale(pixels: np.ndarray, origin: float, span: float) -> ValueScale:
    """The scale of a raster whose ``pixels`` are ``(value - origin) / span``: its values' range; its own window
    is ``origin`` to ``origin + span`` (e.g. 0-255: the file shown as stored)."""
    lo, hi = (float(pixels.min()), float(pixels.max())) if pixels.size else (0.0, 1.0)
    lo, hi = origin + lo * span, origin + hi * span
    whole = float(origin).is_integer() and float(span).is_integer()
    if whole:
        lo, hi = round(lo), round(hi)
    return linear_scale(lo, hi, integer=whole, origin=origin, span=span, file_window=Window.spanning(origin, origin + span))


def clip01(a: np.ndarray) -> np.ndarray:
    """``a`` as float32 clipped to [0, 1] (in place where it already is float32)."""
    a = np.asarray(a, dtype=np.float32)
    return np.clip(a, 0.0, 1.0, out=a)


def minmax_map(a: np.ndarray) -> tuple[float, float]:
    """(origin, span) that undo :func:`minmax` on ``a``."""
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(a.min()) if a.size else 0.0, float(a.max()) if a.size else 0.0
    return lo, (hi - lo) if hi > lo else 1.0


def minmax(a: np.ndarray) -> np.ndarray:
    """``a`` stretched onto [0, 1] (non-finite values count as 0; a constant image becomes 0)."""
    a = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(a.min()) if a.size else 0.0, float(a.max()) if a.size else 0.0
    return np.zeros_like(a) if hi <= lo else (a - np.float32(lo)) / np.float32(hi - lo)
