"""The background-task helper and the batch runner on their own (no window)."""

from __future__ import annotations

import threading

import pytest
import shiboken6
import torch
from PySide6.QtCore import QCoreApplication, QEvent

from cxrviewer import load_model
from cxrviewer.core.batch.inference import Predictor
from cxrviewer.gui import worker


@pytest.fixture
def runner():
    r = worker.BatchRunner()
    yield r
    assert r.shutdown(10000)


def _flush_deletes(qtbot):
    qtbot.wait(1)
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def test_a_finished_task_is_deleted_with_its_thread(qtbot):
    task = worker.Task(lambda cancel: [1, 2, 3])
    with qtbot.waitSignal(task.finished, timeout=5000) as finished:
        task.start()
    assert finished.args == [True]
    _flush_deletes(qtbot)
    assert not shiboken6.isValid(task)  # deleteLater'd: its closure and value go with it


def test_a_generator_task_yields_and_stops_when_cancelled(qtbot):
    release = threading.Event()

    def count(cancel):
        for i in range(1000):
            yield i
            release.wait(5)

    seen = []
    task = worker.Task(count)
    task.yielded.connect(seen.append)
    task.done.connect(lambda v: seen.append(("done", v)))
    task.start()
    qtbot.waitUntil(lambda: seen == [0])
    with qtbot.waitSignal(task.finished, timeout=5000) as finished:
        task.cancel()
        release.set()
    assert finished.args == [False] and seen == [0]  # nothing after cancel, and no done


def test_shutdown_waits_and_never_drops_a_running_thread(qtbot, capfd):
    """A task that does not stop in time is kept (a destroyed running QThread kills the process)
    and named; once it stops it is forgotten and deleted like any other."""
    group = worker.TaskGroup()
    release = threading.Event()
    task = group.start(lambda cancel: release.wait(10), name="stubborn")
    assert group.shutdown(timeout_ms=50) is False
    assert task.running and worker.stranded() == [task]
    assert "'stubborn' did not stop" in capfd.readouterr().err
    release.set()
    assert task.wait(5000)
    qtbot.waitUntil(lambda: not worker.stranded())
    _flush_deletes(qtbot)
    assert not shiboken6.isValid(task)


def test_a_group_refuses_tasks_after_shutdown():
    group = worker.TaskGroup()
    assert group.shutdown() is True
    try:
        group.start(lambda cancel: 1)
    except RuntimeError as e:
        assert "shut down" in str(e)
    else:
        raise AssertionError("a task started after shutdown")


class GatedPredictor(Predictor):
    """The real engine, one file per batch, each waiting for the test to open the gate; records
    how many runs use a model at once."""

    gate = threading.Event()
    active = 0
    most = 0
    lock = threading.Lock()

    def predict(self, paths, cancel=None, progress=None):
        cls = GatedPredictor
        with cls.lock:
            cls.active += 1
            cls.most = max(cls.most, cls.active)
        try:
            self.batch_size = self.first_batch = 1
            for r in super().predict(paths, cancel=cancel, progress=progress):
                yield r
                while not cls.gate.wait(0.01):
                    if cancel is not None and cancel.is_set():
                        return
        finally:
            with cls.lock:
                cls.active -= 1


def test_starting_a_run_never_reports_the_one_it_replaces(qtbot, monkeypatch, runner, tiny_model_file, image_folder):
    """BatchRunner.start on a running batch: no finished(False) for the old run (it used to come
    at once, before the new run's first result), only the new run's finished(True)."""
    monkeypatch.setattr(worker, "Predictor", GatedPredictor)
    GatedPredictor.gate.clear()
    GatedPredictor.most = 0
    model = load_model(tiny_model_file)
    finished, chunks = [], []
    runner.finished.connect(finished.append)
    runner.results.connect(chunks.append)
    runner.start([image_folder], model=model)
    qtbot.waitUntil(lambda: bool(chunks))
    paths = sorted(image_folder.iterdir())
    with qtbot.waitSignal(runner.finished, timeout=20000):
        runner.start(paths=paths, model=model)
        assert finished == []  # not synchronously from start()
        GatedPredictor.gate.set()
    assert finished == [True]
    assert GatedPredictor.most == 1  # the new run waited for the old one to stop


def test_a_batch_leaves_the_model_as_it_found_it(qtbot, runner, tiny_model_file, image_folder):
    model = load_model(tiny_model_file)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with qtbot.waitSignal(runner.finished, timeout=20000):
        runner.start([image_folder], model=model)
    assert model.training is False
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert {p.device.type for p in model.parameters()} == {"cpu"}
