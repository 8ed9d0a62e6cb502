"""Background work for the viewer: the batch engine and one-off tasks on QThreads.

Workers are QObjects moved to their own QThread (``thread.started -> worker.run``,
``finished -> thread.quit``, ``deleteLater``). They send plain data only, tagged
with a generation number so that late signals from a cancelled run are ignored.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from ..core.inference import Predictor, scan_inputs
from ..core.results import FileResult

CHUNK_SECONDS = 0.1  # results are sent to the GUI at most this often (plus the first at once)
CHUNK_MAX = 256
FIRST_BATCH = 2  # a small first batch puts the first result on screen sooner


BACKGROUND_NICE = 10  # Linux: batch threads yield the CPU to the GUI thread


def lower_thread_priority(nice: int = BACKGROUND_NICE) -> None:
    """Make the calling thread (and the threads it starts: decoders, torch's pool) nicer, on Linux.

    Linux nice values are per thread, so the GUI thread keeps its priority and
    stays responsive while a batch keeps every core busy. No-op elsewhere.
    """
    if sys.platform.startswith("linux"):
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), nice))
        except (AttributeError, OSError):
            pass


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


class BatchWorker(QObject):
    """Scans ``inputs`` and, when a model is given, classifies every file found."""

    scanned = Signal(int, list)        # generation, list[Path]
    results = Signal(int, list)        # generation, list[FileResult] (a chunk, in input order)
    progress = Signal(int, int, int)   # generation, done, total
    problem = Signal(int, str)         # generation, one line: an unexpected error; the batch goes on
    finished = Signal(int)             # generation

    def __init__(self, generation: int, inputs: Sequence[str | Path], model=None, device=None,
                 batch_size: int = 16, paths: list[Path] | None = None):
        super().__init__()
        self.generation = generation
        self.inputs = list(inputs)
        self.paths = paths
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.cancel = threading.Event()

    @Slot()
    def run(self) -> None:
        g = self.generation
        lower_thread_priority()
        try:
            paths = self.paths if self.paths is not None else scan_inputs(self.inputs)
            self.scanned.emit(g, list(paths))
            if self.model is not None and paths and not self.cancel.is_set():
                self._classify(paths)
        except Exception as e:  # noqa: BLE001 - shown in the window, never a crash
            self.problem.emit(g, _one_line(e))
            traceback.print_exc()
        finally:
            self.finished.emit(g)

    def _classify(self, paths: list[Path]) -> None:
        g, total = self.generation, len(paths)
        predictor = Predictor(self.model, self.device, batch_size=self.batch_size)
        pending: list[FileResult] = []
        last_sent = 0.0
        start, first_end = 0, min(total, FIRST_BATCH)
        while start < total and not self.cancel.is_set():
            end = first_end if start < first_end else total
            predictor.batch_size = FIRST_BATCH if end == first_end else self.batch_size
            done = start
            try:
                for r in predictor.predict(paths[start:end], cancel=self.cancel):
                    r.index += start
                    done = r.index + 1
                    pending.append(r)
                    now = time.monotonic()
                    if last_sent == 0.0 or now - last_sent >= CHUNK_SECONDS or len(pending) >= CHUNK_MAX:
                        self.results.emit(g, pending)
                        self.progress.emit(g, done, total)
                        pending, last_sent = [], now
                start = end
            except Exception as e:  # noqa: BLE001 - mark the failing batch and go on with the rest
                bad = paths[done:min(end, done + predictor.batch_size)]
                msg = f"unexpected error: {_one_line(e)}"
                pending += [FileResult(path=Path(p), index=done + i, error=msg) for i, p in enumerate(bad)]
                self.problem.emit(g, msg)
                traceback.print_exc()
                start = done + len(bad)
        if pending:
            self.results.emit(g, pending)
            self.progress.emit(g, pending[-1].index + 1, total)


class BatchRunner(QObject):
    """Starts, cancels and shuts down :class:`BatchWorker` runs; only the newest run reports."""

    scanned = Signal(list)
    results = Signal(list)
    progress = Signal(int, int)
    problem = Signal(str)
    finished = Signal(bool)  # True when the run completed, False when it was cancelled

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._generation = 0
        self._active: tuple[QThread, BatchWorker] | None = None
        self._retiring: dict[int, tuple[QThread, BatchWorker]] = {}

    @property
    def running(self) -> bool:
        return self._active is not None

    def start(self, inputs: Sequence[str | Path] = (), model=None, device=None, batch_size: int = 16,
              paths: list[Path] | None = None) -> int:
        """Cancel any current run and start a new one; returns its generation number."""
        self.cancel()
        self._generation += 1
        g = self._generation
        worker = BatchWorker(g, inputs, model, device, batch_size, paths)
        thread = QThread()
        thread.setObjectName(f"cxrviewer-batch-{g}")
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.scanned.connect(self._on_scanned)
        worker.results.connect(self._on_results)
        worker.progress.connect(self._on_progress)
        worker.problem.connect(self._on_problem)
        worker.finished.connect(self._on_finished)
        worker.finished.connect(thread.quit)
        thread.finished.connect(worker.deleteLater)
        thread.finished.connect(self._on_thread_finished)
        self._active = (thread, worker)
        self._retiring[g] = (thread, worker)
        thread.start()
        return g

    def cancel(self) -> bool:
        """Ask the current run to stop (non-blocking); returns whether one was running."""
        if self._active is None:
            return False
        thread, worker = self._active
        worker.cancel.set()
        self._active = None
        self.finished.emit(False)
        return True

    def shutdown(self, timeout_ms: int = 30000) -> None:
        """Cancel everything and wait until every thread this runner started has stopped."""
        self.cancel()
        for thread, worker in list(self._retiring.values()):
            worker.cancel.set()
            thread.quit()
            thread.wait(timeout_ms)
        self._retiring.clear()

    def _current(self, g: int) -> bool:
        return self._active is not None and g == self._generation

    @Slot(int, list)
    def _on_scanned(self, g: int, paths: list) -> None:
        if self._current(g):
            self.scanned.emit(paths)

    @Slot(int, list)
    def _on_results(self, g: int, chunk: list) -> None:
        if self._current(g):
            self.results.emit(chunk)

    @Slot(int, int, int)
    def _on_progress(self, g: int, done: int, total: int) -> None:
        if self._current(g):
            self.progress.emit(done, total)

    @Slot(int, str)
    def _on_problem(self, g: int, message: str) -> None:
        if self._current(g):
            self.problem.emit(message)

    @Slot()
    def _on_thread_finished(self) -> None:
        thread = self.sender()
        for g, (t, _w) in list(self._retiring.items()):
            if t is thread:
                t.wait()
                del self._retiring[g]

    @Slot(int)
    def _on_finished(self, g: int) -> None:
        if self._current(g):
            self._active = None
            self.finished.emit(True)


class TaskWorker(QObject):
    """Runs ``fn(cancel, progress)`` once; reports ``done(value)`` or ``failed(message)``."""

    progress = Signal(int, int)
    done = Signal(object)
    failed = Signal(str)
    finished = Signal()

    def __init__(self, fn: Callable[[threading.Event, Callable[[int, int], None]], Any]):
        super().__init__()
        self.fn = fn
        self.cancel = threading.Event()

    @Slot()
    def run(self) -> None:
        try:
            value = self.fn(self.cancel, self.progress.emit)
        except Exception as e:  # noqa: BLE001 - expected errors carry their own one-line text
            from ..core.errors import CxrError

            self.failed.emit(str(e) if isinstance(e, CxrError) else _one_line(e))
            if not isinstance(e, CxrError):
                traceback.print_exc()
        else:
            self.done.emit(value)
        finally:
            self.finished.emit()


class Task(QObject):
    """One background call on its own QThread, e.g. loading a model or exporting overlays.

    Connect to ``done``/``failed``/``progress`` and call :meth:`start`; :meth:`stop`
    cancels and waits. Signals arrive on the thread that created the task.
    """

    progress = Signal(int, int)
    done = Signal(object)
    failed = Signal(str)
    finished = Signal()

    def __init__(self, fn: Callable[[threading.Event, Callable[[int, int], None]], Any], name: str = "task",
                 parent: QObject | None = None):
        super().__init__(parent)
        self._worker = TaskWorker(fn)
        self._thread = QThread()
        self._thread.setObjectName(f"cxrviewer-{name}")
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.progress.connect(self._on_progress)
        self._worker.done.connect(self._on_done)
        self._worker.failed.connect(self._on_failed)
        self._worker.finished.connect(self._thread.quit)
        self._thread.finished.connect(self._on_thread_finished)
        self._cancelled = False

    def start(self) -> None:
        self._thread.start()

    def is_running(self) -> bool:
        return self._thread.isRunning()

    def stop(self, timeout_ms: int = 30000) -> None:
        """Cancel (results after this are dropped) and wait for the thread to end."""
        self._cancelled = True
        self._worker.cancel.set()
        self._thread.quit()
        self._thread.wait(timeout_ms)

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        if not self._cancelled:
            self.progress.emit(done, total)

    @Slot(object)
    def _on_done(self, value: object) -> None:
        if not self._cancelled:
            self.done.emit(value)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        if not self._cancelled:
            self.failed.emit(message)

    @Slot()
    def _on_thread_finished(self) -> None:
        self._thread.wait()
        self.finished.emit()
