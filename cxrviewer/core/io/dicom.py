"""DICOM files through pydicom 3 and its decoder plugins -> a grey :class:`~.radiograph.Radiograph`.

Sizes are checked from the header (and an embedded JPEG / JPEG 2000 codestream's own header) before any
pixel is decoded, so a decompression bomb costs no memory; header parsing has a read budget.

Display pipeline (monochrome): Bits Stored -> Modality LUT (LUT sequence, else rescale) -> VOI (LUT
sequence, else the first window with its VOI LUT Function, else a 0.5-99.5 percentile window;
:mod:`.dicom_values`) -> presentation: an explicit Presentation LUT Shape decides (INVERSE inverts),
otherwise MONOCHROME1 is inverted; never twice. Colour DICOMs (RGB, YBR, palette) become luma (ITU-R 601).
"""

from __future__ import annotations

import io
import logging
import struct
import warnings
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import CorruptFileError, RadiographError, UnsupportedFileError
from . import radiograph
from .dicom_reduced import reduced_frame
from .dicom_values import _first_window, _modality, _voi
from .radiograph import REDUCE_MARGIN, Radiograph, clip01, raster_scale
from .window import ValueScale, Window, linear_scale

_DEFLATED = "1.2.840.10008.1.2.1.99"
#: Reads a DICOM header parse may make (about two per element); far beyond any real data set.
MAX_HEADER_READS = 200_000

# pydicom's notes on odd files are not the user's business: keep them off the terminal.
warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\.|$)")
logging.getLogger("pydicom").setLevel(logging.ERROR)


_INSTALL_HINT = {
    "jpeg2000": "pip install pylibjpeg pylibjpeg-openjpeg",
    "jpegls": "pip install pylibjpeg pylibjpeg-libjpeg",
    "jpeg": "pip install pylibjpeg pylibjpeg-libjpeg",
    "rle": "pip install pylibjpeg pylibjpeg-rle",
}
_ID_TAGS = ("Modality", "BodyPartExamined", "ViewPosition", "StudyDate", "Manufacturer")
#: Tags kept for the four-corner text (:mod:`cxrviewer.core.io.corner_text`); patient ones hide when anonymised.
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
            linear, scale = None, raster_scale(pixels, 0.0, top)
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
    """(Rows, Columns, frames, photometric interpretation), checked against :data:`radiograph.MAX_PIXELS`."""
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
    if rows * cols > radiograph.MAX_PIXELS:
        raise CorruptFileError(path, f"refused: {cols} x {rows} pixels is more than {radiograph.MAX_PIXELS / 1e6:.0f} "
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
    return clip01(grey / np.float32(top) if top else grey), top or 1.0


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

