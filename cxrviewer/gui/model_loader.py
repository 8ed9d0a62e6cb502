"""Loading a model file in the background: the newest choice wins, and a load can be cancelled."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from .worker import Task, TaskGroup


def load_model(path: Path):
    """The model in ``path``; torch is imported here, on the loading thread, not before the window shows."""
    from ..core.model.checkpoint import load_model as load

    return load(path)


class ModelLoader(QObject):
    """Loads model files as tasks of ``tasks``; a new :meth:`load` cancels the one still running.

    ``loaded(path, model)``, ``failed(path, message)`` and ``cancelled(path)`` report the newest
    load only; a replaced or cancelled load never reports a model.
    """

    loaded = Signal(object, object)
    failed = Signal(object, str)
    cancelled = Signal(object)

    def __init__(self, tasks: TaskGroup, parent: QObject | None = None):
        super().__init__(parent)
        self.tasks = tasks
        self._task: Task | None = None

    @property
    def loading(self) -> bool:
        return self._task is not None

    def load(self, path: Path) -> None:
        self.cancel()
        path = Path(path)
        task = self.tasks.start(lambda _cancel: load_model(path), name="load-model")
        task.done.connect(lambda model: self.loaded.emit(path, model))
        task.failed.connect(lambda message: self.failed.emit(path, message))
        task.finished.connect(lambda completed, t=task: self._on_finished(t, path, completed))
        self._task = task

    def cancel(self) -> None:
        """Drop the load in progress (``cancelled`` follows once its thread has stopped)."""
        if self._task is not None:
            self._task.cancel()

    def _on_finished(self, task: Task, path: Path, completed: bool) -> None:
        if task is not self._task:
            return  # replaced by a newer load
        self._task = None
        if not completed:
            self.cancelled.emit(path)
