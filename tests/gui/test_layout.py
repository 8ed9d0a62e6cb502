"""At 1366 x 768 and 1600 x 1000 every visible label, button, check box, combo box, header section and table
cell shows its whole text, inside the window (the app's own theme, a fixed font)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QRect
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import (QAbstractButton, QApplication, QComboBox, QLabel, QStyle, QStyleOptionComboBox,
                               QWidget)

from cxrviewer.gui.app import fit_window
from cxrviewer.gui.results_model import NAME
from cxrviewer.gui.theme import apply_dark_theme
from tests.gui.helpers import open_and_wait, write_image

NAMES = ("NORMAL2-IM-0427-0001.jpeg", "NORMAL2-IM-1431-0001.jpeg", "IM-0115-0001__mono1_12bit_rle.png",
         "person1000_bacteria_2931.jpeg", "person1000_virus_1681.jpeg")


@pytest.fixture
def themed(qapp):
    """The app's dark theme and a fixed font for the test, the test run's own look afterwards."""
    style, palette, sheet, font = qapp.style().name(), QPalette(qapp.palette()), qapp.styleSheet(), QFont(qapp.font())
    apply_dark_theme(qapp)
    qapp.setFont(QFont("DejaVu Sans", 9))
    yield
    qapp.setStyleSheet(sheet)
    qapp.setStyle(style)
    qapp.setPalette(palette)
    qapp.setFont(font)


def _shown(w: QWidget, window: QWidget) -> bool:
    return w.isVisible() and w.window() is window and not w.visibleRegion().isEmpty()


def _label_problem(w: QLabel) -> str | None:
    if w.wordWrap() or not w.text() or w.textFormat() == w.textFormat().RichText or "<" in w.text():
        return None
    room = w.contentsRect().width() - 2 * w.margin() - max(w.indent(), 0)
    need = max(map(w.fontMetrics().horizontalAdvance, w.text().split("\n")))
    return None if need <= room else f"label {w.text()!r}: {need} > {room}"


def _button_problem(w: QAbstractButton) -> str | None:
    if not w.text():
        return None
    return None if w.width() >= w.sizeHint().width() else f"button {w.text()!r}: {w.width()} < {w.sizeHint().width()}"


def _combo_problem(w: QComboBox) -> str | None:
    option = QStyleOptionComboBox()
    w.initStyleOption(option)
    room = w.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, option,
                                    QStyle.SubControl.SC_ComboBoxEditField, w).width()
    texts = [w.itemText(i) for i in range(w.count())]
    need = max(map(w.fontMetrics().horizontalAdvance, texts), default=0)
    return None if need <= room else f"combo {texts}: {need} > {room}"


def _outside(w: QWidget, window: QWidget) -> str | None:
    top_left = w.mapTo(window, w.rect().topLeft())
    inside = window.rect().contains(top_left) and window.rect().contains(w.mapTo(window, w.rect().bottomRight()))
    return None if inside else f"{type(w).__name__} {getattr(w, 'text', lambda: '')()!r} reaches outside the window"


def cut_widgets(window: QWidget) -> list[str]:
    """What is cut: widgets whose text does not fit, or that reach outside the window."""
    problems = []
    for w in window.findChildren(QWidget):
        if not _shown(w, window):
            continue
        if isinstance(w, QLabel):
            problems.append(_label_problem(w))
        elif isinstance(w, QAbstractButton):
            problems.append(_button_problem(w))
        elif isinstance(w, QComboBox):
            problems.append(_combo_problem(w))
        if isinstance(w, (QLabel, QAbstractButton, QComboBox)) and w.parent() is not None:
            problems.append(_outside(w, window))
    return [p for p in problems if p]


def cut_table_text(window) -> list[str]:
    """Header sections that are too narrow or scrolled out of sight; cells whose text is cut (the name
    column may cut names, on the left only)."""
    table = window.results_view.table
    header, metrics, problems = table.horizontalHeader(), table.fontMetrics(), []
    for col in range(header.count()):
        if header.isSectionHidden(col):  # (a narrow table hides its optional columns: not cut, left out)
            continue
        if header.sectionSizeFromContents(col).width() > header.sectionSize(col):
            problems.append(f"header {col}: {header.sectionSizeFromContents(col).width()} > {header.sectionSize(col)}")
        if header.sectionViewportPosition(col) + header.sectionSize(col) > table.viewport().width() + 1:
            problems.append(f"header {col} is out of sight")
        for row in range(table.model().rowCount()):
            text = table.model().index(row, col).data()
            if col != NAME and metrics.horizontalAdvance(text) > table.columnWidth(col) - 8:
                problems.append(f"cell {row},{col} {text!r}: {metrics.horizontalAdvance(text)} > {table.columnWidth(col) - 8}")
    return problems


def title_breaks_mid_word(window) -> list[str]:
    """Lines of the details panel's title (the file name) that end inside a part of the name."""
    block = window.details.browser.document().firstBlock()
    layout, text = block.layout(), block.text()
    ends = [layout.lineAt(i).textStart() + layout.lineAt(i).textLength() for i in range(layout.lineCount() - 1)]
    return [text[:end] for end in ends if text[end - 1] not in "\u200b "]


@pytest.mark.parametrize("size", [(1366, 768), (1600, 1000)])
def test_nothing_is_cut_at_common_screen_sizes(qtbot, themed, make_window, tiny_model_file, tmp_path, size):
    folder = tmp_path / "ward"
    folder.mkdir()
    for i, name in enumerate(NAMES):
        write_image(folder / name, 200, 240, seed=i)
    window = make_window(tiny_model_file)
    window.resize(*size)
    fit_window(window, QRect(0, 0, *size))  # as at start on a screen of that size
    open_and_wait(qtbot, window, [folder])
    with qtbot.waitSignal(window.imageShown, timeout=5000):
        window.results_view.select_source_row(2)
    window.details.setFixedWidth(200)  # narrow enough for the title to wrap
    qtbot.waitUntil(lambda: window.details.browser.document().firstBlock().layout().lineCount() > 1)
    frame = window.frameGeometry()
    assert frame.width() <= size[0] and frame.height() <= size[1] and window.width() >= size[0] - 10  # the screen, filled

    def nothing_cut():  # (once the layouts have settled: text set late relayouts on the next turn of the loop)
        assert cut_widgets(window) == []
        assert cut_table_text(window) == []
        assert title_breaks_mid_word(window) == []

    qtbot.waitUntil(nothing_cut, timeout=2000)
    assert window.controls.geometry().right() <= window.splitter.widget(1).width()  # the controls wrap, never clip
