"""The results table's selection, kept by file rather than by row: across sorts, filters and a new
classification of the batch.

A filter that hides the selected file leaves it selected in memory (the image and details stay on
show); when a later filter shows the file again, it is selected again and scrolled into view.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QObject, QSortFilterProxyModel, QTimer, Signal
from PySide6.QtWidgets import QAbstractItemView

_SELECT = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows


class KeptSelection(QObject):
    """Remembers the selected file of ``table`` (showing ``proxy`` over a ``ResultsModel``).

    Build it before ``table.setModel(proxy)``: it must hear of rows about to go before the view
    moves the selection to a neighbour, which it undoes. ``currentRowChanged`` gives the source row
    of the file the user is on; -1 only when there is none (a new batch).
    """

    currentRowChanged = Signal(int)

    def __init__(self, table: QAbstractItemView, proxy: QSortFilterProxyModel):
        super().__init__(table)
        self.table, self.proxy = table, proxy
        self.path: Path | None = None
        self._hiding = False  # the selected row is being filtered out: the view's moves are not the user's
        proxy.rowsAboutToBeRemoved.connect(self._before_remove)
        proxy.rowsRemoved.connect(self._after_remove)
        proxy.rowsInserted.connect(self._restore)
        proxy.layoutChanged.connect(self._restore)
        proxy.modelReset.connect(self._on_reset)

    def attach(self) -> None:
        """Follow the view's current row (call after ``table.setModel(proxy)``)."""
        self.table.selectionModel().currentRowChanged.connect(self._on_current)

    def source_row(self) -> int:
        """The selected file's row in the source model (-1: none), shown or hidden by a filter."""
        row = self.proxy.sourceModel().row_of(self.path) if self.path is not None else None
        return -1 if row is None else row

    def reveal(self) -> None:
        """Scroll the selected row into view once the view has laid out its rows (after a filter or sort)."""
        QTimer.singleShot(0, self, self._scroll_to_current)

    def _scroll_to_current(self) -> None:
        if self.table.currentIndex().isValid():
            self.table.scrollTo(self.table.currentIndex())

    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if self._hiding:
            return
        if current.isValid():
            row = self.proxy.mapToSource(current).row()
            self.path = self.proxy.sourceModel().row(row).path
            self.currentRowChanged.emit(row)
        elif self.source_row() < 0:
            self.path = None
            self.currentRowChanged.emit(-1)

    def _before_remove(self, parent: QModelIndex, first: int, last: int) -> None:
        current = self.table.currentIndex()
        self._hiding = current.isValid() and not parent.isValid() and first <= current.row() <= last

    def _after_remove(self, *_args) -> None:
        if self._hiding:
            self.table.selectionModel().clear()  # no neighbour stands in for the hidden file
            self._hiding = False

    def _restore(self, *_args) -> None:
        """Select the remembered file again when it is back in view (none remembered: the first row)."""
        if self.table.currentIndex().isValid():
            return
        row = self.source_row()
        if row >= 0:
            index = self.proxy.mapFromSource(self.proxy.sourceModel().index(row, 0))
        else:
            index = self.proxy.index(0, 0) if self.path is None else QModelIndex()
        if index.isValid():
            self.table.selectionModel().setCurrentIndex(index, _SELECT)
            self.reveal()

    def _on_reset(self) -> None:
        self.path = None
        self.currentRowChanged.emit(-1)
