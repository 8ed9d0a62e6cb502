"""Secondary Captures back to the study: read back with pydicom."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.uid import SecondaryCaptureImageStorage

from cxrviewer.core.results.dicom_export import DicomExportError, SeriesPlan, export_secondary_capture, sc_path
from tests.core.dicom_factory import make_dicom
from tests.gui.helpers import write_image

PATIENT = dict(PatientName="DOE^JANE", PatientID="P-0042", PatientBirthDate="19700101", PatientSex="F",
               AccessionNumber="ACC9", StudyID="S1", StudyDate="20240102", StudyTime="101500",
               StudyInstanceUID="1.2.826.0.1.3680043.8.498.1", SeriesInstanceUID="1.2.826.0.1.3680043.8.498.2",
               StudyDescription="CHEST PA")


@pytest.fixture
def source(tmp_path):
    (tmp_path / "in").mkdir()
    return make_dicom(tmp_path / "in" / "cxr.dcm", np.zeros((40, 50), np.uint16), bits_stored=12,
                      PixelSpacing=[0.2, 0.25], PatientOrientation=["L", "F"], **PATIENT)


def test_secondary_capture_joins_the_study_in_a_new_series(source, tmp_path):
    rgb = np.zeros((40, 50, 3), np.uint8)
    rgb[..., 0] = 200
    out = export_secondary_capture(source, rgb, sc_path(tmp_path, source))
    assert out.name == "cxr_cam_sc.dcm"
    ds, src = pydicom.dcmread(out), pydicom.dcmread(source)
    assert ds.SOPClassUID == SecondaryCaptureImageStorage
    assert ds.StudyInstanceUID == src.StudyInstanceUID
    assert ds.SeriesInstanceUID != src.SeriesInstanceUID and ds.SOPInstanceUID != src.SOPInstanceUID
    for key in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID",
                "StudyDate", "StudyTime"):
        assert ds[key].value == src[key].value, key
    assert ds.PhotometricInterpretation == "RGB" and ds.pixel_array.shape == (40, 50, 3)
    np.testing.assert_array_equal(ds.pixel_array, rgb)
    assert [float(v) for v in ds.PixelSpacing] == [0.2, 0.25] and list(ds.PatientOrientation) == ["L", "F"]
    assert ds.BurnedInAnnotation == "YES" and "cxrviewer" in ds.SeriesDescription


def test_one_series_per_study_per_run_and_never_overwriting(source, tmp_path):
    plan, rgb = SeriesPlan(), np.zeros((40, 50, 3), np.uint8)
    first = export_secondary_capture(source, rgb, tmp_path / "x.dcm", plan)
    second = export_secondary_capture(source, rgb, tmp_path / "x.dcm", plan)
    assert second.name == "x (1).dcm" and first.read_bytes() != b""
    a, b = pydicom.dcmread(first), pydicom.dcmread(second)
    assert a.SeriesInstanceUID == b.SeriesInstanceUID and (a.InstanceNumber, b.InstanceNumber) == (1, 2)
    assert a.SOPInstanceUID != b.SOPInstanceUID
    other_run = pydicom.dcmread(export_secondary_capture(source, rgb, tmp_path / "y.dcm"))
    assert other_run.SeriesInstanceUID != a.SeriesInstanceUID


def test_unknown_orientation_stays_empty_and_resized_exports_carry_no_spacing(tmp_path):
    src = make_dicom(tmp_path / "s.dcm", np.zeros((40, 50), np.uint16), bits_stored=12, PixelSpacing=[0.2, 0.2],
                     **PATIENT)
    ds = pydicom.dcmread(export_secondary_capture(src, np.zeros((20, 25, 3), np.uint8), tmp_path / "o.dcm"))
    assert not ds.PatientOrientation and "PixelSpacing" not in ds


def test_raster_inputs_and_studyless_dicoms_get_a_clear_refusal(tmp_path):
    png = write_image(tmp_path / "x.png")
    with pytest.raises(DicomExportError, match="not a DICOM file"):
        export_secondary_capture(png, np.zeros((4, 4, 3), np.uint8), tmp_path / "x.dcm")
    bare = make_dicom(tmp_path / "bare.dcm", np.zeros((4, 4), np.uint16))
    with pytest.raises(DicomExportError, match="no Study Instance UID"):
        export_secondary_capture(bare, np.zeros((4, 4, 3), np.uint8), tmp_path / "y.dcm")
    assert not (tmp_path / "x.dcm").exists() and not (tmp_path / "y.dcm").exists()
