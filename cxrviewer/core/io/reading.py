"""Reading radiographs: any supported file -> a :class:`~cxrviewer.core.io.radiograph.Radiograph`.

The file's first bytes decide its reader: raster files (JPEG, PNG, BMP, TIFF) go to Pillow
(:mod:`.raster`), DICOM to pydicom (:mod:`.dicom`). Files are only ever opened for reading, and only
regular files are opened (never a FIFO or a device).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import CorruptFileError, RadiographError, UnsupportedFileError
from .dicom import _load_dicom
from .radiograph import DICOM_SUFFIXES, IMAGE_SUFFIXES, Radiograph
from .raster import _load_pillow

_MAGIC = (  # (offset, bytes, format name) of the raster formats Pillow reads for us
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"BM", "BMP"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (0, b"II+\x00", "TIFF"),
    (0, b"MM\x00+", "TIFF"),
)


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
