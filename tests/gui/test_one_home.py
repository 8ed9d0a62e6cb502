"""Issue 8: one home for each rule, columns and view state declared once (the viewer's side)."""

from __future__ import annotations

import csv
import re
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from cxrviewer.cli import main as cli_main
from cxrviewer.core.io.radiograph import IMAGE_SUFFIXES
from cxrviewer.core.io.window import Window
from cxrviewer.core.results.columns import Batch, table_columns
from cxrviewer.core.results.overlay import DEFAULT_ALPHA, DEFAULT_CMAP
from cxrviewer.gui import dialogs
from cxrviewer.gui.results_model import STATUS
from cxrviewer.gui.settings import Settings
from cxrviewer.gui.view_state import ViewState

from tests.gui.helpers import open_and_wait

GUI = Path(__file__).resolve().parents[2] / "cxrviewer" / "gui"


def test_view_state_is_a_qt_free_frozen_value(fresh_imports):
    imported = fresh_imports["gui.view_state"]  # a fresh interpreter's modules after importing view_state
    assert "cxrviewer.gui.view_state" in imported
    assert not [m for m in imported if m.startswith(("PySide6", "shiboken6"))], "Qt imported"
    v = ViewState(window=Window(-600, 1500), opacity=2, class_name="")
    assert (v.window, v.opacity, v.class_name) == (Window(-600, 1500), 1.0, None)
    assert ViewState().window is None  # the image's own default
    with pytest.raises(Exception):
        v.window = None  # frozen
    with pytest.raises(ValueError):
        ViewState(scale="log")


def test_the_view_flows_one_way_controls_canvas_and_drag(qtbot, window, image_folder):
    open_and_wait(qtbot, window, [image_folder])
    qtbot.waitUntil(lambda: window.canvas.has_image, timeout=5000)
    window.controls.opacity.setValue(70)
    assert window.view.opacity == pytest.approx(0.7) and window.canvas.view is window.view
    scale = window.canvas._scale
    window.canvas.windowDragged.emit(scale.window_from_grey(0.2, 0.6))  # what a right-drag on the image sends
    assert scale.grey_window(window.view.window) == pytest.approx((0.2, 0.6)) and window.canvas.view is window.view
    assert window.controls.window_slider.value() == round(1000 * 0.4 * 255 / scale.range_width)
    window.set_view(replace(window.view, invert=True, overlay=False))
    assert window.controls.invert.isChecked() and window.invert_act.isChecked()
    assert not window.controls.overlay.isChecked() and not window.overlay_act.isChecked()
    options = window._render_options()  # exports draw the same value, the window per image
    assert options.view == replace(window.view, window=None)
    assert options.window_for(window.current_path()) == window.view.window


def test_default_opacity_colormap_and_suffixes_have_one_home(make_window):
    w = make_window(None, load_default=False)
    assert Settings().opacity == DEFAULT_ALPHA == ViewState().opacity == w.view.opacity
    assert w.controls.opacity.value() == round(100 * DEFAULT_ALPHA)
    assert w.canvas.colour_bar.image.get_cmap().name == DEFAULT_CMAP
    assert all(f"*{s}" in dialogs.IMAGE_FILTER for s in IMAGE_SUFFIXES)


def test_ui_colours_come_from_the_theme_only():
    literal = re.compile(r"#[0-9a-fA-F]{6}\b|QColor\(\s*\d")
    offenders = {p.name: literal.findall(p.read_text()) for p in GUI.glob("*.py") if p.name != "theme.py"}
    assert not {k: v for k, v in offenders.items() if v}


def test_the_table_reads_the_column_specs(window):
    m, header = window.results_model, window.results_view.table.horizontalHeader()
    specs = table_columns(Batch.of(window.model))
    shown = [m.headerData(c, Qt.Orientation.Horizontal) for c in range(m.columnCount()) if c != STATUS]
    assert shown == [s.header for s in specs] == ["File", "Class", "P(PNEUMONIA)", "Reader"]
    for c, spec in zip([c for c in range(m.columnCount()) if c != STATUS], specs):
        assert m.headerData(c, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole) == (spec.tip or None)
        if c and not header.isSectionHidden(c):  # a narrow table hides the Reader column first
            assert header.sectionSize(c) >= spec.width  # the spec width is the least; text may need more


def test_details_list_the_result_columns(qtbot, window, image_folder):
    open_and_wait(qtbot, window, [image_folder])
    with qtbot.waitSignal(window.imageShown, timeout=5000):
        window.results_view.select_source_row(1)
    text = window.details.text()
    assert "Result" in text and "Precision" in text and "float32" in text and window.model.display_name in text
    result = text[text.index("Result"):text.index("Image")]
    assert "Width" in result and "Threshold" not in result and "Model" not in result  # shown once, in Model


def test_cli_and_viewer_write_the_same_csv(qtbot, monkeypatch, window, image_folder, tiny_model_file, tmp_path):
    (image_folder / "broken.png").write_bytes(b"")
    from_cli = tmp_path / "cli.csv"
    assert cli_main(["predict", str(image_folder), "--csv", str(from_cli), "--model", str(tiny_model_file),
                     "--device", "cpu", "--stability"]) == 0  # the viewer runs the stability check by default
    open_and_wait(qtbot, window, [image_folder])
    from_viewer = tmp_path / "viewer.csv"
    monkeypatch.setattr(dialogs, "ask_save_file", lambda *a, **k: from_viewer)
    with qtbot.waitSignal(window.exportFinished, timeout=10000):
        window.export_csv_act.trigger()
    cli_rows = list(csv.reader(from_cli.open(newline="")))
    viewer_rows = list(csv.reader(from_viewer.open(newline="")))
    assert len(cli_rows) == 10 and "model" in cli_rows[0]
    assert viewer_rows[0][len(cli_rows[0]):] == ["truth", "reader_label", "agreement", "note"]  # the reader study's
    assert [r[:len(cli_rows[0])] for r in viewer_rows] == cli_rows
