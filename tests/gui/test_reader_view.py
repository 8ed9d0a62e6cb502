"""The reader study in the viewer: verdict keys, notes, live threshold, truth marking, sessions and the CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from cxrviewer.gui import dialogs
from cxrviewer.gui.results_model import CLASS, READER
from cxrviewer.gui.settings import Settings
from tests.gui.helpers import open_and_wait, write_image


@pytest.fixture
def labelled(tmp_path):
    """A folder with NORMAL/ and pneumonia/ (folder names match the classes case-insensitively), 3 images each."""
    root = tmp_path / "ward"
    for cls, seed in (("NORMAL", 0), ("pneumonia", 10)):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            write_image(root / cls / f"{cls.lower()}_{i}.png", seed=seed + i)
    return root


def _select(qtbot, window, name):
    row = next(i for i, p in enumerate(window.results_model.paths) if p.name == name)
    window.results_view.select_source_row(row)
    qtbot.waitUntil(lambda: window.current_path() is not None and window.current_path().name == name)
    return row


def _cell(window, row, col, role=Qt.ItemDataRole.DisplayRole):
    m = window.results_model
    return m.data(m.index(row, col), role)


def test_verdict_keys_note_and_csv(qtbot, window, labelled, tmp_path, monkeypatch):
    keys = {a.text(): a.shortcut().toString() for a in window.reader.menu_actions()}
    assert list(keys.values()) == ["Y", "X", "Ctrl+1", "Ctrl+2", "Ctrl+0"]
    assert "Reader Label: PNEUMONIA" in keys
    open_and_wait(qtbot, window, [labelled])
    row = _select(qtbot, window, "normal_0.png")
    ai = window.current_result().label
    window.reader.agree_act.trigger()
    assert _cell(window, row, READER) == ai
    assert f"Reader: <b>{ai}</b>" in window.reader.panel.verdict.text() and "agrees" in window.reader.panel.verdict.text()
    window.reader.label_acts[1].trigger()  # Ctrl+2: PNEUMONIA as the reader's own label
    assert _cell(window, row, READER) == "PNEUMONIA"
    window.reader.panel.note.setPlainText("subtle opacity, left base")
    entry = window.current_result().reader
    assert entry.truth == "NORMAL" and entry.note == "subtle opacity, left base"
    window._refresh_overlay()
    details = window.details.text()
    assert "Truth" in details and "subtle opacity, left base" in details and "Reader" in details
    other = _select(qtbot, window, "pneumonia_1.png")
    assert window.reader.panel.note.toPlainText() == ""  # the panel follows the current image
    assert window.current_result().reader.truth == "PNEUMONIA"
    window.reader.disagree_act.trigger()
    out = tmp_path / "results.csv"
    monkeypatch.setattr(dialogs, "ask_save_file", lambda *a, **k: out)
    with qtbot.waitSignal(window.exportFinished, timeout=10000):
        window.export_csv_act.trigger()
    rows = {r["path"]: r for r in csv.DictReader(out.open(encoding="utf-8"))}
    first = rows[str(window.results_model.paths[row])]
    assert (first["truth"], first["reader_label"], first["note"]) == ("NORMAL", "PNEUMONIA", "subtle opacity, left base")
    assert first["agreement"] == ("agree" if ai == "PNEUMONIA" else "disagree")
    second = rows[str(window.results_model.paths[other])]
    assert second["agreement"] == "disagree" and second["reader_label"] != second["label"]


def test_live_threshold_relabels_the_batch_without_touching_the_model(qtbot, window, labelled, tiny_model_file):
    before = tiny_model_file.read_bytes()
    open_and_wait(qtbot, window, [labelled])
    m = window.results_model
    p = np.array([r.probs["PNEUMONIA"] for r in m.results()])
    t = float(np.round(np.median(p), 3))
    window.reader.panel.threshold.spin.setValue(t)
    assert window.batch.threshold == pytest.approx(t) and window.reader.study.threshold == pytest.approx(t)
    labels = [r.label for r in m.results()]
    assert labels == ["PNEUMONIA" if np.float32(q) >= np.float32(t) else "NORMAL" for q in p]
    assert len(set(labels)) == 2
    assert [_cell(window, i, CLASS) for i in range(m.rowCount())] == labels
    window.results_view.filter_box.setCurrentIndex(window.results_view.filter_box.findData("PNEUMONIA"))
    assert window.results_view.proxy.rowCount() == labels.count("PNEUMONIA")
    counts = window.reader.panel.threshold.counts.text()
    assert f"{labels.count('PNEUMONIA')} PNEUMONIA" in counts and f"{labels.count('NORMAL')} NORMAL" in counts
    _select(qtbot, window, Path(window.results_view.proxy.index(0, 0).data()).name)  # shown with its folder
    assert f"{t:.3f}" in window.details.text()
    window.reader.panel.threshold.reset.click()  # back to the model's threshold
    assert window.batch.threshold == 0.5 and window.reader.study.threshold is None
    assert [r.label for r in m.results()] == ["PNEUMONIA" if q >= 0.5 else "NORMAL" for q in p]
    assert tiny_model_file.read_bytes() == before


def test_rows_whose_verdict_disagrees_with_the_folder_are_marked(qtbot, window, labelled):
    open_and_wait(qtbot, window, [labelled])
    m = window.results_model
    window.reader.set_threshold(0.0)  # every image called PNEUMONIA: the NORMAL folder's rows are wrong
    marked = [m.row(i).path.parent.name for i in range(m.rowCount()) if _cell(window, i, CLASS, Qt.ItemDataRole.BackgroundRole)]
    assert marked == ["NORMAL"] * 3
    tip = _cell(window, 0, CLASS, Qt.ItemDataRole.ToolTipRole)
    assert "The folder says NORMAL" in tip


def test_session_saves_and_restores_when_the_folder_is_reopened(qtbot, make_window, tiny_model_file, labelled,
                                                                 monkeypatch, _fresh_settings):
    w = make_window(tiny_model_file)
    open_and_wait(qtbot, w, [labelled])
    _select(qtbot, w, "normal_2.png")
    w.reader.label_acts[0].trigger()
    w.reader.panel.note.setPlainText("follow-up in 6 weeks")
    w.reader.set_threshold(0.42)
    saved = {}
    monkeypatch.setattr(dialogs, "ask_save_file", lambda _p, _t, suggested, _f: saved.setdefault("path", suggested))
    w.reader.save_act.trigger()
    path = saved["path"]
    assert path.is_file() and _fresh_settings in path.parents  # the app's folder (redirected), not the images'
    assert not list(labelled.rglob("*.json"))
    w.close()
    again = make_window(tiny_model_file)
    open_and_wait(qtbot, again, [labelled])
    entry = again.results_model.study.entries[labelled / "NORMAL" / "normal_2.png"]
    assert (entry.label, entry.note) == ("NORMAL", "follow-up in 6 weeks")
    assert again.batch.threshold == pytest.approx(0.42)
    _select(qtbot, again, "normal_2.png")
    assert again.reader.panel.note.toPlainText() == "follow-up in 6 weeks"
    assert "Reader session restored" in again.message.text()


def test_unsaved_verdicts_are_kept_in_the_app_folder_when_another_folder_opens(qtbot, window, labelled, image_folder,
                                                                               _fresh_settings):
    open_and_wait(qtbot, window, [labelled])
    _select(qtbot, window, "pneumonia_0.png")
    window.reader.agree_act.trigger()
    open_and_wait(qtbot, window, [image_folder])
    assert not window.results_model.study.recorded()
    assert window.reader.index.lookup(labelled) is not None
    assert _fresh_settings in window.reader.index.lookup(labelled).parents
    open_and_wait(qtbot, window, [labelled])
    assert window.results_model.study.entries[labelled / "pneumonia" / "pneumonia_0.png"].agrees is True
    assert Settings().sessions_folder.parent == _fresh_settings or _fresh_settings in Settings().sessions_folder.parents


def test_open_session_opens_its_folder_and_restores_it(qtbot, window, labelled, image_folder, tmp_path, monkeypatch):
    open_and_wait(qtbot, window, [labelled])
    _select(qtbot, window, "pneumonia_2.png")
    window.reader.disagree_act.trigger()
    target = tmp_path / "my-study.cxrsession.json"
    monkeypatch.setattr(dialogs, "ask_save_file", lambda *a, **k: target)
    window.reader.save_act.trigger()
    open_and_wait(qtbot, window, [image_folder])
    monkeypatch.setattr(dialogs, "ask_open_file", lambda *a, **k: target)
    with qtbot.waitSignal(window.batchFinished, timeout=20000):
        window.reader.open_act.trigger()
    assert window.inputs == [labelled]
    entry = window.results_model.study.entries[labelled / "pneumonia" / "pneumonia_2.png"]
    assert entry.agrees is False and window.reader.session_file == target
    (tmp_path / "bad.json").write_text("{}")
    said = []
    monkeypatch.setattr(dialogs, "ask_open_file", lambda *a, **k: tmp_path / "bad.json")
    monkeypatch.setattr(dialogs, "show_error", lambda _p, _t, text: said.append(text))
    window.reader.open_act.trigger()
    assert said == ["bad.json: not a cxrviewer session file"]


def test_no_two_actions_share_a_shortcut(window):
    """An ambiguous shortcut fires neither action: every key of the window belongs to one action."""
    from PySide6.QtGui import QAction

    keys = [(k.toString(), a.text()) for a in window.findChildren(QAction) for k in a.shortcuts() if not k.isEmpty()]
    seen = {}
    for key, text in keys:
        seen.setdefault(key, set()).add(text)
    assert {k: v for k, v in seen.items() if len(v) > 1} == {}


def test_measurements_travel_with_the_session_through_the_hook(qtbot, make_window, tiny_model_file, labelled,
                                                               monkeypatch):
    """The measurement tools plug in with two callables; their dicts are saved and handed back on restore."""
    image = str(labelled / "NORMAL" / "normal_1.png")
    drawn = {image: [{"kind": "distance", "points": [[1.0, 2.0], [30.0, 2.0]]}]}
    w = make_window(tiny_model_file)
    w.reader.export_measurements = lambda: drawn
    open_and_wait(qtbot, w, [labelled])
    w.reader.measurements_changed()
    target = labelled.parent / "m.cxrsession.json"
    monkeypatch.setattr(dialogs, "ask_save_file", lambda *a, **k: target)
    w.reader.save_act.trigger()
    w.close()
    again, received = make_window(tiny_model_file), []
    again.reader.import_measurements = received.append
    open_and_wait(qtbot, again, [labelled])
    assert received == [drawn]
