"""Scope rules (header, size, blank, colour) on real and synthetic files, and the learned score's statistics."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from cxrviewer.core.io.reading import load_radiograph
from cxrviewer.core.paths import resources_dir
from cxrviewer.core.model.scope import (
    HEADER_MARGIN, ScopeStats, ScopeVerdict, declares_chest_radiograph, dicom_reason, energy, judge, rule_reason,
)


def _rule(path):
    rad = load_radiograph(path, target_size=(224, 224))
    return rule_reason(rad.pixels, rad.meta)


@pytest.mark.parametrize("name, words", [
    ("CT_small.dcm", "Modality is CT"),
    ("MR_small.dcm", "Modality is MR"),
    ("US1_J2KR.dcm", "Modality is US"),
    ("RG3_J2KR.dcm", "Body Part Examined is EXTREMITY, not the chest"),
    ("emri_small.dcm", "Modality is MR"),
])
def test_non_chest_dicoms_are_out_of_scope_with_their_reason(name, words):
    assert words in _rule(get_testdata_file(name, download=False))


def test_tibia_radiograph_is_refused_by_body_part_not_by_modality():
    rad = load_radiograph(get_testdata_file("RG3_UNCR.dcm", download=False), target_size=(224, 224))
    assert rad.meta["Modality"] == "CR"
    assert rule_reason(rad.pixels, rad.meta) == "DICOM Body Part Examined is EXTREMITY, not the chest"


def test_header_rules_for_multiframe_and_absent_tags():
    assert "multi-frame DICOM (10 frames)" in dicom_reason({"Modality": "DX", "frames": 10})
    assert dicom_reason({"Modality": "DX", "BodyPartExamined": "THORAX", "frames": 1}) is None
    assert dicom_reason({"Modality": "CR", "BodyPartExamined": "Chest PA"}) is None
    assert dicom_reason({}) is None  # no header claim: the learned score decides


@pytest.mark.parametrize("path", [
    get_testdata_file("RG1_UNCR.dcm", download=False),
    *sorted(str(p) for p in (resources_dir() / "samples").iterdir() if p.suffix in (".jpeg", ".dcm")),
])
def test_chest_radiographs_pass_the_rules(path):
    assert _rule(path) is None


def _png(tmp_path, name, array, mode=None):
    p = tmp_path / name
    Image.fromarray(array, mode).save(p)
    return p


def test_blank_tiny_extreme_and_coloured_rasters_are_out_of_scope(tmp_path):
    rng = np.random.default_rng(0)
    xray_like = (rng.random((300, 300)) * 255).astype(np.uint8)
    assert "blank or nearly uniform" in _rule(_png(tmp_path, "blank.png", np.full((400, 400), 37, np.uint8)))
    assert "only 1 x 1 pixels" in _rule(_png(tmp_path, "dot.png", np.zeros((1, 1), np.uint8)))
    assert "aspect ratio 4.0:1" in _rule(_png(tmp_path, "strip.png", (rng.random((200, 800)) * 255).astype(np.uint8)))
    colour = np.stack([xray_like, np.roll(xray_like, 50, 0), 255 - xray_like], axis=-1)
    assert "colour picture" in _rule(_png(tmp_path, "colour.png", colour))
    jpeg = tmp_path / "colour.jpg"
    Image.fromarray(colour).save(jpeg, quality=90)
    assert "colour picture" in _rule(jpeg)  # JPEGs decoded in draft mode keep their chroma for the check
    assert _rule(_png(tmp_path, "grey_rgb.png", np.stack([xray_like] * 3, axis=-1))) is None


def _clusters(n=400, f=32, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2, f)) * 3
    y = rng.integers(0, 2, n)
    return centres[y] + rng.normal(size=(n, f)) * np.linspace(0.2, 2, f), y, centres


def test_mahalanobis_separates_far_points_and_keeps_the_quantile():
    x, y, centres = _clusters()
    stats = ScopeStats.fit(x[:300], y[:300], rank=8)
    t = stats.fit_threshold(x[300:], quantile=0.99)
    assert (stats.distance(x[300:]) <= t).mean() >= 0.99
    far = centres[0] + np.random.default_rng(1).normal(size=(20, x.shape[1])) * 10
    assert (stats.distance(far) > t).all()
    verdicts = stats.verdicts(far[:1])
    assert not verdicts[0].in_scope and "unlike the chest radiographs" in verdicts[0].reason


def test_full_rank_matches_the_textbook_mahalanobis_distance():
    x, y, _ = _clusters(n=600, f=6)
    stats = ScopeStats.fit(x, y, rank=5)  # rank F - 1: the residual is the last eigenvalue, so exact
    means = np.stack([x[y == k].mean(0) for k in (0, 1)])
    c = x - means[y]
    prec = np.linalg.inv(c.T @ c / (len(x) - 2))
    q = x[:5]
    d2 = np.min([np.einsum("nf,fg,ng->n", q - m, prec, q - m) for m in means], axis=0)
    np.testing.assert_allclose(stats.distance(q), np.sqrt(d2 / 6), rtol=1e-6)


def test_statistics_round_trip_through_json_metadata():
    import json

    x, y, _ = _clusters()
    stats = ScopeStats.fit(x, y, rank=8)
    stats.fit_threshold(x)
    meta = json.loads(json.dumps(stats.to_meta(fitted_on="test")))
    back = ScopeStats.from_meta(meta)
    assert back.threshold == pytest.approx(stats.threshold)
    np.testing.assert_allclose(back.distance(x[:10]), stats.distance(x[:10]), rtol=1e-5)
    assert ScopeStats.from_meta(None) is None
    assert ScopeStats.from_meta({"method": "mahalanobis", "means": "garbage"}) is None


def test_judge_a_rule_wins_the_score_is_recorded_and_a_chest_header_earns_a_margin():
    png = {"format": "PNG"}
    ct = {"format": "DICOM", "Modality": "CT"}
    chest_cr = {"format": "DICOM", "Modality": "CR", "BodyPartExamined": "CHEST"}
    v = judge("DICOM Modality is CT, ...", 0.5, 1.0, ct)
    assert not v.in_scope and v.reason.startswith("DICOM Modality is CT") and v.score == 0.5
    assert judge(None, 0.9, 1.0, png) == ScopeVerdict(True, 0.9, None)
    v = judge(None, 1.2, 1.0, png)
    assert not v.in_scope and "scope score 1.20 > 1.00" in v.reason
    assert judge(None, 1.2, 1.0, chest_cr).in_scope  # the header vouches for a chest radiograph...
    assert not judge(None, HEADER_MARGIN + 0.1, 1.0, chest_cr).in_scope  # ...within a margin
    assert declares_chest_radiograph(chest_cr) and not declares_chest_radiograph({**chest_cr, "format": "PNG"})
    assert judge(None, None, None, png).in_scope  # a model file without statistics: rules only


def test_energy_is_minus_logsumexp():
    logits = np.array([[0.0, 0.0], [5.0, -5.0]])
    np.testing.assert_allclose(energy(logits), -np.log(np.exp(logits).sum(1)))
    np.testing.assert_allclose(energy(logits, 2.0), -2.0 * np.log(np.exp(logits / 2).sum(1)))
