"""Issue 12, items 1-2 and Display: window/level in modality units, presets, reset, lock, readout,
four-corner text with anonymise, pan clamp and smooth enlargement."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backend_bases import MouseEvent
from PIL import Image

from cxrviewer.core.io.window import Window
from cxrviewer.gui.exporting import RenderOptions, render
from tests.core.dicom_factory import make_dicom
from tests.gui.helpers import open_and_wait

H, W = 96, 128
FILE_WINDOW = Window(2000.0, 1000.0)


@pytest.fixture
def study(tmp_path):
    """A 12-bit DICOM (values 16 * column - 1024 after rescale, its own window 2000 / 1000) and an 8-bit PNG."""
    folder = tmp_path / "study"
    folder.mkdir()
    stored = np.tile((np.arange(W) * 32).astype(np.uint16), (H, 1))  # 0 .. 4064, 12 bits
    make_dicom(folder / "a.dcm", stored, bits_stored=12, RescaleSlope=1, RescaleIntercept=-1024,
               WindowCenter=2000, WindowWidth=1000, PatientName="DOE^JANE", PatientID="ID-4711",
               PatientBirthDate="19700203", PatientSex="F", ImageLaterality="L")
    Image.fromarray(np.tile(np.arange(W, dtype=np.uint8) * 2, (H, 1)), "L").save(folder / "b.png")
    return folder


def show(qtbot, window, name):
    """Select the row of file ``name`` and wait until it is on the canvas."""
    row = next(i for i in range(window.results_model.rowCount()) if window.results_model.row(i).path.name == name)
    if window.current_path() is not None and window.current_path().name == name and window.canvas.has_image:
        return
    with qtbot.waitSignal(window.imageShown, timeout=10000):
        window.results_view.select_source_row(row)
    assert window.canvas.has_image


@pytest.fixture
def viewer(qtbot, window, study):
    open_and_wait(qtbot, window, [study])
    show(qtbot, window, "a.dcm")
    return window


def mouse(canvas, name, data_xy=None, screen_xy=None, button=None, dblclick=False):
    """Send a matplotlib mouse event at image coordinates ``data_xy`` (or screen pixels ``screen_xy``)."""
    x, y = screen_xy if screen_xy is not None else canvas.ax.transData.transform(data_xy)
    MouseEvent(name, canvas, x, y, button=button, dblclick=dblclick)._process()
    return x, y


def corners(window):
    canvas = window.canvas
    canvas.rgba()  # draw: the corner text refreshes
    return {k: a.get_text() if a.get_visible() else "" for k, a in canvas.corners.artists.items()}


def test_presets_give_the_window_in_modality_units(viewer):
    image = viewer.windowing.image
    assert viewer.view.window is None and viewer.canvas._scale.default_window == FILE_WINDOW  # opens with the file's own
    expected = {"file": (1500, 2500), "full": (-1024, 4064 - 1024)}
    for i, key in enumerate(("file", "full", "lung", "bone", "soft", "auto")):
        viewer.windowing.preset_actions[i].trigger()  # keys 1-6
        assert viewer.view.window == image.presets[key]
        if key in expected:
            assert viewer.view.window.limits == pytest.approx(expected[key])
    # lung: grey percentiles 2-60 of a uniform ramp over -1024 .. 3040
    viewer.windowing.preset_actions[2].trigger()
    assert viewer.view.window.limits == pytest.approx((-1024 + 0.02 * 4064, -1024 + 0.60 * 4064), abs=40)
    assert viewer.windowing.preset_actions[2].shortcut().toString() == "3"
    viewer.windowing.auto_act.trigger()  # A
    assert viewer.view.window == image.presets["auto"]
    # the canvas draws it: the grey limits of the window, through the image's scale
    assert viewer.canvas._scale.grey_window(viewer.view.window) == pytest.approx(
        ((viewer.view.window.limits[0] + 1024) / 4064, (viewer.view.window.limits[1] + 1024) / 4064))


def test_details_and_corners_show_the_current_window(viewer):
    viewer.windowing.preset_actions[1].trigger()  # full range
    assert "Image Size 128 x 96 px Window shown W 4064 L 1008" in " ".join(viewer.details.text().split())
    assert corners(viewer)["bottom_left"].startswith("W 4064  L 1008")


def test_f_and_double_click_reset_window_and_fit(viewer):
    canvas = viewer.canvas
    full = canvas.ax.get_xlim()
    viewer.windowing.set_window(Window(0, 100))
    canvas.zoom(3.0)
    viewer.fit_act.trigger()  # F
    assert viewer.view.window is None and canvas.ax.get_xlim() == pytest.approx(full)
    viewer.windowing.set_window(Window(0, 100))
    canvas.zoom(3.0)
    mouse(canvas, "button_press_event", (W / 2, H / 2), button=1, dblclick=True)
    assert viewer.view.window is None and canvas.ax.get_xlim() == pytest.approx(full)


def test_right_drag_sensitivity_follows_the_value_range(viewer):
    canvas = viewer.canvas
    canvas.rgba()
    before = canvas._scale.default_window
    x, y = mouse(canvas, "button_press_event", (W / 2, H / 2), button=3)
    mouse(canvas, "motion_notify_event", screen_xy=(x + 150, y))
    mouse(canvas, "button_release_event", screen_xy=(x + 150, y), button=3)
    after = viewer.view.window
    assert after.center == pytest.approx(before.center)
    # 150 px of a view several hundred px wide widens by that share of the 4064-value range: not white
    assert after.width - before.width == pytest.approx(150 / canvas.ax.bbox.width * 4064, rel=1e-3)
    assert after.width < 4064
    x, y = mouse(canvas, "button_press_event", (W / 2, H / 2), button=3)
    mouse(canvas, "motion_notify_event", screen_xy=(x, y + 100))
    assert viewer.view.window.center - after.center == pytest.approx(100 / canvas.ax.bbox.height * 4064, rel=1e-3)


def test_window_per_image_unless_locked(qtbot, viewer):
    viewer.windowing.set_window(Window(100, 200))
    show(qtbot, viewer, "b.png")
    assert viewer.view.window is None  # the PNG keeps its own window (0-255, as stored) ...
    assert viewer.canvas._scale.default_window == Window.spanning(0, 255)
    assert viewer.canvas._scale.full_window == Window.spanning(0, 254)  # ... full range is its min to max
    show(qtbot, viewer, "a.dcm")
    assert viewer.view.window == Window(100, 200)  # remembered for the DICOM
    viewer.windowing.lock_act.trigger()  # lock: the current window for the batch
    show(qtbot, viewer, "b.png")
    assert viewer.view.window == Window(100, 200)
    viewer.windowing.set_window(Window(50, 60))
    show(qtbot, viewer, "a.dcm")
    assert viewer.view.window == Window(50, 60)
    viewer.windowing.lock_act.trigger()  # unlocked: each its own again
    show(qtbot, viewer, "b.png")
    assert viewer.view.window is None


def test_pointer_readout_in_modality_units(viewer):
    mouse(viewer.canvas, "motion_notify_event", (10, 5))
    assert viewer.hover_label.text().startswith(f"x 10, y 5: {10 * 32 - 1024},")  # then the CAM value


def test_corner_text_dicom_and_anonymise(viewer):
    text = corners(viewer)
    assert text["top_left"].splitlines()[:2] == ["DOE, JANE", "ID ID-4711"]
    assert "DX CHEST" in text["top_right"] and "PA Lat L" in text["top_right"]
    assert text["bottom_left"].startswith("W 1000  L 2000") and "Zoom" in text["bottom_left"]
    assert text["bottom_right"] == "Image 1 of 2"
    assert "DOE" in viewer.details.text()
    viewer.windowing.anonymise_act.trigger()
    text = corners(viewer)
    assert "DOE" not in " ".join(text.values()) and "4711" not in " ".join(text.values())
    assert "DOE" not in viewer.details.text() and "4711" not in viewer.details.text()
    assert viewer.settings.anonymise is True
    viewer.windowing.corners_act.trigger()  # T hides them
    assert not any(corners(viewer).values())


def test_corner_text_raster(qtbot, viewer):
    show(qtbot, viewer, "b.png")
    text = corners(viewer)
    assert text["top_left"] == "b.png" and text["top_right"].startswith(f"{W} x {H} px")
    assert text["bottom_right"] == "Image 2 of 2"


def test_pan_keeps_the_image_in_view(viewer):
    canvas = viewer.canvas
    canvas.zoom(2.0)
    x, y = mouse(canvas, "button_press_event", (W / 2, H / 2), button=1)
    mouse(canvas, "motion_notify_event", screen_xy=(x + 5000, y - 5000))
    mouse(canvas, "button_release_event", screen_xy=(x + 5000, y - 5000), button=1)
    (x0, x1), (y0, y1) = canvas.ax.get_xlim(), canvas.ax.get_ylim()
    assert -0.5 <= (x0 + x1) / 2 <= W - 0.5 and -0.5 <= (y0 + y1) / 2 <= H - 0.5  # its centre is on the image


def test_small_images_are_enlarged_smoothly(viewer):
    canvas = viewer.canvas
    base, interpolation = canvas._base()
    assert interpolation == "none" and base.shape[1] > 2 * W  # resized to the screen by us (bilinear) ...
    steps = np.unique(np.round(base[base.shape[0] // 2] * 4064))
    assert len(steps) > 2 * W  # ... so values between the columns' appear: smooth, not blocky
    canvas.zoom(4.0)
    assert canvas._image.get_interpolation() == "bilinear"


def test_exports_use_each_images_window(viewer):
    r = viewer.current_result()
    image = viewer.windowing.image
    default = np.asarray(render(r, RenderOptions(viewer.view.__class__(overlay=False)), image.radiograph))
    narrow = RenderOptions(viewer.view.__class__(overlay=False), windows={r.path: Window(0, 10)})
    out = np.asarray(render(r, narrow, image.radiograph))
    assert out[0, 0, 0] == 0 and out[0, -1, 0] == 255  # -1024 black, 3040 white at W 10 L 0
    assert not np.array_equal(out, default)


def test_viewport_arithmetic():
    from cxrviewer.gui.viewport import clamp_limits, dragged_window

    (x0, x1), (y0, y1) = clamp_limits((500.0, 700.0), (90.0, -10.0), (96, 128))  # far right, y axis downward
    assert (x0 + x1) / 2 == 127.5 and x1 - x0 == 200 and (y0, y1) == (90.0, -10.0)  # shifted, size and direction kept
    assert dragged_window((0.25, 0.75), 800, 0, (800, 600), 1.0) == pytest.approx((-0.25, 1.25))  # whole view: + range
    assert dragged_window((0.25, 0.75), 0, -300, (800, 600), 1.0) == pytest.approx((-0.25, 0.25))  # half down: -0.5
    low, high = dragged_window((0.25, 0.75), -5000, 0, (800, 600), 1.0)
    assert high - low == pytest.approx(1e-3)  # never narrower than a thousandth of the range


def test_preset_keys_work_from_the_table_and_the_image(qtbot, viewer):
    from PySide6.QtCore import Qt

    table = viewer.results_view.table
    table.setFocus()
    qtbot.waitUntil(table.hasFocus, timeout=2000)
    qtbot.keyClick(table, Qt.Key.Key_3)
    assert viewer.view.window == viewer.windowing.image.presets["lung"]
    viewer.canvas.setFocus()
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_A)
    assert viewer.view.window == viewer.windowing.image.presets["auto"]
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_F)
    assert viewer.view.window is None
