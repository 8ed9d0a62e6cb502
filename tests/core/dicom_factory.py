"""Synthetic DICOM files for the loader tests, written with pydicom 3."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID, DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless,
    generate_uid,
)


def make_dataset(pixels: np.ndarray | None, *, photometric: str = "MONOCHROME2", bits_stored: int | None = None,
                 **tags) -> Dataset:
    """A minimal DX dataset holding ``pixels`` (H x W, F x H x W, or H x W x 3); ``tags`` are set as given."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.StudyDate = "20240102"
    ds.Manufacturer = "cxrviewer tests"
    if pixels is not None:
        ds.set_pixel_data(np.asarray(pixels), photometric, bits_stored or np.asarray(pixels).dtype.itemsize * 8)
    for key, value in tags.items():
        setattr(ds, key, value)
    return ds


def write(ds: Dataset, path: str | Path, transfer_syntax: UID | None = None) -> Path:
    """Save ``ds`` as a DICOM file (with preamble and file meta), compressed to ``transfer_syntax`` if given."""
    if transfer_syntax == RLELossless:
        ds.compress(RLELossless, encoding_plugin="pydicom")
    ds.save_as(path, enforce_file_format=True)
    return Path(path)


def make_dicom(path: str | Path, pixels: np.ndarray | None, *, transfer_syntax: UID | None = None,
               **kwargs) -> Path:
    """Write a synthetic DICOM of ``pixels`` to ``path``; keyword arguments as :func:`make_dataset`."""
    return write(make_dataset(pixels, **kwargs), path, transfer_syntax)


def make_jpeg_dicom(path: str | Path, grey: np.ndarray, quality: int = 95) -> tuple[Path, np.ndarray]:
    """A JPEG baseline DICOM of 8-bit ``grey``; returns the path and the pixels Pillow decodes from the same JPEG."""
    buf = io.BytesIO()
    Image.fromarray(grey.astype(np.uint8), "L").save(buf, "JPEG", quality=quality)
    ds = make_dataset(None)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.Rows, ds.Columns = grey.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    buf.seek(0)
    return Path(path), np.asarray(Image.open(buf), dtype=np.float32) / 255.0
