"""Reduced-resolution decoding of compressed DICOM frames, where the codec can skip fine detail.

For the model only a ~224 px picture is needed, so a 2,000 px radiograph need not be decoded in full:

- JPEG 2000 (lossless or lossy): resolution level ``r`` of the codestream is the image at
  1/2^r per side, decoded without the finer wavelet subbands (Pillow's ``reduce``; a
  1955 x 1841 CR: 1.7 s in full, 0.4 s at level 1).
- JPEG baseline, 8 bits: libjpeg's DCT scaling (Pillow's ``draft``), 1/2, 1/4 or 1/8 per side.

Only monochrome, one-sample, unsigned frames are taken (what chest radiographs are); for
anything else, and whenever the codec refuses, :func:`reduced_frame` returns ``None`` and the
caller decodes the frame in full. The values are the stored values, as a full decode gives them.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

JPEG2000 = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91")
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"


def reduced_frame(ds: Any, tsyntax: str, target_size: tuple[int, int]) -> np.ndarray | None:
    """Frame 0 of ``ds`` decoded at a reduced size no smaller than ``target_size`` (H, W) either way up, or None.

    None: not a codec or image that allows it, not enough larger than the target, or
    the codec failed (the caller then decodes in full and reports any real damage).
    """
    try:
        if int(ds.get("SamplesPerPixel", 1) or 1) != 1 or int(ds.get("PixelRepresentation", 0) or 0) != 0:
            return None
        if str(ds.get("PhotometricInterpretation", "")).strip().upper() not in ("MONOCHROME1", "MONOCHROME2"):
            return None
        side = max(int(target_size[0]), int(target_size[1]), 1)
        if str(tsyntax) in JPEG2000:
            return _jpeg2000(_first_frame(ds), side)
        if str(tsyntax) == JPEG_BASELINE and int(ds.get("BitsAllocated", 8)) == 8:
            return _jpeg_baseline(_first_frame(ds), side)
    except Exception:  # noqa: BLE001 - any doubt: the full decode decides
        return None
    return None


def _first_frame(ds: Any) -> bytes:
    from pydicom.encaps import get_frame

    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return get_frame(ds.PixelData, 0, number_of_frames=frames)


def jpeg2000_level(width: int, height: int, side: int) -> int:
    """The deepest resolution level whose size is still at least ``side`` both ways and that Pillow sizes right.

    Pillow 10-13 computes a level's size as round(n / 2^r) while OpenJPEG gives ceil(n / 2^r);
    levels where the two differ fail to decode, so they are not chosen.
    """
    level = 0
    for r in range(1, 6):
        p = 1 << r
        size = [-(-n // p) for n in (width, height)]
        if min(size) < side:
            break
        if all(int((n + (p >> 1)) / p) == s for n, s in zip((width, height), size)):
            level = r
    return level


def _jpeg2000(frame: bytes, side: int) -> np.ndarray | None:
    import openjpeg

    params = openjpeg.get_parameters(frame)
    precision = int(params["precision"])
    if params["samples_per_pixel"] != 1 or params["is_signed"] or not 1 <= precision <= 16:
        return None
    with Image.open(io.BytesIO(frame)) as im:
        level = jpeg2000_level(im.width, im.height, side)
        if level == 0:
            return None
        im.reduce = level  # a resolution level, not Image.reduce(): see Pillow's Jpeg2KImagePlugin
        im.load()
        arr = np.asarray(im)
    # Pillow scales samples up to the mode's bit depth (8 for "L", 16 for "I;16"): undo it
    depth = 8 if arr.dtype == np.uint8 else 16
    return (arr.astype(np.uint16) >> np.uint16(max(depth - precision, 0))).astype(np.uint16 if precision > 8 else np.uint8)


def _jpeg_baseline(frame: bytes, side: int) -> np.ndarray | None:
    with Image.open(io.BytesIO(frame)) as im:
        if im.format != "JPEG" or im.mode != "L" or min(im.size) < 2 * side:
            return None
        im.draft("L", (side, side))
        im.load()
        return np.asarray(im)
