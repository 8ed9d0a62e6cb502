"""int8: calibration recorded as data, the QDQ engine built from it at load, its CAMs, and the policy that picks it."""

import json

import numpy as np
import pytest
import torch

from cxrviewer.core.model import int8
from cxrviewer.core.model import precision as P
from cxrviewer.core.model.checkpoint import load_model, save_model
from cxrviewer.core.model.precision import (CPU_ENV, MIN_AGREEMENT, measure_parity, prepare_for, prepare_model,
                                      resolve_precision)
from tests.conftest import make_tiny_model

needs_engine = pytest.mark.skipif(int8.engine_missing() is not None, reason="onnxruntime/onnx not installed")


def _images(n=16, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    # smooth, radiograph-like fields: random low-resolution noise upsampled
    low = torch.rand(n, 1, 8, 8, generator=g)
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)


def _calibrated(**meta):
    model = make_tiny_model(threshold=0.5, **meta)
    model.meta[int8.CALIBRATION_KEY] = int8.calibrate(model, [_images(16, seed=1)])
    return model


def test_calibration_is_plain_json_data_with_a_range_per_point():
    model = make_tiny_model()
    record = int8.calibrate(model, [(_images(8) * 255).to(torch.uint8)])
    assert json.loads(json.dumps(record)) == record  # data, nothing executable
    steps = int8.trunk_plan(prepare_model(model, "float32").features.trunk)
    assert set(record["points"]) == {"input"} | {s.out for s in steps if not isinstance(s, int8.PoolStep)}
    for scale, zero in record["points"].values():
        assert scale > 0 and 0 <= zero <= 255
    assert record["points"]["stem"][1] == 0  # after a ReLU: nothing below zero to cover
    assert record["n"] == 8


def test_calibration_refuses_a_trunk_without_an_int8_path():
    with pytest.raises(ValueError, match="ResNet"):
        int8.calibrate(make_tiny_model(arch="densenet121"), [_images(2)])


@needs_engine
def test_int8_engine_gives_logits_and_cams_of_a_whole_batch_close_to_float32(tmp_path):
    path = save_model(_calibrated(), tmp_path / "m.safetensors")
    model = load_model(path)  # the calibration survives the file; no training data needed from here on
    q = prepare_model(model, "int8")
    f = prepare_model(model, "float32")
    x = _images(6, seed=7)
    with torch.inference_mode():
        lq, cq = q.logits_and_cams(q.normalize(x))
        lf, cf = f.logits_and_cams(f.normalize(x))
    assert lq.dtype == cq.dtype == torch.float32 and cq.shape == cf.shape == (6, 2, 2, 2)
    # the CAM identity holds in int8 too: spatial mean plus bias is the logit
    torch.testing.assert_close(cq.mean(dim=(2, 3)) + model.classifier.bias, lq, atol=1e-5, rtol=1e-5)
    assert P.cam_correlations(cq, cf).min() > 0.95
    assert not torch.equal(cq, cf)  # really quantised, not the float path
    assert "precision" not in model.meta and q.meta["precision"] == "int8"


@needs_engine
def test_parity_records_agreement_and_cam_correlation_for_int8():
    record = measure_parity(_calibrated(), [_images(8, seed=3), _images(4, seed=4)], precisions=["int8"])
    r = record["int8"]
    assert r["n"] == 12 and 0 <= r["agreement"] <= 1
    assert 0.9 < r["cam_correlation"] <= 1 and r["cam_correlation_min"] <= r["cam_correlation"]


INT8_GOOD = {"agreement": 1.0, "max_prob_diff": 0.02, "cam_correlation": 0.995, "n": 700}
BF16_GOOD = {"agreement": 1.0, "max_prob_diff": 0.01, "n": 700}


@pytest.mark.parametrize("features, parity, blocker, expected", [
    ("vnni,avx2", {"int8": INT8_GOOD}, None, "int8"),                      # desktop CPU without bf16
    ("avx2", {"int8": INT8_GOOD}, None, "int8"),                           # AVX2 only
    ("none", {"int8": INT8_GOOD, "bfloat16": BF16_GOOD}, None, "float32"),  # neither
    ("bf16,vnni", {"int8": INT8_GOOD, "bfloat16": BF16_GOOD}, None, "int8"),  # int8 first: faster
    ("bf16,vnni", {"bfloat16": BF16_GOOD}, None, "bfloat16"),              # no int8 record: bf16
    ("vnni", {"bfloat16": BF16_GOOD}, None, "float32"),                    # no int8 record, no bf16 units
    ("vnni", None, None, "float32"),
    ("vnni", {"int8": dict(INT8_GOOD, agreement=MIN_AGREEMENT - 0.001)}, None, "float32"),
    ("vnni", {"int8": dict(INT8_GOOD, cam_correlation=0.97)}, None, "float32"),  # CAMs must match too
    ("vnni", {"int8": {k: v for k, v in INT8_GOOD.items() if k != "cam_correlation"}}, None, "float32"),
    ("vnni", {"int8": dict(INT8_GOOD, scope_agreement=0.99)}, None, "float32"),  # the scope pass must hold too
    ("vnni", {"int8": dict(INT8_GOOD, scope_agreement=1.0)}, None, "int8"),
    ("bf16,vnni", {"int8": INT8_GOOD, "bfloat16": BF16_GOOD}, "onnxruntime is not installed", "bfloat16"),
    ("vnni", {"int8": INT8_GOOD}, "onnxruntime is not installed", "float32"),
])
def test_auto_picks_the_fastest_native_precision_with_recorded_parity(monkeypatch, features, parity, blocker, expected):
    monkeypatch.setenv(CPU_ENV, features)
    choice = resolve_precision("auto", "cpu", parity, blocker)
    assert choice.name == expected, choice.reason
    assert choice.reason.startswith("auto")
    if blocker:
        assert blocker in choice.reason  # the reason is stated, never silent
    if expected == "int8":
        assert ("VNNI" if "vnni" in features else "AVX2") in choice.reason


def test_forced_cpu_features_replace_the_detection(monkeypatch):
    monkeypatch.setenv(CPU_ENV, "avx2")
    assert P.cpu_features() == {"avx2"} and not P.cpu_has_native_bf16() and P.cpu_has_int8_dot()
    assert P.native_precisions(torch.device("cpu")) == ("int8",)
    monkeypatch.setenv(CPU_ENV, "none")
    assert P.native_precisions(torch.device("cpu")) == ()
    monkeypatch.setenv(CPU_ENV, "avx512")
    with pytest.raises(ValueError, match="unknown feature"):
        P.cpu_features()


def test_explicit_int8_falls_back_to_float32_with_the_reason():
    choice = resolve_precision("int8", "cpu", None, "the model file records no int8 calibration")
    assert choice.name == "float32" and "no int8 calibration" in choice.reason
    assert resolve_precision("int8", "cuda", {"int8": INT8_GOOD}).name == "float32"
    model = make_tiny_model()
    assert "no int8 calibration" in P.int8_blocker(model)
    assert "ResNet" in P.int8_blocker(make_tiny_model(arch="densenet121"))


def test_a_missing_engine_falls_back_with_the_reason(monkeypatch):
    model = make_tiny_model(threshold=0.5)
    model.meta[int8.CALIBRATION_KEY] = {"format": int8.FORMAT, "points": {"input": [0.01, 0]}}
    model.meta[P.PARITY_KEY] = {"int8": INT8_GOOD}
    monkeypatch.setenv(CPU_ENV, "vnni")
    monkeypatch.setattr(P.importlib.util, "find_spec", lambda name: None)
    clone, choice = prepare_for(model, "auto")
    assert choice.name == "float32" and "onnxruntime is not installed" in choice.reason
    assert clone.meta["precision"] == "float32"


def test_an_engine_that_fails_to_build_falls_back_with_the_reason(monkeypatch):
    model = _calibrated()
    model.meta[P.PARITY_KEY] = {"int8": INT8_GOOD, "bfloat16": BF16_GOOD}
    monkeypatch.setenv(CPU_ENV, "bf16,vnni")
    monkeypatch.setattr(P, "int8_blocker", lambda m: None)

    def broken(*a, **k):
        raise RuntimeError("no kernel for this graph")

    monkeypatch.setattr(int8, "build_qdq_model", broken)
    clone, choice = prepare_for(model, "auto")
    assert choice.name == "bfloat16" and "no kernel for this graph" in choice.reason


@needs_engine
def test_predictor_runs_int8_end_to_end_with_cams(tmp_path, monkeypatch):
    from PIL import Image

    from cxrviewer.core.batch.inference import Predictor

    model = _calibrated()
    model.meta[P.PARITY_KEY] = {"int8": INT8_GOOD}
    monkeypatch.setenv(CPU_ENV, "vnni")
    paths = []
    for i, x in enumerate(_images(5, seed=11)):
        p = tmp_path / f"{i}.png"
        Image.fromarray((x[0].numpy() * 255).astype(np.uint8)).save(p)
        paths.append(p)
    pred = Predictor(model, "cpu", batch_size=4)
    assert pred.precision == "int8" and "VNNI" in pred.precision_reason
    results = list(pred.predict(paths))
    assert [r.precision for r in results] == ["int8"] * 5
    assert all(r.ok and r.cams.shape == (2, 2, 2) for r in results)


@needs_engine
def test_parity_measures_the_scope_decisions_of_a_model_with_a_scope():
    from cxrviewer.core.model.scope import ScopeStats

    model = _calibrated()
    x = _images(12, seed=5)
    with torch.inference_mode():
        _, _, pooled = model.logits_cams_pooled(model.normalize(x))
    stats = ScopeStats.fit(pooled.numpy(), np.arange(12) % 2, rank=4)
    stats.fit_threshold(pooled.numpy(), 0.5)  # half the images out of scope: decisions near the line
    model.meta["scope"] = stats.to_meta()
    r = measure_parity(model, [x], precisions=["int8", "bfloat16"])
    for name in ("int8", "bfloat16"):
        assert 0 <= r[name]["scope_agreement"] <= 1 and r[name]["max_scope_diff"] >= 0
    assert r["int8"]["max_scope_diff"] > 0  # quantised features move the score
