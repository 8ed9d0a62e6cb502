"""Reduced-resolution DICOM decoding: JPEG 2000 resolution levels and JPEG DCT scaling give the image, smaller."""

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import pixel_array

from cxrviewer.core.io.dicom_reduced import jpeg2000_level, reduced_frame
from tests.core.dicom_factory import make_dataset, make_jpeg_dicom


def _block_mean(full: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    f = max(1, round(full.shape[0] / shape[0]))
    h, w = full.shape[0] // f, full.shape[1] // f
    return full[:h * f, :w * f].reshape(h, f, w, f).mean(axis=(1, 3))


def _close(reduced: np.ndarray, full: np.ndarray) -> None:
    ref = _block_mean(full.astype(np.float64), reduced.shape)
    h, w = min(ref.shape[0], reduced.shape[0]), min(ref.shape[1], reduced.shape[1])
    a, b = ref[:h, :w], reduced[:h, :w].astype(np.float64)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.995
    assert np.median(np.abs(a - b)) < 0.01 * (full.max() - full.min())  # same scale: stored values


def test_jpeg2000_radiograph_decodes_at_a_resolution_level():
    path = get_testdata_file("RG1_J2KR.dcm", download=False)
    assert path, "pip install pydicom-data (the test extra)"
    ds = pydicom.dcmread(path)
    reduced = reduced_frame(ds, ds.file_meta.TransferSyntaxUID, (224, 224))
    assert reduced is not None and reduced.dtype == np.uint16
    assert reduced.shape == (978, 921)  # level 1 of 1955 x 1841 (levels 2-3 are sized wrongly by Pillow)
    _close(reduced, pixel_array(path))


@pytest.mark.parametrize("size, side, level", [((2048, 2048), 224, 3), ((1841, 1955), 224, 1), ((300, 300), 224, 0),
                                               ((1024, 1000), 224, 2)])
def test_jpeg2000_level_keeps_the_target_size(size, side, level):
    assert jpeg2000_level(*size, side) == level


def test_jpeg_baseline_decodes_dct_scaled(tmp_path):
    yy, xx = np.mgrid[0:1024, 0:960]
    grey = 128 + 100 * np.sin(xx / 90.0) * np.cos(yy / 70.0)
    path, decoded = make_jpeg_dicom(tmp_path / "j.dcm", grey)
    ds = pydicom.dcmread(path)
    reduced = reduced_frame(ds, ds.file_meta.TransferSyntaxUID, (224, 224))
    assert reduced is not None and reduced.shape == (256, 240) and reduced.dtype == np.uint8  # 1/4 per side
    _close(reduced, decoded * 255)


def test_no_reduction_where_it_is_not_safe(tmp_path):
    small, _ = make_jpeg_dicom(tmp_path / "small.dcm", np.full((300, 300), 90))
    ds = pydicom.dcmread(small)
    assert reduced_frame(ds, ds.file_meta.TransferSyntaxUID, (224, 224)) is None  # not 2x the target
    colour = make_dataset(np.zeros((64, 64, 3), np.uint8), photometric="RGB")
    assert reduced_frame(colour, "1.2.840.10008.1.2.4.90", (32, 32)) is None
    signed = make_dataset(np.zeros((600, 600), np.int16), PixelRepresentation=1)
    assert reduced_frame(signed, "1.2.840.10008.1.2.4.90", (224, 224)) is None
    assert reduced_frame(pydicom.dcmread(small), "1.2.840.10008.1.2.1", (32, 32)) is None  # uncompressed


def test_the_loader_uses_the_reduced_decode_for_the_model_and_full_size_otherwise():
    from cxrviewer.core.io.reading import load_radiograph

    path = get_testdata_file("RG1_J2KR.dcm", download=False)
    small = load_radiograph(path, target_size=(224, 224))
    full = load_radiograph(path)
    assert full.pixels.shape == (1955, 1841) and full.meta["original_size"] == small.meta["original_size"]
    assert 448 <= min(small.pixels.shape) < 1000  # resolution level 1, then the block mean to >= 2x the target
    assert small.meta["window"] is not None and small.meta["inverted"] == full.meta["inverted"]
    ref = _block_mean(full.pixels.astype(np.float64), small.pixels.shape)
    h, w = min(ref.shape[0], small.pixels.shape[0]), min(ref.shape[1], small.pixels.shape[1])
    assert np.abs(ref[:h, :w] - small.pixels[:h, :w]).mean() < 0.01  # the same picture in [0, 1]
