"""Results back to PACS: an export image as a DICOM Secondary Capture in the source's study. Qt-free (highdicom).

The Secondary Capture keeps the source's Study Instance UID and copies its patient and study
attributes (highdicom's ``SCImage.from_ref_dataset``), in a new series with new UIDs, so a PACS
files it beside the radiograph. Its pixels are the RGB export (overlay, caption and whatever
was burned in; Burned In Annotation is YES). Pixel Spacing is carried over only when the
source states Pixel Spacing itself and the export has the source's size. Files are written
atomically and never replace an existing file (``name (1).dcm``). Only DICOM inputs have a
study to go back to: anything else raises :class:`DicomExportError` with a one-line reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CxrError
from .export import ExportError, _temp_in, publish

SC_SUFFIX = "_cam_sc.dcm"
SERIES_NUMBER = 9901
SERIES_DESCRIPTION = "cxrviewer AI overlay (class activation map)"
MANUFACTURER = "cxrviewer"


class DicomExportError(CxrError):
    """A DICOM result that cannot be made (not a DICOM input, no study to join, unwritable)."""


@dataclass
class SeriesPlan:
    """The new series of one export run: one Series Instance UID per source study, instances numbered from 1."""

    series: dict[str, str] = field(default_factory=dict)
    count: dict[str, int] = field(default_factory=dict)

    def next(self, study_uid: str) -> tuple[str, int]:
        """(series UID, instance number) for the next instance of ``study_uid``."""
        from pydicom.uid import generate_uid

        uid = self.series.setdefault(study_uid, generate_uid())
        self.count[study_uid] = self.count.get(study_uid, 0) + 1
        return uid, self.count[study_uid]


def source_header(path: str | Path):
    """The data set of DICOM ``path`` without its pixels; :class:`DicomExportError` if it has no study."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError) as e:
        raise DicomExportError(f"{Path(path).name}: not a DICOM file, so no DICOM result is written ({e})") from None
    if not str(ds.get("StudyInstanceUID", "")):
        raise DicomExportError(f"{Path(path).name}: the DICOM has no Study Instance UID to file the result in")
    return ds


def secondary_capture(source, rgb: np.ndarray, series_uid: str, instance_number: int = 1):
    """A highdicom Secondary Capture of ``rgb`` (H x W x 3 ``uint8``) in the study of ``source`` (a pydicom data set)."""
    import highdicom as hd
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"a Secondary Capture needs H x W x 3 RGB pixels, got shape {rgb.shape}")
    orientation = tuple(str(v) for v in source.get("PatientOrientation") or ())
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source, pixel_array=rgb, photometric_interpretation="RGB", bits_allocated=8,
        coordinate_system="PATIENT", series_instance_uid=series_uid, series_number=SERIES_NUMBER,
        sop_instance_uid=generate_uid(), instance_number=instance_number, manufacturer=MANUFACTURER,
        patient_orientation=orientation if len(orientation) == 2 else ("L", "F"),
        pixel_spacing=_spacing(source, rgb.shape), transfer_syntax_uid=ExplicitVRLittleEndian,
        series_description=SERIES_DESCRIPTION)
    if len(orientation) != 2:
        sc.PatientOrientation = None  # type 2: unknown here, so empty rather than made up
    sc.BurnedInAnnotation = "YES"
    sc.DerivationDescription = "Radiograph with AI class activation map overlay, caption and annotations"
    return sc


def _spacing(source, shape: tuple[int, ...]) -> tuple[float, float] | None:
    """The source's own Pixel Spacing when the export has its size (Imager Pixel Spacing is not carried over)."""
    try:
        row, col = (float(v) for v in source.get("PixelSpacing") or ())
    except (TypeError, ValueError):
        return None
    same_size = (int(source.get("Rows", 0)), int(source.get("Columns", 0))) == tuple(shape[:2])
    return (row, col) if same_size and row > 0 and col > 0 else None


def write_dataset(ds, path: str | Path) -> Path:
    """Save ``ds`` at ``path`` atomically, never replacing a file (``name (n).dcm``); returns the path written."""
    path = Path(path)
    fd, tmp = _temp_in(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as f:
            ds.save_as(f, enforce_file_format=True)
            f.flush()
            os.fsync(f.fileno())
        return publish(tmp, path)
    except OSError as e:
        raise ExportError(f"{path.name}: cannot write ({e.strerror or e})") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def sc_path(out_dir: str | Path, source: str | Path) -> Path:
    """Where the Secondary Capture of ``source`` goes in ``out_dir`` (before de-duplication)."""
    return Path(out_dir) / f"{Path(source).stem}{SC_SUFFIX}"


def export_secondary_capture(source_path: str | Path, rgb: np.ndarray, out_path: str | Path,
                             plan: SeriesPlan | None = None) -> Path:
    """Write the Secondary Capture of ``rgb`` for DICOM ``source_path`` at ``out_path``; returns the path written."""
    source = source_header(source_path)
    series_uid, number = (plan or SeriesPlan()).next(str(source.StudyInstanceUID))
    return write_dataset(secondary_capture(source, rgb, series_uid, number), out_path)
