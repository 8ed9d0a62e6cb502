"""How the results table reads: file names elided in the middle, columns wide enough for their text and
resizable, the name column taking the room the others leave until the user sizes it."""

from __future__ import annotations

from contextlib import contextmanager

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QHeaderView, QStyle, QStyledItemDelegate, QTableView

MIN_NAME_WIDTH = 170


def elide_path(text: str, width: int, metrics) -> str:
    """``text`` ("folder/name") no wider than ``width`` for ``metrics``: the folder shortened first
    ("PNEU…/IM-0601-0001.jpeg"), then the name cut in the middle ("N…/NORMAL2-IM…0001.jpeg")."""
    if metrics.horizontalAdvance(text) <= width:
        return text
    folder, _, name = text.rpartition("/")
    if folder:
        for keep in range(len(folder) - 1, 0, -1):
            shorter = f"{folder[:keep]}\u2026/{name}"
            if metrics.horizontalAdvance(shorter) <= width:
                return shorter
        prefix = f"{folder[:1]}\u2026/"
        return prefix + metrics.elidedText(name, Qt.TextElideMode.ElideMiddle, max(0, width - metrics.horizontalAdvance(prefix)))
    return metrics.elidedText(text, Qt.TextElideMode.ElideMiddle, width)


class MiddleElideDelegate(QStyledItemDelegate):
    """Draws a file name cut where it says least: its folder first, then the middle of the name
    ("PNEU…/NORMAL2-IM…0001.jpeg"), so the start and the end of the name stay visible (cut on the left,
    "IM-0601-0001.jpeg" and "NORMAL2-IM-0601-0001.jpeg" read the same)."""

    def initStyleOption(self, option, index) -> None:
        super().initStyleOption(option, index)
        option.textElideMode = Qt.TextElideMode.ElideMiddle
        view = self.parent()
        margin = 2 * (view.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, view) + 1) + 2
        option.text = elide_path(option.text, option.rect.width() - margin, option.fontMetrics)


def text_width(table: QTableView, texts: list[str]) -> int:
    """Width a cell needs to show the widest of ``texts`` in full (text, the cell's margins and focus frame)."""
    if not texts:
        return 0
    margin = table.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, table) + 1
    return max(map(table.fontMetrics().horizontalAdvance, texts)) + 2 * margin + 8


def column_width(table: QTableView, col: int, hint: int, samples: list[str], icon_samples: list[str] = ()) -> int:
    """The larger of the spec's hint, the header's text with its sort arrow, the widest sample text, and the
    widest of ``icon_samples`` with an icon before it."""
    header = table.horizontalHeader()
    room = table.style().pixelMetric(QStyle.PixelMetric.PM_SmallIconSize, None, table) + 6
    return max(hint, header.sectionSizeFromContents(col).width() + 4, text_width(table, samples),
               text_width(table, list(icon_samples)) + room if icon_samples else 0)


class ColumnSizer(QObject):
    """Sizes a results table's columns: every column but the first from its text (:meth:`fit`); the first
    (the file name) fills the rest of the view until the user drags it, from then on it keeps their width.
    The last section stretches; all can be resized. ``optional`` columns (first hidden first) are hidden
    while the view is too narrow to show them beside a name column :data:`MIN_NAME_WIDTH` wide, and come
    back when it widens (what they say is in the details panel too)."""

    def __init__(self, table: QTableView, widths, optional: tuple[int, ...] = ()):
        super().__init__(table)
        self.table, self._widths = table, widths  # widths(col) -> (hint, sample texts[, texts beside an icon])
        self.optional = tuple(optional)
        self._wanted: dict[int, int] = {}  # column -> its width when shown
        self._user_name_width = False
        self._sizing = False
        self._shown = False  # fitted again when first laid out (the style's fonts and margins apply by then)
        header = table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.setMinimumSectionSize(40)
        header.sectionResized.connect(self._on_resized)
        table.viewport().installEventFilter(self)

    def fit(self) -> None:
        """Size every column but the name from its text, then give the name the room that is left."""
        header = self.table.horizontalHeader()
        with self._programmatic():
            for col in range(1, header.count()):
                hint, samples, *icon_samples = self._widths(col)
                self._wanted[col] = column_width(self.table, col, hint, samples, *icon_samples)
                header.resizeSection(col, self._wanted[col])
        self._fill_name()

    def _show_what_fits(self) -> None:
        """Hide the optional columns, first first, that would squeeze the name below its minimum."""
        header = self.table.horizontalHeader()
        room = self.table.viewport().width() - MIN_NAME_WIDTH
        cols = [c for c in range(1, header.count())]
        hidden = set()
        for col in self.optional:
            if sum(self._wanted.get(c, header.sectionSize(c)) for c in cols if c not in hidden) <= room:
                break
            if col < header.count():
                hidden.add(col)
        with self._programmatic():
            for col in cols:
                if header.isSectionHidden(col) != (col in hidden):
                    header.setSectionHidden(col, col in hidden)
                    if col not in hidden and col in self._wanted:
                        header.resizeSection(col, self._wanted[col])

    def _fill_name(self) -> None:
        header = self.table.horizontalHeader()
        if not header.count():
            return
        self._show_what_fits()
        if self._user_name_width:
            return
        others = sum(header.sectionSize(c) for c in range(1, header.count()) if not header.isSectionHidden(c))
        with self._programmatic():
            header.resizeSection(0, max(MIN_NAME_WIDTH, self.table.viewport().width() - others))

    def _on_resized(self, col: int, _old: int, _new: int) -> None:
        if col == 0 and not self._sizing:
            self._user_name_width = True

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Resize:
            self.fit() if not self._shown else self._fill_name()
            self._shown = True
        return False

    @contextmanager
    def _programmatic(self):
        """Resizes inside are the sizer's own, not the user's."""
        self._sizing = True
        try:
            yield
        finally:
            self._sizing = False
