"""The reader study's core: verdicts, truth from folder names, live relabelling, metrics and session files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from cxrviewer.core.results.columns import Batch, csv_columns
from cxrviewer.core.results.export import CsvWriter
from cxrviewer.core.site.evaluation import evaluation_metrics
from cxrviewer.core.results.reader_study import (
    AGREE, DISAGREE, ReaderStudy, agreement, record, relabel, truth_from_path,
)
from cxrviewer.core.results.file_result import OUT_OF_SCOPE, FileResult
from cxrviewer.core.results.session import (
    VERSION, SessionError, SessionIndex, load_session, restore, save_session, session_of,
)
from cxrviewer.core.site.study_metrics import reader_metrics, scores_from_results

NAMES = ["NORMAL", "PNEUMONIA"]


def _result(path, p_pneumonia, threshold=0.5, in_scope=True):
    r = FileResult(Path(path), probs={"NORMAL": 1 - p_pneumonia, "PNEUMONIA": p_pneumonia},
                   logits=[0.0, float(np.log(p_pneumonia / (1 - p_pneumonia)))], in_scope=in_scope)
    relabel([r], threshold, "PNEUMONIA")
    return r


def test_reader_actions_and_agreement_follow_the_ai_label():
    study = ReaderStudy(Path("/s"), NAMES)
    e = study.entry(Path("/s/a.png"))
    record(e, AGREE, "PNEUMONIA", NAMES)
    assert (e.label, agreement(e, "PNEUMONIA")) == ("PNEUMONIA", AGREE)
    assert agreement(e, "NORMAL") == DISAGREE  # the AI's call moved (live threshold); the reader's label did not
    record(e, DISAGREE, "PNEUMONIA", NAMES)
    assert (e.label, agreement(e, "PNEUMONIA")) == ("NORMAL", DISAGREE)
    record(e, "PNEUMONIA", "NORMAL", NAMES)
    assert (e.label, e.agrees) == ("PNEUMONIA", False)
    record(e, DISAGREE, OUT_OF_SCOPE, NAMES)  # no AI verdict: the disagreement is kept, no label guessed
    assert e.label is None and agreement(e, OUT_OF_SCOPE) == DISAGREE
    record(e, "clear", "NORMAL", NAMES)
    assert not e.recorded
    with pytest.raises(ValueError, match="unknown reader action"):
        record(e, "CAT", "NORMAL", NAMES)


def test_truth_comes_from_the_nearest_class_folder_case_insensitively():
    root = Path("/data/site")
    assert truth_from_path(root / "normal" / "x.png", root, NAMES) == "NORMAL"
    assert truth_from_path(root / "Pneumonia" / "bacterial" / "x.png", root, NAMES) == "PNEUMONIA"
    assert truth_from_path(root / "misc" / "x.png", root, NAMES) is None
    assert truth_from_path(Path("/NORMAL/site/x.png"), root, NAMES) is None  # above the opened folder: not truth
    assert truth_from_path(Path("/data/PNEUMONIA/x.png"), Path("/data/PNEUMONIA"), NAMES) == "PNEUMONIA"
    assert truth_from_path(Path("/a/NORMAL/x.png"), None, NAMES) == "NORMAL"


def test_relabel_applies_the_threshold_to_stored_probabilities_and_keeps_scope():
    r = _result("/s/a.png", 0.3)
    assert r.label == "NORMAL"
    relabel([r], 0.25, "PNEUMONIA")
    assert r.label == r.predicted == "PNEUMONIA"
    out = _result("/s/b.png", 0.9, in_scope=False)
    relabel([out], 0.95, "PNEUMONIA")
    assert out.label == OUT_OF_SCOPE and out.predicted == "NORMAL"


@pytest.fixture
def study_batch():
    """Eight files with truth from their folders, AI calls at 0.5 and reader labels (one unread)."""
    root = Path("/study")
    study = ReaderStudy(root, NAMES)
    rows = [  # truth, p(PNEUMONIA), reader label
        ("NORMAL", 0.1, "NORMAL"), ("NORMAL", 0.2, "NORMAL"), ("NORMAL", 0.7, "NORMAL"), ("NORMAL", 0.6, "PNEUMONIA"),
        ("PNEUMONIA", 0.9, "PNEUMONIA"), ("PNEUMONIA", 0.8, "PNEUMONIA"), ("PNEUMONIA", 0.4, "NORMAL"),
        ("PNEUMONIA", 0.3, None)]
    results = []
    for i, (truth, p, reader) in enumerate(rows):
        r = study.attach(_result(root / truth.lower() / f"{i}.png", p))
        if reader is not None:
            record(r.reader, reader, r.label, NAMES)
        results.append(r)
    return study, results


def test_reader_metrics_equal_a_hand_computed_confusion_matrix(study_batch):
    _, results = study_batch
    m = reader_metrics(results, NAMES, "PNEUMONIA")
    # reader on the 7 read files: NORMAL truth -> N, N, N, P; PNEUMONIA truth -> P, P, N
    assert m["confusion_matrix"] == [[3, 1], [1, 2]]
    assert m["n"] == 7 and m["unread"] == 1
    assert m["sensitivity"] == pytest.approx(2 / 3) and m["specificity"] == pytest.approx(3 / 4)
    assert m["accuracy"] == pytest.approx(5 / 7)
    # AI at 0.5 on the read files: N, N, P, P, P, P, N -> the reader agrees on all but file 2
    assert m["agree_with_ai"] == pytest.approx(6 / 7)


def test_ai_metrics_from_the_batch_equal_a_hand_computed_confusion_matrix(study_batch):
    _, results = study_batch
    scores = scores_from_results(results, NAMES, Path("/study"))
    m = evaluation_metrics(scores, 0.5, 1)
    # AI at 0.5: NORMAL truth -> N, N, P, P; PNEUMONIA truth -> P, P, N, N
    assert m["confusion_matrix"] == [[2, 2], [2, 2]]
    assert m["sensitivity"] == 0.5 and m["specificity"] == 0.5
    m = evaluation_metrics(scores, 0.25, 1)  # the live threshold moves the operating point
    assert m["confusion_matrix"] == [[2, 2], [0, 4]]  # NORMAL 0.1, 0.2 | 0.7, 0.6; PNEUMONIA all >= 0.25
    assert m["auroc"] == pytest.approx(12 / 16)


def test_session_saves_and_restores_relative_to_the_folder(study_batch, tmp_path):
    study, results = study_batch
    results[0].reader.note = "rib fracture?"
    results[0].reader.measurements = [{"kind": "distance", "points": [[1, 2], [3, 4]]}]
    study.threshold = 0.42
    path = save_session(session_of(study, [Path("/study")], "tiny"), tmp_path / "s" / "study.cxrsession.json")
    data = json.loads(path.read_text())
    assert data["version"] == VERSION and data["threshold"] == 0.42 and len(data["entries"]) == 7
    assert data["entries"]["normal/0.png"]["note"] == "rib fracture?"
    moved = ReaderStudy(Path("/moved"), NAMES)
    assert restore(moved, load_session(path, root=Path("/moved"))) == 7
    e = moved.entries[Path("/moved/normal/0.png")]
    assert (e.label, e.note, e.truth, moved.threshold) == ("NORMAL", "rib fracture?", "NORMAL", 0.42)
    assert e.measurements == [{"kind": "distance", "points": [[1, 2], [3, 4]]}]
    assert moved.entries[Path("/moved/normal/3.png")].label == "PNEUMONIA"


@pytest.mark.parametrize("content, message", [
    ("{", "not a session file"), ('{"format": "other"}', "not a cxrviewer session file"),
    ('{"format": "cxrviewer-session", "version": 99}', "newer than this cxrviewer reads"),
    ('{"format": "cxrviewer-session", "version": 1, "threshold": 3}', "not a probability"),
    ('{"format": "cxrviewer-session", "version": 1, "entries": {"a.png": {"note": 5}}}', "malformed entry")])
def test_bad_session_files_are_refused_with_one_line(tmp_path, content, message):
    (tmp_path / "bad.json").write_text(content)
    with pytest.raises(SessionError, match=message):
        load_session(tmp_path / "bad.json")


def test_session_index_finds_a_folders_session(tmp_path):
    index = SessionIndex(tmp_path / "app" / "sessions")
    folder = tmp_path / "images"
    folder.mkdir()
    assert index.lookup(folder) is None
    target = index.default_file(folder)
    assert target.parent == index.folder and target.name.startswith("images-")
    save_session(session_of(ReaderStudy(folder, NAMES), [folder]), target)
    index.remember(folder, target)
    assert index.lookup(folder) == target.resolve()
    target.unlink()
    assert index.lookup(folder) is None  # a session deleted since: nothing to restore


def test_csv_gains_reader_columns(study_batch, tmp_path):
    _, results = study_batch
    results[2].reader.note = "line, \"quoted\""
    batch = Batch(tuple(NAMES), "PNEUMONIA", 0.5, "tiny")
    with CsvWriter(tmp_path / "r.csv", batch, csv_columns(batch, reader=True)) as w:
        for r in results:
            w.write(r)
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert [rows[i]["reader_label"] for i in (0, 3, 7)] == ["NORMAL", "PNEUMONIA", ""]
    assert [rows[i]["agreement"] for i in (0, 2, 7)] == ["agree", "disagree", ""]
    assert rows[2]["truth"] == "NORMAL" and rows[2]["note"] == "line, \"quoted\""
    assert "reader_label" not in [c.key for c in csv_columns(batch)]  # the CLI's CSV is unchanged
