"""Writing results: overlay PNGs and the results CSV. Qt-free.

Every file is written atomically: into a hidden temporary file in the target
folder, then moved onto its name in one step, so a crash or a cancel never
leaves a half-written file under the final name.

Policy on existing files (never overwritten silently):

- PNGs (:func:`save_png`) take a new name instead: ``chest_cam.png`` exists ->
  ``chest_cam (1).png``, then ``(2)``...; the name actually written is returned.
- The CSV (:class:`CsvWriter`) refuses to start when its file exists, unless
  ``overwrite=True``.

And :func:`check_output_dir` keeps exports out of the user's input folders:
a folder strictly inside an input folder is refused; an input folder itself is
allowed only when it is chosen as the output folder explicitly (the viewer asks
first). :func:`check_outside_inputs` is the strict rule of ``cxrviewer predict``:
its CSV and overlays never go into, onto or inside an input.
"""

from __future__ import annotations

import csv
import errno
import os
import tempfile
import urllib.parse
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from ..errors import CxrError
from .columns import Batch, Column, csv_columns
from .file_result import FileResult

OVERLAY_SUFFIX = "_cam.png"


class ExportError(CxrError):
    """An export that cannot be written (existing file, forbidden or missing folder, disk error)."""


# -- names and folders --------------------------------------------------------------
def numbered(path: Path, n: int) -> Path:
    """``path`` with `` (n)`` before its suffix; ``n == 0`` gives ``path`` itself."""
    return path if n == 0 else path.with_name(f"{path.stem} ({n}){path.suffix}")


def unique_path(path: str | Path) -> Path:
    """``path`` if free, else the first free ``name (n).ext``."""
    path = Path(path)
    n = 0
    while os.path.lexists(numbered(path, n)):
        n += 1
    return numbered(path, n)


def overlay_path(out_dir: str | Path, source: str | Path, method: str = "evidence") -> Path:
    """Where the overlay of ``source`` goes in ``out_dir`` (before de-duplication): ``<stem>_cam.png`` for the
    evidence map, ``<stem>_<method>.png`` for another explanation method (``_gradcam``, ``_occlusion``)."""
    suffix = OVERLAY_SUFFIX if method == "evidence" else f"_{method}.png"
    return Path(out_dir) / f"{Path(source).stem}{suffix}"


def check_output_dir(out_dir: str | Path, inputs: Iterable[str | Path], strict: bool = False) -> Path:
    """Check that ``out_dir`` may receive exports for ``inputs``; return it resolved.

    Refused (:class:`ExportError`): a folder strictly inside an input folder
    (e.g. ``scans/overlays`` for input ``scans``), and an existing path that is not
    a folder. An input folder itself (or the folder of an input file) is allowed
    when the user names it as ``out_dir`` (the viewer asks first), unless
    ``strict`` (``cxrviewer predict``): then an input folder itself is refused too.
    """
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out_dir}: exists and is not a folder")
    if strict:
        return check_outside_inputs(out, inputs, "--overlays")
    folders, files = _input_folders_and_files(inputs)
    if out in folders or out in {f.parent for f in files}:
        return out
    _refuse_inside(out, folders, str(out_dir))
    return out


def check_outside_inputs(path: str | Path, inputs: Iterable[str | Path], what: str) -> Path:
    """``path`` resolved, if it is neither an input file nor an input folder nor inside one; else :class:`ExportError`.

    ``cxrviewer predict`` writes its CSV (``what="--csv"``) and overlays only there, so a
    run never adds files to, or replaces files in, what it reads.
    """
    out = Path(path).expanduser().resolve()
    folders, files = _input_folders_and_files(inputs)
    if out in files:
        raise ExportError(f"{path}: is one of the input files; {what} must not replace an input")
    if out in folders:
        raise ExportError(f"{path}: is an input folder; choose a {what} location outside the inputs")
    _refuse_inside(out, folders, str(path))
    return out


def _input_folders_and_files(inputs: Iterable[str | Path]) -> tuple[set[Path], set[Path]]:
    folders: set[Path] = set()
    files: set[Path] = set()
    for item in map(Path, inputs):
        real = item.expanduser().resolve()
        (folders if real.is_dir() else files).add(real)
    return folders, files


def _refuse_inside(out: Path, folders: set[Path], shown: str) -> None:
    for root in folders:
        if out.is_relative_to(root):
            raise ExportError(f"{shown}: is inside the input folder {root}; choose a location outside it")


# -- atomic writes ------------------------------------------------------------------------
def _temp_in(folder: Path, name: str) -> tuple[int, Path]:
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    except FileNotFoundError:
        raise ExportError(f"{folder}: folder does not exist") from None
    except OSError as e:
        raise ExportError(f"{folder}: cannot write here ({e.strerror or e})") from None
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; exports are ordinary files
    except OSError:
        pass
    return fd, Path(tmp)


def publish(tmp: Path, target: Path, overwrite: bool = False) -> Path:
    """Move the finished ``tmp`` onto ``target`` atomically and return the name used.

    ``overwrite=False``: never replaces a file; takes ``target (n)`` instead (a hard
    link makes the check and the move one step where the file system allows).
    """
    if overwrite:
        os.replace(tmp, target)
        return target
    n = 0
    while True:
        candidate = numbered(target, n)
        try:
            os.link(tmp, candidate)
        except FileExistsError:
            n += 1
            continue
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
                raise
            candidate = unique_path(target)  # no hard links here: check, then rename
            os.replace(tmp, candidate)
            return candidate
        os.unlink(tmp)
        return candidate


def save_png(image: Any, path: str | Path, overwrite: bool = False) -> Path:
    """Write a PIL image as PNG at ``path`` atomically; returns the path written.

    An existing file is kept and the image goes to ``name (n).png`` instead,
    unless ``overwrite``. The folder must exist.
    """
    path = Path(path)
    fd, tmp = _temp_in(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as f:
            image.save(f, format="PNG", compress_level=3)
            f.flush()
            os.fsync(f.fileno())
        return publish(tmp, path, overwrite)
    except OSError as e:
        raise ExportError(f"{path.name}: cannot write ({e.strerror or e})") from None
    finally:
        if tmp.exists():
            tmp.unlink()


# -- CSV ---------------------------------------------------------------------------------
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(text: str) -> str:
    """A text cell made safe for spreadsheets (OWASP CSV injection): a leading ``= + - @``, tab or CR gets ``'``
    in front, unless the cell is a plain number."""
    if text.startswith(_FORMULA_START) and not _is_number(text):
        return "'" + text
    return text


def csv_path(path: str | os.PathLike) -> str:
    """The ``path`` cell of a file: its name as text, reversibly.

    ``%`` is written ``%25`` and every byte that is not UTF-8 ``%XX``; a leading
    formula character is written ``%XX`` too. :func:`path_from_csv` (``urllib.parse.unquote``
    with ``errors="surrogateescape"``, then ``os.fsencode``) gives back the exact bytes.
    """
    raw = os.fsencode(path)
    text = raw.decode("utf-8", "surrogateescape").replace("%", "%25")
    text = "".join(f"%{ord(c) - 0xDC00:02X}" if 0xDC80 <= ord(c) <= 0xDCFF else c for c in text)
    if text.startswith(_FORMULA_START):
        text = f"%{ord(text[0]):02X}" + text[1:]
    return text


def path_from_csv(cell: str) -> Path:
    """The path written by :func:`csv_path`, byte for byte."""
    return Path(os.fsdecode(os.fsencode(urllib.parse.unquote(cell, errors="surrogateescape"))))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip() == text


class CsvWriter:
    """Streams results to a CSV, one row per :meth:`write`; the file appears under its name on :meth:`close`.

    The columns are ``columns`` (default: :func:`~cxrviewer.core.results.columns.csv_columns` of
    ``batch``), each cell the column's text. File names go through :func:`csv_path`,
    every other cell through :func:`csv_cell`; the file is UTF-8 (any lone surrogate in a
    message is written as ``\\udcXX``). Refuses an existing ``path`` unless ``overwrite``.
    Use as a context manager: leaving it on an exception (or :meth:`abort`) deletes the
    partial file.
    """

    def __init__(self, path: str | Path, batch: Batch, columns: Sequence[Column] | None = None,
                 overwrite: bool = False):
        self.path = Path(path)
        self.batch = batch
        self.overwrite = overwrite
        self.columns = list(csv_columns(batch) if columns is None else columns)
        keys = [c.key for c in self.columns]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate CSV columns in {keys}")
        if self.path.is_dir():
            raise ExportError(f"{path}: is a folder; give a file name for the CSV")
        if os.path.lexists(self.path) and not overwrite:
            raise ExportError(f"{path}: already exists; refusing to overwrite it")
        fd, self._tmp = _temp_in(self.path.parent, self.path.name)
        self._file: IO[str] | None = os.fdopen(fd, "w", newline="", encoding="utf-8", errors="backslashreplace")
        self._writer = csv.writer(self._file)
        self._writer.writerow([csv_cell(k) for k in keys])
        self.rows = 0

    def write(self, result: FileResult) -> None:
        """Append the row of ``result``."""
        if self._file is None:
            raise ValueError("the CSV is closed")
        self._writer.writerow([self._cell(c, result) for c in self.columns])
        self._file.flush()
        self.rows += 1

    def _cell(self, column: Column, result: FileResult) -> str:
        value = column.get(result, self.batch)
        if isinstance(value, os.PathLike):
            return csv_path(value)
        return csv_cell(column.fmt(value))

    def close(self) -> Path:
        """Finish the file and move it onto its name; returns the path written."""
        if self._file is None:
            return self.path
        f, self._file = self._file, None
        try:
            f.flush()
            os.fsync(f.fileno())
            f.close()
            self.path = publish(self._tmp, self.path, self.overwrite)
        except OSError as e:
            raise ExportError(f"{self.path.name}: cannot write ({e.strerror or e})") from None
        finally:
            _close_quietly(f)
            _unlink_quietly(self._tmp)
        return self.path

    def abort(self) -> None:
        """Drop the partial file; never raises (a full disk cannot keep the temporary file alive)."""
        f, self._file = self._file, None
        if f is not None:
            _close_quietly(f)
        _unlink_quietly(self._tmp)

    def __enter__(self) -> CsvWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_csv(results: Iterable[FileResult], path: str | Path, batch: Batch, overwrite: bool = False,
              columns: Sequence[Column] | None = None) -> Path:
    """Write ``results`` as the results CSV (``columns``, default :func:`~cxrviewer.core.results.columns.csv_columns`);
    returns the path written."""
    with CsvWriter(path, batch, columns, overwrite=overwrite) as writer:
        for result in results:
            writer.write(result)
    return writer.path


def _close_quietly(f: IO[str]) -> None:
    try:
        f.close()
    except OSError:
        # the buffer could not be flushed (e.g. disk full). A file object releases its descriptor even
        # then; closing the number again could close a file opened since under the same number.
        pass


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
