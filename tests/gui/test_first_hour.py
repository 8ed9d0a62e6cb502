"""What a new user met in the first hour: the badge and details say the number that decided, names show their
subfolder, the status says the model is loading, a damaged file is never the first image, "Image i of n"
follows filters, a map choice hands the keys back to the list, Esc closes the Evaluation window."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from cxrviewer.core.results.verdict import verdict
from cxrviewer.gui.evaluation_window import EvaluationWindow
from tests.gui.helpers import open_and_wait, write_image


def test_badge_and_details_say_the_probability_that_decided(qtbot, window, image_folder):
    open_and_wait(qtbot, window, [image_folder])
    qtbot.waitUntil(lambda: window.canvas.has_image and bool(window.canvas.caption))
    r = window.current_result()
    said = verdict(r, window.batch)
    assert window.batch.positive == "PNEUMONIA" and window.canvas.caption == said
    assert said.startswith(f"{r.label}: P(PNEUMONIA) ") and ("<" in said) == (r.label == "NORMAL")
    assert f"Decision: {r.label} because {said.split(': ', 1)[1]}" in window.details.text()
    assert window._render_options().batch == window.batch  # the export caption says the same (core test)


def test_names_show_their_subfolder_and_the_corner_says_so(qtbot, window, tmp_path):
    for sub, seed in (("NORMAL", 1), ("PNEUMONIA", 2)):
        (tmp_path / "ward" / sub).mkdir(parents=True)
        write_image(tmp_path / "ward" / sub / "IM-0601-0001.jpeg", seed=seed)
    open_and_wait(qtbot, window, [tmp_path / "ward"])
    table = window.results_view.table
    names = sorted(table.model().index(r, 0).data() for r in range(table.model().rowCount()))
    assert names == ["NORMAL/IM-0601-0001.jpeg", "PNEUMONIA/IM-0601-0001.jpeg"]
    assert table.itemDelegateForColumn(0).__class__.__name__ == "MiddleElideDelegate"
    qtbot.waitUntil(lambda: window.canvas.has_image)
    window.canvas.draw()
    assert window.canvas.corners.artists["top_left"].get_text().split("\n")[0].endswith("/IM-0601-0001.jpeg")


def test_the_status_says_loading_while_the_model_loads(qtbot, make_window, tiny_model_file, image_folder):
    window = make_window(tiny_model_file, wait_model=False)
    assert window.model_loader.loading
    window.runs.on_scanned(sorted(image_folder.iterdir()))  # the scan of a folder given at start-up, before the model
    assert window.batch_status.label.text() == "8 files - loading the model..."
    qtbot.waitUntil(lambda: window.model is not None, timeout=10000)


def test_a_damaged_file_is_never_the_image_a_batch_opens_on(qtbot, window, image_folder):
    (image_folder / "bad.jpg").write_bytes(b"not a JPEG" * 50)
    open_and_wait(qtbot, window, [image_folder])
    view = window.results_view
    first = view.proxy.mapToSource(view.proxy.index(0, 0)).row()
    assert window.results_model.row(first).path.name == "bad.jpg"  # first in the list ...
    assert "damaged" in window.results_model.row(first).result.error
    assert window.current_path().name != "bad.jpg"  # ... but not the one on show
    view.select_source_row(first)  # the user may still choose it
    qtbot.waitUntil(lambda: window.current_path().name == "bad.jpg")
    window.results_model.dataChanged.emit(window.results_model.index(first, 0), window.results_model.index(first, 1))
    assert window.current_path().name == "bad.jpg"


def test_image_i_of_n_follows_a_filter_and_back(qtbot, window, image_folder):
    open_and_wait(qtbot, window, [image_folder])
    target = window.results_model.row_of(image_folder / "cxr_05.png")
    with qtbot.waitSignal(window.imageShown, timeout=5000):
        window.results_view.select_source_row(target)

    def position():
        window.canvas.draw()
        return window.canvas.corners.artists["bottom_right"].get_text()

    assert position() == "Image 6 of 8"
    window.results_view.search.setText("cxr_05")
    qtbot.waitUntil(lambda: position() == "Image 1 of 1")
    window.results_view.search.setText("")
    qtbot.waitUntil(lambda: position() == "Image 6 of 8")


def test_after_a_map_choice_up_and_down_step_rows_not_maps(qtbot, window, image_folder):
    open_and_wait(qtbot, window, [image_folder])
    window.activateWindow()
    box = window.controls.scale_box
    box.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is box)
    box.setCurrentIndex(1)
    box.activated.emit(1)
    assert QApplication.focusWidget() is window.results_view.table
    row = window.results_view.table.currentIndex().row()
    qtbot.keyClick(window.results_view.table, Qt.Key.Key_Down)
    assert window.results_view.table.currentIndex().row() == row + 1 and box.currentIndex() == 1


def test_esc_and_ctrl_w_close_the_evaluation_window(qtbot, window):
    for key, modifier in ((Qt.Key.Key_Escape, Qt.KeyboardModifier.NoModifier), (Qt.Key.Key_W, Qt.KeyboardModifier.ControlModifier)):
        ev = EvaluationWindow(window)
        qtbot.addWidget(ev)
        ev.show()
        ev.activateWindow()
        qtbot.waitExposed(ev)
        qtbot.waitUntil(lambda: QApplication.activeWindow() is ev)
        qtbot.keyClick(ev, key, modifier)
        qtbot.waitUntil(lambda: not ev.isVisible())


def test_a_cut_name_loses_its_folder_first_then_its_middle(qapp):
    from PySide6.QtGui import QFont, QFontMetrics

    from cxrviewer.gui.table_look import elide_path

    fm = QFontMetrics(QFont("DejaVu Sans", 9))
    text = "PNEUMONIA/NORMAL2-IM-0601-0001.jpeg"
    assert elide_path(text, 1000, fm) == text
    name_room = fm.horizontalAdvance("PNE\u2026/NORMAL2-IM-0601-0001.jpeg")
    cut = elide_path(text, name_room, fm)
    assert cut.endswith("/NORMAL2-IM-0601-0001.jpeg") and cut.startswith("PNE") and fm.horizontalAdvance(cut) <= name_room
    tight = elide_path(text, 120, fm)
    assert tight.startswith("P\u2026/NOR") and tight.endswith(".jpeg") and fm.horizontalAdvance(tight) <= 120
