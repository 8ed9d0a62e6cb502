"""The selected file survives sorts, filters and a new classification; keys work wherever the focus is."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QAction, QKeySequence

from cxrviewer.gui import dialogs
from cxrviewer.gui.results_model import PROB
from tests.gui.helpers import open_and_wait, png_folder


@pytest.fixture
def thirty_pngs(tmp_path):
    return png_folder(tmp_path / "ward", 30)


def _select(qtbot, window, row: int):
    with qtbot.waitSignal(window.imageShown, timeout=5000):
        window.results_view.select_source_row(row)
    return window.current_path()


def _in_view(view) -> bool:
    table = view.table
    return table.currentIndex().isValid() and table.viewport().rect().contains(table.visualRect(table.currentIndex()))


def test_selection_kept_across_sorts(qtbot, window, image_folder):
    open_and_wait(qtbot, window, [image_folder])
    chosen = _select(qtbot, window, 5)
    view = window.results_view
    for order in (Qt.SortOrder.DescendingOrder, Qt.SortOrder.AscendingOrder):
        view.table.sortByColumn(PROB, order)
        assert window.current_path() == chosen and view.current_source_row() == 5


def test_a_filter_hiding_the_selection_keeps_it_and_clearing_brings_it_back(qtbot, window, image_folder):
    open_and_wait(qtbot, window, [image_folder])
    chosen = _select(qtbot, window, 5)
    view = window.results_view
    view.search.setText("cxr_01")  # other rows match: no neighbour takes the selected file's place
    assert view.proxy.rowCount() == 1 and window.current_path() == chosen and window.canvas.has_image
    assert not view.table.currentIndex().isValid()
    view.search.setText("matches nothing")
    assert view.proxy.rowCount() == 0 and window.current_path() == chosen and window.canvas.has_image
    with qtbot.waitSignal(window.imageShown, timeout=5000) as shown:
        view.search.clear()
    assert shown.args == [chosen] and view.current_source_row() == 5 and window.canvas.has_image
    assert "Open a folder" not in window.canvas._message.get_text() or not window.canvas._message.get_visible()


def test_clearing_a_filter_scrolls_the_selected_row_into_view(qtbot, window, thirty_pngs):
    open_and_wait(qtbot, window, [thirty_pngs])
    window.resize(1200, 400)  # about a dozen rows fit
    view = window.results_view
    chosen = _select(qtbot, window, 25)
    view.search.setText("02")  # 002, 020-029: the chosen row moves up
    view.table.scrollToTop()
    view.search.clear()
    qtbot.waitUntil(lambda: _in_view(view))
    assert window.current_path() == chosen and view.table.verticalScrollBar().value() > 0


def test_selection_kept_across_a_class_filter_and_reclassification(qtbot, window, image_folder, tiny_model_file):
    open_and_wait(qtbot, window, [image_folder])
    chosen = _select(qtbot, window, 3)
    view = window.results_view
    label = window.current_result().label
    view.filter_box.setCurrentIndex(view.filter_box.findData(label))
    view.table.sortByColumn(PROB, Qt.SortOrder.DescendingOrder)
    assert view.current_source_row() == 3
    with qtbot.waitSignal(window.batchFinished, timeout=20000):
        window.load_model_file(tiny_model_file)  # rows leave the filter while queued and come back
    qtbot.waitUntil(lambda: view.current_source_row() == 3)
    assert window.current_path() == chosen and window.current_result().label == label


def test_window_shortcuts_work_with_the_focus_in_the_filter_box(qtbot, monkeypatch, window, image_folder):
    open_and_wait(qtbot, window, [image_folder])
    _select(qtbot, window, 2)
    asked = []
    monkeypatch.setattr(dialogs, "ask_save_file", lambda *a, **k: asked.append(a) or None)
    search = window.results_view.search
    window.activateWindow()
    search.setFocus()
    qtbot.waitUntil(search.hasFocus)
    qtbot.keyClick(search, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    assert len(asked) == 1  # Export Overlay asked where to save
    fired = []
    word = QAction("Word jump", window, shortcut=QKeySequence("Ctrl+Right"))  # a key every line edit claims
    word.triggered.connect(lambda: fired.append(1))
    window.addAction(word)
    qtbot.keyClick(search, Qt.Key.Key_Right, Qt.KeyboardModifier.ControlModifier)
    assert fired == [1]
    qtbot.keyClicks(search, "np")  # plain letters are typed, not taken as N(ext) / P(revious)
    assert search.text() == "np"
    search.setText("x")
    qtbot.keyClick(search, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)  # the field keeps its editing keys
    assert search.selectedText() == "x"


def test_row_keys_step_rows_after_a_click_on_the_image(qtbot, window, image_folder):
    open_and_wait(qtbot, window, [image_folder])
    _select(qtbot, window, 2)
    canvas = window.canvas
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=QPoint(canvas.width() // 2, canvas.height() // 2))
    view = window.results_view
    with qtbot.waitSignal(window.imageShown, timeout=5000):
        qtbot.keyClick(canvas, Qt.Key.Key_Down)
    assert view.current_source_row() == 3
    qtbot.keyClick(canvas, Qt.Key.Key_Up)
    assert view.current_source_row() == 2
    qtbot.keyClick(canvas, Qt.Key.Key_End)
    assert view.current_source_row() == 7
    qtbot.keyClick(canvas, Qt.Key.Key_Home)
    assert view.current_source_row() == 0
    qtbot.keyClick(canvas, Qt.Key.Key_PageDown)
    assert view.current_source_row() > 0


def test_a_folder_opened_under_a_filter_that_hides_every_row_says_so(qtbot, window, image_folder):
    window.results_view.search.setText("matches nothing")
    open_and_wait(qtbot, window, [image_folder])
    assert window.results_model.rowCount() == 8 and window.results_view.proxy.rowCount() == 0
    assert window.canvas._message.get_text() == "No file matches the filter"
    with qtbot.waitSignal(window.imageShown, timeout=5000):
        window.results_view.search.clear()  # the first row is selected and shown
    assert window.canvas.has_image
