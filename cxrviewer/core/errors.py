"""The project's exceptions: every expected failure carries a one-line reason."""

from __future__ import annotations

from pathlib import Path


class CxrError(Exception):
    """Base class for expected, user-facing failures (never shown as a traceback)."""


class RadiographError(CxrError):
    """A file could not be read as a radiograph; ``str(err)`` is ``"<file name>: <reason>"``."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path.name}: {reason}")


class UnsupportedFileError(RadiographError):
    """Not an image, or an image this build cannot decode (e.g. a missing DICOM decoder)."""


class CorruptFileError(RadiographError):
    """An image file that is damaged: empty, truncated, undecodable, or a decompression bomb."""


class ModelFileError(CxrError):
    """A model file that is missing, not a cxrviewer safetensors file, or inconsistent."""
