"""Raster files (JPEG, PNG, BMP, TIFF) through Pillow: grey pixels, EXIF orientation, colour to luma.

Sizes are checked from the header before any pixel is decoded, so a decompression bomb costs no memory;
large images are decoded reduced (JPEG draft mode, Pillow's ``reduce``) when a target size allows.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from ..errors import CorruptFileError, UnsupportedFileError
from . import radiograph
from .radiograph import REDUCE_MARGIN, Radiograph, minmax, minmax_map, raster_scale

_PILLOW_FORMATS = ("JPEG", "PNG", "BMP", "DIB", "TIFF")  # JPEG also opens MPO files

# Sizes are checked here before decoding: keep Pillow's bomb warning off the terminal.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def _load_pillow(path: Path, f: BinaryIO, raster: str | None, target_size: tuple[int, int] | None) -> Radiograph:
    try:
        im = Image.open(f, formats=_PILLOW_FORMATS)
    except Image.UnidentifiedImageError:
        if raster is not None:
            raise CorruptFileError(path, f"damaged {raster} header") from None
        raise UnsupportedFileError(path, "not a supported image (JPEG, PNG, BMP, TIFF or DICOM)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise CorruptFileError(path, f"refused: image larger than {radiograph.MAX_PIXELS / 1e6:.0f} megapixels "
                                     "(decompression bomb?)") from None
    except Exception:  # noqa: BLE001 - any parser failure is a damaged header
        raise CorruptFileError(path, f"damaged {raster or 'image'} header") from None
    with im:
        fmt = "JPEG" if im.format == "MPO" else im.format
        w, h = im.size
        if w * h > radiograph.MAX_PIXELS:
            raise CorruptFileError(path, f"refused: {w} x {h} pixels is more than {radiograph.MAX_PIXELS / 1e6:.0f} "
                                         "megapixels (decompression bomb?)")
        orientation = _exif_orientation(im)
        mode = im.mode
        try:
            pixels, colour, (origin, span) = _pillow_grey(_reduced(im, fmt, target_size))
        except Exception:  # noqa: BLE001 - truncated / damaged data surface as many types
            raise CorruptFileError(path, f"truncated or damaged {fmt} data") from None
    pixels = _orient(pixels, orientation)
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    meta = {"format": fmt, "original_size": (w, h), "decoded_size": (pixels.shape[1], pixels.shape[0]),
            "mode": mode, "exif_orientation": orientation, "colour_fraction": colour}
    return Radiograph(path, pixels, meta, scale=raster_scale(pixels, origin, span))


def _reduced(im: Image.Image, fmt: str, target_size: tuple[int, int] | None) -> Image.Image:
    """``im``, decoded at a reduced size no smaller than twice ``target_size`` when it is much larger."""
    if target_size is None:
        return im
    side = max(int(target_size[0]), int(target_size[1]), 1)  # either way up after EXIF rotation
    if fmt == "JPEG":
        # YCbCr keeps the chroma for the colour measure; its Y is what draft("L") would give
        im.draft("L" if im.mode == "L" else "YCbCr" if im.mode == "RGB" else None, (side, side))
    factor = min(im.size) // (REDUCE_MARGIN * side)
    if factor < 2 or im.mode not in ("L", "RGB", "YCbCr", "RGBA", "I", "F", "I;16", "LA", "P"):
        return im
    if im.mode == "P":
        im = im.convert("RGB")
    return im.reduce(factor)


def _pillow_grey(im: Image.Image) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Decode ``im`` to float32 grey in [0, 1], keeping 16-bit precision; its colour fraction; and the
    (origin, span) that map grey back to pixel values (value = origin + grey * span).

    The colour fraction is the share of pixels whose chroma (distance from grey in YCbCr, on a
    0-1 scale) exceeds ``COLOUR_CHROMA``: 0.0 for grey images.
    """
    mode = im.mode
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.float32) / 65535.0, 0.0, (0.0, 65535.0)
    if mode in ("I", "F"):
        a = np.asarray(im).astype(np.float32)
        if mode == "I" and a.size and a.min() >= 0 and a.max() <= 65535:
            return a / 65535.0, 0.0, (0.0, 65535.0)  # 16-bit PNG / TIFF opened as 32-bit ints
        return minmax(a), 0.0, minmax_map(a)
    if mode == "L":
        return np.asarray(im, dtype=np.float32) / 255.0, 0.0, _BYTE
    if mode in ("1", "LA", "La"):
        im = im.convert("L") if mode == "1" else im.getchannel("L")
        return np.asarray(im, dtype=np.float32) / 255.0, 0.0, _BYTE
    if mode == "YCbCr":  # JPEG decoded in draft mode: Y is the luma
        ycc = np.asarray(im)
        return ycc[..., 0].astype(np.float32) / 255.0, _colour_fraction(ycc), _BYTE
    if mode in ("P", "PA"):
        im = im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
    elif mode not in ("RGB", "RGBA", "RGBX", "RGBa"):
        im = im.convert("RGB")  # CMYK, LAB, HSV ...
    if im.mode != "RGB":
        im = im.convert("RGB")  # alpha is ignored: a radiograph is its colour channels
    grey = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    return grey, _colour_fraction(np.asarray(im.convert("YCbCr"))), _BYTE


_BYTE = (0.0, 255.0)  # 8-bit grey: value = 255 * grey


#: Chroma (0-1 scale) above which a pixel counts as coloured rather than grey.
COLOUR_CHROMA = 0.08


def _colour_fraction(ycc: np.ndarray) -> float:
    """Share of pixels of a uint8 YCbCr array (sampled on a <= ~256 px grid) with chroma > COLOUR_CHROMA."""
    step = max(1, max(ycc.shape[:2]) // 256)
    c = ycc[::step, ::step, 1:].astype(np.float32) - 128.0
    chroma = np.sqrt((c * c).sum(axis=-1)) / 255.0
    return round(float((chroma > COLOUR_CHROMA).mean()), 4) if chroma.size else 0.0


def _exif_orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - a damaged EXIF block must not lose the image
        return 1
    return value if 1 <= value <= 8 else 1


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation as ``PIL.ImageOps.exif_transpose`` does."""
    ops = {
        2: lambda x: x[:, ::-1],
        3: lambda x: x[::-1, ::-1],
        4: lambda x: x[::-1],
        5: lambda x: x.T,
        6: lambda x: np.rot90(x, -1),
        7: lambda x: np.rot90(x, 2).T,
        8: lambda x: np.rot90(x, 1),
    }
    op = ops.get(orientation)
    return a if op is None else np.ascontiguousarray(op(a))
