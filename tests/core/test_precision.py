import numpy as np
import pytest
import torch

from cxrviewer.core.model import precision as P
from cxrviewer.core.model.precision import MIN_AGREEMENT, measure_parity, prepare_model, resolve_precision
from tests.conftest import make_tiny_model


def _images(n=12, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=g)


def _outputs(model, x):
    with torch.inference_mode():
        logits, cams = model.logits_and_cams(model.normalize(x))
    return logits, cams


def test_prepared_copy_leaves_the_shared_model_untouched():
    model = make_tiny_model(threshold=0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    clone = prepare_model(model, "bfloat16")
    assert clone is not model and clone.features is not model.features
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(p.is_contiguous() for p in model.parameters())  # not turned channels_last
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert "precision" not in model.meta and clone.meta["precision"] == "bfloat16"
    trunk_dtypes = {p.dtype for p in clone.features.parameters()}
    assert trunk_dtypes == {torch.bfloat16}
    assert clone.classifier.weight.dtype == torch.float32  # the head stays float32


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_prepared_model_keeps_float32_outputs_and_the_cam_identity(precision):
    model = make_tiny_model()
    clone = prepare_model(model, precision)
    x = _images(4)
    logits, cams = _outputs(clone, x)
    assert logits.dtype == cams.dtype == torch.float32
    torch.testing.assert_close(cams.mean(dim=(2, 3)) + clone.classifier.bias, logits, rtol=1e-4, atol=1e-4)
    ref_logits, ref_cams = _outputs(model, x)
    tol = 1e-4 if precision == "float32" else 0.1
    torch.testing.assert_close(logits, ref_logits, rtol=tol, atol=tol)


def test_parity_on_a_small_model_counts_agreeing_labels_and_the_largest_difference():
    model = make_tiny_model(threshold=0.5, temperature=1.0)
    batches = [_images(8, seed=1), (_images(5, seed=2) * 255).to(torch.uint8)]
    record = measure_parity(model, batches, precisions=("bfloat16", "float16"))
    assert set(record) == {"bfloat16", "float16"}
    # recompute by hand: labels and probabilities of float32 vs bfloat16
    xs = torch.cat([batches[0], batches[1].float() / 255])
    ref = prepare_model(model, "float32")
    low = prepare_model(model, "bfloat16")
    with torch.inference_mode():
        p32 = ref.probabilities(_outputs(ref, xs)[0])
        p16 = low.probabilities(_outputs(low, xs)[0])
    agree = float((ref.decide(p32) == low.decide(p16)).float().mean())
    bf = record["bfloat16"]
    assert bf["n"] == 13 and bf["split"] == "validation"
    assert bf["agreement"] == pytest.approx(agree)
    assert bf["max_prob_diff"] == pytest.approx(float((p32 - p16).abs().max()), abs=1e-6)
    assert 0 < bf["max_prob_diff"] < 0.1  # reduced precision really ran, and stayed close
    assert record["float16"]["max_prob_diff"] < bf["max_prob_diff"]  # 10 mantissa bits beat 7


def test_parity_detects_label_flips():
    model = make_tiny_model()
    x = _images(6)
    ref, low = prepare_model(model, "float32"), prepare_model(model, "bfloat16")
    with torch.inference_mode():
        pos = ref.probabilities(_outputs(ref, x)[0])[:, 1]
        pos_low = low.probabilities(_outputs(low, x)[0])[:, 1]
    i = int((pos - pos_low).abs().argmax())
    t = float((pos[i] + pos_low[i]) / 2)  # a threshold between the two probabilities of image i
    flips = int(((pos >= t) != (pos_low >= t)).sum())
    assert flips >= 1
    record = measure_parity(make_tiny_model(threshold=t), [x], precisions=("bfloat16",))["bfloat16"]
    assert record["agreement"] == pytest.approx(1 - flips / 6)


GOOD = {"bfloat16": {"agreement": 1.0, "max_prob_diff": 0.01, "n": 700}}


@pytest.mark.parametrize("native, parity, expected", [
    (True, GOOD, "bfloat16"),
    (True, {"bfloat16": {"agreement": MIN_AGREEMENT - 0.001}}, "float32"),
    (True, {"bfloat16": {"agreement": MIN_AGREEMENT}}, "bfloat16"),
    (True, None, "float32"),                # nothing recorded: not assumed
    (False, GOOD, "float32"),               # emulated bf16 is slower than float32
])
def test_auto_uses_reduced_precision_only_natively_and_with_recorded_agreement(monkeypatch, native, parity, expected):
    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: native)
    choice = resolve_precision("auto", "cpu", parity)
    assert choice.name == expected
    assert choice.reason.startswith("auto")


def test_explicit_precision_is_kept_and_unknown_is_refused():
    assert resolve_precision("float16", "cpu", None).name == "float16"
    assert resolve_precision("FLOAT32", "cpu", GOOD).name == "float32"
    with pytest.raises(ValueError, match="unknown precision 'half'"):
        resolve_precision("half", "cpu", None)
    with pytest.raises(ValueError, match="resolve 'auto'"):
        prepare_model(make_tiny_model(), "auto")


def test_native_bf16_detection_reads_cpu_flags(monkeypatch):
    P.cpu_has_native_bf16.cache_clear()
    monkeypatch.setattr(torch.cpu, "get_capabilities", None, raising=False)
    monkeypatch.setattr(P, "_cpuinfo_flags", lambda: {"avx512f", "avx512_bf16"})
    try:
        assert P.cpu_has_native_bf16() is torch.backends.mkldnn.is_available()
        P.cpu_has_native_bf16.cache_clear()
        monkeypatch.setattr(P, "_cpuinfo_flags", lambda: {"avx512f", "avx2"})
        assert P.cpu_has_native_bf16() is False
    finally:
        P.cpu_has_native_bf16.cache_clear()


def test_predictor_runs_a_private_copy_in_the_chosen_precision(tmp_path):
    from PIL import Image

    from cxrviewer.core.batch.inference import Predictor

    paths = []
    for i in range(3):
        paths.append(tmp_path / f"x{i}.png")
        Image.fromarray((torch.rand(80, 70, generator=torch.Generator().manual_seed(i)) * 255).byte().numpy()).save(paths[-1])
    model = make_tiny_model(threshold=0.5)
    exact = Predictor(model, device="cpu", precision="float32")
    fast = Predictor(model, device="cpu", precision="bfloat16")
    assert exact.model is not model and fast.model is not model
    assert {p.dtype for p in model.parameters()} == {torch.float32} and not model.meta.get("precision")
    a, b = list(exact.predict(paths)), list(fast.predict(paths))
    assert [r.precision for r in a] == ["float32"] * 3 and [r.precision for r in b] == ["bfloat16"] * 3
    for ra, rb in zip(a, b):
        assert abs(ra.probs["PNEUMONIA"] - rb.probs["PNEUMONIA"]) < 0.05
        assert rb.cams.dtype == np.float32
    with pytest.raises(ValueError, match="unknown precision"):
        Predictor(model, device="cpu", precision="int8")


def test_predict_writes_the_precision_column(tmp_path, tiny_model_file):
    import csv

    from PIL import Image

    from cxrviewer.cli import main

    Image.fromarray(np.zeros((70, 90), np.uint8)).save(tmp_path / "a.png")
    for precision in ("float32", "bfloat16"):
        out = tmp_path / f"{precision}.csv"
        assert main(["predict", str(tmp_path / "a.png"), "--csv", str(out), "--model", str(tiny_model_file),
                     "--precision", precision]) == 0
        assert [r["precision"] for r in csv.DictReader(out.open())] == [precision]
    assert main(["predict", str(tmp_path / "a.png"), "--csv", str(tmp_path / "x.csv"), "--precision", "half"]) == 2


@pytest.mark.parametrize("arch", ["resnet18", "resnet50", "densenet121"])
def test_batchnorm_folding_keeps_the_outputs(arch):
    from cxrviewer.core.model.precision import fold_batchnorm

    model = make_tiny_model(arch=arch)
    with torch.no_grad():  # non-trivial running statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    clone = prepare_model(model, "float32")
    left = sum(isinstance(m, torch.nn.BatchNorm2d) for m in clone.modules())
    if arch.startswith("resnet"):
        assert left == 0
    else:
        assert 0 < left < sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # stem only
    x = _images(2)
    torch.testing.assert_close(_outputs(clone, x)[1], _outputs(model, x)[1], rtol=1e-4, atol=1e-4)
    assert isinstance(fold_batchnorm(torch.nn.Sequential(torch.nn.ReLU())), torch.nn.Sequential)
