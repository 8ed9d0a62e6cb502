"""Evaluation on a labelled folder, site calibration and metadata-only model rewrites."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cxrviewer.core.site.calibration import (
    MIN_PER_CLASS, fit_calibration, parse_rule, threshold_for_rule, write_calibrated,
)
from cxrviewer.core.errors import ModelFileError
from cxrviewer.core.model.checkpoint import load_model, read_header
from cxrviewer.core.site.evaluation import (
    EvaluationError, disagreements, evaluation_metrics, read_labelled_folder, score_folder, write_evaluation,
)
from cxrviewer.core.model.model_update import weights_digest, write_with_metadata


def _folder(root, counts, seed=0):
    rng = np.random.default_rng(seed)
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True)
        for i in range(n):
            a = rng.random((96, 96)) * (0.6 if cls == "NORMAL" else 1.0)
            Image.fromarray((a * 255).astype(np.uint8)).save(root / cls / f"{cls.lower()}_{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return _folder(tmp_path_factory.mktemp("site") / "SiteA", {"NORMAL": 24, "PNEUMONIA": 22})


@pytest.fixture(scope="module")
def scored(site, tmp_path_factory):
    from conftest import make_tiny_model

    model = make_tiny_model(threshold=0.5, temperature=1.0)
    samples = read_labelled_folder(site, model.class_names)
    return model, score_folder(model, samples, site, device="cpu")


def test_folder_refusals_say_why(tmp_path):
    names = ["NORMAL", "PNEUMONIA"]
    with pytest.raises(EvaluationError, match="one sub-folder per class .* found 1 \\(NORMAL\\)"):
        read_labelled_folder(_folder(tmp_path / "one", {"NORMAL": 25}), names)
    with pytest.raises(EvaluationError, match="classes \\(CAT, DOG\\) do not match the model's \\(NORMAL, PNEUMONIA\\)"):
        read_labelled_folder(_folder(tmp_path / "pets", {"CAT": 25, "DOG": 25}), names)
    with pytest.raises(EvaluationError, match="at least 20 images per class; PNEUMONIA has 5"):
        read_labelled_folder(_folder(tmp_path / "few", {"NORMAL": 25, "PNEUMONIA": 5}), names, min_per_class=20)
    with pytest.raises(EvaluationError, match="no such folder"):
        read_labelled_folder(tmp_path / "missing", names)


def test_scores_follow_the_folder_labels(scored):
    model, scores = scored
    assert scores.counts() == {"NORMAL": 24, "PNEUMONIA": 22}
    assert all(p.parent.name == scores.class_names[y] for p, y in zip(scores.paths, scores.labels))
    np.testing.assert_allclose(scores.probs.sum(1), 1.0, rtol=1e-5)


def test_evaluate_writes_metrics_and_plots(scored, tmp_path):
    model, scores = scored
    m = evaluation_metrics(scores, model.threshold, model.positive_index)
    written = write_evaluation(tmp_path / "eval", scores, m)
    assert sorted(p.name for p in written) == ["confusion.png", "metrics.json", "reliability.png", "roc.png",
                                               "threshold_sweep.png"]
    data = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert data["n"] == 46 and data["images_per_class"] == {"NORMAL": 24, "PNEUMONIA": 22}
    assert data["threshold"] == 0.5 and 0 <= data["sensitivity"] <= 1 and data["folder"] == "SiteA"
    pred = (scores.probs[:, 1] >= 0.5).astype(int)
    assert set(disagreements(scores, 0.5, 1)) == {p for p, y, q in zip(scores.paths, scores.labels, pred) if y != q}


@pytest.mark.parametrize("rule, check", [
    ("sensitivity=0.95", lambda sens, spec: sens >= 0.95),
    ("specificity=0.90", lambda sens, spec: spec >= 0.90),
])
def test_rate_rules_meet_their_target_with_the_best_other_rate(rule, check):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300).astype(bool)
    p = np.clip(0.5 + 0.25 * (y - 0.5) + 0.2 * rng.normal(size=300), 0, 1)
    t = threshold_for_rule(y, p, rule)
    sens, spec = (p[y] >= t).mean(), (p[~y] < t).mean()
    assert check(sens, spec)
    if rule.startswith("sens"):  # a slightly higher threshold would break the target
        assert (p[y] >= np.sort(p[y][p[y] >= t])[0] + 1e-9).mean() < 0.95
    assert 0 < t < 1


def test_rule_parsing_refuses_nonsense():
    assert parse_rule("Youden") == ("youden", None)
    assert parse_rule("sensitivity=0.95") == ("sensitivity", 0.95)
    for bad in ("f1", "sensitivity=1.5", "specificity", "sensitivity=0"):
        with pytest.raises(ValueError, match="unknown rule"):
            parse_rule(bad)


def test_calibrate_round_trip_keeps_the_weights_and_applies_the_new_operating_point(scored, tiny_model_file, tmp_path):
    model, scores = scored
    cal = fit_calibration(scores, read_header(tiny_model_file), "sensitivity=0.95")
    out = write_calibrated(cal, scores, tiny_model_file, tmp_path / "site.safetensors")
    assert weights_digest(out) == weights_digest(tiny_model_file)
    assert out.read_bytes().endswith(tiny_model_file.read_bytes()[-4096:])
    new = load_model(out)
    assert new.threshold == pytest.approx(cal.threshold) and new.temperature == pytest.approx(cal.temperature)
    prov = new.meta["site_calibration"]
    assert prov["folder"] == "SiteA" and prov["images"] == {"NORMAL": 24, "PNEUMONIA": 22}
    assert prov["rule"] == "sensitivity=0.95" and prov["metrics"]["sensitivity"] >= 0.95 and prov["date"]
    assert prov["previous"]["threshold"] == 0.5
    card = out.with_suffix(".md").read_text()
    assert "SiteA" in card and "sensitivity=0.95" in card
    for a, b in zip(load_model(tiny_model_file).state_dict().values(), new.state_dict().values()):
        assert bool((a == b).all())


def test_calibrate_refuses_too_few_images_and_never_overwrites(scored, tiny_model_file, tmp_path):
    model, scores = scored
    few = type(scores)(**{**scores.__dict__})
    keep = np.r_[np.flatnonzero(scores.labels == 0)[:MIN_PER_CLASS - 1], np.flatnonzero(scores.labels == 1)]
    few.labels, few.logits, few.probs = scores.labels[keep], scores.logits[keep], scores.probs[keep]
    with pytest.raises(EvaluationError, match="at least 20 readable images per class; NORMAL has 19"):
        fit_calibration(few, read_header(tiny_model_file))
    cal = fit_calibration(scores, read_header(tiny_model_file))
    with pytest.raises(ModelFileError, match="is the source model"):
        write_calibrated(cal, scores, tiny_model_file, tiny_model_file)
    (tmp_path / "taken.safetensors").write_bytes(b"keep me")
    with pytest.raises(ModelFileError, match="already exists"):
        write_calibrated(cal, scores, tiny_model_file, tmp_path / "taken.safetensors")
    assert (tmp_path / "taken.safetensors").read_bytes() == b"keep me"


def test_metadata_rewrite_is_loadable_and_byte_identical_in_its_tensors(tiny_model_file, tmp_path):
    out = write_with_metadata(tiny_model_file, tmp_path / "new.safetensors", {"threshold": 0.3, "note": "x"})
    meta = read_header(out)
    assert meta["threshold"] == 0.3 and meta["note"] == "x"
    assert weights_digest(out) == weights_digest(tiny_model_file)
    with pytest.raises(ModelFileError, match="threshold must be"):
        write_with_metadata(tiny_model_file, tmp_path / "bad.safetensors", {"threshold": 2.0})
    assert not (tmp_path / "bad.safetensors").exists()
