"""The viewer and the results cache: a reopened folder shows known results without classifying them again, a
cancelled batch resumes, the cache can be switched off and cleared, and a stray Esc does not cancel a long batch."""

from __future__ import annotations

import time

import pytest

from cxrviewer.core.batch.inference import Predictor
from cxrviewer.gui import batch_control, cache_menu, dialogs, worker
from cxrviewer.gui.results_model import DONE
from tests.gui.helpers import open_and_wait, png_folder
from tests.gui.test_main_window import SlowPredictor


@pytest.fixture
def forward_count(monkeypatch):
    seen = []
    real = Predictor.forward
    monkeypatch.setattr(Predictor, "forward", lambda self, arrays: seen.append(len(arrays)) or real(self, arrays))
    return seen


def test_reopening_a_folder_classifies_nothing_known(qtbot, window, tmp_path, forward_count):
    folder = png_folder(tmp_path / "six", 6)
    assert open_and_wait(qtbot, window, [folder]) is True
    first = [(r.label, r.probs) for r in window.results_model.results()]
    assert sum(forward_count) == 6
    assert open_and_wait(qtbot, window, [folder]) is True
    assert sum(forward_count) == 6  # all six came from the cache
    assert [(r.label, r.probs) for r in window.results_model.results()] == first
    assert window.results_model.count(DONE) == 6 and all(r.cams is not None for r in window.results_model.results())


def test_switched_off_every_file_is_classified(qtbot, window, tmp_path, forward_count):
    folder = png_folder(tmp_path / "three", 3)
    open_and_wait(qtbot, window, [folder])
    window.cache_actions.use_act.setChecked(False)
    assert window.settings.results_cache is False
    open_and_wait(qtbot, window, [folder])
    assert sum(forward_count) == 6


def test_a_cancelled_batch_resumes_when_the_folder_is_opened_again(qtbot, monkeypatch, window, tmp_path, forward_count):
    folder = png_folder(tmp_path / "many", 30)
    monkeypatch.setattr(worker, "Predictor", SlowPredictor)
    window.open_inputs([folder])
    qtbot.waitUntil(lambda: window.results_model.count(DONE) >= 3, timeout=10000)
    with qtbot.waitSignal(window.batchFinished, timeout=5000):
        window.cancel_batch()
    done_before = window.results_model.count(DONE)
    kept = cache_menu.ResultsCache().count()  # every result the run finished (some may not have reached the table)
    assert 3 <= done_before <= kept < 30
    monkeypatch.setattr(worker, "Predictor", Predictor)
    classified = sum(forward_count)
    assert open_and_wait(qtbot, window, [folder]) is True
    assert window.results_model.count(DONE) == 30
    assert sum(forward_count) - classified == 30 - kept  # only the files the cancelled run had not finished


def test_clear_results_cache_asks_then_forgets(qtbot, monkeypatch, window, tmp_path, forward_count):
    folder = png_folder(tmp_path / "two", 2)
    open_and_wait(qtbot, window, [folder])
    monkeypatch.setattr(dialogs, "confirm", lambda *a: False)
    window.cache_actions.clear_act.trigger()
    assert not [t for t in window.tasks.running() if t.name == "clear-cache"]
    monkeypatch.setattr(dialogs, "confirm", lambda *a: True)
    window.cache_actions.clear_act.trigger()
    qtbot.waitUntil(lambda: "Results cache cleared: 2 result(s)" in window.message.text(), timeout=10000)
    open_and_wait(qtbot, window, [folder])
    assert sum(forward_count) == 4
    assert cache_menu.ResultsCache().count() == 2


def test_a_stray_esc_after_leaving_a_tool_does_not_cancel_a_long_batch(qtbot, monkeypatch, window, tmp_path):
    folder = png_folder(tmp_path / "many", 30)
    monkeypatch.setattr(worker, "Predictor", SlowPredictor)
    window.open_inputs([folder])
    qtbot.waitUntil(lambda: window.results_model.count(DONE) >= 1, timeout=10000)
    window.runs.started_at = time.monotonic() - 2 * batch_control.ESC_CONFIRM_SECONDS  # a batch that has run a while
    asked = []
    monkeypatch.setattr(dialogs, "confirm", lambda _w, title, text: asked.append(text) or False)
    window.measure_actions.by_kind["distance"].trigger()
    window.cancel_act.trigger()  # Esc: leaves the tool (no points placed)
    assert window.measure.kind is None and not asked
    window.cancel_act.trigger()  # the stray Esc: asks, the answer is no
    assert len(asked) == 1 and "Results so far are kept" in asked[0]
    assert window.runner.running
    monkeypatch.setattr(dialogs, "confirm", lambda *a: True)
    with qtbot.waitSignal(window.batchFinished, timeout=5000) as finished:
        window.cancel_act.trigger()
    assert finished.args == [False]


def test_esc_early_in_a_batch_and_the_cancel_button_never_ask(qtbot, monkeypatch, window, tmp_path):
    folder = png_folder(tmp_path / "many", 30)
    monkeypatch.setattr(worker, "Predictor", SlowPredictor)
    monkeypatch.setattr(dialogs, "confirm", lambda *a: pytest.fail("asked"))
    window.open_inputs([folder])
    qtbot.waitUntil(lambda: window.results_model.count(DONE) >= 1, timeout=10000)
    window.runs.started_at = time.monotonic() - 2 * batch_control.ESC_CONFIRM_SECONDS
    with qtbot.waitSignal(window.batchFinished, timeout=5000):
        window.batch_status.cancel_button.click()
