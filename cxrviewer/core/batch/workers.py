"""A small pool of daemon threads: a task stuck in a system call never keeps the process alive or a cancel waiting.

``concurrent.futures.ThreadPoolExecutor`` joins its threads at interpreter exit, so one
read blocked on a hung network share would make Ctrl+C hang too. :class:`DaemonPool`
hands out the same :class:`~concurrent.futures.Future` objects, but :meth:`DaemonPool.shutdown`
waits for running tasks only up to a time limit, and its threads never delay exit.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class DaemonPool:
    """Run callables on ``workers`` daemon threads named ``<name>-<i>``."""

    def __init__(self, workers: int, name: str):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._pending: set[Future] = set()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
                         for i in range(max(1, int(workers)))]
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        fut: Future = Future()
        with self._lock:
            self._pending.add(fut)
        fut.add_done_callback(self._forget)
        self._jobs.put((fut, fn, args))
        return fut

    def _forget(self, fut: Future) -> None:
        with self._lock:
            self._pending.discard(fut)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fut, fn, args = job
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as e:  # noqa: BLE001 - handed to whoever waits on the future
                fut.set_exception(e)

    def shutdown(self, timeout: float = 0.5) -> bool:
        """Cancel tasks not started, stop the threads, and wait up to ``timeout`` seconds for running ones.

        Returns True when every thread ended; a thread still stuck after ``timeout`` is left
        behind (it is a daemon: it ends with its task or with the process).
        """
        with self._lock:
            pending = list(self._pending)
        for fut in pending:
            fut.cancel()
        for _ in self._threads:
            self._jobs.put(None)
        deadline = time.monotonic() + max(0.0, timeout)
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)


class Gate:
    """Lets threads into a section until closed; :meth:`close` waits for those inside to leave.

    A lane's forward pass runs inside: torch must not be mid-operation on a daemon thread when the
    process exits (its teardown can then hang), while a thread stuck in a read never enters.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._inside = 0
        self._closed = False

    def enter(self) -> bool:
        """Enter unless closed; True when entered (then call :meth:`leave`)."""
        with self._cond:
            if self._closed:
                return False
            self._inside += 1
            return True

    def leave(self) -> None:
        with self._cond:
            self._inside -= 1
            self._cond.notify_all()

    def close(self, timeout: float | None = None) -> bool:
        """Let no one else in and wait up to ``timeout`` s for those inside; True when none is left."""
        with self._cond:
            self._closed = True
            return self._cond.wait_for(lambda: self._inside == 0, timeout)
