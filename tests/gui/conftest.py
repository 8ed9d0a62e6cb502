"""GUI test guards (napari-style): settings in a temporary place, no QThread left running, no task leaked."""

from __future__ import annotations

import traceback
from weakref import WeakKeyDictionary

import pytest
import shiboken6
from PySide6.QtCore import QCoreApplication, QEvent, QSettings, QThread, QThreadPool

from cxrviewer import save_model
from cxrviewer.gui import model_control
from cxrviewer.gui.worker import Task
from cxrviewer.gui.main_window import MainWindow
from cxrviewer.gui.settings import Settings
from tests.conftest import make_tiny_model
from tests.gui.helpers import write_image


@pytest.fixture(autouse=True)
def _fresh_settings(tmp_path_factory):
    """Point every QSettings (INI, user and system scope) at a temporary folder."""
    folder = tmp_path_factory.mktemp("settings")
    for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
        QSettings.setPath(QSettings.Format.IniFormat, scope, str(folder))
    yield folder


@pytest.fixture(autouse=True)
def _no_real_dialogs(monkeypatch):
    """A modal dialog a test did not patch away fails the test at once instead of hanging it."""
    from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox

    def refuse(*args, **kwargs):
        pytest.fail(f"a real dialog was opened: {args[1:3] if len(args) > 2 else args}")

    for owner, names in ((QMessageBox, ("question", "information", "warning", "critical", "about")),
                         (QInputDialog, ("getItem", "getText", "getInt", "getDouble")),
                         (QFileDialog, ("getOpenFileName", "getOpenFileNames", "getSaveFileName", "getExistingDirectory"))):
        for name in names:
            monkeypatch.setattr(owner, name, refuse)


@pytest.fixture(autouse=True)
def _no_dangling_threads(monkeypatch, qtbot):
    """Fail a test that leaves a QThread running, a thread pool busy, or a task alive
    (every started :class:`Task` must have finished and been deleted by the end of the test)."""
    threads: WeakKeyDictionary = WeakKeyDictionary()
    pools: WeakKeyDictionary = WeakKeyDictionary()
    tasks: list[tuple[Task, str]] = []
    start_thread, start_pool, start_task = QThread.start, QThreadPool.start, Task.start

    def record_thread(self, *args):
        threads[self] = "".join(traceback.format_stack(limit=4)[:-1])
        start_thread(self, *args)

    def record_pool(self, *args):
        pools[self] = "".join(traceback.format_stack(limit=4)[:-1])
        start_pool(self, *args)

    def record_task(self):
        tasks.append((self, "".join(traceback.format_stack(limit=5)[:-1])))
        return start_task(self)

    monkeypatch.setattr(QThread, "start", record_thread)
    monkeypatch.setattr(QThreadPool, "start", record_pool)
    monkeypatch.setattr(Task, "start", record_task)
    yield
    running = []
    qtbot.wait(1)  # deliver the finished signals of tasks that have just stopped
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    leaked = [where for task, where in tasks if shiboken6.isValid(task)]
    tasks.clear()
    for thread, where in list(threads.items()):
        try:
            if thread.isRunning():
                running.append(where)
                thread.quit()
                thread.wait(5000)
        except RuntimeError:  # already deleted on the C++ side: it has stopped
            pass
    for pool, where in list(pools.items()):
        try:
            if pool.activeThreadCount():
                running.append(where)
                pool.waitForDone(5000)
        except RuntimeError:
            pass
    if running:
        pytest.fail("test left threads running, started at:\n" + "\n".join(running))
    if leaked:
        pytest.fail("test leaked tasks (still running, or finished but not deleted), started at:\n" + "\n".join(leaked))


@pytest.fixture
def image_folder(tmp_path):
    """Eight small images (PNG and JPEG, 80 x 96) in a folder."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(8):
        write_image(folder / f"cxr_{i:02d}.{'png' if i % 2 else 'jpg'}", seed=i)
    return folder


@pytest.fixture
def no_default_model(monkeypatch):
    monkeypatch.setattr(model_control, "default_model_path", lambda: None)


@pytest.fixture
def make_window(qtbot, no_default_model):
    """Build MainWindows that are closed (threads stopped) at the end of the test."""
    made = []

    def make(model_path=None, wait_model=True, **kwargs):
        w = MainWindow(Settings(), model_path=model_path, **kwargs)
        qtbot.addWidget(w)
        made.append(w)
        if model_path is not None and wait_model:
            qtbot.waitUntil(lambda: w.model is not None, timeout=10000)
        w.show()
        return w

    yield make
    for w in made:
        w.close()


@pytest.fixture
def window(make_window, tiny_model_file):
    """A shown MainWindow with the tiny model loaded."""
    return make_window(tiny_model_file)


@pytest.fixture
def fixed_scale_model_file(tmp_path):
    return save_model(make_tiny_model(threshold=0.5, cam_range=[-4.0, 4.0]), tmp_path / "fixed.safetensors")
