"""Smaller pieces: the table model, settings, entry point, desktop file, icon."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from cxrviewer.core.results.columns import Batch
from cxrviewer.core.results.file_result import FileResult
from cxrviewer.gui import app as app_module
from cxrviewer.gui.desktop import desktop_entry, install_desktop_entry
from cxrviewer.gui.icons import PNG_SIZES, app_icon, png_path, svg_path
from cxrviewer.gui.results_model import CANCELLED, DONE, ERROR, PROB, QUEUED, SORT_ROLE, ResultsModel
from cxrviewer.gui.settings import Settings
from cxrviewer.gui.status import ProgressRate, format_eta


def filled_model(n=30):
    m = ResultsModel()
    m.set_batch(Batch(("NORMAL", "PNEUMONIA"), "PNEUMONIA", 0.5, "tiny"))
    m.set_paths([Path(f"/data/{i:03d}.png") for i in range(n)])
    chunk = []
    for i in range(0, n - 5):
        if i % 7 == 3:
            chunk.append(FileResult(Path(f"/data/{i:03d}.png"), i, error="cannot decode"))
        else:
            p = (i * 37 % 100) / 100
            chunk.append(FileResult(Path(f"/data/{i:03d}.png"), i, {"NORMAL": 1 - p, "PNEUMONIA": p},
                                    "PNEUMONIA" if p >= 0.5 else "NORMAL", cams=np.zeros((2, 2, 2), np.float32)))
    m.apply(chunk)
    return m


def test_qtmodeltester(qtmodeltester):
    qtmodeltester.check(filled_model())
    qtmodeltester.check(ResultsModel())


def test_results_model_statuses_and_sort_keys():
    m = filled_model()
    assert m.count(ERROR) == 4 and m.count(DONE) == 21 and m.count(QUEUED) == 5
    assert m.index(3, 1).data() == "error"
    assert m.index(1, PROB).data() == "37.0%" and m.index(1, PROB).data(SORT_ROLE) == (False, (0, 0.37))
    assert m.index(27, PROB).data(SORT_ROLE)[0] is True  # no probability yet: sorts last, either way
    m.mark_unfinished()
    assert m.count(CANCELLED) == 5 and m.count(QUEUED) == 0


def test_sorted_view_follows_results_as_they_arrive():
    from PySide6.QtCore import Qt

    from cxrviewer.gui.results_model import ResultsFilter

    m = filled_model()
    proxy = ResultsFilter()
    proxy.setSourceModel(m)
    proxy.sort(PROB, Qt.SortOrder.DescendingOrder)

    def shown():
        return [proxy.index(r, PROB).data(SORT_ROLE) for r in range(proxy.rowCount())]

    texts = [proxy.index(r, PROB).data() for r in range(proxy.rowCount())]
    assert texts[0] == "96.0%" and texts[-9:] == [""] * 9  # 4 errors and 5 queued rows last
    present = [k for k in shown() if not k[0]]
    assert present == sorted(present, reverse=True)
    late = FileResult(Path("/data/027.png"), 27, {"NORMAL": 0.01, "PNEUMONIA": 0.99}, "PNEUMONIA",
                      cams=np.zeros((2, 2, 2), np.float32))
    m.apply([late])  # a queued row gets the highest probability: it moves to the top
    assert proxy.index(0, 0).data() == "027.png" and proxy.index(0, PROB).data() == "99.0%"
    proxy.sort(0, Qt.SortOrder.AscendingOrder)
    assert [proxy.index(r, 0).data() for r in range(3)] == ["000.png", "001.png", "002.png"]


def test_settings_round_trip(_fresh_settings, tmp_path):
    s = Settings()
    assert Path(s.file_name).is_relative_to(_fresh_settings)
    assert s.opacity == 0.4 and s.recent == [] and s.model_path is None
    s.opacity = 0.25
    s.model_path = tmp_path / "m.safetensors"
    for i in range(12):
        s.add_recent([tmp_path / f"f{i}"])
    s.add_recent([tmp_path / "f3"])
    s.sync()
    t = Settings()
    assert t.opacity == 0.25 and t.model_path == tmp_path / "m.safetensors"
    assert t.recent[0] == [str(tmp_path / "f3")] and len(t.recent) == 8


def test_progress_rate_and_eta():
    now = [0.0]
    rate = ProgressRate(clock=lambda: now[0])
    now[0] = 10.0  # a slow start (model warm-up): the first image after 10 s ...
    assert rate.update(1, 74) == (None, None)  # ... gives no estimate (it said "11:37 left" for a 30 s batch)
    now[0] = 10.5
    assert rate.update(9, 74) == (None, None)  # too soon to tell
    now[0] = 11.0
    r, left = rate.update(17, 74)
    assert r == 16.0 and left == pytest.approx(57 / 16)  # measured from the first update, not from the start
    now[0] = 12.0
    r, left = rate.update(25, 74)  # 8 img/s now: smoothed, not jumping
    assert 8.0 < r < 16.0 and left == pytest.approx(49 / r)
    assert format_eta(3725) == "1:02:05" and format_eta(65) == "1:05"


def test_main_opens_the_window_on_command_line_paths(qtbot, monkeypatch, image_folder, no_default_model):
    windows = []

    def close_when_listed():
        for w in QApplication.topLevelWidgets():
            if w.__class__.__name__ == "MainWindow" and w.isVisible():
                if w.results_model.rowCount():
                    windows.append(w)
                    w.close()
                    return
        QTimer.singleShot(20, close_when_listed)

    monkeypatch.setattr(sys, "argv", ["cxrviewer-gui", str(image_folder)])
    QTimer.singleShot(0, close_when_listed)
    assert app_module.main() == 0
    assert windows and windows[0].inputs == [image_folder]
    assert QApplication.instance().organizationName() == "cxrviewer"
    assert not QApplication.instance().windowIcon().isNull()


def test_desktop_entry_install(tmp_path):
    entry = install_desktop_entry(exec_path="/opt/venv/bin/cxrviewer-gui", data_dir=tmp_path)
    text = entry.read_text()
    assert entry == tmp_path / "applications" / "cxrviewer.desktop"
    assert "Exec=/opt/venv/bin/cxrviewer-gui %F" in text and "Icon=cxrviewer" in text and "Terminal=false" in text
    assert (tmp_path / "icons/hicolor/256x256/apps/cxrviewer.png").is_file()
    shipped = (Path(__file__).resolve().parents[2] / "resources" / "cxrviewer.desktop").read_text()
    assert shipped == desktop_entry("cxrviewer-gui")


def test_icon_files_exist_and_load():
    assert svg_path().is_file()
    from PIL import Image

    for size in PNG_SIZES:
        with Image.open(png_path(size)) as im:
            assert im.size == (size, size) and im.mode == "RGBA"
    assert not app_icon().isNull()


def test_canvas_draws_the_fitted_image_pixel_for_pixel(qtbot, monkeypatch):
    """The fitted view hands its screen-size picture to Agg unresampled; the result matches
    matplotlib's own drawing of it (upright, in place) and zooming falls back to resampling."""
    from cxrviewer.gui.canvas import ImageCanvas, Overlay, ScreenImage  # noqa: I001

    canvas = ImageCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(700, 600)
    canvas.show()
    qtbot.waitExposed(canvas)
    y, x = np.mgrid[0:900, 0:700].astype(np.float32)
    pixels = (0.5 + 0.4 * np.sin(x / 90) * np.cos(y / 120)).astype(np.float32)
    pixels[:150, :200] = 1.0  # a bright block marks the top-left corner
    canvas.set_image(pixels)
    assert canvas._image.get_interpolation() == "none"
    calls = []
    original = ScreenImage.make_image
    monkeypatch.setattr(ScreenImage, "make_image", lambda self, *a, **k: calls.append(original(self, *a, **k)) or calls[-1])
    fast = canvas.rgba().astype(int)
    assert calls and np.shares_memory(calls[-1][0], canvas._image.get_array())  # no resampling: the array itself
    monkeypatch.setattr(ScreenImage, "direct", False)
    canvas._image.stale = True
    slow = canvas.rgba().astype(int)
    assert not np.shares_memory(calls[-1][0], canvas._image.get_array())  # matplotlib's own resampling
    assert np.abs(fast - slow).mean() < 1.0
    bright = np.argwhere(fast[..., :3].min(axis=2) >= 250)
    assert bright[:, 0].min() < fast.shape[0] / 3 and bright[:, 1].min() < fast.shape[1] / 3  # upright, top-left
    monkeypatch.setattr(ScreenImage, "direct", True)
    canvas.set_overlay(Overlay(np.arange(49, dtype=np.float32).reshape(7, 7), 0, 48, "test"))
    assert np.abs(canvas.rgba().astype(int) - fast).mean() > 5  # the overlay is drawn on the fast path too
    canvas.zoom(3.0)
    assert canvas._image.get_interpolation() != "none"
    assert canvas.rgba().shape == fast.shape


def test_the_overlay_note_sits_above_the_bottom_corner_text(qtbot):
    """A note such as "no positive evidence for ..." never overlaps the window/zoom and index lines."""
    from cxrviewer.core.io.corner_text import CornerInfo
    from cxrviewer.gui.canvas import ImageCanvas, Overlay

    canvas = ImageCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(700, 600)
    canvas.show()
    qtbot.waitExposed(canvas)
    canvas.set_image(np.full((224, 224), 0.5, np.float32))
    canvas.set_corner_info(CornerInfo("x.png", {"format": "PNG", "size": (224, 224)}, index=4, count=5))
    canvas.set_overlay(Overlay(None, 0.0, 1.0, "", note="no positive evidence for PNEUMONIA (Grad-CAM: mean positive part 0.024)"))
    canvas.draw()
    renderer = canvas.figure.canvas.get_renderer()
    corners = [a for c, a in canvas.corners.artists.items() if c.startswith("bottom") and a.get_visible()]
    assert corners and canvas.note.startswith("no positive evidence")
    top_of_corners = max(a.get_window_extent(renderer).y1 for a in corners)
    note_box = canvas._note.get_bbox_patch().get_window_extent(renderer)
    assert note_box.y0 >= top_of_corners
    canvas.show_corners(False)  # without corner text the note goes back to the bottom edge
    canvas.draw()
    assert canvas._note.get_bbox_patch().get_window_extent(renderer).y0 < note_box.y0
