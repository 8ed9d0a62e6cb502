"""File > Keep Results Between Runs and File > Clear Results Cache: the viewer's side of the results cache
(:mod:`cxrviewer.core.results.results_cache`, shared with ``cxrviewer predict``)."""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction

from ..core.results.results_cache import ResultsCache
from . import dialogs


def clear_cache(_cancel) -> tuple[int, str]:
    """Forget every cached result (off the GUI thread); returns (how many, the cache folder)."""
    cache = ResultsCache()
    try:
        return cache.clear(), str(cache.folder)
    finally:
        cache.close()


class CacheActions(QObject):
    """The two File menu items; the choice is kept in the settings (``results_cache``)."""

    def __init__(self, window):
        super().__init__(window)
        self.w = window
        self.use_act = QAction("&Keep Results Between Runs", window, checkable=True,
                               statusTip="Take known results from the results cache (same file bytes, model, precision "
                                         "and checks) and classify only new or changed files; a cancelled batch resumes")
        self.use_act.setChecked(window.settings.results_cache)
        self.use_act.toggled.connect(self.set_used)
        self.clear_act = QAction("C&lear Results Cache...", window,
                                 statusTip="Forget every kept result (the viewer's and cxrviewer predict's)")
        self.clear_act.triggered.connect(self.clear)

    @property
    def actions(self) -> list[QAction]:
        return [self.use_act, self.clear_act]

    def set_used(self, on: bool) -> None:
        self.w.settings.results_cache = on
        self.w.message.show_message("Results are kept between runs" if on else
                                    "Results are not kept: every file is classified", 8000)

    def clear(self) -> None:
        """Ask, then empty the cache off the GUI thread (the batch under way keeps what it has)."""
        if not dialogs.confirm(self.w, "Clear Results Cache", "Forget every kept result?\n\nFiles opened again, here "
                               "or with cxrviewer predict, will be classified again."):
            return
        task = self.w.tasks.start(clear_cache, name="clear-cache")
        task.done.connect(lambda out: self.w.message.show_message(f"Results cache cleared: {out[0]} result(s) "
                                                                  f"forgotten ({out[1]})", 10000))
        task.failed.connect(lambda msg: dialogs.show_error(self.w, "Clear Results Cache", msg))
