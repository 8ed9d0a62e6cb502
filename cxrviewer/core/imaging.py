"""Reading radiographs: any supported file -> grey float32 pixels in [0, 1], dense = bright.

(First cut: raster formats through Pillow. DICOM, bombs and the full error
taxonomy are being filled in.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from .errors import CorruptFileError, UnsupportedFileError


@dataclass
class Radiograph:
    """A decoded radiograph as a radiologist reads it.

    ``pixels``: float32, 2-D (H x W), values in [0, 1], dense structures bright.
    ``meta``: ``format`` (e.g. "JPEG", "DICOM"), ``original_size`` (W, H) of the
    stored image, ``decoded_size`` (W, H) of ``pixels``, and for DICOM the display
    pipeline and a few identifying tags.
    """

    path: Path
    pixels: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


def load_radiograph(path: str | Path, target_size: tuple[int, int] | None = None) -> Radiograph:
    """Read ``path`` into a :class:`Radiograph`.

    ``target_size`` (H, W) is a hint: formats that can (JPEG draft mode) decode at
    a reduced scale no smaller than it; ``pixels`` may then be smaller than the
    original. Raises :class:`UnsupportedFileError` or :class:`CorruptFileError`.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            fmt = im.format
            original = im.size
            if target_size is not None and fmt == "JPEG":
                im.draft("L", (target_size[1], target_size[0]))
            im = ImageOps.exif_transpose(im)
            im = im.convert("L")
            pixels = np.asarray(im, dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise UnsupportedFileError(path, "file not found") from None
    except Image.UnidentifiedImageError:
        raise UnsupportedFileError(path, "not an image this program can read") from None
    except OSError as e:
        raise CorruptFileError(path, f"cannot decode ({e})") from None
    return Radiograph(path, pixels, {"format": fmt, "original_size": original, "decoded_size": (pixels.shape[1], pixels.shape[0])})


def to_model_input(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize grey ``pixels`` to ``size`` (H, W) with antialiasing, aspect not kept (as in training)."""
    h, w = size
    if pixels.shape == (h, w):
        return np.ascontiguousarray(pixels, dtype=np.float32)
    im = Image.fromarray(np.asarray(pixels, dtype=np.float32), mode="F")
    return np.asarray(im.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=None), dtype=np.float32)
