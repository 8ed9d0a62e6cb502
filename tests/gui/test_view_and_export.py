"""What the image view shows, and what the exports write."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from cxrviewer.gui import dialogs
from cxrviewer.gui.results_model import DONE
from cxrviewer.gui.view_state import SCALE_FIXED

from tests.gui.helpers import open_and_wait, write_image


@pytest.fixture
def reviewed(qtbot, window, image_folder):
    """The window after a finished batch, showing row 1 with its overlay."""
    open_and_wait(qtbot, window, [image_folder])
    with qtbot.waitSignal(window.imageShown, timeout=5000):
        window.results_view.select_source_row(1)
    assert window.canvas.has_image
    return window


def test_overlay_toggle_and_opacity_change_the_canvas(reviewed):
    canvas = reviewed.canvas
    with_overlay = canvas.rgba()
    reviewed.overlay_act.trigger()  # the O key
    assert not reviewed.controls.overlay.isChecked()
    without = canvas.rgba()
    assert np.abs(with_overlay.astype(int) - without.astype(int)).sum() > 0
    reviewed.overlay_act.trigger()
    assert np.array_equal(canvas.rgba(), with_overlay)
    reviewed.controls.opacity.setValue(90)
    assert reviewed.view.opacity == pytest.approx(0.9) and canvas.view is reviewed.view
    assert np.abs(canvas.rgba().astype(int) - with_overlay.astype(int)).sum() > 0


def test_choosing_another_class_changes_the_cam(qtbot, reviewed):
    with qtbot.waitSignal(reviewed.imageShown, timeout=5000):
        reviewed.results_view.select_source_row(2)  # (row 1's other-class map has no positive evidence)
    result = reviewed.current_result()
    other = "NORMAL" if result.label == "PNEUMONIA" else "PNEUMONIA"
    before, cam_before = reviewed.canvas.rgba(), reviewed.canvas._overlay.cam
    reviewed.controls.class_box.setCurrentIndex(reviewed.controls.class_box.findData(other))
    assert reviewed.view.class_name == other
    cam_after = reviewed.canvas._overlay.cam
    assert other in reviewed.canvas._overlay.label
    # two classes: the evidence map of one class is the negative of the other's
    assert np.allclose(cam_after, -cam_before, atol=1e-4) and np.abs(cam_before).max() > 1e-3
    assert np.abs(reviewed.canvas.rgba().astype(int) - before.astype(int)).sum() > 0


def test_window_level_and_invert_change_the_grey_image(reviewed):
    reviewed.overlay_act.trigger()
    base = reviewed.canvas.rgba()
    scale = reviewed.canvas._scale  # 8-bit grey values
    reviewed.controls.window_slider.setValue(400)
    assert reviewed.view.window.width == pytest.approx(0.4 * scale.range_width) and reviewed.canvas.view == reviewed.view
    windowed = reviewed.canvas.rgba()
    assert np.abs(windowed.astype(int) - base.astype(int)).sum() > 0
    reviewed.invert_act.trigger()
    assert reviewed.view.invert and reviewed.controls.invert.isChecked()
    assert np.abs(reviewed.canvas.rgba().astype(int) - windowed.astype(int)).sum() > 0


def test_zoom_and_fit(reviewed):
    ax = reviewed.canvas.ax
    full = ax.get_xlim()
    reviewed.zoom_in_act.trigger()
    zoomed = ax.get_xlim()
    assert zoomed[1] - zoomed[0] < full[1] - full[0]
    reviewed.fit_act.trigger()
    assert ax.get_xlim() == pytest.approx(full)


def test_fixed_scale_uses_the_model_cam_range(qtbot, make_window, fixed_scale_model_file, image_folder):
    w = make_window(fixed_scale_model_file)
    open_and_wait(qtbot, w, [image_folder])
    with qtbot.waitSignal(w.imageShown, timeout=5000):
        w.results_view.select_source_row(2)
    assert (w.canvas._overlay.vmin, w.canvas._overlay.vmax) != (-4.0, 4.0)
    w.controls.scale_box.setCurrentIndex(w.controls.scale_box.findData(SCALE_FIXED))
    assert (w.canvas._overlay.vmin, w.canvas._overlay.vmax) == (-4.0, 4.0)
    assert "fixed" in w.canvas._overlay.label


def test_fixed_scale_without_cam_range_uses_the_core_default(reviewed):
    from cxrviewer.core.results.overlay import DEFAULT_CAM_RANGE

    reviewed.controls.scale_box.setCurrentIndex(reviewed.controls.scale_box.findData(SCALE_FIXED))
    assert (reviewed.canvas._overlay.vmin, reviewed.canvas._overlay.vmax) == DEFAULT_CAM_RANGE


def test_export_overlay_writes_a_png_of_the_image_size(qtbot, monkeypatch, reviewed, tmp_path):
    out = tmp_path / "out" / "mine.png"
    out.parent.mkdir()
    monkeypatch.setattr(dialogs, "ask_save_file", lambda *a, **k: out)
    with qtbot.waitSignal(reviewed.exportFinished, timeout=10000):
        reviewed.export_overlay_act.trigger()
    with Image.open(out) as im:
        assert im.size == (80, 96) and im.mode == "RGB"
        rgb = np.asarray(im).astype(int)
    assert np.abs(rgb[..., 0] - rgb[..., 2]).max() > 30  # coloured: the overlay is in it
    reviewed.overlay_act.trigger()
    with qtbot.waitSignal(reviewed.exportFinished, timeout=10000):
        reviewed.export_overlay_act.trigger()
    with Image.open(out) as im:
        grey = np.asarray(im).astype(int)
    assert np.array_equal(grey[..., 0], grey[..., 2])  # overlay off: what the canvas shows


def test_export_all_never_overwrites(qtbot, monkeypatch, reviewed, tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    first = reviewed.results_model.row(0).result
    taken = folder / f"{first.path.stem}_cam.png"
    taken.write_bytes(b"keep me")
    monkeypatch.setattr(dialogs, "ask_folder", lambda *a, **k: folder)
    with qtbot.waitSignal(reviewed.exportFinished, timeout=20000) as done:
        reviewed.export_all_act.trigger()
    summary = done.args[0]
    assert len(summary["written"]) == 8 and not summary["failed"]
    assert taken.read_bytes() == b"keep me"
    assert (folder / f"{taken.stem} (1).png").is_file()
    assert len(list(folder.glob("*.png"))) == 9
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_export_all_into_the_source_folder_needs_consent(qtbot, monkeypatch, reviewed, image_folder):
    before = sorted(image_folder.iterdir())
    asked = []
    monkeypatch.setattr(dialogs, "ask_folder", lambda *a, **k: image_folder)
    monkeypatch.setattr(dialogs, "confirm", lambda parent, title, text: asked.append(text) or False)
    reviewed.export_all_act.trigger()
    assert asked and "is the folder you opened" in asked[0]
    assert sorted(image_folder.iterdir()) == before


def test_export_all_refuses_a_folder_inside_the_source(qtbot, monkeypatch, reviewed, image_folder):
    inner = image_folder / "overlays"
    errors = []
    monkeypatch.setattr(dialogs, "ask_folder", lambda *a, **k: inner)
    monkeypatch.setattr(dialogs, "show_error", lambda parent, title, text: errors.append(text))
    reviewed.export_all_act.trigger()
    assert errors and "inside the input folder" in errors[0]
    assert not inner.exists()


def test_export_results_csv(qtbot, monkeypatch, window, image_folder, tmp_path):
    (image_folder / "broken.png").write_bytes(b"")
    open_and_wait(qtbot, window, [image_folder])
    out = tmp_path / "results.csv"
    monkeypatch.setattr(dialogs, "ask_save_file", lambda *a, **k: tmp_path / "results")
    with qtbot.waitSignal(window.exportFinished, timeout=10000):
        window.export_csv_act.trigger()
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 9
    assert list(rows[0])[:8] == ["path", "label", "p_NORMAL", "p_PNEUMONIA", "in_scope", "scope_score", "scope_reason",
                                 "error"]
    broken = [r for r in rows if r["path"].endswith("broken.png")][0]
    assert broken["error"] and not broken["label"]
    good = [r for r in rows if r["label"]]
    assert len(good) == 8
    assert all(abs(float(r["p_NORMAL"]) + float(r["p_PNEUMONIA"]) - 1) < 1e-4 for r in good)


def test_dicom_free_details_show_size_and_format(reviewed):
    text = reviewed.details.text()
    assert "80 x 96 px" in text and "Prediction" in text and "Threshold" in text


def test_large_image_loads_in_background(qtbot, window, tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    write_image(folder / "big.png", 1200, 1500, seed=3)
    open_and_wait(qtbot, window, [folder])
    qtbot.waitUntil(lambda: window.canvas.has_image, timeout=10000)
    canvas = window.canvas
    assert canvas._pixels.shape == (1500, 1200)
    assert max(canvas._preview.shape) <= 1024
    assert window.loader.fit_box is not None
    assert canvas._preview.shape == canvas._fit_target()  # made by the loader at the size the fitted view draws
    fitted = canvas.rgba()
    canvas.zoom(8.0)
    assert canvas._shown is canvas._pixels  # zoomed in: drawn from full resolution
    canvas.fit()
    assert np.array_equal(canvas.rgba(), fitted)
    assert window.results_model.count(DONE) == 1
