"""Four-corner text: DICOM and raster, anonymised."""

from __future__ import annotations

import numpy as np
from PIL import Image

from cxrviewer.core.io.corner_text import CORNERS, CornerInfo, corner_info, corner_text
from cxrviewer.core.io.reading import load_radiograph
from cxrviewer.core.io.window import Window
from dicom_factory import make_dicom


def dicom(tmp_path):
    return load_radiograph(make_dicom(
        tmp_path / "p.dcm", np.zeros((8, 8), np.uint16), bits_stored=12, PatientName="DOE^JANE", PatientID="12345",
        PatientBirthDate="19700203", PatientSex="F", ImageLaterality="L", WindowCenter=2000, WindowWidth=4000))


def test_dicom_corners(tmp_path):
    text = corner_text(corner_info(dicom(tmp_path), Window(-600, 1500), zoom=1.25, index=3, count=74))
    assert set(text) == set(CORNERS)
    assert text["top_left"] == ["DOE, JANE", "ID 12345", "Born 1970-02-03 F"]
    assert text["top_right"] == ["2024-01-02", "DX CHEST", "PA Lat L"]
    assert text["bottom_left"] == ["W 1500  L -600", "Zoom 125%"]
    assert text["bottom_right"] == ["Image 3 of 74"]


def test_dicom_anonymised_hides_the_patient(tmp_path):
    text = corner_text(corner_info(dicom(tmp_path)), anonymise=True)
    flat = " ".join(line for lines in text.values() for line in lines)
    assert text["top_left"] == ["Anonymised"]
    for secret in ("DOE", "JANE", "12345", "1970"):
        assert secret not in flat
    assert "2024-01-02" in flat and "W 4000  L 2000" in flat  # the study and the file's window stay


def test_raster_corners(tmp_path):
    Image.fromarray(np.zeros((30, 40), np.uint8), "L").save(tmp_path / "chest.png")
    text = corner_text(corner_info(load_radiograph(tmp_path / "chest.png"), index=1, count=2), anonymise=True)
    assert text["top_left"] == ["chest.png"] and text["top_right"] == ["40 x 30 px", "PNG"]
    assert text["bottom_left"] == ["W 255  L 128"]  # an 8-bit image's own window: 0-255


def test_minimal_info():
    assert corner_text(CornerInfo("x.jpg")) == {"top_left": ["x.jpg"], "top_right": [], "bottom_left": [],
                                                "bottom_right": []}
