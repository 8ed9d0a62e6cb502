"""Measurements: geometry, units from the DICOM pixel spacing, plain-data round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cxrviewer.core.io.reading import load_radiograph
from cxrviewer.core.results.measurements import Calibration, Measurement, MeasurementStore, label
from tests.core.dicom_factory import make_dicom
from tests.gui.helpers import write_image

PIXELS = (np.arange(64 * 80, dtype=np.uint16).reshape(64, 80) % 4096)


def test_pixel_spacing_is_read_into_meta_and_preferred_over_imager_spacing(tmp_path):
    both = load_radiograph(make_dicom(tmp_path / "a.dcm", PIXELS, bits_stored=12, PixelSpacing=[0.2, 0.1],
                                      ImagerPixelSpacing=[0.25, 0.25]))
    assert both.meta["pixel_spacing"] == (0.2, 0.1) and both.meta["pixel_spacing_source"] == "Pixel Spacing"
    imager = load_radiograph(make_dicom(tmp_path / "b.dcm", PIXELS, bits_stored=12, ImagerPixelSpacing=[0.139, 0.14]))
    assert imager.meta["pixel_spacing"] == (0.139, 0.14)
    assert imager.meta["pixel_spacing_source"] == "Imager Pixel Spacing"
    assert "not corrected for magnification" in Calibration.from_meta(imager.meta).describe()
    assert Calibration.from_meta(imager.meta).short() == "lengths in mm (Imager Pixel Spacing, at the detector)"
    broken = load_radiograph(make_dicom(tmp_path / "c.dcm", PIXELS, bits_stored=12, PixelSpacing=[0, 0.1],
                                        ImagerPixelSpacing=[0.3, 0.3]))
    assert broken.meta["pixel_spacing_source"] == "Imager Pixel Spacing"  # a zero spacing is not used
    none = load_radiograph(make_dicom(tmp_path / "d.dcm", PIXELS, bits_stored=12))
    assert "pixel_spacing" not in none.meta and Calibration.from_meta(none.meta).unit == "px"


def test_distance_in_mm_follows_row_and_column_spacing(tmp_path):
    rad = load_radiograph(make_dicom(tmp_path / "a.dcm", PIXELS, bits_stored=12, PixelSpacing=[0.2, 0.1]))
    cal = Calibration.from_meta(rad.meta)
    horizontal = Measurement("distance", ((10, 5), (60, 5))).read(cal)
    vertical = Measurement("distance", ((10, 5), (10, 55))).read(cal)
    assert (horizontal.value, horizontal.unit) == (pytest.approx(5.0), "mm")  # 50 columns x 0.1 mm
    assert vertical.value == pytest.approx(10.0)  # 50 rows x 0.2 mm
    diagonal = Measurement("distance", ((0, 0), (30, 40))).read(cal)
    assert diagonal.value == pytest.approx(math.hypot(3.0, 8.0)) and diagonal.text == "8.5 mm"
    assert label(Measurement("distance", ((0, 0), (30, 40))), cal) == "Distance 8.5 mm"


def test_raster_images_measure_in_pixels(tmp_path):
    rad = load_radiograph(write_image(tmp_path / "x.png"))
    cal = Calibration.from_meta(rad.meta)
    reading = Measurement("distance", ((0, 0), (30, 40))).read(cal)
    assert (reading.value, reading.unit, reading.text) == (50.0, "px", "50.0 px")
    assert "pixels" in cal.describe()


def test_angle_at_the_middle_point_in_physical_space():
    right = Measurement("angle", ((10, 0), (0, 0), (0, 10)))
    assert right.read().value == pytest.approx(90.0) and right.read().text == "90.0°"
    assert Measurement("angle", ((10, 0), (0, 0), (10, 10))).read().value == pytest.approx(45.0)
    # 10 px across x 0.1 mm and 10 px down x 0.2 mm: atan(2) in millimetres, not 45 degrees
    stretched = Measurement("angle", ((10, 0), (0, 0), (10, 10))).read(Calibration(0.2, 0.1, "Pixel Spacing"))
    assert stretched.value == pytest.approx(math.degrees(math.atan2(2.0, 1.0)))
    assert math.isnan(Measurement("angle", ((0, 0), (0, 0), (1, 1))).read().value)


def test_ctr_is_the_ratio_of_two_horizontal_spans():
    m = Measurement("ctr", ((100, 200), (220, 210), (40, 260), (290, 250)))
    assert m.segments() == [((100, 200), (220, 200)), ((40, 260), (290, 260))]  # made horizontal
    r = m.read(Calibration(0.5, 0.5, "Pixel Spacing"))
    assert r.value == pytest.approx(120 / 250) and r.parts == (pytest.approx(60.0), pytest.approx(125.0))
    assert r.text == "CTR 0.48 (cardiac 60.0 / thoracic 125.0 mm)"
    assert label(m) == "CTR 0.48 (cardiac 120.0 / thoracic 250.0 px)"
    assert math.isnan(Measurement("ctr", ((0, 0), (5, 0), (3, 3), (3, 9))).read().value)


@pytest.mark.parametrize("kind, points, match", [
    ("ruler", ((0, 0), (1, 1)), "kind"),
    ("distance", ((0, 0),), "2 points"),
    ("angle", ((0, 0), (1, 1)), "3 points"),
    ("distance", ((0, 0), (float("nan"), 1)), "finite"),
])
def test_bad_measurements_are_refused(kind, points, match):
    with pytest.raises(ValueError, match=match):
        Measurement(kind, points)


def test_store_keeps_measurements_per_image_and_round_trips_as_json():
    store = MeasurementStore()
    a, b = Measurement("distance", ((0, 0), (3, 4))), Measurement("angle", ((1, 0), (0, 0), (0, 1)))
    store.add("/x/one.dcm", a)
    assert store.add("/x/one.dcm", b) == 1
    store.add("/x/two.png", a)
    assert store.get("/x/one.dcm") == (a, b) and store.get("/x/none.png") == () and len(store) == 3
    again = MeasurementStore.from_dict(json.loads(json.dumps(store.to_dict())))
    assert again.get("/x/one.dcm") == (a, b) and again.get("/x/two.png") == (a,)
    assert store.remove("/x/one.dcm", 0) == a and store.get("/x/one.dcm") == (b,)
    snapshot = store.snapshot()
    store.clear("/x/one.dcm")
    assert store.get("/x/one.dcm") == () and snapshot["/x/one.dcm"] == (b,)
    store.set("/x/two.png", [b, a])
    assert store.get("/x/two.png") == (b, a)
    store.clear()
    assert len(store) == 0
