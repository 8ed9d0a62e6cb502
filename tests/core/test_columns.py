"""Column specs: one declaration read by the CSV, the table and the details panel."""

from __future__ import annotations

from pathlib import Path

from cxrviewer.core.model.classifier import CamClassifier
from cxrviewer.core.results import columns
from cxrviewer.core.results.columns import Batch, csv_columns, detail_columns, shown_probability, table_columns
from cxrviewer.core.results.file_result import FileResult, VerdictChecks


def _model(**meta) -> CamClassifier:
    return CamClassifier("resnet18", 2, 1, meta={"class_names": ["NORMAL", "PNEUMONIA"], **meta})


def test_batch_of_a_model_and_its_display_name():
    m = _model(threshold=0.3, name="chest-v2", file="/x/y.safetensors")
    assert Batch.of(m) == Batch(("NORMAL", "PNEUMONIA"), "PNEUMONIA", 0.3, "chest-v2")
    assert _model(file="/x/y.safetensors").display_name == "y"  # no name: the file's stem
    assert _model().display_name == "resnet18"
    assert Batch.of(_model()).positive is None  # no threshold: the table shows the top class
    assert Batch.of(None) == Batch()


def test_values_text_and_sort_keys():
    batch = Batch(("NORMAL", "PNEUMONIA"), "PNEUMONIA", 0.5, "m")
    ok = FileResult(Path("b/Chest.png"), probs={"NORMAL": 0.8, "PNEUMONIA": 0.2}, label="NORMAL", image_size=(30, 20))
    bad = FileResult(Path("a.png"), error="damaged PNG data")
    p_shown = next(c for c in table_columns(batch) if c.key == "p_shown")
    assert p_shown.header == "P(PNEUMONIA)" and p_shown.text(ok, batch) == "20.0%" and p_shown.text(bad, batch) == ""
    assert shown_probability(ok, Batch(("NORMAL", "PNEUMONIA"))) == 0.8  # no positive class: the predicted one
    assert sorted([ok, bad], key=lambda r: p_shown.sort_key(r, batch)) == [ok, bad]  # missing values last
    assert [columns.NAME.text(r, batch) for r in (ok, bad)] == ["Chest.png", "a.png"]
    assert columns.WIDTH.text(ok, batch) == "30" and columns.HEIGHT.text(bad, batch) == ""
    assert columns.probability_column("NORMAL").text(ok, batch) == "0.800000"
    keys = [c.key for c in csv_columns(batch)]
    assert keys == ["path", "label", "p_NORMAL", "p_PNEUMONIA", "in_scope", "scope_score", "scope_reason", "error",
                    "threshold", "width", "height", "format", "model", "precision", "evidence_outside", "evidence_flag",
                    "no_positive_evidence", "unstable", "shift_border", "shift_blur", "shift_frame", "checks"]
    assert "overlay" in [c.key for c in csv_columns(batch, overlays=True)]
    assert {c.key for c in detail_columns(batch)} <= {c.key for c in csv_columns(batch, reader=True)}
    assert all(c.width > 0 and c.header for c in csv_columns(batch, overlays=True) + table_columns(batch))


def test_check_columns_read_the_verdict_checks():
    batch = Batch(("NORMAL", "PNEUMONIA"), "PNEUMONIA", 0.5, "m")
    checks = VerdictChecks(outside_share=0.61, evidence_outside=True, shifts={"border": 2.345, "blur": -0.2},
                           flipped=("border",), unstable=True)
    flagged = FileResult(Path("a.png"), probs={"NORMAL": 0.1, "PNEUMONIA": 0.9}, label="PNEUMONIA", checks=checks)
    unchecked = FileResult(Path("b.png"), probs={"NORMAL": 0.9, "PNEUMONIA": 0.1}, label="NORMAL")
    text = {c.key: c.text(flagged, batch) for c in csv_columns(batch)}
    assert text["evidence_outside"] == "0.610" and text["evidence_flag"] == "yes" and text["unstable"] == "yes"
    assert text["shift_border"] == "+2.35" and text["shift_blur"] == "-0.20" and text["no_positive_evidence"] == "no"
    assert text["checks"] == ("evidence outside the chest: check the framing; "
                              "unstable: the label changes with a 10% black border")
    assert all(c.text(unchecked, batch) == "" for c in columns.CHECK_COLUMNS)
    calm = VerdictChecks(outside_share=0.1, shifts={"border": 1.5, "blur": 0.1}, unstable=True, no_positive_evidence=True)
    assert calm.warnings("NORMAL") == ["unstable: the log-odds move by +1.5 with a 10% black border",
                                       "no positive evidence for NORMAL in the map"]
    assert VerdictChecks(outside_share=0.1).warnings() == []


def test_stability_columns_say_not_run_when_the_check_was_off():
    batch = Batch(("NORMAL", "PNEUMONIA"), "PNEUMONIA", 0.5, "m")
    off = FileResult(Path("a.png"), probs={"NORMAL": 0.9, "PNEUMONIA": 0.1}, label="NORMAL",
                     checks=VerdictChecks(outside_share=0.2, unstable=None))
    on = FileResult(Path("b.png"), probs={"NORMAL": 0.9, "PNEUMONIA": 0.1}, label="NORMAL",
                    checks=VerdictChecks(outside_share=0.2, shifts={"border": 0.1, "blur": -0.3}, unstable=False))
    text = {c.key: c.text(off, batch) for c in csv_columns(batch)}
    assert text["unstable"] == text["shift_border"] == text["shift_blur"] == columns.NOT_RUN
    assert text["evidence_outside"] == "0.200" and text["evidence_flag"] == "no" and text["checks"] == ""
    assert columns.UNSTABLE.text(on, batch) == "no" and columns.SHIFT_BLUR.text(on, batch) == "-0.30"
    failed = FileResult(Path("c.png"), error="broken")
    rows = sorted([failed, off, on], key=lambda r: columns.UNSTABLE.sort_key(r, batch))
    assert rows == [on, off, failed]  # checked values first, then 'not run', then none


def test_percentages_read_sensibly_and_sort_by_value():
    assert [columns.percent(p) for p in (0.99999, 0.9996, 0.999, 0.5, 0.0123, 0.001, 0.0004, 0.0, None)] == [
        "> 99.9%", "> 99.9%", "99.9%", "50.0%", "1.2%", "0.1%", "< 0.1%", "< 0.1%", ""]
    batch = Batch(("NORMAL", "PNEUMONIA"), "PNEUMONIA", 0.4312729835510254, "m")
    rows = [FileResult(Path(f"{p}.png"), probs={"NORMAL": 1 - p, "PNEUMONIA": p}, label="NORMAL") for p in (0.9999, 0.00001, 0.9997)]
    p_shown = columns.shown_probability_column(batch)
    assert [p_shown.text(r, batch) for r in rows] == ["> 99.9%", "< 0.1%", "> 99.9%"]
    assert [r.probs["PNEUMONIA"] for r in sorted(rows, key=lambda r: p_shown.sort_key(r, batch))] == [0.00001, 0.9997, 0.9999]
    assert columns.THRESHOLD.text(rows[0], batch) == "0.431273"  # six decimals, as the probabilities
