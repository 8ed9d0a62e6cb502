"""Column specs: one declaration read by the CSV, the table and the details panel."""

from __future__ import annotations

from pathlib import Path

from cxrviewer.core import columns
from cxrviewer.core.columns import Batch, csv_columns, detail_columns, shown_probability, table_columns
from cxrviewer.core.model import CamClassifier
from cxrviewer.core.results import FileResult


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
    p_shown = table_columns(batch)[-1]
    assert p_shown.header == "P(PNEUMONIA)" and p_shown.text(ok, batch) == "20.0%" and p_shown.text(bad, batch) == ""
    assert shown_probability(ok, Batch(("NORMAL", "PNEUMONIA"))) == 0.8  # no positive class: the predicted one
    assert sorted([ok, bad], key=lambda r: p_shown.sort_key(r, batch)) == [ok, bad]  # missing values last
    assert [columns.NAME.text(r, batch) for r in (ok, bad)] == ["Chest.png", "a.png"]
    assert columns.WIDTH.text(ok, batch) == "30" and columns.HEIGHT.text(bad, batch) == ""
    assert columns.probability_column("NORMAL").text(ok, batch) == "0.800000"
    keys = [c.key for c in csv_columns(batch)]
    assert keys == ["path", "label", "p_NORMAL", "p_PNEUMONIA", "error", "threshold", "width", "height", "format",
                    "model", "precision"]
    assert "overlay" in [c.key for c in csv_columns(batch, overlays=True)]
    assert {c.key for c in detail_columns(batch)} <= {c.key for c in csv_columns(batch)}
    assert all(c.width > 0 and c.header for c in csv_columns(batch, overlays=True) + table_columns(batch))
