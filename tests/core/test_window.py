"""Window/level in modality units: scales from the loader, presets, the value <-> grey map, per-image memory."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cxrviewer.core.io.reading import load_radiograph
from cxrviewer.core.io.window import PRESETS, ValueScale, Window, WindowMemory, linear_scale, presets
from dicom_factory import make_dicom


def ramp12(h=64, w=256) -> np.ndarray:
    """A 12-bit ramp: column x holds 16 * x (0 .. 4080)."""
    return np.tile((np.arange(w) * 16).astype(np.uint16), (h, 1))


def test_12bit_dicom_values_presets_in_modality_units(tmp_path):
    path = make_dicom(tmp_path / "a.dcm", ramp12(), bits_stored=12, WindowCenter=2000, WindowWidth=1000,
                      RescaleSlope=1, RescaleIntercept=-1024)
    rad = load_radiograph(path)
    s = rad.scale
    assert (s.low, s.high, s.integer) == (-1024.0, 4080.0 - 1024, True)
    assert s.file_window == Window(2000.0, 1000.0)
    # the linear grey maps back to the stored values after rescale, exactly
    assert np.allclose(s.origin + rad.linear[0] * s.span, np.arange(256) * 16 - 1024, atol=1e-3)
    p = presets(s, rad.linear)
    assert set(p) == {key for key, _text, _q in PRESETS}
    assert p["file"] == Window(2000.0, 1000.0)
    assert p["full"].limits == pytest.approx((-1024.0, 3056.0))
    # percentiles of a uniform ramp: linear in the value range
    lung_lo, lung_hi = p["lung"].limits
    assert lung_lo == pytest.approx(-1024 + 0.02 * 4080, abs=20) and lung_hi == pytest.approx(-1024 + 0.60 * 4080, abs=20)
    assert p["bone"].limits[0] == pytest.approx(-1024 + 0.40 * 4080, abs=20)
    assert p["soft"].limits == pytest.approx((-1024 + 0.15 * 4080, -1024 + 0.95 * 4080), abs=20)
    assert p["auto"].width == pytest.approx(0.99 * 4080, abs=20)
    # the grey window that compose() takes for the file window
    assert s.grey_window(Window(2000, 1000)) == pytest.approx(((1500 + 1024) / 4080, (2500 + 1024) / 4080))


def test_monochrome1_maps_high_values_dark(tmp_path):
    path = make_dicom(tmp_path / "m1.dcm", ramp12(), bits_stored=12, photometric="MONOCHROME1")
    rad = load_radiograph(path)
    s = rad.scale
    assert s.span < 0 and rad.linear[0, 0] == pytest.approx(1.0) and rad.linear[0, -1] == pytest.approx(0.0)
    assert s.value(rad.linear[0, 10]) == pytest.approx(160.0, abs=1e-2)
    lo, hi = s.grey_window(Window.spanning(0, 2040))  # the low (dark on film) half is the bright half of grey
    assert (lo, hi) == pytest.approx((0.5, 1.0))
    # bone (dense) is still the high grey part, i.e. low stored values
    assert presets(s, rad.linear)["bone"].center < 2040


def test_rasters_are_8_and_16_bit_values(tmp_path):
    Image.fromarray(np.tile(np.arange(256, dtype=np.uint8), (8, 1)), "L").save(tmp_path / "a.png")
    Image.fromarray(np.tile(np.arange(0, 65536, 257, dtype=np.uint16), (8, 1))).save(tmp_path / "b.png")
    a, b = load_radiograph(tmp_path / "a.png"), load_radiograph(tmp_path / "b.png")
    assert (a.scale.origin, a.scale.span, a.scale.low, a.scale.high) == (0, 255, 0, 255) and a.linear is None
    assert (b.scale.span, b.scale.high) == (65535, 65535)
    assert a.scale.value(a.linear_pixels[0, 100]) == pytest.approx(100)
    assert a.scale.default_window == Window(127.5, 255)  # shown as stored: 0-255
    assert b.scale.default_window == Window.spanning(0, 65535)


def test_window_checks_and_formatting():
    with pytest.raises(ValueError):
        Window(0, 0)
    assert Window.spanning(10, -10) == Window(0, 20) and Window(0, 20).limits == (-10, 10)
    s = linear_scale(0, 4095, integer=True)
    assert s.window_from_grey(0.25, 0.75) == Window(2047.5, 2047.5)
    assert s.format(1234.4) == "1234" and ValueScale(unit="OD").format(0.123456) == "0.1235"


def test_memory_per_image_or_locked():
    m = WindowMemory()
    m.set("a", Window(1, 2))
    assert m.window_for("a") == Window(1, 2) and m.window_for("b") is None  # per image
    m.lock(True, Window(5, 6))
    assert m.window_for("b") == Window(5, 6) == m.window_for("a")  # locked: one for the batch
    m.set("b", Window(7, 8))
    assert m.window_for("a") == Window(7, 8)
    m.lock(False, None)
    assert m.window_for("a") == Window(1, 2) and m.window_for("b") is None  # each its own again
    m.set("a", None)
    assert m.window_for("a") is None
