"""Background work for the viewer: every task runs through :class:`Task`, on its own QThread.

A task is a plain function ``fn(cancel, *args)`` (``cancel``: a ``threading.Event``). It
returns a value (``done``) or raises (``failed``, one line); a generator function
sends each value it yields (``yielded``) and stops at the next ``yield`` once
cancelled. The thread is made as in superqt's ``new_worker_qthread`` (napari's
``create_worker``): a worker QObject moved to a QThread, ``started -> work``,
``finished -> quit``, worker and thread ``deleteLater``'d (the worker on the GUI
thread, see :meth:`_Worker.work`); the task deletes itself
once its thread has stopped. Results travel as plain data only.

:class:`TaskGroup` holds the tasks of one owner (the window) and stops them at
shutdown, checking ``wait()``: a thread that does not stop in time is kept (a
``QThread`` destroyed while running takes the process down), see :func:`stranded`.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, Signal, Slot
from superqt.utils import new_worker_qthread

from ..core.errors import CxrError
from ..core.results.file_result import FileResult
from ..core.results.results_cache import ResultsCache

if TYPE_CHECKING:
    from ..core.batch.inference import Predictor

CHUNK_SECONDS = 0.1  # results are sent to the GUI at most this often (plus the first at once)
CHUNK_MAX = 256
BACKGROUND_NICE = 10  # Linux: batch threads yield the CPU to the GUI thread
_STRANDED: list[Task] = []  # tasks whose thread did not stop at shutdown: never destroyed while running


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


def one_line(e: BaseException) -> str:
    """A user-facing line: the text of an expected error, else its type and first line."""
    if isinstance(e, CxrError):
        return str(e)
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def stranded() -> list[Task]:
    """Tasks whose thread was still running when their group shut down (kept alive on purpose)."""
    return [t for t in _STRANDED if t.running]


# -- the helper ------------------------------------------------------------------------
class _Worker(QObject):
    """Runs the task function on the task's thread and reports what happened."""

    yielded = Signal(object)
    returned = Signal(object)
    errored = Signal(str)
    finished = Signal()

    def __init__(self, fn: Callable[..., Any], args: tuple, cancel: threading.Event, stopped: threading.Event):
        super().__init__()
        self.fn, self.args, self.cancel, self.stopped = fn, args, cancel, stopped

    @Slot()
    def work(self) -> None:
        try:
            value = self.fn(self.cancel, *self.args)
            if inspect.isgenerator(value):
                value = self._drain(value)
        except Exception as e:  # noqa: BLE001 - reported as one line, never a crash
            self.errored.emit(one_line(e))
            if not isinstance(e, CxrError):
                traceback.print_exc()
        else:
            self.returned.emit(value)
        finally:
            self.fn = self.args = None  # drop images and results now, not when the object is deleted
            # Hand the worker back to the GUI thread so ``deleteLater`` destroys it there: a
            # Python QObject destroyed on this thread asks for the GIL while Qt holds a
            # connection lock, which deadlocks against a GUI thread that holds the GIL and
            # waits for that lock (seen in ``setHtml``).
            app = QCoreApplication.instance()
            if app is not None:
                self.moveToThread(app.thread())
            self.stopped.set()
            self.finished.emit()

    def _drain(self, gen: Iterator) -> Any:
        with contextlib.closing(gen):
            while not self.cancel.is_set():
                try:
                    self.yielded.emit(next(gen))
                except StopIteration as stop:
                    return stop.value
        return None


class Task(QObject):
    """``fn(cancel, *args)`` on its own QThread. Signals arrive on the thread that made the task.

    ``finished(completed)`` comes last, once the thread has stopped (``completed`` is
    False after :meth:`cancel`); after :meth:`cancel` nothing else is reported.
    The task deletes itself after ``finished``: drop references to it then.
    """

    yielded = Signal(object)
    done = Signal(object)
    failed = Signal(str)
    finished = Signal(bool)

    def __init__(self, fn: Callable[..., Any], *args: Any, name: str = "task", parent: QObject | None = None):
        super().__init__(parent)
        self.name = name
        self.cancel_event = threading.Event()
        self.stopped = threading.Event()  # set on the task's thread when ``fn`` has returned
        self._worker, self._thread = new_worker_qthread(_Worker, fn, args, self.cancel_event, self.stopped)
        self._thread.setObjectName(f"cxrviewer-{name}")
        self._worker.yielded.connect(self._on_yielded)
        self._worker.returned.connect(self._on_returned)
        self._worker.errored.connect(self._on_errored)
        self._thread.finished.connect(self._on_thread_finished)
        self._started = False

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    @property
    def running(self) -> bool:
        """Started, and its thread has not stopped."""
        thread = self._thread
        return self._started and thread is not None and shiboken6.isValid(thread) and thread.isRunning()

    def start(self) -> Task:
        self._started = True
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the function to stop (generators stop at their next ``yield``); report nothing more."""
        self.cancel_event.set()

    def wait(self, timeout_ms: int = 30000) -> bool:
        """Block until the thread has stopped; False when it is still running after ``timeout_ms``."""
        thread = self._thread
        if thread is None or not self._started or not shiboken6.isValid(thread):
            return True  # (superqt deletes the thread once it has finished)
        thread.quit()  # its event loop ends once ``fn`` returns (the queued quit from the worker needs this thread)
        return thread.wait(timeout_ms)

    @Slot(object)
    def _on_yielded(self, value: object) -> None:
        if not self.cancelled:
            self.yielded.emit(value)

    @Slot(object)
    def _on_returned(self, value: object) -> None:
        if not self.cancelled:
            self.done.emit(value)

    @Slot(str)
    def _on_errored(self, message: str) -> None:
        if not self.cancelled:
            self.failed.emit(message)

    @Slot()
    def _on_thread_finished(self) -> None:
        thread = self._thread
        if shiboken6.isValid(thread):
            thread.wait()  # past ``finished`` the thread still deletes the worker: let it, before we let go of it
        self._worker = self._thread = None  # superqt deletes both (the thread perhaps already)
        self.finished.emit(not self.cancelled)
        self.deleteLater()


class TaskGroup(QObject):
    """The running tasks of one owner: :meth:`start` them, :meth:`shutdown` stops them all."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._tasks: list[Task] = []
        self.closed = False

    def start(self, fn: Callable[..., Any], *args: Any, name: str = "task") -> Task:
        """Start ``fn(cancel, *args)`` as a :class:`Task`; connect to its signals right away
        (they arrive through the event loop). Refused after :meth:`shutdown`."""
        if self.closed:
            raise RuntimeError(f"cannot start {name!r}: the task group has shut down")
        task = Task(fn, *args, name=name)  # no Qt parent: the task deletes itself once finished
        self._tasks.append(task)
        task.finished.connect(self._on_task_finished)
        return task.start()

    def running(self) -> list[Task]:
        """The tasks whose thread is still running."""
        return [t for t in self._tasks if t.running]

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Cancel every task and wait for its thread; True when all stopped.

        A task still running after ``timeout_ms`` is kept (see :func:`stranded`) and named on stderr.
        """
        self.closed = True
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        deadline = time.monotonic() + timeout_ms / 1000
        stuck = [t for t in tasks if not t.wait(max(0, round(1000 * (deadline - time.monotonic()))))]
        for t in stuck:
            _STRANDED.append(t)  # outlives this group and its owner
            print(f"cxrviewer: background task {t.name!r} did not stop; leaving it running", file=sys.stderr)
        return not stuck

    @Slot(bool)
    def _on_task_finished(self, _completed: bool) -> None:
        task = self.sender()
        if task in self._tasks:
            self._tasks.remove(task)
        if task in _STRANDED:
            _STRANDED.remove(task)


# -- the batch -------------------------------------------------------------------------
@dataclass(frozen=True)
class Scanned:
    paths: list[Path]


@dataclass(frozen=True)
class Chunk:
    results: list[FileResult]  # in input order; ``index`` is the row
    done: int
    total: int


@dataclass(frozen=True)
class Problem:
    message: str  # an unexpected error: the files of the failing batch become error rows, the rest go on


def run_batch(cancel: threading.Event, inputs: Sequence[Path], paths: list[Path] | None, model, device,
              batch_size: int, after: threading.Event | None = None,
              precision: str = "auto", stability: bool = True, cache: bool = False,
              population: str = "flag") -> Iterator[Scanned | Chunk | Problem]:
    """The batch task: scan ``inputs`` (unless ``paths`` are given), then classify with ``model``
    (``stability``: run the per-verdict stability check, two more forward passes per image;
    ``cache``: take known results from the results cache and add new ones to it; ``population``:
    "refuse" withholds the verdicts outside the model's intended population).

    ``after``: the previous run's ``stopped`` event; this run waits for it, even when
    cancelled itself, so that two runs never use a model at the same time (nor share the CPU).
    """
    lower_thread_priority()
    if after is not None:
        after.wait()  # cancelled: it stops within one decode or forward pass (and so on down the chain)
    if cancel.is_set():
        return
    if paths is None:
        paths = scan_inputs(inputs)
        yield Scanned(list(paths))
    if model is not None and paths:
        results_cache = ResultsCache() if cache else None
        try:
            predictor = _predictor_class()(model, device, batch_size=batch_size, precision=precision, stability=stability,
                                  cache=results_cache, population=population)
            yield from _classify(cancel, paths, predictor)
        finally:
            if results_cache is not None:
                results_cache.close()


def __getattr__(name: str):
    """``Predictor``, imported (with torch) when first asked for: the window paints before that."""
    if name == "Predictor":
        return _predictor_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _predictor_class():
    """The engine's Predictor (or a stand-in set on this module), imported on the worker thread that runs it."""
    found = globals().get("Predictor")
    if found is None:
        from ..core.batch.inference import Predictor as found
    return found


def scan_inputs(inputs):
    """:func:`cxrviewer.core.io.scan.scan_inputs` (torch-free), imported on the worker thread that calls it."""
    from ..core.io.scan import scan_inputs as scan

    return scan(inputs)


def _classify(cancel: threading.Event, paths: list[Path], predictor: Predictor) -> Iterator[Chunk | Problem]:
    total, start = len(paths), 0
    pending: list[FileResult] = []
    last_sent = 0.0
    while start < total and not cancel.is_set():
        done = start
        try:
            with contextlib.closing(predictor.predict(paths[start:], cancel=cancel)) as results:
                for r in results:
                    r.index += start
                    done = r.index + 1
                    pending.append(r)
                    now = time.monotonic()
                    if last_sent == 0.0 or now - last_sent >= CHUNK_SECONDS or len(pending) >= CHUNK_MAX:
                        yield Chunk(pending, done, total)
                        pending, last_sent = [], now
            start = total
        except Exception as e:  # noqa: BLE001 - mark the failing batch and go on with the rest
            size = predictor.first_batch if done == start else predictor.batch_size
            bad = paths[done:done + size]
            message = f"unexpected error: {one_line(e)}"
            traceback.print_exc()
            pending += [FileResult(path=Path(p), index=done + i, error=message) for i, p in enumerate(bad)]
            yield Problem(message)
            start = done + len(bad)
    if pending:
        yield Chunk(pending, pending[-1].index + 1, total)


class BatchRunner(QObject):
    """Starts and cancels batch runs (as :class:`Task` objects); only the newest run reports.

    ``finished`` comes once per run that was not replaced by a newer one, after its
    thread has stopped: True when it completed, False when it was cancelled.
    """

    scanned = Signal(list)
    results = Signal(list)
    progress = Signal(int, int)
    problem = Signal(str)
    finished = Signal(bool)

    def __init__(self, tasks: TaskGroup | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.tasks = tasks if tasks is not None else TaskGroup(self)
        self._task: Task | None = None

    @property
    def running(self) -> bool:
        """A run is going and has not been cancelled."""
        return self._task is not None and not self._task.cancelled

    def start(self, inputs: Sequence[str | Path] = (), model=None, device=None, batch_size: int = 16,
              paths: list[Path] | None = None, precision: str = "auto", stability: bool = True,
              cache: bool = False, population: str = "flag") -> Task:
        """Replace any current run (it stops without reporting) with a new one.

        ``paths``: classify these (no scan, no ``scanned``); else scan ``inputs``.
        """
        previous = self._task
        if previous is not None:
            previous.cancel()
        after = previous.stopped if previous is not None else None
        task = self.tasks.start(run_batch, [Path(p) for p in inputs], paths, model, device, batch_size, after,
                                precision, stability, cache, population, name="batch")
        task.yielded.connect(self._on_event)
        task.failed.connect(self.problem)
        task.finished.connect(lambda completed, t=task: self._on_finished(t, completed))
        self._task = task
        return task

    def cancel(self) -> bool:
        """Ask the current run to stop; ``finished(False)`` follows once it has. Returns whether one was running."""
        if not self.running:
            return False
        self._task.cancel()
        return True

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Cancel every run and wait for their threads (see :meth:`TaskGroup.shutdown`)."""
        self._task = None
        return self.tasks.shutdown(timeout_ms)

    @Slot(object)
    def _on_event(self, event: object) -> None:
        if isinstance(event, Chunk):
            self.results.emit(event.results)
            self.progress.emit(event.done, event.total)
        elif isinstance(event, Scanned):
            self.scanned.emit(event.paths)
        elif isinstance(event, Problem):
            self.problem.emit(event.message)

    def _on_finished(self, task: Task, completed: bool) -> None:
        if task is self._task:
            self._task = None
            self.finished.emit(completed)
