"""The results table: one row per file (a Qt model, not a widget per row) and its filter proxy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor

from ..core.results import FileResult

QUEUED, DONE, ERROR, CANCELLED, NO_MODEL = "queued", "done", "error", "cancelled", "no model"
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
RESULT_ROLE = Qt.ItemDataRole.UserRole + 2
PATH_ROLE = Qt.ItemDataRole.UserRole + 3

NAME, STATUS, CLASS, PROB = range(4)
_STATUS_ORDER = {ERROR: 0, QUEUED: 1, NO_MODEL: 2, CANCELLED: 3, DONE: 4}
_ERROR_COLOUR = QColor("#d9534f")
_MUTED_COLOUR = QColor("#8a8f98")
_POSITIVE_COLOUR = QColor("#e8833a")


@dataclass
class Row:
    path: Path
    status: str = QUEUED
    result: FileResult | None = None


class ResultsModel(QAbstractTableModel):
    """Files of the current batch with their status, predicted class and probability.

    The probability column is that of the positive class for a two-class model
    with a decision threshold, else that of the predicted (top) class.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self._rows: list[Row] = []
        self._index: dict[Path, int] = {}
        self._sort_keys: dict[int, list] = {}  # column -> key per row, rebuilt after any change
        self.class_names: list[str] = []
        self.positive: str | None = None

    # -- filling -----------------------------------------------------------------
    def set_paths(self, paths: list[Path], status: str = QUEUED) -> None:
        self.beginResetModel()
        self._sort_keys.clear()
        self._rows = [Row(Path(p), status) for p in paths]
        self._index = {r.path: i for i, r in enumerate(self._rows)}
        self.endResetModel()

    def set_classes(self, class_names: list[str], positive: str | None = None) -> None:
        self.class_names = list(class_names)
        self.positive = positive
        self._sort_keys.clear()
        self.headerDataChanged.emit(Qt.Orientation.Horizontal, PROB, PROB)

    def apply(self, results: list[FileResult]) -> None:
        """Store a chunk of results (``result.index`` is the row) and refresh those rows."""
        rows = [r.index for r in results if 0 <= r.index < len(self._rows)]
        if not rows:
            return
        self._sort_keys.clear()
        for r in results:
            if 0 <= r.index < len(self._rows):
                row = self._rows[r.index]
                row.result = r
                row.status = DONE if r.ok else ERROR
        self.dataChanged.emit(self.index(min(rows), 0), self.index(max(rows), self.columnCount() - 1))

    def mark_unfinished(self, status: str = CANCELLED) -> None:
        """Give every still-queued row ``status`` (e.g. after Cancel)."""
        changed = [i for i, r in enumerate(self._rows) if r.status == QUEUED]
        self._sort_keys.clear()
        for i in changed:
            self._rows[i].status = status
        if changed:
            self.dataChanged.emit(self.index(changed[0], STATUS), self.index(changed[-1], STATUS))

    def reset_status(self, status: str = QUEUED) -> None:
        """Forget every result (e.g. before re-running with another model)."""
        if not self._rows:
            return
        self._sort_keys.clear()
        for r in self._rows:
            r.status, r.result = status, None
        self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, self.columnCount() - 1))

    # -- queries -----------------------------------------------------------------
    @property
    def paths(self) -> list[Path]:
        return [r.path for r in self._rows]

    def row(self, i: int) -> Row:
        return self._rows[i]

    def row_of(self, path: Path) -> int | None:
        return self._index.get(Path(path))

    def results(self) -> list[FileResult]:
        return [r.result for r in self._rows if r.result is not None]

    def count(self, status: str) -> int:
        return sum(1 for r in self._rows if r.status == status)

    def shown_probability(self, result: FileResult | None) -> float | None:
        if result is None or not result.ok or not result.probs:
            return None
        if self.positive and self.positive in result.probs:
            return result.probs[self.positive]
        return result.probs.get(result.label or "", max(result.probs.values()))

    # -- Qt model API ------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else 4

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            prob = f"P({self.positive})" if self.positive else "Probability"
            return ("File", "Status", "Class", prob)[section] if 0 <= section < 4 else None
        if role == Qt.ItemDataRole.ToolTipRole and section == PROB:
            return (f"Calibrated probability of {self.positive}" if self.positive
                    else "Calibrated probability of the predicted class")
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not (0 <= index.row() < len(self._rows)):
            return None
        row, col = self._rows[index.row()], index.column()
        res = row.result
        if role == Qt.ItemDataRole.DisplayRole:
            if col == NAME:
                return row.path.name
            if col == STATUS:
                return row.status
            if col == CLASS:
                return res.label if res is not None and res.ok else ""
            if col == PROB:
                p = self.shown_probability(res)
                return "" if p is None else f"{100 * p:.1f}%"
        elif role == SORT_ROLE:
            return self._sort_key(row, col)
        elif role == Qt.ItemDataRole.ToolTipRole:
            if res is not None and res.error:
                return f"{row.path}\n{res.error}"
            return str(row.path)
        elif role == Qt.ItemDataRole.ForegroundRole:
            if row.status == ERROR:
                return _ERROR_COLOUR
            if col == STATUS and row.status != DONE:
                return _MUTED_COLOUR
            if col == CLASS and res is not None and self.positive and res.label == self.positive:
                return _POSITIVE_COLOUR
        elif role == Qt.ItemDataRole.TextAlignmentRole:
            if col == PROB:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        elif role == RESULT_ROLE:
            return res
        elif role == PATH_ROLE:
            return row.path
        return None

    def _sort_key(self, row: Row, col: int):
        res = row.result
        if col == NAME:
            return row.path.name.lower()
        if col == STATUS:
            return _STATUS_ORDER.get(row.status, 9)
        if col == CLASS:
            return res.label if res is not None and res.ok and res.label else ""
        if col == PROB:
            p = self.shown_probability(res)
            return -1.0 if p is None else p
        return None

    def sort_keys(self, col: int) -> list:
        """``SORT_ROLE`` of every row in column ``col`` (cached until the model changes)."""
        keys = self._sort_keys.get(col)
        if keys is None:
            keys = self._sort_keys[col] = [self._sort_key(r, col) for r in self._rows]
        return keys

    def flags(self, index):
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren


class ResultsFilter(QSortFilterProxyModel):
    """Sorts by the model's ``SORT_ROLE`` and keeps rows of one class, errors only, or all;
    plus a case-insensitive file-name filter."""

    ALL, ERRORS = "", "\x00errors"

    def __init__(self, parent=None):
        super().__init__(parent)
        self._mode = self.ALL
        self.setSortRole(SORT_ROLE)
        self.setFilterKeyColumn(NAME)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setDynamicSortFilter(True)

    @property
    def mode(self) -> str:
        return self._mode

    def set_mode(self, mode: str) -> None:
        """``ResultsFilter.ALL``, ``ResultsFilter.ERRORS`` or a class name."""
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.9
            self.beginFilterChange()
            self._mode = mode
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self._mode = mode
            self.invalidateFilter()

    def lessThan(self, left: QModelIndex, right: QModelIndex) -> bool:
        """One Python call per comparison on cached keys (10,000 rows sort in a fraction of a second)."""
        model = self.sourceModel()
        if isinstance(model, ResultsModel) and self.sortRole() == SORT_ROLE:
            keys = model.sort_keys(left.column())
            return keys[left.row()] < keys[right.row()]
        return super().lessThan(left, right)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        model: ResultsModel = self.sourceModel()
        row = model.row(source_row)
        if self._mode == self.ERRORS and row.status != ERROR:
            return False
        if self._mode not in (self.ALL, self.ERRORS) and (row.result is None or row.result.label != self._mode):
            return False
        return super().filterAcceptsRow(source_row, source_parent)
