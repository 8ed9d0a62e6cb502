"""``cxrviewer evaluate`` and ``cxrviewer calibrate`` end to end, with every refusal."""

from __future__ import annotations

import csv
import json

import pytest

from cxrviewer.cli import main
from cxrviewer.core.model.checkpoint import load_model
from cxrviewer.core.model.model_update import weights_digest
from tests.core.test_evaluation import _folder


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return _folder(tmp_path_factory.mktemp("cli") / "Ward7", {"NORMAL": 21, "PNEUMONIA": 20}, seed=3)


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_evaluate_writes_metrics_and_plots_and_never_touches_the_folder(site, tiny_model_file, tmp_path, capsys):
    before = sorted(p.relative_to(site) for p in site.rglob("*"))
    assert main(["evaluate", str(site), "--model", str(tiny_model_file), "--out", str(tmp_path / "ev"),
                 "--faithfulness-images", "0"]) == 0
    assert "41 images" in capsys.readouterr().out
    assert {p.name for p in (tmp_path / "ev").iterdir()} == {"metrics.json", "roc.png", "confusion.png",
                                                             "reliability.png", "threshold_sweep.png"}
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["n"] == 41 and m["threshold"] == 0.5 and m["in_scope_rate"] == 1.0 and "faithfulness" not in m
    assert sorted(p.relative_to(site) for p in site.rglob("*")) == before
    assert main(["evaluate", str(site), "--model", str(tiny_model_file), "--out", str(tmp_path / "ev")]) == 1
    assert "already holds an evaluation" in _error(capsys)
    assert main(["evaluate", str(site), "--model", str(tiny_model_file), "--out", str(site / "NORMAL" / "x")]) == 1
    assert "inside the labelled folder" in _error(capsys)


def test_evaluate_scores_heat_map_faithfulness_on_a_stratified_subset(site, tiny_model_file, tmp_path, capsys):
    assert main(["evaluate", str(site), "--model", str(tiny_model_file), "--out", str(tmp_path / "ev"),
                 "--faithfulness-images", "4"]) == 0
    out = capsys.readouterr().out
    assert "faithfulness on 4 images" in out and "beyond chance: CAM beats a random and a centred map in " in out
    assert "; Grad-CAM beats a random and a centred map in " in out
    f = json.loads((tmp_path / "ev" / "metrics.json").read_text())["faithfulness"]
    assert f["n"] == 4 and len(f["files"]) == 4 and all(str(site) in p for p in f["files"])
    assert set(f["mean"]) == {"evidence", "gradcam", "random", "prior"}
    for row in f["mean"].values():
        assert set(row) == {"deletion_mean", "insertion_mean", "deletion_blur", "insertion_blur"}
        assert all(0.0 <= v <= 1.0 for v in row.values())
    assert set(f["margins"]) == {"random", "prior"} == set(f["margins_gradcam"])
    assert sum(c["n"] for c in f["by_predicted_class"].values()) == 4


def test_calibrate_round_trip_and_predict_applies_the_new_threshold(site, tiny_model_file, tmp_path, capsys):
    new = tmp_path / "ward7.safetensors"
    assert main(["calibrate", str(site), "--model", str(tiny_model_file), "--out", str(new),
                 "--rule", "specificity=0.90"]) == 0
    out = capsys.readouterr().out
    assert "before:" in out and "after:" in out
    assert weights_digest(new) == weights_digest(tiny_model_file)
    model = load_model(new)
    assert model.threshold != 0.5 and model.meta["site_calibration"]["rule"] == "specificity=0.90"
    assert (tmp_path / "ward7.md").exists() and (tmp_path / "ward7_calibration" / "threshold_sweep.png").exists()
    assert main(["predict", str(site), "--model", str(new), "--csv", str(tmp_path / "r.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "r.csv").open(newline="")))
    assert [float(r["threshold"]) for r in rows] == pytest.approx([model.threshold] * len(rows), abs=1e-6)
    for r in rows:
        assert r["label"] == ("PNEUMONIA" if float(r["p_PNEUMONIA"]) >= model.threshold else "NORMAL")
    normal = [r for r in rows if "/NORMAL/" in r["path"]]
    assert sum(r["label"] == "NORMAL" for r in normal) / len(normal) >= 0.9  # the rule holds on the folder


@pytest.mark.parametrize("counts, message", [
    ({"NORMAL": 25}, "needs one sub-folder per class"),
    ({"NORMAL": 25, "PNEUMONIA": 19}, "at least 20 images per class; PNEUMONIA has 19"),
    ({"NORMAL": 25, "COVID": 25}, "do not match the model's"),
])
def test_calibrate_refusals(counts, message, tiny_model_file, tmp_path, capsys):
    folder = _folder(tmp_path / "site", counts)
    assert main(["calibrate", str(folder), "--model", str(tiny_model_file), "--out", str(tmp_path / "n.safetensors")]) == 1
    assert message in _error(capsys)
    assert not (tmp_path / "n.safetensors").exists()


def test_calibrate_never_overwrites_the_source_or_another_file(site, tiny_model_file, tmp_path, capsys):
    original = tiny_model_file.read_bytes()
    assert main(["calibrate", str(site), "--model", str(tiny_model_file), "--out", str(tiny_model_file)]) == 1
    assert "is the source model" in _error(capsys)
    assert main(["calibrate", str(site), "--model", str(tiny_model_file), "--out", str(tmp_path / "x.safetensors"),
                 "--rule", "sensitivity=2"]) == 1
    assert "unknown rule" in _error(capsys)
    assert tiny_model_file.read_bytes() == original
