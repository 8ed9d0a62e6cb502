"""The results table: one row per file (a Qt model, not a widget per row) and its filter proxy.

Its columns are the core's :func:`~cxrviewer.core.results.columns.table_columns` (header, text, sort
key, width, tooltip), plus the row's status, which is the table's own.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor, QIcon
from PySide6.QtWidgets import QApplication, QStyle

from ..core.results.columns import Batch, Column, table_columns
from ..core.results.reader_study import ReaderStudy, relabel
from ..core.results.file_result import OUT_OF_SCOPE, FileResult
from . import theme

QUEUED, DONE, ERROR, CANCELLED, NO_MODEL = "queued", "done", "error", "cancelled", "no model"
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
RESULT_ROLE = Qt.ItemDataRole.UserRole + 2
PATH_ROLE = Qt.ItemDataRole.UserRole + 3

NAME, STATUS, CLASS, PROB, READER = range(5)  # where table_columns() and the status land
STATUS_WIDTH = 62
_STATUS_ORDER = {ERROR: 0, QUEUED: 1, NO_MODEL: 2, CANCELLED: 3, DONE: 4}
_ERROR_COLOUR = QColor(theme.ERROR)
_MUTED_COLOUR = QColor(theme.MUTED)
_POSITIVE_COLOUR = QColor(theme.POSITIVE)
_WRONG_COLOUR = QColor(theme.DISAGREES_WITH_TRUTH)


@dataclass
class Row:
    path: Path
    status: str = QUEUED
    result: FileResult | None = None


@functools.cache
def warning_icon() -> QIcon:
    """The mark beside a verdict whose checks found something (the same warning sign the style draws elsewhere)."""
    return QApplication.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)


def _columns(batch: Batch) -> list[Column | None]:
    name, label, prob, *more = table_columns(batch)
    return [name, None, label, prob, *more]  # None: the status


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
        self.batch = Batch()
        self.columns = _columns(self.batch)
        self.study = ReaderStudy()  # the reader's entries; results get theirs as they arrive

    # -- filling -----------------------------------------------------------------
    def set_paths(self, paths: list[Path], status: str = QUEUED) -> None:
        self.beginResetModel()
        self._sort_keys.clear()
        self._rows = [Row(Path(p), status) for p in paths]
        self._index = {r.path: i for i, r in enumerate(self._rows)}
        self.endResetModel()

    def set_batch(self, batch: Batch) -> None:
        """The model's facts (classes, positive class, threshold, name): they decide the columns' text,
        and the threshold every stored result's label (see :func:`~cxrviewer.core.results.reader_study.relabel`)."""
        self.batch = batch
        relabel(self.results(), batch.threshold, batch.positive)
        self.columns = _columns(batch)
        self._sort_keys.clear()
        self.headerDataChanged.emit(Qt.Orientation.Horizontal, 0, len(self.columns) - 1)
        if self._rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, len(self.columns) - 1))

    @property
    def positive(self) -> str | None:
        return self.batch.positive

    def apply(self, results: list[FileResult]) -> None:
        """Store a chunk of results (``result.index`` is the row) and refresh those rows."""
        rows = [r.index for r in results if 0 <= r.index < len(self._rows)]
        if not rows:
            return
        self._sort_keys.clear()
        relabel(results, self.batch.threshold, self.batch.positive)
        for r in results:
            if 0 <= r.index < len(self._rows):
                row = self._rows[r.index]
                row.result = self.study.attach(r)
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

    # -- Qt model API ------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.columns):
            return None
        spec = self.columns[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return "Status" if spec is None else spec.header
        if role == Qt.ItemDataRole.ToolTipRole:
            return "Queued, done, error, cancelled or no model" if spec is None else spec.tip or None
        return None

    def width_hint(self, section: int) -> int:
        spec = self.columns[section]
        return STATUS_WIDTH if spec is None else spec.width

    def icon_samples(self, section: int) -> list[str]:
        """Texts of the column that may show beside an icon (the status "done" with a check's warning sign)."""
        return [DONE] if section == STATUS else []

    def width_samples(self, section: int) -> list[str]:
        """Texts the column must show in full whatever the rows hold: every status, every class, the widest percentage."""
        spec = self.columns[section]
        if spec is None:
            return list(_STATUS_ORDER)
        if section in (CLASS, READER):
            return [*self.batch.class_names, *((OUT_OF_SCOPE,) if section == CLASS else ())]
        return [spec.fmt(0.99999), spec.fmt(0.55555)] if section == PROB else []

    def _cell(self, row: Row, col: int) -> str:
        spec = self.columns[col]
        return row.status if spec is None else spec.text(row.result or FileResult(row.path), self.batch)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not (0 <= index.row() < len(self._rows)):
            return None
        row, col = self._rows[index.row()], index.column()
        res = row.result
        if role == Qt.ItemDataRole.DisplayRole:
            return self._cell(row, col)
        elif role == SORT_ROLE:
            return self._sort_key(row, col)
        elif role == Qt.ItemDataRole.ToolTipRole:
            if res is not None and res.error:
                return f"{row.path}\n{res.error}"
            lines = [str(row.path)]
            if col == CLASS and _disagrees_with_truth(res):
                lines.append(f"The folder says {res.reader.truth}")
            if col == STATUS:
                lines += [w[:1].upper() + w[1:] for w in (res.warnings() if res is not None else [])]
            return "\n".join(lines)
        elif role == Qt.ItemDataRole.DecorationRole:
            if col == STATUS and (res.warnings() if res is not None else []):
                return warning_icon()
        elif role == Qt.ItemDataRole.BackgroundRole:
            if col == CLASS and _disagrees_with_truth(res):
                return _WRONG_COLOUR
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

    def _sort_key(self, row: Row, col: int) -> tuple[bool, object]:
        """(no value, the column's sort key): rows without a value sort last in either order."""
        spec = self.columns[col]
        if spec is None:
            return False, _STATUS_ORDER.get(row.status, 9)
        value = spec.get(row.result or FileResult(row.path), self.batch)
        return value is None or value == "", spec.sort(value)

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


def _disagrees_with_truth(res: FileResult | None) -> bool:
    """The model's call differs from the class named by the file's folder (as the evaluation counts it:
    out-of-scope images by the call their verdict withholds)."""
    truth = res.reader.truth if res is not None and res.reader is not None else None
    return truth is not None and res.ok and res.predicted not in (None, truth)


class ResultsFilter(QSortFilterProxyModel):
    """Sorts by the model's ``SORT_ROLE`` and keeps rows of one class, errors only, out-of-scope
    images only, unstable verdicts only, verdicts whose evidence lies outside the chest only, or all;
    plus a case-insensitive file-name filter."""

    ALL, ERRORS, OUT_OF_SCOPE = "", "\x00errors", "\x00out-of-scope"
    UNSTABLE, EVIDENCE_OUTSIDE = "\x00unstable", "\x00evidence-outside"
    #: Modes that keep the rows whose result's verdict checks say so.
    CHECK_MODES = {UNSTABLE: lambda c: bool(c.unstable), EVIDENCE_OUTSIDE: lambda c: c.evidence_outside}

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
        """``ResultsFilter.ALL``, ``ERRORS``, ``OUT_OF_SCOPE``, ``UNSTABLE``, ``EVIDENCE_OUTSIDE`` or a class name."""
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
            (a_missing, a), (b_missing, b) = keys[left.row()], keys[right.row()]
            if a_missing or b_missing:  # empty cells last, ascending or descending
                return b_missing and not a_missing if self.sortOrder() == Qt.SortOrder.AscendingOrder else a_missing and not b_missing
            return a < b
        return super().lessThan(left, right)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        model: ResultsModel = self.sourceModel()
        row = model.row(source_row)
        if self._mode == self.ERRORS and row.status != ERROR:
            return False
        if self._mode == self.OUT_OF_SCOPE and (row.result is None or row.result.in_scope is not False):
            return False
        check = self.CHECK_MODES.get(self._mode)
        if check is not None and (row.result is None or row.result.checks is None or not check(row.result.checks)):
            return False
        if (self._mode not in (self.ALL, self.ERRORS, self.OUT_OF_SCOPE, *self.CHECK_MODES)
                and (row.result is None or row.result.label != self._mode)):
            return False
        return super().filterAcceptsRow(source_row, source_parent)
