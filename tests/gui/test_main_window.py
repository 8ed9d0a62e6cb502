"""The viewer end to end: open, stream results, review, filter, cancel, close, models."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from cxrviewer.core.batch.inference import Predictor
from cxrviewer.core.results.columns import percent
from cxrviewer.gui import dialogs, worker
from cxrviewer.gui.results_model import CANCELLED, CLASS, DONE, ERROR, NAME, NO_MODEL, PROB, QUEUED, STATUS, ResultsFilter
from cxrviewer.gui.settings import Settings

from tests.gui.helpers import open_and_wait, png_folder


def column(window, col):
    proxy = window.results_view.proxy
    return [proxy.index(r, col).data() for r in range(proxy.rowCount())]


class SlowPredictor(Predictor):
    """The real engine, one file at a time with a pause: long enough to cancel mid-batch."""

    def predict(self, paths, cancel=None, progress=None):
        self.batch_size = 1
        for r in super().predict(paths, cancel=cancel, progress=progress):
            yield r
            if cancel is not None and cancel.wait(0.05):
                return


def test_open_folder_streams_every_result(qtbot, window, image_folder):
    assert open_and_wait(qtbot, window, [image_folder]) is True
    m = window.results_model
    assert m.rowCount() == 8
    assert column(window, STATUS) == [DONE] * 8
    assert column(window, NAME) == sorted(p.name for p in image_folder.iterdir())
    assert set(column(window, CLASS)) <= {"NORMAL", "PNEUMONIA"}
    for row in range(8):
        r = m.row(row).result
        assert r.index == row and r.path.name == column(window, NAME)[row]
        assert column(window, PROB)[row] == percent(r.probs['PNEUMONIA'])
    assert m.headerData(PROB, Qt.Orientation.Horizontal) == "P(PNEUMONIA)"
    assert "Done: 8 of 8" in window.batch_status.label.text()
    assert window.settings.last_folder == image_folder


def test_sorting_by_probability_and_name(qtbot, window, image_folder):
    open_and_wait(qtbot, window, [image_folder])
    window.results_view.table.sortByColumn(PROB, Qt.SortOrder.DescendingOrder)
    probs = [float(s.rstrip("%")) for s in column(window, PROB)]
    assert probs == sorted(probs, reverse=True) and len(set(probs)) > 1
    window.results_view.table.sortByColumn(NAME, Qt.SortOrder.DescendingOrder)
    assert column(window, NAME) == sorted(column(window, NAME), reverse=True)


def test_filter_by_class_errors_and_name(qtbot, window, image_folder):
    (image_folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    open_and_wait(qtbot, window, [image_folder])
    view = window.results_view
    labels = column(window, CLASS)
    for name in ("NORMAL", "PNEUMONIA"):
        view.filter_box.setCurrentIndex(view.filter_box.findData(name))
        assert column(window, CLASS) == [name] * labels.count(name)
    view.filter_box.setCurrentIndex(view.filter_box.findData(ResultsFilter.ERRORS))
    assert column(window, NAME) == ["broken.png"]
    view.filter_box.setCurrentIndex(0)
    view.search.setText("CXR_03")
    assert column(window, NAME) == ["cxr_03.png"]


def test_corrupt_file_shows_an_error_row(qtbot, window, image_folder):
    (image_folder / "broken.jpg").write_bytes(b"not an image at all")
    open_and_wait(qtbot, window, [image_folder])
    m = window.results_model
    row = m.row_of(image_folder / "broken.jpg")
    assert m.row(row).status == ERROR and m.row(row).result.error
    assert m.count(DONE) == 8
    window.results_view.select_source_row(row + 1)
    with qtbot.waitSignal(window.imageShown, timeout=5000):
        window.results_view.select_source_row(row)
    assert "Error" in window.details.text() and m.row(row).result.error in window.details.text()
    assert not window.canvas.has_image
    assert not window.export_overlay_act.isEnabled()


def test_keyboard_navigation(qtbot, window, image_folder):
    open_and_wait(qtbot, window, [image_folder])
    table = window.results_view.table
    table.setFocus()
    window.results_view.select_source_row(0)
    qtbot.keyClick(table, Qt.Key.Key_Down)
    assert window.results_view.current_source_row() == 1
    qtbot.keyClick(table, Qt.Key.Key_End)
    assert window.results_view.current_source_row() == 7
    qtbot.keyClick(table, Qt.Key.Key_Home)
    assert window.results_view.current_source_row() == 0
    qtbot.keyClick(table, Qt.Key.Key_PageDown)
    assert window.results_view.current_source_row() > 0
    with qtbot.waitSignal(window.imageShown, timeout=5000) as shown:
        window.next_act.trigger()
    assert shown.args[0] == window.current_path()


@pytest.fixture
def forty_pngs(tmp_path):
    """A folder of 40 small PNGs: a batch long enough to interrupt (with SlowPredictor)."""
    return png_folder(tmp_path / "many", 40)


def test_cancel_mid_batch(qtbot, monkeypatch, window, forty_pngs):
    monkeypatch.setattr(worker, "Predictor", SlowPredictor)
    window.open_inputs([forty_pngs])
    qtbot.waitUntil(lambda: window.results_model.count(DONE) >= 1, timeout=10000)
    assert window.cancel_act.isEnabled()
    with qtbot.waitSignal(window.batchFinished, timeout=5000) as finished:
        window.cancel_act.trigger()
    assert finished.args == [False]
    assert not [t for t in window.tasks.running() if t.name == "batch"]  # finished came once it had stopped
    m = window.results_model
    assert m.count(CANCELLED) > 0 and m.count(DONE) + m.count(CANCELLED) == 40
    assert m.count(QUEUED) == 0
    assert "Cancelled" in window.batch_status.label.text()


def test_closing_mid_batch_stops_the_worker(qtbot, monkeypatch, make_window, tiny_model_file, forty_pngs):
    monkeypatch.setattr(worker, "Predictor", SlowPredictor)
    w = make_window(tiny_model_file)
    w.open_inputs([forty_pngs])
    qtbot.waitUntil(lambda: w.results_model.count(DONE) >= 1, timeout=10000)
    batch = [t for t in w.tasks.running() if t.name == "batch"]
    assert batch and batch[0].running
    w.close()
    assert not w.tasks.running()
    assert w.results_model.count(DONE) < 40


def test_opening_another_folder_mid_batch(qtbot, monkeypatch, window, forty_pngs, image_folder):
    monkeypatch.setattr(worker, "Predictor", SlowPredictor)
    window.open_inputs([forty_pngs])
    qtbot.waitUntil(lambda: window.results_model.count(DONE) >= 1, timeout=10000)
    with qtbot.waitSignal(window.batchFinished, timeout=20000, check_params_cb=lambda completed: completed):
        window.open_inputs([image_folder])
    assert window.results_model.paths == sorted(image_folder.iterdir())
    assert window.results_model.count(DONE) == 8


def test_unexpected_worker_error_is_shown_and_batch_goes_on(qtbot, monkeypatch, window, image_folder):
    calls = []

    class Flaky(Predictor):
        def predict(self, paths, cancel=None, progress=None):
            calls.append(len(paths))
            for i, r in enumerate(super().predict(paths, cancel=cancel, progress=progress)):
                if len(calls) == 1 and i == self.first_batch:  # the second batch fails, once
                    raise RuntimeError("out of cheese")
                yield r

    monkeypatch.setattr(worker, "Predictor", Flaky)
    messages = []
    window.runner.problem.connect(messages.append)
    assert open_and_wait(qtbot, window, [image_folder]) is True
    m = window.results_model
    assert messages and "out of cheese" in messages[0]
    assert "out of cheese" in window.message.text()
    assert m.count(ERROR) >= 1 and m.count(DONE) >= 1 and m.count(ERROR) + m.count(DONE) == 8


def test_bad_model_file_keeps_the_old_model(qtbot, monkeypatch, window, tmp_path, image_folder):
    old = window.model
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04this is a pickle")
    errors = []
    monkeypatch.setattr(dialogs, "ask_model_file", lambda parent, start=None: bad)
    monkeypatch.setattr(dialogs, "show_error", lambda parent, title, text: errors.append(text))
    with qtbot.waitSignal(window.modelChanged, timeout=10000):
        window.load_model_act.trigger()
    assert window.model is old
    assert len(errors) == 1 and "bad.safetensors" in errors[0] and "pickle" in errors[0]
    assert "Still using tiny.safetensors" in errors[0]
    assert window.settings.model_path.name == "tiny.safetensors"
    assert open_and_wait(qtbot, window, [image_folder]) is True


def test_no_model_then_load_model_classifies(qtbot, monkeypatch, make_window, tiny_model_file, image_folder):
    w = make_window(None)
    assert w.model is None
    assert "No model" in w.message.text()
    assert open_and_wait(qtbot, w, [image_folder]) is True
    assert w.results_model.count(NO_MODEL) == 8
    qtbot.waitUntil(lambda: w.canvas.has_image, timeout=5000)  # images are viewable without a model
    monkeypatch.setattr(dialogs, "ask_model_file", lambda parent, start=None: tiny_model_file)
    with qtbot.waitSignal(w.batchFinished, timeout=20000) as done:
        w.load_model_act.trigger()
    assert done.args == [True]
    assert w.results_model.count(DONE) == 8
    assert "tiny" in w.model_label.text()


def test_drop_folder_opens_it(qtbot, window, image_folder):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(image_folder))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.batchFinished, timeout=20000):
        window.dropEvent(event)
    assert window.results_model.rowCount() == 8


def test_settings_persist_and_stay_in_the_test_folder(qtbot, make_window, tiny_model_file, image_folder,
                                                      _fresh_settings):
    w = make_window(tiny_model_file)
    open_and_wait(qtbot, w, [image_folder])
    w.controls.opacity.setValue(73)
    w.splitter.setSizes([300, 700, 280])
    w.close()
    s = Settings()
    assert Path(s.file_name).is_relative_to(_fresh_settings)
    assert s.opacity == pytest.approx(0.73)
    assert s.model_path == tiny_model_file
    assert s.recent[0] == [str(image_folder)]
    assert s.splitter is not None and len(s.splitter) == 3
    w2 = make_window(None, load_default=False)
    assert w2.controls.opacity.value() == 73
    assert w2.recent_menu.actions()[0].text() == str(image_folder)


def test_about_shows_model_card_and_notice(monkeypatch, window):
    shown = []
    monkeypatch.setattr(dialogs, "show_about", lambda parent, title, html: shown.append(html))
    window.about_act.trigger()
    assert "not a medical device" in shown[0] and "resnet18" in shown[0] and "NORMAL, PNEUMONIA" in shown[0]


def test_details_show_the_model_once_it_has_loaded(window):
    """The model loads in the background after the panel was first drawn: the panel follows."""
    text = window.details.text()
    assert "No model loaded" not in text and "Threshold" in text and window.model_name() in text


def test_about_lists_the_key_metrics_of_every_split():
    from cxrviewer.gui.about import about_html
    from tests.conftest import make_tiny_model

    model = make_tiny_model(size=64, threshold=0.3)
    model.meta["metrics"] = {
        "validation": {"n": 10, "auroc": 0.95, "accuracy": 0.9, "sensitivity": 0.8, "specificity": 1.0, "ece": 0.05,
                       "per_class": {"NORMAL": {"recall": 1.0}}},
        "test": {"n": 8, "auroc": 0.75, "accuracy": 0.625},
        "validation_shifted": {"blur": {"sensitivity": 0.7, "specificity": 0.9}, "gamma": {"sensitivity": 0.8, "specificity": 0.6}},
        "best_epoch": 3}
    text = about_html(model, None, "cpu", "0")
    assert "validation (n = 10)" in text and "AUROC 0.950" in text and "ECE 0.050" in text
    assert "test (n = 8)" in text and "accuracy 0.625" in text
    assert "2 acquisition shifts" in text and "sensitivity &gt;= 0.700" in text and "specificity &gt;= 0.600" in text
    assert "best epoch" in text and "recall" not in text
    model.meta["training"] = {"data": "/data/xr", "images": {"train": {"NORMAL": 5, "PNEUMONIA": 7}},
                              "split": {"rule": "patient", "val_groups": 3, "groups": 20}, "seconds": 600,
                              "command": "python train_model.py --data /data/xr"}
    text = about_html(model, None, "cpu", "0")
    assert "/data/xr" in text and "NORMAL 5, PNEUMONIA 7" in text and "3 of 20 patients" in text and "10 min" in text
    assert "python train_model.py --data /data/xr" in text


def test_worker_sends_plain_results_in_input_order(qtbot, tiny_model_file, image_folder):
    from cxrviewer import load_model

    runner = worker.BatchRunner()
    chunks = []
    runner.results.connect(chunks.append)
    with qtbot.waitSignal(runner.finished, timeout=20000) as done:
        runner.start([image_folder], model=load_model(tiny_model_file))
    assert done.args == [True]
    got = [r for c in chunks for r in c]
    assert [r.index for r in got] == list(range(8))
    assert all(isinstance(r.cams, np.ndarray) for r in got)
    runner.shutdown()
    assert not runner.tasks.running()


def test_task_reports_errors_and_values(qtbot):
    got = []
    ok = worker.Task(lambda cancel: 42)
    ok.done.connect(lambda v: got.append(("done", v)))
    with qtbot.waitSignal(ok.finished, timeout=5000) as finished:
        ok.start()
    assert got == [("done", 42)] and finished.args == [True]
    bad = worker.Task(lambda cancel: 1 / 0)
    bad.failed.connect(lambda m: got.append(("failed", m)))
    with qtbot.waitSignal(bad.finished, timeout=5000):
        bad.start()
    assert got[1][0] == "failed" and "ZeroDivisionError" in got[1][1]


def test_scanning_happens_off_the_gui_thread(qtbot, monkeypatch, window, image_folder):
    seen = []
    real = worker.scan_inputs

    def spy(inputs):
        seen.append(threading.current_thread() is threading.main_thread())
        return real(inputs)

    monkeypatch.setattr(worker, "scan_inputs", spy)
    open_and_wait(qtbot, window, [image_folder])
    assert seen == [False]


def test_progress_and_cancel_stay_visible_while_messages_come_and_go(qtbot, monkeypatch, window, forty_pngs,
                                                                       tiny_model_file):
    """Messages (a model loaded, a menu hint) go to the message line: QStatusBar.showMessage used
    to hide the progress bar, Cancel and time left for seconds."""
    from PySide6.QtGui import QStatusTipEvent
    from PySide6.QtWidgets import QApplication

    monkeypatch.setattr(worker, "Predictor", SlowPredictor)
    window.open_inputs([forty_pngs])
    qtbot.waitUntil(lambda: window.results_model.count(DONE) >= 1, timeout=10000)
    assert window.batch_status.active and not window.batch_status.isHidden()
    QApplication.sendEvent(window, QStatusTipEvent("Save the results table as CSV"))
    assert window.batch_status.active and window.message.text() == "Save the results table as CSV"
    with qtbot.waitSignal(window.modelChanged, timeout=10000):
        window.load_model_file(tiny_model_file)
    assert window.message.text() == "Model loaded: tiny.safetensors"
    assert window.batch_status.active and window.statusBar().currentMessage() == ""
    qtbot.waitUntil(lambda: window.results_model.count(DONE) >= 2, timeout=10000)
    assert window.batch_status.active and "of 40" in window.batch_status.label.text()
    with qtbot.waitSignal(window.batchFinished, timeout=5000):
        window.cancel_act.trigger()
    assert not window.batch_status.active


def test_a_model_loaded_mid_batch_restarts_it_without_a_false_finish(qtbot, monkeypatch, window, forty_pngs,
                                                                      tiny_model_file):
    """The old run used to report finished(False) after the rows were re-queued: rows flipped to
    cancelled and the window said the batch had been cancelled."""
    monkeypatch.setattr(worker, "Predictor", SlowPredictor)
    window.open_inputs([forty_pngs])
    qtbot.waitUntil(lambda: window.results_model.count(DONE) >= 1, timeout=10000)
    finished = []
    window.batchFinished.connect(finished.append)
    monkeypatch.setattr(worker, "Predictor", Predictor)
    with qtbot.waitSignal(window.batchFinished, timeout=20000):
        window.load_model_file(tiny_model_file)
        assert window.results_model.count(CANCELLED) == 0 and window.batch_status.active
    assert finished == [True]
    assert window.results_model.count(DONE) == 40 and window.results_model.count(CANCELLED) == 0


def test_reclassifying_keeps_the_current_row_and_the_scroll_position(qtbot, window, forty_pngs, tiny_model_file):
    open_and_wait(qtbot, window, [forty_pngs])
    view = window.results_view
    window.resize(1200, 500)  # fewer rows than 40 fit: the table scrolls
    with qtbot.waitSignal(window.imageShown, timeout=20000):
        view.select_source_row(30)
    bar = view.table.verticalScrollBar()
    assert bar.value() > 0
    scrolled = bar.value()
    # 40 images: a few seconds idle, several times that on a loaded machine (the wait ends on the signal)
    with qtbot.waitSignal(window.batchFinished, timeout=90000) as done:
        window.load_model_file(tiny_model_file)
    assert done.args == [True]
    assert view.current_source_row() == 30 and window.current_path() == forty_pngs / "030.png"
    assert bar.value() == scrolled
    assert window.results_model.count(DONE) == 40


@pytest.fixture
def gated_load(monkeypatch):
    """load_model that waits for the test to open a gate (per path name)."""
    from cxrviewer.gui import model_loader

    gates: dict[str, threading.Event] = {}
    real = model_loader.load_model

    def load(path):
        gates.setdefault(Path(path).name, threading.Event()).wait(10)
        return real(path)

    monkeypatch.setattr(model_loader, "load_model", load)
    return lambda name: gates.setdefault(name, threading.Event())


def test_model_loading_can_be_cancelled(qtbot, window, tmp_path, gated_load):
    from tests.conftest import make_tiny_model
    from cxrviewer import save_model

    other = save_model(make_tiny_model(("A", "B", "C")), tmp_path / "other.safetensors")
    old = window.model
    window.load_model_file(other)
    assert "Loading other.safetensors" in window.model_label.text() and window.cancel_act.isEnabled()
    window.cancel_act.trigger()
    gated_load("other.safetensors").set()
    qtbot.waitUntil(lambda: not window.model_loader.loading, timeout=10000)
    assert window.model is old and "tiny" in window.model_label.text()
    assert window.message.text() == "Model loading cancelled" and not window.cancel_act.isEnabled()


def test_a_newer_model_choice_wins_over_a_slower_earlier_one(qtbot, window, tmp_path, gated_load):
    from tests.conftest import make_tiny_model
    from cxrviewer import save_model

    slow = save_model(make_tiny_model(("A", "B", "C")), tmp_path / "slow.safetensors")
    fast = save_model(make_tiny_model(("X", "Y")), tmp_path / "fast.safetensors")
    gated_load("fast.safetensors").set()
    window.load_model_file(slow)
    first = window.model_loader._task
    with qtbot.waitSignal(window.modelChanged, timeout=10000):
        window.load_model_file(fast)
    with qtbot.waitSignal(first.finished, timeout=10000) as finished:
        gated_load("slow.safetensors").set()
    assert finished.args == [False]  # replaced: cancelled, its model dropped
    assert window.model.class_names == ["X", "Y"] and window.model_path == fast


def test_rows_opened_while_the_model_loads_wait_for_it_and_fill_when_it_is_ready(qtbot, make_window, tiny_model_file,
                                                                                  image_folder, gated_load):
    window = make_window(tiny_model_file, wait_model=False)
    assert window.model is None and window.model_label.text().startswith("Loading ")  # not "No model"
    with qtbot.waitSignal(window.batchFinished, timeout=20000):
        window.open_inputs([image_folder])  # scanned while the model is still on its way
    statuses = {window.results_model.data(window.results_model.index(r, STATUS)) for r in
                range(window.results_model.rowCount())}
    assert statuses and NO_MODEL not in statuses
    assert "loading the model" in window.batch_status.label.text()
    with qtbot.waitSignal(window.batchFinished, timeout=20000):
        gated_load(tiny_model_file.name).set()
    assert window.model is not None
    assert all(r.ok for r in window.results_model.results())
