"""The results table reads well: names cut on the left with the path in a tooltip, columns wide enough for
their text and resizable, probabilities as percentages that sort by value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtWidgets import QStyleOptionViewItem

from cxrviewer.core.results.columns import Batch
from cxrviewer.core.results.file_result import FileResult
from cxrviewer.gui.results_model import CLASS, NAME, PROB, STATUS, ResultsModel
from cxrviewer.gui.results_view import ResultsView

LONG = "NORMAL2-IM-0427-0001-a-very-long-study-name-from-the-archive.jpeg"


def _view(qtbot, probs=(0.99999, 0.00001, 0.5, 0.9996), width=420):
    model = ResultsModel()
    model.set_batch(Batch(("NORMAL", "PNEUMONIA"), "PNEUMONIA", 0.5, "tiny"))
    paths = [Path(f"/archive/study/{i}-{LONG}") for i in range(len(probs))]
    model.set_paths(paths)
    model.apply([FileResult(p, i, {"NORMAL": 1 - q, "PNEUMONIA": q}, "PNEUMONIA" if q >= 0.5 else "NORMAL",
                            cams=np.zeros((2, 2, 2), np.float32)) for i, (p, q) in enumerate(zip(paths, probs))])
    view = ResultsView(model)
    qtbot.addWidget(view)
    view.resize(width, 400)
    view.show()
    qtbot.waitExposed(view)
    return view


def _drawn_text(view, row: int, col: int) -> str:
    """The text the delegate draws in a cell of its current width."""
    table = view.table
    index = view.proxy.index(row, col)
    option = QStyleOptionViewItem()
    option.initFrom(table)
    option.rect = QRect(0, 0, table.columnWidth(col), table.rowHeight(row))
    table.itemDelegateForIndex(index).initStyleOption(option, index)
    return option.fontMetrics.elidedText(option.text, option.textElideMode, option.rect.width() - 8)


def test_long_names_lose_their_middle_with_the_full_path_in_the_tooltip(qtbot):
    view = _view(qtbot)
    shown = _drawn_text(view, 0, NAME)
    assert "…" in shown and shown.endswith(".jpeg") and not shown.startswith("…")  # start and extension stay visible
    index = view.proxy.index(0, NAME)
    assert index.data(Qt.ItemDataRole.ToolTipRole) == f"/archive/study/0-{LONG}"
    assert _drawn_text(view, 0, CLASS) == "PNEUMONIA"  # other columns are not cut


def test_columns_fit_their_text_and_can_be_resized(qtbot):
    view = _view(qtbot, width=600)
    table, header = view.table, view.table.horizontalHeader()
    metrics = table.fontMetrics()
    for col, widest in ((STATUS, "no model"), (STATUS, "cancelled"), (CLASS, "OUT_OF_SCOPE"), (PROB, "> 99.9%")):
        assert metrics.horizontalAdvance(widest) < table.columnWidth(col) - 6, (col, widest)
    for col in range(header.count()):  # the header text and its sort arrow fit
        assert header.sectionSizeFromContents(col).width() <= header.sectionSize(col), col
        assert header.sectionResizeMode(col) == header.ResizeMode.Interactive
    assert header.stretchLastSection()
    others = sum(header.sectionSize(c) for c in range(1, header.count()))
    assert abs(header.sectionSize(NAME) + others - table.viewport().width()) <= 1  # the name fills the rest
    header.resizeSection(NAME, 500)  # the user widens the name: the table scrolls sideways, the width stays
    view.resize(700, 400)
    qtbot.waitUntil(lambda: table.viewport().width() > 650)
    assert header.sectionSize(NAME) == 500
    header.resizeSection(CLASS, 150)
    assert header.sectionSize(CLASS) == 150


def test_probabilities_read_sensibly_and_sort_by_value(qtbot):
    view = _view(qtbot)
    texts = [view.proxy.index(r, PROB).data() for r in range(4)]
    assert texts == ["> 99.9%", "< 0.1%", "50.0%", "> 99.9%"]
    view.table.sortByColumn(PROB, Qt.SortOrder.DescendingOrder)
    names = [view.proxy.index(r, NAME).data() for r in range(4)]
    assert [n.split("-")[0] for n in names] == ["0", "3", "2", "1"]  # 0.99999 before 0.9996, though both read "> 99.9%"


def test_the_window_layout_lets_the_list_grow(qtbot, window):
    window.resize(1366, 768)
    splitter = window.splitter
    total = sum(splitter.sizes())
    splitter.moveSplitter(900, 1)  # the list takes what the image's and the details' minimum widths leave
    qtbot.waitUntil(lambda: splitter.sizes()[0] >= 700)
    assert sum(splitter.sizes()) == total
    assert QSize(window.size()) == QSize(1366, 768)
