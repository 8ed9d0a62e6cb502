"""Measuring in the viewer: tools from the Tools menu, clicks in image pixels at any zoom, per-image memory."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backend_bases import MouseEvent

from tests.core.dicom_factory import make_dicom
from tests.gui.helpers import open_and_wait, write_image


@pytest.fixture
def measured_folder(tmp_path):
    """Two 12-bit DICOMs with Pixel Spacing 0.5 x 0.25 mm (rows x columns) and one PNG."""
    folder = tmp_path / "study"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.dcm", "b.dcm"):
        make_dicom(folder / name, rng.integers(0, 4096, (120, 160), dtype=np.uint16), bits_stored=12,
                   PixelSpacing=[0.5, 0.25], PatientName="DOE^JANE", PatientID="P7", StudyInstanceUID="1.2.3.4.5",
                   SeriesInstanceUID="1.2.3.4.5.6")
    write_image(folder / "c.png", width=160, height=120)
    return folder


def show(qtbot, window, name):
    row = next(i for i in range(window.results_model.rowCount()) if window.results_model.row(i).path.name == name)
    if window.current_path() != window.results_model.row(row).path:
        with qtbot.waitSignal(window.imageShown, timeout=5000):
            window.results_view.select_source_row(row)
    qtbot.waitUntil(lambda: window.measure.image is not None)


def click(canvas, x, y, button=1, kind=("button_press_event", "button_release_event")):
    """A left click at image pixel (x, y), wherever the view is zoomed or panned."""
    sx, sy = canvas.ax.transData.transform((x, y))
    for name in kind:
        MouseEvent(name, canvas, sx, sy, button=button)._process()


@pytest.fixture
def study(qtbot, window, measured_folder):
    open_and_wait(qtbot, window, [measured_folder])
    show(qtbot, window, "a.dcm")
    return window


def test_distance_in_mm_from_pixel_spacing_at_any_zoom(study):
    canvas = study.canvas
    canvas.zoom(2.0, (50.0, 30.0))  # shows x 25..105, y 15..75
    canvas.draw()
    study.measure_actions.by_kind["distance"].trigger()  # Tools > Distance (D)
    assert study.measure.kind == "distance" and study.cancel_act.isEnabled()
    click(canvas, 30, 20)
    click(canvas, 70, 20)
    (m,) = study.measure.measurements()
    assert m.points == (pytest.approx((30, 20), abs=0.01), pytest.approx((70, 20), abs=0.01))
    assert study.measure.labels() == ["Distance 10.0 mm"]  # 40 columns x 0.25 mm
    text = study.details.text()
    assert "Distance 10.0 mm" in text and "mm from Pixel Spacing 0.5 x 0.25 mm" in text
    MouseEvent("button_press_event", canvas, 300, 200, button=2)._process()  # a middle-drag pan
    MouseEvent("motion_notify_event", canvas, 340, 170, button=2)._process()
    MouseEvent("button_release_event", canvas, 340, 170, button=2)._process()
    canvas.draw()
    click(canvas, 40, 30)
    click(canvas, 40, 50)
    assert study.measure.labels()[1] == "Distance 10.0 mm"  # 20 rows x 0.5 mm


def test_angle_ctr_and_press_drag_release(study):
    canvas, tool = study.canvas, study.measure
    study.measure_actions.by_kind["angle"].trigger()
    for x, y in ((60, 20), (20, 20), (60, 60)):  # 45 degrees in pixels, not in mm
        click(canvas, x, y)
    study.measure_actions.by_kind["ctr"].trigger()
    assert not study.measure_actions.by_kind["angle"].isChecked()
    for x, y in ((50, 40), (90, 47), (20, 80), (140, 75)):  # the second point of a span keeps its height
        click(canvas, x, y)
    study.measure_actions.by_kind["distance"].trigger()
    click(canvas, 10, 100, kind=("button_press_event",))
    click(canvas, 70, 100, kind=("motion_notify_event", "button_release_event"))  # one drag
    angle, ctr, drag = tool.measurements()
    assert angle.read(tool.calibration).value == pytest.approx(np.degrees(np.arctan2(2.0, 1.0)), abs=0.05)
    assert ctr.segments()[0][1][1] == pytest.approx(40, abs=0.01)
    assert tool.labels()[1] == "CTR 0.33 (cardiac 10.0 / thoracic 30.0 mm)"
    assert tool.labels()[2] == "Distance 15.0 mm"


def test_measurements_stay_with_their_image_and_raster_is_in_pixels(qtbot, study):
    tool = study.measure
    study.measure_actions.by_kind["distance"].trigger()
    click(study.canvas, 0, 0)
    click(study.canvas, 30, 40)
    show(qtbot, study, "c.png")
    assert tool.measurements() == () and "Measurements" not in study.details.text()
    click(study.canvas, 0, 0)
    click(study.canvas, 30, 40)
    assert tool.labels() == ["Distance 50.0 px"] and "pixels" in study.details.text()
    show(qtbot, study, "b.dcm")
    assert tool.measurements() == ()
    show(qtbot, study, "a.dcm")
    assert tool.labels() == ["Distance 21.4 mm"]  # hypot(30 x 0.25, 40 x 0.5)
    assert len(study.measure.store) == 2


def test_select_delete_clear_and_escape(study):
    tool, acts = study.measure, study.measure_actions
    acts.by_kind["distance"].trigger()
    click(study.canvas, 10, 10)
    study.cancel_act.trigger()  # Esc: drops the unfinished point, keeps the tool
    assert tool.kind == "distance" and tool.measurements() == ()
    for x, y in ((10, 10), (100, 10), (10, 60), (100, 60)):
        click(study.canvas, x, y)
    study.cancel_act.trigger()  # Esc again: leaves the tool; the batch is not touched
    assert tool.kind is None and not acts.by_kind["distance"].isChecked()
    assert len(tool.measurements()) == 2
    click(study.canvas, 50, 10.5)  # no tool: a click on a line selects it
    assert tool.selected == 0 and acts.delete_act.isEnabled()
    acts.delete_act.trigger()
    assert [m.points[0][1] for m in tool.measurements()] == [pytest.approx(60, abs=0.01)]
    click(study.canvas, 50, 30)  # a click away from every line selects nothing
    assert tool.selected is None and not acts.delete_act.isEnabled()
    acts.clear_act.trigger()
    assert tool.measurements() == () and "Measurements" not in study.details.text()


def test_exports_draw_the_measurements_and_dicom_goes_back_as_secondary_capture(qtbot, monkeypatch, study, tmp_path):
    import pydicom
    from PIL import Image

    from cxrviewer.gui import dialogs

    out = tmp_path / "exports"
    out.mkdir()
    errors = []
    monkeypatch.setattr(dialogs, "show_error", lambda _parent, title, text: errors.append(f"{title}: {text}"))
    monkeypatch.setattr(dialogs, "ask_save_file", lambda *a, **k: out / "plain.png")
    with qtbot.waitSignal(study.exportFinished, timeout=10000):
        study.export_overlay_act.trigger()
    study.measure_actions.by_kind["distance"].trigger()
    click(study.canvas, 20, 60)
    click(study.canvas, 140, 60)
    study.export_options.dicom_act.trigger()  # File > Export Options > Also Write DICOM Secondary Capture
    assert study.settings.export_dicom
    monkeypatch.setattr(dialogs, "ask_save_file", lambda *a, **k: out / "measured.png")
    with qtbot.waitSignal(study.exportFinished, timeout=10000) as done:
        study.export_overlay_act.trigger()
    assert [p.name for p in done.args[0]["written"]] == ["measured.png", "a_cam_sc.dcm"]
    assert "1 DICOM Secondary Capture" in study.message.text()
    plain, measured = (np.asarray(Image.open(out / n)).astype(int) for n in ("plain.png", "measured.png"))
    line = measured[60, 30:130]
    assert (np.abs(line - plain[60, 30:130]).sum(axis=1) > 60).all() and (line[:, 0] > 200).all()
    sc, src = pydicom.dcmread(out / "a_cam_sc.dcm"), pydicom.dcmread(study.current_path())
    assert sc.StudyInstanceUID == src.StudyInstanceUID and sc.SeriesInstanceUID != src.SeriesInstanceUID
    np.testing.assert_array_equal(sc.pixel_array, measured)
    show(qtbot, study, "c.png")
    monkeypatch.setattr(dialogs, "ask_save_file", lambda *a, **k: out / "raster.png")
    with qtbot.waitSignal(study.exportFinished, timeout=10000) as done:
        study.export_overlay_act.trigger()
    assert [p.name for p in done.args[0]["written"]] == ["raster.png"]
    assert "no DICOM for 1 input that is not DICOM (c.png)" in study.message.text()
    assert errors == []


def test_measurements_are_saved_and_restored_with_the_reader_session(qtbot, monkeypatch, make_window,
                                                                     tiny_model_file, measured_folder):
    from cxrviewer.gui import dialogs

    first = make_window(tiny_model_file)
    open_and_wait(qtbot, first, [measured_folder])
    show(qtbot, first, "a.dcm")
    first.measure_actions.by_kind["distance"].trigger()
    click(first.canvas, 20, 30)
    click(first.canvas, 60, 30)
    assert first.reader.dirty  # unsaved work
    target = measured_folder.parent / "m.cxrsession.json"
    monkeypatch.setattr(dialogs, "ask_save_file", lambda *a, **k: target)
    first.reader.save_act.trigger()
    assert target.is_file()
    first.close()
    again = make_window(tiny_model_file)
    open_and_wait(qtbot, again, [measured_folder])
    show(qtbot, again, "a.dcm")
    qtbot.waitUntil(lambda: again.measure.labels() == ["Distance 10.0 mm"])
    assert "Distance 10.0 mm" in again.details.text()
