"""Which files a run classifies: files and folders expanded into the list of radiographs (torch-free)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from ..errors import CxrError
from .radiograph import IMAGE_SUFFIXES
from .reading import is_radiograph_file


class InputError(CxrError):
    """An input path that does not exist or cannot be scanned."""


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def scan_inputs(inputs: Iterable[str | Path], skipped: list[tuple[Path, str]] | None = None) -> list[Path]:
    """Expand files and folders into the list of image files to classify.

    - A file named directly is kept whatever its name (an unreadable one becomes
      an error row later); folders are walked recursively and radiographs are taken
      (:func:`~cxrviewer.core.io.reading.is_radiograph_file`: a suffix in
      ``IMAGE_SUFFIXES``, any case, or a suffix-less regular file with DICOM's magic).
    - Nothing but regular files is ever opened: a FIFO, device or socket never blocks
      the scan. An entry with an image suffix that is not a readable regular file (a
      FIFO, a dangling or looping link) is kept, so that it becomes an error row.
    - Hidden files and folders (name starting with ".") inside folders are skipped.
    - Symbolic links are followed, each real folder is walked once (no loop hangs).
    - Duplicates (the same file reached twice, e.g. through a link) are dropped;
      the first occurrence keeps its place. Folder contents come sorted by name.
    - Folders that cannot be read are appended to ``skipped`` as ``(path, reason)``.

    Raises :class:`InputError` for an input that does not exist.
    """
    found: list[Path] = []
    seen: set[tuple[int, int] | Path] = set()
    for item in map(Path, inputs):
        try:
            st = item.stat()
        except FileNotFoundError:
            raise InputError(f"{item}: no such file or folder") from None
        except OSError as e:
            raise InputError(f"{item}: cannot read ({e.strerror or e})") from None
        if stat.S_ISDIR(st.st_mode):
            _walk(item, found, seen, skipped if skipped is not None else [])
        else:
            _add(item, st, found, seen)
    return found


def _add(path: Path, st: os.stat_result | None, found: list[Path], seen: set) -> None:
    key = (st.st_dev, st.st_ino) if st is not None else path
    if key not in seen:
        seen.add(key)
        found.append(path)


def _walk(top: Path, found: list[Path], seen: set, skipped: list[tuple[Path, str]]) -> None:
    """Add the radiographs under the folder ``top`` to ``found`` (see :func:`scan_inputs`)."""
    seen_dirs: set[tuple[int, int]] = set()

    def unreadable(e: OSError) -> None:
        skipped.append((Path(e.filename or top), f"folder cannot be read ({e.strerror or e})"))

    for root, dirs, files in os.walk(top, followlinks=True, onerror=unreadable):
        try:
            rst = os.stat(root)
        except OSError:
            dirs[:] = []
            continue
        if (rst.st_dev, rst.st_ino) in seen_dirs:  # reached again through a link: walked already
            dirs[:] = []
            continue
        seen_dirs.add((rst.st_dev, rst.st_ino))
        dirs[:] = [d for d in sorted(dirs, key=_sort_key) if not _is_hidden(d) and _new_dir(root, d, seen_dirs)]
        for f in sorted(files, key=_sort_key):
            if not _is_hidden(f):
                _consider(Path(root) / f, found, seen)


def _new_dir(root: str, name: str, seen_dirs: set[tuple[int, int]]) -> bool:
    try:
        st = os.stat(os.path.join(root, name))
    except OSError:
        return False
    return (st.st_dev, st.st_ino) not in seen_dirs


def _consider(path: Path, found: list[Path], seen: set) -> None:
    """Add ``path`` if it is a radiograph; an image-named entry that is not a regular file is added as is."""
    try:
        st = path.stat()
    except OSError:
        st = None  # a dangling or looping link
    if st is not None and stat.S_ISREG(st.st_mode):
        if is_radiograph_file(path):
            _add(path, st, found, seen)
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        _add(path, st, found, seen)


def _sort_key(name: str) -> tuple[str, str]:
    return (name.casefold(), name)
