"""The results panel: filter strip and the sortable table of files."""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QComboBox, QHBoxLayout, QLineEdit, QTableView, QVBoxLayout, QWidget

from .results_model import ERROR, NAME, PROB, READER, STATUS, ResultsFilter, ResultsModel
from .selection import KeptSelection
from .table_look import ColumnSizer, MiddleElideDelegate


class ResultsTable(QTableView):
    """A row-selecting table where Home/End go to the first/last row."""

    def moveCursor(self, action, modifiers):
        model = self.model()
        if model is not None and model.rowCount() and action in (
                QAbstractItemView.CursorAction.MoveHome, QAbstractItemView.CursorAction.MoveEnd):
            row = 0 if action == QAbstractItemView.CursorAction.MoveHome else model.rowCount() - 1
            return model.index(row, max(0, self.currentIndex().column()))
        return super().moveCursor(action, modifiers)


class ResultsView(QWidget):
    """Shows a :class:`ResultsModel` through a :class:`ResultsFilter`; reports the current source row."""

    currentRowChanged = Signal(int)  # source row, -1 when none

    def __init__(self, model: ResultsModel, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.proxy = ResultsFilter(self)
        self.proxy.setSourceModel(model)
        self.filter_box = QComboBox()
        self.filter_box.setToolTip("Show all files, one predicted class, images out of the model's scope, unstable verdicts (a border or a "
                                   "blur changes them), verdicts whose evidence lies outside the chest, or failed files only")
        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter by name")
        self.search.setClearButtonEnabled(True)
        self.table = ResultsTable()
        self.kept = KeptSelection(self.table, self.proxy)  # (before setModel: see KeptSelection)
        self.table.setModel(self.proxy)
        self.kept.attach()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setShowGrid(False)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.table.setItemDelegateForColumn(NAME, MiddleElideDelegate(self.table))
        self.table.horizontalHeader().setHighlightSections(False)
        self.sizer = ColumnSizer(self.table, lambda col: (model.width_hint(col), model.width_samples(col), model.icon_samples(col)),
                                 optional=(READER, PROB, STATUS))
        self.sizer.fit()
        model.headerDataChanged.connect(lambda *_: self.sizer.fit())
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.filter_box)
        top.addWidget(self.search, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 0, 4)
        layout.addLayout(top)
        layout.addWidget(self.table)
        self.stability_checked = True
        self.set_classes([])
        self.filter_box.currentIndexChanged.connect(lambda _i: self._refilter(self.proxy.set_mode, self.filter_box.currentData()))
        self.search.textChanged.connect(lambda text: self._refilter(self.proxy.setFilterFixedString, text))
        self.table.horizontalHeader().sortIndicatorChanged.connect(lambda *_: self.kept.reveal())
        self.kept.currentRowChanged.connect(self.currentRowChanged)

    def set_classes(self, names: list[str]) -> None:
        current = self.filter_box.currentData()
        self.filter_box.blockSignals(True)
        self.filter_box.clear()
        self.filter_box.addItem("All files", ResultsFilter.ALL)
        for n in names:
            self.filter_box.addItem(f"{n} only", n)
        self.filter_box.addItem("Out of scope only", ResultsFilter.OUT_OF_SCOPE)
        self.filter_box.addItem("Unstable only", ResultsFilter.UNSTABLE)
        self.filter_box.addItem("Check framing only", ResultsFilter.EVIDENCE_OUTSIDE)
        self.filter_box.addItem("Errors only", ResultsFilter.ERRORS)
        i = self.filter_box.findData(current)
        self.filter_box.setCurrentIndex(max(i, 0))
        self.filter_box.blockSignals(False)
        self.proxy.set_mode(self.filter_box.currentData())
        self.set_stability_checked(self.stability_checked)

    def set_stability_checked(self, on: bool) -> None:
        """Offer "Unstable only" only while the stability check runs: an empty list must not read as "all stable"."""
        self.stability_checked = on
        item = self.filter_box.model().item(self.filter_box.findData(ResultsFilter.UNSTABLE))
        item.setEnabled(on)
        item.setToolTip("" if on else "The stability check is off (Model > Stability Check): nothing to filter by")
        if not on and self.filter_box.currentData() == ResultsFilter.UNSTABLE:
            self.filter_box.setCurrentIndex(0)

    def current_source_row(self) -> int:
        idx = self.table.currentIndex()
        return self.proxy.mapToSource(idx).row() if idx.isValid() else -1

    def select_source_row(self, row: int) -> None:
        idx = self.proxy.mapFromSource(self.model.index(row, 0))
        if idx.isValid():
            self.table.selectionModel().setCurrentIndex(
                idx, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
            self.table.scrollTo(idx)

    def select_first(self) -> None:
        if self.proxy.rowCount():
            self.select_source_row(self.proxy.mapToSource(self.proxy.index(0, 0)).row())

    def first_readable_row(self) -> int:
        """The source row of the first file in view order that has not failed (-1: none)."""
        for r in range(self.proxy.rowCount()):
            row = self.proxy.mapToSource(self.proxy.index(r, 0)).row()
            if self.model.row(row).status != ERROR:
                return row
        return -1

    def neighbour_rows(self, ahead: int = 1, behind: int | None = None) -> list[int]:
        """Source rows after (nearest first) and then before the current one in view order (for prefetching)."""
        idx = self.table.currentIndex()
        if not idx.isValid():
            return []
        behind = ahead if behind is None else behind
        rows = []
        for d in [*range(1, ahead + 1), *range(-1, -behind - 1, -1)]:
            r = idx.row() + d
            if 0 <= r < self.proxy.rowCount():
                rows.append(self.proxy.mapToSource(self.proxy.index(r, 0)).row())
        return rows

    def _refilter(self, apply, value) -> None:
        """Change the filter, and bring the selected file into view (it stays selected while hidden)."""
        apply(value)
        self.kept.reveal()
