"""Batch engine: scanning inputs, ordered streaming results, errors, cancellation, devices."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cxrviewer.core.batch import inference
from cxrviewer.core.batch.inference import DeviceError, InputError, Predictor, pick_device, scan_inputs
from cxrviewer.core.io.radiograph import to_model_input
from cxrviewer.core.io.reading import load_radiograph
from tests.conftest import make_tiny_model


def _jpeg(path: Path, w: int, h: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = 120 + 80 * np.sin(xx / (5 + seed)) * np.cos(yy / 7) + rng.normal(0, 10, (h, w))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=92)
    return path


@pytest.fixture
def folder(tmp_path):
    """A folder of small JPEGs with every kind of thing a scan must handle; returns (root, expected images)."""
    root = tmp_path / "scans"
    images = [
        _jpeg(root / "a1.jpg", 80, 96, 1),
        _jpeg(root / "B2.JPG", 100, 70, 2),
        _jpeg(root / "c3.Jpeg", 64, 64, 3),
    ]
    bad = root / "d4_corrupt.jpeg"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(300))
    images.append(bad)
    images += [_jpeg(root / "sub" / "e5.jpeg", 90, 120, 5), _jpeg(root / "sub" / "f6.jpg", 72, 88, 6)]
    _jpeg(root / ".hidden.jpg", 64, 64, 7)
    _jpeg(root / ".cache" / "g7.jpg", 64, 64, 8)
    (root / "notes.txt").write_text("not an image")
    (root / "table.csv").write_text("a,b\n")
    os.symlink("..", root / "sub" / "loop")            # a loop back to the root
    os.symlink(root / "a1.jpg", root / "sub" / "z_dup.jpg")  # the same file twice
    return root, images


# -- scanning -----------------------------------------------------------------------
def test_scan_finds_images_recursively_and_skips_the_rest(folder):
    root, images = folder
    assert scan_inputs([root]) == images


def test_scan_drops_duplicates_and_keeps_named_files(folder, tmp_path):
    root, images = folder
    other = tmp_path / "named.txt"
    other.write_text("x")
    found = scan_inputs([images[1], root, images[1], other])
    assert found[0] == images[1] and found[-1] == other
    assert len(found) == len(images) + 1 and len(set(found)) == len(found)


def test_scan_takes_suffixless_dicoms_and_any_case(tmp_path):
    dicom = tmp_path / "IM0001"
    dicom.write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 64)
    (tmp_path / "README").write_text("no suffix, not DICOM")
    png = tmp_path / "x.PnG"
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(png, format="PNG")
    assert scan_inputs([tmp_path]) == [dicom, png]


def test_scan_missing_input_is_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        scan_inputs([tmp_path / "nope"])


# -- predicting ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def model():
    return make_tiny_model(threshold=0.5, temperature=1.0)


def test_results_in_input_order_with_error_rows(folder, model):
    root, images = folder
    results = list(Predictor(model, device="cpu", batch_size=4).predict(images))
    assert [r.path for r in results] == images
    assert [r.index for r in results] == list(range(len(images)))
    bad = results[3]
    assert not bad.ok and bad.error and bad.label is None and bad.cams is None and bad.probs == {}
    for r in results[:3] + results[4:]:
        assert r.ok, r.error
        assert set(r.probs) == {"NORMAL", "PNEUMONIA"}
        assert sum(r.probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert r.cams.dtype == np.float32 and r.cams.shape == (2, 2, 2)  # 64 px input / 32
        rad = load_radiograph(r.path)
        assert r.image_size == (rad.pixels.shape[1], rad.pixels.shape[0])
        assert r.meta["format"] == "JPEG"
        expected = model.decide(torch.tensor([[r.probs["NORMAL"], r.probs["PNEUMONIA"]]]))
        assert r.label == model.class_names[int(expected)]


def test_batched_results_equal_one_image_forward_passes(folder, model):
    _, images = folder
    ok = [p for p in images if "corrupt" not in p.name]
    batched = list(Predictor(model, device="cpu", batch_size=5).predict(ok))
    for r in batched:
        x = torch.tensor(to_model_input(load_radiograph(r.path, target_size=model.input_size).pixels, model.input_size))
        with torch.inference_mode():
            logits, cams = model.logits_and_cams(model.normalize(x[None, None]))
        np.testing.assert_allclose(r.logits, logits[0].numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(r.cams, cams[0].numpy(), rtol=1e-4, atol=1e-4)
        # the CAM identity holds on what the engine hands out
        bias = model.classifier.bias.detach().numpy()
        np.testing.assert_allclose(r.cams.mean(axis=(1, 2)) + bias, r.logits, atol=1e-4)


def test_results_stream_batch_by_batch_with_progress(folder, model, monkeypatch):
    _, images = folder
    predictor = Predictor(model, device="cpu", batch_size=2)
    calls = []
    forward = predictor.forward
    monkeypatch.setattr(predictor, "forward", lambda a: calls.append(len(a)) or forward(a))
    progress = []
    stream = predictor.predict(images, progress=lambda done, total: progress.append((done, total)))
    first = next(stream)
    # the first batch is out while later ones are at most in flight on the lanes, never all done
    assert first.index == 0 and calls[0] == 2 and progress == [(1, len(images))]
    assert len(calls) <= predictor.workers + predictor.prefetch
    rest = list(stream)
    assert len(rest) == len(images) - 1
    assert progress == [(i, len(images)) for i in range(1, len(images) + 1)]
    assert sum(calls) == len(images) - 1  # the corrupt file never reaches the model


def test_first_batch_is_small_then_full_batches(tmp_path, model, monkeypatch):
    paths = [_jpeg(tmp_path / f"{i:02d}.jpg", 64, 64, i) for i in range(13)]
    predictor = Predictor(model, device="cpu", batch_size=5, first_batch=2)
    calls, forward = [], predictor.forward
    monkeypatch.setattr(predictor, "forward", lambda a: calls.append(len(a)) or forward(a))
    assert [r.index for r in predictor.predict(paths)] == list(range(13))
    assert sorted(calls) == [1, 2, 5, 5] and calls[0] == 2  # lanes run concurrently: the rest in any order


def test_prefetch_is_bounded(tmp_path, model, monkeypatch):
    paths = [_jpeg(tmp_path / f"{i:03d}.jpg", 64, 64, i) for i in range(40)]
    decoded = []
    real = inference._decode
    monkeypatch.setattr(inference, "_decode", lambda i, p, s: decoded.append(i) or real(i, p, s))
    predictor = Predictor(model, device="cpu", batch_size=4, prefetch=1)
    ahead = []
    for n, _ in enumerate(predictor.predict(paths), 1):
        ahead.append(len(decoded) - n)
    assert len(decoded) == 40
    # decodes stay within the batches in flight (one per lane, plus prefetch) of the result handed out
    assert max(ahead) <= 4 * (predictor.workers + 1) - 1
    assert max(ahead) > 0  # and decoding did run ahead of the model


def test_unexpected_exception_becomes_an_error_row(folder, model, monkeypatch):
    _, images = folder
    real = inference.load_radiograph

    def flaky(path, target_size=None):
        if Path(path).name == "B2.JPG":
            raise ValueError("boom\nsecond line")
        return real(path, target_size=target_size)

    monkeypatch.setattr(inference, "load_radiograph", flaky)
    results = list(Predictor(model, device="cpu", batch_size=3).predict(images))
    assert results[1].error == "unexpected error: ValueError: boom"
    assert results[0].ok and results[2].ok and len(results) == len(images)


def test_a_failing_forward_pass_marks_its_files_and_the_run_goes_on(folder, model, monkeypatch):
    _, images = folder
    ok = [p for p in images if "corrupt" not in p.name]
    predictor = Predictor(model, device="cpu", batch_size=2)
    forward, calls = predictor.forward, []

    def fail_first(arrays):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return forward(arrays)

    monkeypatch.setattr(predictor, "forward", fail_first)
    results = list(predictor.predict(ok))
    assert [r.error for r in results[:2]] == ["model failed: RuntimeError: out of memory"] * 2
    assert all(r.ok for r in results[2:])


def _decode_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("cxrviewer-lane")]


def test_cancel_ends_the_run_even_while_a_decode_is_stuck(tmp_path, model, monkeypatch):
    paths = [_jpeg(tmp_path / f"{i:02d}.jpg", 64, 64, i) for i in range(24)]
    real, started, release = inference._decode, [], threading.Event()

    def stuck_after_four(i, p, s):
        started.append(i)
        if i >= 4:
            release.wait()  # a read that never returns (a hung share, a FIFO)
        return real(i, p, s)

    monkeypatch.setattr(inference, "_decode", stuck_after_four)
    cancel = threading.Event()
    got = []
    try:
        for r in Predictor(model, device="cpu", batch_size=4, workers=2, first_batch=2).predict(paths, cancel=cancel):
            got.append(r)
            if len(got) == 2:  # the first batch out, both lanes blocked in a read
                cancel.set()
        assert len(got) == 2 and len(started) < len(paths)  # reaching this line: the run ended, nothing waited
    finally:
        release.set()
    for t in _decode_threads():
        t.join(30)
    assert not _decode_threads()
    assert all(t.daemon for t in threading.enumerate() if t.name.startswith("cxrviewer-"))


def test_cancel_before_start_and_closing_early(folder, model):
    _, images = folder
    cancel = threading.Event()
    cancel.set()
    predictor = Predictor(model, device="cpu", batch_size=2)
    assert list(predictor.predict(images, cancel=cancel)) == []
    stream = predictor.predict(images)
    next(stream)
    stream.close()
    assert not _decode_threads()
    assert list(predictor.predict([])) == []


def test_a_shared_model_is_never_changed(folder, model, monkeypatch):
    _, images = folder
    m = make_tiny_model()
    m.train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    flips = []
    real_train = type(m).train

    def train(self, mode=True):
        if self is m:
            flips.append(mode)
        return real_train(self, mode)

    monkeypatch.setattr(type(m), "train", train)
    predictor = Predictor(m, device="cpu")
    assert predictor.model is not m and not predictor.model.training  # a private eval-mode copy
    list(predictor.predict(images[:2]))
    assert m.training and not flips  # never flipped, not even back
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())


def test_non_finite_probabilities_are_error_rows_never_labels(folder, model):
    _, images = folder
    ok = [p for p in images if "corrupt" not in p.name][:3]
    broken = make_tiny_model(threshold=0.5)
    with torch.no_grad():
        broken.classifier.bias[1] = float("nan")
    results = list(Predictor(broken, device="cpu").predict(ok))
    assert all(r.error == inference.NON_FINITE and r.label is None and not r.probs for r in results)


def test_scan_never_opens_what_is_not_a_regular_file(tmp_path, monkeypatch):
    root = tmp_path / "scans"
    good = _jpeg(root / "a.jpg", 64, 64, 1)
    os.mkfifo(root / "pipe.jpg")
    os.mkfifo(root / "PIPE")  # no suffix: would block a sniff for DICOM's magic
    os.symlink(root / "gone.png", root / "dangling.png")
    os.symlink(root / "loop.png", root / "loop.png")
    (root / "locked").mkdir()
    _jpeg(root / "locked" / "x.jpg", 64, 64, 2)
    real_scandir = os.scandir

    def scandir(path="."):
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)  # an unreadable folder, even for root
    skipped = []
    found = scan_inputs([root], skipped)
    assert found == [good, root / "dangling.png", root / "loop.png", root / "pipe.jpg"]
    assert [(p.name, "cannot be read" in why) for p, why in skipped] == [("locked", True)]
    results = list(Predictor(make_tiny_model(), device="cpu").predict(found))
    assert results[0].ok
    reasons = [r.error for r in results[1:]]
    assert "broken link" in reasons[0] and "link" in reasons[1] and "not a regular file" in reasons[2]


# -- devices ---------------------------------------------------------------------------
def test_device_choice_and_override(monkeypatch, model):
    assert pick_device("cpu") == torch.device("cpu")
    assert Predictor(model, device="cpu").device == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(inference, "_mps_available", lambda: False)
    assert pick_device() == torch.device("cpu") and pick_device("auto") == torch.device("cpu")
    monkeypatch.setattr(inference, "_mps_available", lambda: True)
    assert pick_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device() == torch.device("cuda")
    assert pick_device("CPU") == torch.device("cpu")


def test_bad_devices_are_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        pick_device("cuda")
    with pytest.raises(DeviceError, match="unknown device"):
        pick_device("banana")


def test_bfloat16_is_opt_in_and_close(folder, model):
    _, images = folder
    ok = [p for p in images if "corrupt" not in p.name][:2]
    exact = list(Predictor(model, device="cpu").predict(ok))
    fast = list(Predictor(model, device="cpu", precision="bfloat16").predict(ok))
    for a, b in zip(exact, fast):
        assert abs(a.probs["PNEUMONIA"] - b.probs["PNEUMONIA"]) < 0.05
    with pytest.raises(ValueError):
        Predictor(model, precision="int8")
    with pytest.raises(ValueError):
        Predictor(model, batch_size=0)
