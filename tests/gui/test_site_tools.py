"""Model > Evaluate on Labelled Folder, Reader > Evaluate Reader Study and Model > Calibrate for This Site."""

from __future__ import annotations

import numpy as np
import pytest

from cxrviewer.core.model.checkpoint import load_model
from cxrviewer.core.model.model_update import weights_digest
from cxrviewer.core.site.evaluation import evaluation_metrics, read_labelled_folder, score_folder
from cxrviewer.gui import dialogs
from tests.gui.helpers import open_and_wait, write_image


def _folder(root, counts, size=48):
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True)
        for i in range(n):
            write_image(root / cls / f"{cls.lower()}_{i:02d}.png", width=size, height=size,
                        seed=i + (100 if cls == "PNEUMONIA" else 0))
    return root


@pytest.fixture
def errors(monkeypatch):
    said = []
    monkeypatch.setattr(dialogs, "show_error", lambda _p, title, text: said.append(text))
    return said


def test_evaluate_opens_the_folder_and_shows_the_clis_metrics_and_plots(qtbot, window, tmp_path, monkeypatch,
                                                                       tiny_model_file):
    site = _folder(tmp_path / "SiteA", {"NORMAL": 4, "PNEUMONIA": 3})
    monkeypatch.setattr(dialogs, "ask_folder", lambda *a, **k: site)
    with qtbot.waitSignal(window.site.reportShown, timeout=30000) as shown:
        window.site.evaluate_act.trigger()
    report = shown.args[0]
    assert window.inputs == [site] and window.results_model.rowCount() == 7  # the folder is now the one loaded
    model = load_model(tiny_model_file)
    cli = evaluation_metrics(score_folder(model, read_labelled_folder(site, model.class_names), site, "cpu"), 0.5, 1)
    assert report.ai["confusion_matrix"] == cli["confusion_matrix"] and report.ai["n"] == 7
    assert report.ai["sensitivity"] == pytest.approx(cli["sensitivity"])
    ev = window.site.evaluation
    assert ev.isVisible() and "AI" in ev.summary.text() and "Reader" in ev.summary.text() and "SiteA" in ev.summary.text()
    assert all(fig.axes for fig in ev.tabs.figures.values())  # ROC, confusion, reliability, threshold sweep drawn
    wrong = {p for p, y, q in zip(report.scores.paths, report.scores.labels, model_predictions(report)) if y != q}
    m = window.results_model
    from cxrviewer.gui.results_model import CLASS
    from PySide6.QtCore import Qt
    marked = {m.row(i).path for i in range(m.rowCount()) if m.data(m.index(i, CLASS), Qt.ItemDataRole.BackgroundRole)}
    assert marked == wrong


def model_predictions(report):
    return (report.scores.probs[:, 1] >= 0.5).astype(int)


@pytest.mark.parametrize("counts, message", [
    ({"NORMAL": 3}, "needs one sub-folder per class"),
    ({"CATS": 3, "DOGS": 3}, "do not match the model's"),
])
def test_evaluate_refuses_a_folder_that_is_not_labelled_for_the_model(qtbot, window, tmp_path, monkeypatch, errors,
                                                                      counts, message):
    site = _folder(tmp_path / "bad", counts)
    monkeypatch.setattr(dialogs, "ask_folder", lambda *a, **k: site)
    window.site.evaluate_act.trigger()
    qtbot.waitUntil(lambda: bool(errors))
    assert message in errors[0] and window.inputs == []


def test_reader_study_evaluation_counts_the_readers_verdicts(qtbot, window, tmp_path):
    site = _folder(tmp_path / "study", {"NORMAL": 2, "PNEUMONIA": 2})
    open_and_wait(qtbot, window, [site])
    study = window.results_model.study
    for path, label in zip(window.results_model.paths, ["NORMAL", "PNEUMONIA", "PNEUMONIA", "PNEUMONIA"]):
        study.entry(path).label = label
    with qtbot.waitSignal(window.site.reportShown, timeout=10000) as shown:
        window.site.study_act.trigger()
    r = shown.args[0].reader
    assert r["confusion_matrix"] == [[1, 1], [0, 2]] and r["sensitivity"] == 1.0 and r["specificity"] == 0.5
    with qtbot.waitSignal(window.site.reportShown, timeout=10000) as again:  # the live threshold refreshes it
        window.reader.set_threshold(0.0)
    assert again.args[0].ai["confusion_matrix"] == [[0, 2], [0, 2]]


@pytest.mark.parametrize("counts, message", [
    ({"NORMAL": 3}, "needs one sub-folder per class"),
    ({"NORMAL": 20, "PNEUMONIA": 5}, "at least 20 images per class; PNEUMONIA has 5"),
    ({"COVID": 3, "NORMAL": 3}, "do not match the model's"),
])
def test_calibrate_refusals_are_clear_messages_and_write_nothing(qtbot, window, tmp_path, monkeypatch, errors,
                                                                counts, message):
    site = _folder(tmp_path / "site", counts, size=16)
    monkeypatch.setattr(dialogs, "ask_folder", lambda *a, **k: site)
    monkeypatch.setattr(dialogs, "ask_item", lambda *a, **k: "youden")
    before = sorted(tmp_path.rglob("*"))
    window.site.calibrate_act.trigger()
    qtbot.waitUntil(lambda: bool(errors), timeout=20000)
    assert message in errors[0] and window.site.calibration is None
    assert sorted(tmp_path.rglob("*")) == before


def test_calibrate_refuses_an_unknown_rule(window, tmp_path, monkeypatch, errors):
    monkeypatch.setattr(dialogs, "ask_folder", lambda *a, **k: tmp_path)
    monkeypatch.setattr(dialogs, "ask_item", lambda *a, **k: "f1")
    window.site.calibrate_act.trigger()
    assert "unknown rule 'f1'" in errors[0]


def test_calibrate_round_trip_in_the_viewer(qtbot, window, tmp_path, monkeypatch, errors, tiny_model_file):
    site = _folder(tmp_path / "Ward7", {"NORMAL": 20, "PNEUMONIA": 20}, size=32)
    monkeypatch.setattr(dialogs, "ask_folder", lambda *a, **k: site)
    monkeypatch.setattr(dialogs, "ask_item", lambda *a, **k: "specificity=0.90")
    with qtbot.waitSignal(window.site.calibrationShown, timeout=60000) as shown:
        window.site.calibrate_act.trigger()
    cal_window = shown.args[0]
    cal = cal_window.cal
    assert "Nothing has been written yet" in cal_window.summary.text() and f"{cal.threshold:.3f}" in cal_window.summary.text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Ward7", "tiny.safetensors"]  # shown before any write
    monkeypatch.setattr(dialogs, "ask_save_file", lambda *a, **k: tiny_model_file)
    cal_window.save_button.click()
    assert "is the source model" in errors[-1]
    new = tmp_path / "out" / "ward7.safetensors"
    new.parent.mkdir()
    monkeypatch.setattr(dialogs, "ask_save_file", lambda *a, **k: new)
    monkeypatch.setattr(dialogs, "confirm", lambda *a, **k: True)
    with qtbot.waitSignal(window.modelChanged, timeout=30000):
        cal_window.save_button.click()
    assert weights_digest(new) == weights_digest(tiny_model_file) and window.model_path == new
    assert window.batch.threshold == pytest.approx(cal.threshold) != 0.5
    assert window.model.temperature == pytest.approx(cal.temperature)
    open_and_wait(qtbot, window, [site])
    p = np.array([r.probs["PNEUMONIA"] for r in window.results_model.results()], dtype=np.float32)
    calls = [r.predicted for r in window.results_model.results()]  # (these small images are out of scope)
    assert calls == ["PNEUMONIA" if q >= np.float32(cal.threshold) else "NORMAL" for q in p]
