"""Reading radiographs: any supported file -> grey float32 pixels in [0, 1], dense = bright.

Raster files (JPEG, PNG, BMP, TIFF) go through Pillow, DICOM through pydicom 3 and
its decoder plugins. Files are only ever opened for reading. Sizes are checked from
the header before any pixel is decoded, so a decompression bomb costs no memory.

DICOM display pipeline (monochrome): Bits Stored -> Modality LUT (LUT sequence, else
rescale) -> VOI (LUT sequence, else the first window with its VOI LUT Function, else a
0.5-99.5 percentile window) -> presentation: an explicit Presentation LUT Shape decides
(INVERSE inverts), otherwise MONOCHROME1 is inverted; never twice. Colour DICOMs (RGB,
YBR, palette) and colour rasters become luma (ITU-R 601); alpha is ignored.

Beside the display pixels, every radiograph carries its *linear grey* (modality values mapped linearly
onto [0, 1], no window; :mod:`cxrviewer.core.window`) and the :class:`ValueScale` that maps it back,
so a viewer can window in modality units.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import stat
import struct
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from .dicom_reduced import reduced_frame
from .errors import CorruptFileError, RadiographError, UnsupportedFileError
from .window import ValueScale, Window, linear_scale

#: File name suffixes recognised as radiographs (lower case; compare with ``suffix.lower()``).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".dcm", ".dicom"})
DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})

#: Largest image accepted, in pixels per frame (Pillow's own default limit, ~89.5 MP, so
#: Pillow never warns about an image this module accepts). Larger ones are refused unread.
MAX_PIXELS = 89_478_485

_PILLOW_FORMATS = ("JPEG", "PNG", "BMP", "DIB", "TIFF")  # JPEG also opens MPO files
_MAGIC = (  # (offset, bytes, format name) of the raster formats Pillow reads for us
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"BM", "BMP"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (0, b"II+\x00", "TIFF"),
    (0, b"MM\x00+", "TIFF"),
)
_NAMED_FORMATS = {".jpg": "a JPEG", ".jpeg": "a JPEG", ".png": "a PNG", ".bmp": "a BMP", ".tif": "a TIFF",
                  ".tiff": "a TIFF"}  # what a file of each raster suffix should hold
_PERCENTILES = (0.5, 99.5)
#: With a ``target_size``, large images are decoded no smaller than this many times it.
REDUCE_MARGIN = 2
_DEFLATED = "1.2.840.10008.1.2.1.99"
#: Reads a DICOM header parse may make (about two per element); far beyond any real data set.
MAX_HEADER_READS = 200_000

# Sizes are checked here before decoding, and pydicom's notes on odd files are not the user's
# business: keep both libraries' warnings off the terminal.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\.|$)")
logging.getLogger("pydicom").setLevel(logging.ERROR)


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


def is_radiograph_file(path: str | Path) -> bool:
    """True if ``path`` looks like a radiograph: a known suffix (any case), or a suffix-less regular file with
    DICOM's 'DICM' magic (nothing but a regular file is opened to look)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix:
        return suffix in IMAGE_SUFFIXES
    try:
        with _open_regular(path) as f:
            head = f.read(132)
    except (OSError, RadiographError):
        return False
    return head[128:132] == b"DICM"


def load_radiograph(path: str | Path, target_size: tuple[int, int] | None = None) -> Radiograph:
    """Read ``path`` into a :class:`Radiograph`.

    ``target_size`` (H, W) is a hint: large images are decoded at a reduced size no
    smaller than twice it (JPEG draft mode, Pillow's ``reduce``; for DICOM, JPEG 2000
    resolution levels or JPEG DCT scaling where the codec allows, else a block mean of the
    stored values), so memory per image stays bounded; ``pixels`` may then be smaller
    than the original, while ``meta["original_size"]`` stays the full size. Only regular
    files are opened. Raises :class:`UnsupportedFileError` or :class:`CorruptFileError`
    with a one-line reason written for people.
    """
    path = Path(path)
    with _open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise CorruptFileError(path, "empty file (0 bytes)")
        head = f.read(132)
        f.seek(0)
        raster = next((name for off, magic, name in _MAGIC if head[off:off + len(magic)] == magic), None)
        with np.errstate(all="ignore"):
            try:
                if head[128:132] == b"DICM":
                    rad = _load_dicom(path, f, size, force=False, target_size=target_size)
                elif raster is None and path.suffix.lower() in DICOM_SUFFIXES:
                    rad = _load_dicom(path, f, size, force=True, target_size=target_size)
                else:
                    rad = _load_pillow(path, f, raster, target_size)
            except RadiographError:
                raise
            except MemoryError:
                raise CorruptFileError(path, "not enough memory to decode this image") from None
            except Exception:  # noqa: BLE001 - a library failure on a damaged file is still one clear reason
                raise CorruptFileError(path, "the file is damaged and could not be decoded") from None
    if not np.isfinite(rad.pixels).all() or (rad.linear is not None and not np.isfinite(rad.linear).all()):
        raise CorruptFileError(path, "the image has values that are not finite numbers after the display "
                                     "pipeline (rescale or window values out of range)")
    return rad


@contextlib.contextmanager
def _open_regular(path: Path) -> Iterator[BinaryIO]:
    """Open ``path`` for reading only if it is a regular file; never blocks on a FIFO or a device."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        reason = "broken link: its target does not exist" if os.path.islink(path) else "file not found"
        raise UnsupportedFileError(path, reason) from None
    except IsADirectoryError:
        raise UnsupportedFileError(path, "is a folder, not an image file") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsupportedFileError(path, "the link loops back on itself") from None
        raise UnsupportedFileError(path, f"cannot read file ({e.strerror or e})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        what = "is a folder, not an image file" if stat.S_ISDIR(mode) else \
            "not a regular file (a pipe, device or socket), so it is not read"
        raise UnsupportedFileError(path, what)
    with os.fdopen(fd, "rb") as f:
        try:
            yield f
        except OSError as e:
            raise CorruptFileError(path, f"cannot read file ({e.strerror or e})") from None


def to_model_input(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize grey ``pixels`` to ``size`` (H, W) with antialiasing, aspect not kept (as in training)."""
    h, w = size
    if pixels.shape == (h, w):
        return np.ascontiguousarray(pixels, dtype=np.float32)
    im = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.float32))  # mode "F"
    return np.asarray(im.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=None), dtype=np.float32)


# --------------------------------------------------------------------------- raster files


def _load_pillow(path: Path, f: BinaryIO, raster: str | None, target_size: tuple[int, int] | None) -> Radiograph:
    try:
        im = Image.open(f, formats=_PILLOW_FORMATS)
    except Image.UnidentifiedImageError:
        if raster is not None:
            raise CorruptFileError(path, f"damaged {raster} header") from None
        named = _NAMED_FORMATS.get(path.suffix.lower())
        if named is not None:  # an image's name, not an image's bytes: damaged (or misnamed), not merely unsupported
            raise CorruptFileError(path, f"damaged: named {path.suffix} but its content is not {named} "
                                         "(nor any image format read here)") from None
        raise UnsupportedFileError(path, "not a supported image (JPEG, PNG, BMP, TIFF or DICOM)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise CorruptFileError(path, f"refused: image larger than {MAX_PIXELS / 1e6:.0f} megapixels "
                                     "(decompression bomb?)") from None
    except Exception:  # noqa: BLE001 - any parser failure is a damaged header
        raise CorruptFileError(path, f"damaged {raster or 'image'} header") from None
    with im:
        fmt = "JPEG" if im.format == "MPO" else im.format
        w, h = im.size
        if w * h > MAX_PIXELS:
            raise CorruptFileError(path, f"refused: {w} x {h} pixels is more than {MAX_PIXELS / 1e6:.0f} "
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
    return Radiograph(path, pixels, meta, scale=_raster_scale(pixels, origin, span))


def _raster_scale(pixels: np.ndarray, origin: float, span: float) -> ValueScale:
    """The scale of a raster whose ``pixels`` are ``(value - origin) / span``: its values' range; its own window
    is ``origin`` to ``origin + span`` (e.g. 0-255: the file shown as stored)."""
    lo, hi = (float(pixels.min()), float(pixels.max())) if pixels.size else (0.0, 1.0)
    lo, hi = origin + lo * span, origin + hi * span
    whole = float(origin).is_integer() and float(span).is_integer()
    if whole:
        lo, hi = round(lo), round(hi)
    return linear_scale(lo, hi, integer=whole, origin=origin, span=span, file_window=Window.spanning(origin, origin + span))


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
        return _minmax(a), 0.0, _minmax_map(a)
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


# --------------------------------------------------------------------------- DICOM

_INSTALL_HINT = {
    "jpeg2000": "pip install pylibjpeg pylibjpeg-openjpeg",
    "jpegls": "pip install pylibjpeg pylibjpeg-libjpeg",
    "jpeg": "pip install pylibjpeg pylibjpeg-libjpeg",
    "rle": "pip install pylibjpeg pylibjpeg-rle",
}
_ID_TAGS = ("Modality", "BodyPartExamined", "ViewPosition", "StudyDate", "Manufacturer")
#: Tags kept for the four-corner text (:mod:`cxrviewer.core.corner_text`); patient ones hide when anonymised.
_CORNER_TAGS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "AccessionNumber",
                "InstitutionName", "StudyDescription", "SeriesDescription", "StudyTime", "ImageLaterality",
                "Laterality")


def _load_dicom(path: Path, f: BinaryIO, file_size: int, force: bool,
                target_size: tuple[int, int] | None) -> Radiograph:
    ds = _read_dicom(path, f, force)
    tsyntax = _transfer_syntax(ds)
    pixel_tag = next((t for t in (0x7FE00010, 0x7FE00008, 0x7FE00009) if t in ds), None)
    if pixel_tag is None:
        if not len(ds):  # pydicom drops the whole data set when the file ends inside a sequence
            raise CorruptFileError(path, "truncated or damaged DICOM: no readable data set")
        kind = "has image attributes but no pixel data (truncated?)" if "Rows" in ds else \
            "contains no image (no pixel data)"
        raise UnsupportedFileError(path, f"DICOM {kind}")
    rows, cols, frames, photometric = _image_attributes(path, ds)
    _check_decoder(path, tsyntax)
    if tsyntax != _DEFLATED:
        _check_not_truncated(path, ds, pixel_tag, file_size)
    _check_codestream(path, f, ds, pixel_tag, tsyntax, rows, cols)

    arr = None
    if target_size is not None:  # JPEG 2000 resolution levels, JPEG DCT scaling; else None
        arr = reduced_frame(ds, tsyntax, (REDUCE_MARGIN * target_size[0], REDUCE_MARGIN * target_size[1]))
    if arr is None:
        arr = _decode_first_frame(path, f, ds, tsyntax)
        if arr.shape[:2] != (rows, cols):
            raise CorruptFileError(path, f"the pixel data does not hold a {cols} x {rows} image")
    meta: dict[str, Any] = {
        "format": "DICOM", "original_size": (cols, rows), "decoded_size": (cols, rows),
        "transfer_syntax": tsyntax.name, "transfer_syntax_uid": str(tsyntax),
        "photometric_interpretation": photometric, "frames": frames,
        "bits_stored": int(ds.get("BitsStored", ds.get("BitsAllocated", 0)) or 0),
    }
    for tag in _ID_TAGS + _CORNER_TAGS:
        value = ds.get(tag)
        if value not in (None, ""):
            meta[tag] = str(value)
    meta.update(pixel_spacing(ds))
    try:
        if arr.ndim == 3 or photometric == "PALETTE COLOR":
            pixels, top = _colour_to_grey(arr, ds, photometric, meta)
            linear, scale = None, _raster_scale(pixels, 0.0, top)
        else:
            pixels, linear, scale = _monochrome_display(arr, ds, photometric, meta, target_size)
    except RadiographError:
        raise
    except Exception:  # noqa: BLE001 - bad LUTs or windows in the header
        raise CorruptFileError(path, "invalid DICOM display attributes (LUT, window or rescale values)") from None
    meta["decoded_size"] = (pixels.shape[1], pixels.shape[0])
    return Radiograph(path, pixels, meta, linear, scale)


#: Where the physical size of a pixel may be stated, in order of preference.
SPACING_TAGS = (("PixelSpacing", "Pixel Spacing"), ("ImagerPixelSpacing", "Imager Pixel Spacing"))


def pixel_spacing(ds) -> dict[str, Any]:
    """``pixel_spacing`` (row, column) in mm and ``pixel_spacing_source`` from the first valid of
    :data:`SPACING_TAGS` (Pixel Spacing, else Imager Pixel Spacing, which is at the detector and not
    corrected for magnification); empty when neither holds two positive numbers."""
    for keyword, name in SPACING_TAGS:
        try:
            row, col = (float(v) for v in ds.get(keyword) or ())
        except (TypeError, ValueError):
            continue
        if 0 < row < 1e3 and 0 < col < 1e3:
            return {"pixel_spacing": (row, col), "pixel_spacing_source": name}
    return {}


def _read_dicom(path: Path, f: BinaryIO, force: bool):
    """The data set up to its pixel data, read from ``f``; elements after the pixel data or out of order stop
    the read (so a huge or garbage tail costs nothing)."""
    from pydicom.errors import InvalidDicomError
    from pydicom.filereader import read_partial

    if force and not _looks_like_dicom(f):
        raise UnsupportedFileError(path, "not a DICOM file")
    seen: list[int] = []

    def stop(tag, vr, length) -> bool:  # pydicom asks twice about the first tag it peeks at
        garbage = bool(seen) and (tag < seen[-1] or seen[-2:] == [tag, tag])
        seen.append(int(tag))
        return garbage or tag > 0x7FE00010

    try:
        f.seek(0)
        ds = read_partial(_ReadBudget(f), stop_when=stop, defer_size=64 * 1024, force=force)
        if str(getattr(ds, "file_meta", {}).get("TransferSyntaxUID", "")) == _DEFLATED:
            seen.clear()  # deferred values would point into the inflated stream, which is gone: read them now
            f.seek(0)
            ds = read_partial(_ReadBudget(f), stop_when=stop, defer_size=None, force=force)
        ds.filename, ds.buffer = None, f  # deferred values are read from this open file, never reopened by name
        return ds
    except _ReadBudget.Spent:
        raise CorruptFileError(path, "the DICOM data set has far too many elements (damaged or padded file)") from None
    except InvalidDicomError:
        raise UnsupportedFileError(path, "not a DICOM file") from None
    except Exception:  # noqa: BLE001 - pydicom reports damaged headers with many types
        raise CorruptFileError(path, "damaged or truncated DICOM data set") from None


class _ReadBudget:
    """The open file as pydicom reads it, allowing at most :data:`MAX_HEADER_READS` reads: a file of zeros or
    other garbage parses as endless tiny elements, and this ends such a parse in about a second."""

    class Spent(Exception):
        pass

    def __init__(self, f: BinaryIO):
        self._f, self._left = f, MAX_HEADER_READS

    def read(self, size: int = -1) -> bytes:
        self._left -= 1
        if self._left < 0:
            raise self.Spent()
        return self._f.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()


def _looks_like_dicom(f: BinaryIO) -> bool:
    """A file without the 'DICM' preamble: does it start like a data set (group 0002 or 0008, either byte order)?"""
    f.seek(0)
    head = f.read(8)
    return len(head) == 8 and (head[:2] in (b"\x02\x00", b"\x08\x00") or head[:2] == b"\x00\x08")


def _image_attributes(path: Path, ds) -> tuple[int, int, int, str]:
    """(Rows, Columns, frames, photometric interpretation), checked against :data:`MAX_PIXELS`."""
    missing = [k for k in ("Rows", "Columns") if k not in ds]
    if missing:
        raise CorruptFileError(path, f"DICOM image attributes missing ({' and '.join(missing)})")
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    except Exception:  # noqa: BLE001 - garbled image pixel module
        raise CorruptFileError(path, "DICOM image attributes (Rows, Columns, Number of Frames) are invalid") from None
    if rows <= 0 or cols <= 0:
        raise CorruptFileError(path, f"DICOM image has invalid size {cols} x {rows}")
    if rows * cols > MAX_PIXELS:
        raise CorruptFileError(path, f"refused: {cols} x {rows} pixels is more than {MAX_PIXELS / 1e6:.0f} "
                                     "megapixels (decompression bomb?)")
    return rows, cols, frames, photometric


def _transfer_syntax(ds):
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if ts:
        return UID(ts)
    implicit, little = ds.original_encoding  # a dataset without file meta: use how it was read
    ts = ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    if not hasattr(ds, "file_meta"):
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ts
    return ts


def _check_decoder(path: Path, tsyntax) -> None:
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        raise UnsupportedFileError(path, f"DICOM transfer syntax '{tsyntax.name}' ({tsyntax}) is not "
                                         "supported") from None
    if not decoder.is_available:
        name = tsyntax.name.lower()
        key = ("jpeg2000" if "2000" in name else "jpegls" if "jpeg-ls" in name or "jpeg ls" in name
               else "jpeg" if "jpeg" in name else "rle" if "rle" in name else "")
        hint = _INSTALL_HINT.get(key, "pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg")
        raise UnsupportedFileError(path, f"no decoder installed for DICOM transfer syntax '{tsyntax.name}' "
                                         f"(install one: {hint})")


def _check_not_truncated(path: Path, ds, pixel_tag: int, file_size: int) -> None:
    elem = ds._dict.get(pixel_tag)
    tell, length = getattr(elem, "value_tell", None), getattr(elem, "length", None)
    if tell is not None and length is not None and length != 0xFFFFFFFF and tell + length > file_size:
        raise CorruptFileError(path, f"truncated: pixel data needs {tell + length} bytes, the file has "
                                     f"{file_size}")


_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7})
_CODESTREAM_PEEK = 4 * 1024 * 1024


def _check_codestream(path: Path, f: BinaryIO, ds, pixel_tag: int, tsyntax, rows: int, cols: int) -> None:
    """For compressed pixel data, the size the first frame's JPEG / JPEG-LS / JPEG 2000 header declares must be
    the image's Rows x Columns: checked before any decoder allocates for it."""
    if not tsyntax.is_compressed or pixel_tag != 0x7FE00010:
        return
    head = _first_fragment(f, ds._dict.get(pixel_tag))
    if head is None:
        return
    declared = _declared_size(head)
    if declared is None:
        name = "JPEG 2000" if "2000" in tsyntax.name else "JPEG" if "JPEG" in tsyntax.name else None
        if name is not None:
            raise CorruptFileError(path, f"the embedded {name} data has no readable header")
        return
    w, h = declared
    if (w, h) != (cols, rows):
        raise CorruptFileError(path, f"the embedded image declares {w} x {h} pixels but the DICOM header says "
                                     f"{cols} x {rows}; refused before decoding")


def _first_fragment(f: BinaryIO, elem) -> bytes | None:
    """The first bytes (up to 4 MiB) of the first fragment of encapsulated pixel data, or None if unreadable."""
    value = getattr(elem, "value", None)
    src, start = (io.BytesIO(value), 0) if isinstance(value, bytes) else (f, getattr(elem, "value_tell", None))
    if start is None:
        return None
    src.seek(start)
    for item in ("offset table", "fragment"):
        tag = src.read(8)
        if len(tag) < 8 or tag[:4] != b"\xfe\xff\x00\xe0":
            return None
        (length,) = struct.unpack("<I", tag[4:])
        if item == "fragment":
            return src.read(min(length, _CODESTREAM_PEEK))
        src.seek(length, io.SEEK_CUR)
    return None


def _declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG / JPEG-LS SOF segment or a JPEG 2000 SIZ segment, or None."""
    if data[:4] == b"\xff\x4f\xff\x51" and len(data) >= 24:  # J2K codestream: SOC, SIZ
        xsiz, ysiz, xo, yo = struct.unpack(">IIII", data[8:24])
        return xsiz - xo, ysiz - yo
    if data[:12].find(b"jP  ") >= 0:  # JP2 file format: find the codestream inside
        at = data.find(b"\xff\x4f\xff\x51")
        return _declared_size(data[at:]) if at >= 0 else None
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if marker in _SOF_MARKERS and pos + 9 <= len(data):
            h, w = struct.unpack(">HH", data[pos + 5:pos + 9])
            return w, h
        pos += 2 + length
    return None


def _decode_first_frame(path: Path, f: BinaryIO, ds, tsyntax) -> np.ndarray:
    """Decode frame 0 only; from the file itself where possible (other frames are never read), else from the
    data set (deflated files, and files whose fragments only the data set route reads)."""
    from pydicom.pixels import pixel_array

    if tsyntax != _DEFLATED:
        try:
            f.seek(0)
            return pixel_array(f, index=0)
        except MemoryError:
            raise
        except Exception:  # noqa: BLE001 - retried from the data set below
            pass
    try:
        return pixel_array(ds, index=0)
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 - decoders raise many types for damaged data
        raise CorruptFileError(path, f"the {tsyntax.name} pixel data is damaged or does not match the image "
                                     "attributes") from None


def _colour_to_grey(arr: np.ndarray, ds, photometric: str, meta: dict) -> tuple[np.ndarray, float]:
    """RGB (YBR is already RGB after decoding) or palette colour -> luma in [0, 1], and the value of luma 1."""
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr, ds)
    top = float(np.iinfo(arr.dtype).max) if arr.dtype.kind in "ui" else 1.0
    if arr.dtype.kind in "ui" and "BitsStored" in ds and photometric != "PALETTE COLOR":
        top = float(2 ** int(ds.BitsStored) - 1)
    arr = arr.astype(np.float32)
    grey = arr[..., 0] * np.float32(0.299) + arr[..., 1] * np.float32(0.587) + arr[..., 2] * np.float32(0.114)
    meta.update(window=None, window_source="none (colour image)", inverted=False, rescale=None)
    return _clip01(grey / np.float32(top) if top else grey), top or 1.0


def _monochrome_display(arr: np.ndarray, ds, photometric: str, meta: dict,
                        target_size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray, ValueScale]:
    """Stored values -> Modality LUT -> VOI LUT / window -> presentation (inversion), in [0, 1];
    with the linear grey of the modality values and its scale."""
    if arr.dtype.kind == "f":  # Float / Double Float Pixel Data
        arr = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    arr = _shrink(_fix_bits_stored(arr, ds), target_size, keep_values=bool(ds.get("ModalityLUTSequence")))
    values = _modality(arr, ds, meta)
    shape = str(ds.get("PresentationLUTShape", "") or "").strip().upper()
    # As highdicom: an explicit Presentation LUT Shape decides; otherwise MONOCHROME1 is inverted.
    # Either way the inversion happens at most once.
    invert = shape == "INVERSE" if shape in ("INVERSE", "IDENTITY") else photometric == "MONOCHROME1"
    rescale = meta.get("rescale") or (1.0, 0.0)
    whole = arr.dtype.kind in "ui" and all(float(v).is_integer() for v in rescale)
    linear, scale = _linear(values, ds, invert, integer=whole)
    y = _voi(values, ds, meta)
    if invert:
        np.subtract(np.float32(1.0), y, out=y)
    meta["inverted"] = bool(invert)
    meta["presentation_lut_shape"] = shape or None
    return y, linear, scale


def _linear(values: np.ndarray, ds, inverted: bool, integer: bool) -> tuple[np.ndarray, ValueScale]:
    """Modality ``values`` as linear grey (min -> 0, max -> 1; the reverse when ``inverted``) and its scale."""
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if not (np.isfinite(lo) and np.isfinite(hi)):  # refused by load_radiograph's finiteness check
        return values.astype(np.float32), ValueScale()
    unit = str(ds.get("RescaleType", "") or "").strip() or ("HU" if str(ds.get("Modality", "")) == "CT" else "")
    scale = linear_scale(lo, hi, inverted=inverted, unit=unit, integer=integer,
                         file_window=None if ds.get("VOILUTSequence") else _file_window(ds))
    linear = values.astype(np.float32)
    linear -= np.float32(scale.origin)
    linear /= np.float32(scale.span)
    return linear, scale


def _file_window(ds) -> Window | None:
    window = _first_window(ds)
    return None if window is None else Window(*window)


def _shrink(arr: np.ndarray, target_size: tuple[int, int] | None, keep_values: bool) -> np.ndarray:
    """A large 2-D ``arr`` reduced by a whole factor to no less than :data:`REDUCE_MARGIN` x ``target_size``:
    the block mean (float32), or every n-th value when the values must stay stored values (a LUT follows)."""
    if target_size is None:
        return arr
    side = max(int(target_size[0]), int(target_size[1]), 1)
    k = min(arr.shape) // (REDUCE_MARGIN * side)
    if k < 2:
        return arr
    if keep_values:
        return np.ascontiguousarray(arr[::k, ::k])
    h, w = arr.shape[0] // k * k, arr.shape[1] // k * k
    return arr[:h, :w].reshape(h // k, k, w // k, k).mean(axis=(1, 3), dtype=np.float32)


def _fix_bits_stored(arr: np.ndarray, ds) -> np.ndarray:
    """Clear (or sign-extend over) bits above Bits Stored; idempotent if the decoder already did."""
    if arr.dtype.kind not in "ui" or "BitsStored" not in ds:
        return arr
    bits, width = int(ds.BitsStored), arr.dtype.itemsize * 8
    if not 0 < bits < width:
        return arr
    if arr.dtype.kind == "u":
        return arr & arr.dtype.type((1 << bits) - 1)
    shift = arr.dtype.type(width - bits)
    return (arr << shift) >> shift


def _modality(arr: np.ndarray, ds, meta: dict) -> np.ndarray:
    """Modality LUT: the LUT sequence if present, else rescale slope / intercept (float32)."""
    if ds.get("ModalityLUTSequence"):
        from pydicom.pixels import apply_modality_lut

        meta["rescale"] = None
        meta["modality_lut"] = "Modality LUT Sequence"
        return np.asarray(apply_modality_lut(arr, ds))
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    meta["rescale"] = (slope, intercept)
    meta["modality_lut"] = "rescale" if (slope, intercept) != (1.0, 0.0) else None
    if (slope, intercept) == (1.0, 0.0):
        return arr
    out = arr.astype(np.float32)
    out *= np.float32(slope)
    out += np.float32(intercept)
    return out


def _voi(values: np.ndarray, ds, meta: dict) -> np.ndarray:
    """VOI LUT Sequence, else the first window (LINEAR / LINEAR_EXACT / SIGMOID), else a percentile window."""
    if ds.get("VOILUTSequence"):
        from pydicom.pixels import apply_voi

        item = ds.VOILUTSequence[0]
        n, first = int(item.LUTDescriptor[0]) or 65536, int(item.LUTDescriptor[1])
        # clip first: pydicom would wrap inputs beyond the table in its unsigned index array
        ints = np.clip(np.rint(values) if values.dtype.kind == "f" else values, first, first + n - 1)
        ints = ints.astype(np.int32)
        table = apply_voi(np.arange(first, first + n, dtype=np.int64), ds, index=0)
        lo, hi = float(table.min()), float(table.max())
        out = apply_voi(ints, ds, index=0).astype(np.float32)
        meta.update(window=None, window_source="VOI LUT Sequence", voi_lut_function=None)
        if hi <= lo:
            return np.zeros(out.shape, np.float32)
        out -= np.float32(lo)
        out /= np.float32(hi - lo)
        return _clip01(out)

    window = _first_window(ds)
    x = values.astype(np.float32, copy=values.dtype != np.float32)
    if window is not None:
        center, width = window
        function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
        if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
            function = "LINEAR"
        meta.update(window=(center, width), window_source="file", voi_lut_function=function)
        return apply_window(x, center, width, function)

    sample = x[:: max(1, x.shape[0] // 512), :: max(1, x.shape[1] // 512)]
    lo, hi = (float(v) for v in np.percentile(sample, _PERCENTILES))
    source = f"percentile {_PERCENTILES[0]}-{_PERCENTILES[1]}%"
    if hi <= lo:
        lo, hi = float(x.min()), float(x.max())
        source = "min-max"
    meta.update(window=((lo + hi) / 2, hi - lo), window_source=source, voi_lut_function="LINEAR_EXACT")
    if hi <= lo:
        return np.zeros(x.shape, np.float32)
    return apply_window(x, (lo + hi) / 2, hi - lo, "LINEAR_EXACT")


def _first_window(ds) -> tuple[float, float] | None:
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None

    def first(v):
        return float(v[0] if isinstance(v, Sequence) and not isinstance(v, (str, bytes)) else v)

    try:
        center, width = first(ds.WindowCenter), first(ds.WindowWidth)
    except (TypeError, ValueError, IndexError):
        return None
    if not (np.isfinite(center) and np.isfinite(width)) or width <= 0:
        return None
    return center, width


def apply_window(x: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """DICOM VOI window (PS3.3 C.11.2.1.2) of ``x`` onto [0, 1], as pydicom's ``apply_windowing``."""
    x = np.asarray(x, dtype=np.float32)
    c, w = float(center), float(width)
    if function == "SIGMOID":
        y = np.float32(-4.0 / w) * (x - np.float32(c))
        np.exp(np.clip(y, -80.0, 80.0, out=y), out=y)  # clipped: no float32 overflow, same result
        y += np.float32(1.0)
        return np.reciprocal(y, out=y)
    if function == "LINEAR_EXACT":
        y = (x - np.float32(c - w / 2)) / np.float32(w)
    elif w <= 1:
        return (x > np.float32(c - 0.5)).astype(np.float32)
    else:
        y = (x - np.float32(c - 0.5)) / np.float32(w - 1)
        y += np.float32(0.5)
    return _clip01(y)


# --------------------------------------------------------------------------- helpers


def _clip01(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    return np.clip(a, 0.0, 1.0, out=a)


def _minmax_map(a: np.ndarray) -> tuple[float, float]:
    """(origin, span) that undo :func:`_minmax` on ``a``."""
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(a.min()) if a.size else 0.0, float(a.max()) if a.size else 0.0
    return lo, (hi - lo) if hi > lo else 1.0


def _minmax(a: np.ndarray) -> np.ndarray:
    a = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(a.min()) if a.size else 0.0, float(a.max()) if a.size else 0.0
    return np.zeros_like(a) if hi <= lo else (a - np.float32(lo)) / np.float32(hi - lo)


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 160 else text[:157] + "..."

