"""End-to-end training on a tiny generated ImageFolder (CPU, seconds)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cxrviewer import load_model, load_radiograph
from cxrviewer.core.training.data import list_samples, patient_groups, split_by_patient
from cxrviewer.core.training.train import TrainingError, get_args_parser, main

ROOT = Path(__file__).resolve().parents[3]


def _image(label: int, rng: np.random.Generator, size: int = 48) -> Image.Image:
    """NORMAL: smooth gradient; PNEUMONIA: the same with a bright blob (learnable in one epoch)."""
    y, x = np.mgrid[:size, :size] / size
    img = 0.3 + 0.3 * x + rng.normal(0, 0.03, (size, size))
    if label:
        cy, cx = rng.uniform(0.3, 0.7, 2)
        img += 0.5 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 0.02)
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("xray")
    rng = np.random.default_rng(0)
    for label, cls in enumerate(("NORMAL", "PNEUMONIA")):
        d = root / "train" / cls
        d.mkdir(parents=True)
        for patient in range(12):
            for k in range(2):
                name = f"person{patient}_bacteria_{k}.jpeg" if label else f"IM-{patient:04d}-{k:04d}.jpeg"
                _image(label, rng).save(d / name)
    for label, cls in enumerate(("NORMAL", "PNEUMONIA")):
        d = root / "test" / cls
        d.mkdir(parents=True)
        for k in range(4):
            _image(label, rng).save(d / f"t{k}.png")
    return root


def _args(data, out, *extra):
    return get_args_parser().parse_args(["--data", str(data), "--out", str(out), "--image-size", "64", "--epochs", "1",
                                         "--batch-size", "8", "--val-fraction", "0.25", "--lr", "3e-3",
                                         "--audit-images", "0", *extra])


def test_patient_split_never_shares_a_patient(tiny_data):
    samples = list_samples(tiny_data / "train", ["NORMAL", "PNEUMONIA"])
    train, val, info = split_by_patient(samples, 0.25, seed=3)
    assert info["rule"] == "patient"
    keys, _ = patient_groups(samples, info["patient_pattern"])
    key_of = {s.path: k for s, k in zip(samples, keys)}
    assert {key_of[s.path] for s in train}.isdisjoint({key_of[s.path] for s in val})
    assert {s.label for s in val} == {0, 1}  # stratified
    assert len(train) + len(val) == len(samples)
    again = split_by_patient(samples, 0.25, seed=3)[1]
    assert [s.path for s in again] == [s.path for s in val]  # seeded


def test_duplicate_files_stay_on_one_side(tmp_path):
    d = tmp_path / "train" / "A"
    d.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(10):
        _image(0, rng).save(d / f"IM-{i:04d}-0001.png")
    (d / "IM-0099-0001.png").write_bytes((d / "IM-0000-0001.png").read_bytes())
    samples = list_samples(tmp_path / "train", ["A"])
    for seed in range(10):
        train, val, _ = split_by_patient(samples, 0.3, seed)
        names = {s.path.name for s in val}
        assert ("IM-0000-0001.png" in names) == ("IM-0099-0001.png" in names)


def test_image_level_fallback_warns(tmp_path, caplog):
    d = tmp_path / "train" / "A"
    d.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for i in range(6):
        _image(0, rng).save(d / f"scan{i}.png")
    train, val, info = split_by_patient(list_samples(tmp_path / "train", ["A"]), 0.34, 0)
    assert info["rule"] == "image" and len(val) == 2
    assert "splitting by image" in caplog.text


def test_one_epoch_writes_a_loadable_model_and_report(tiny_data, tmp_path):
    out = tmp_path / "m.safetensors"
    args = _args(tiny_data, out, "--audit-images", "2")
    parsed = dict(vars(args))
    assert main(args) == out
    assert vars(args) == parsed  # derived settings live in a Runtime, never on args
    model = load_model(out)
    meta = model.meta
    audit = meta["metrics"]["explanations"]  # the heat-map audit step
    assert audit["faithfulness"]["n"] == 2 and audit["sanity"]["n"] == 1 and len(audit["sanity"]["steps"]) == 7
    assert 0 <= meta["evidence_outside_threshold"] <= 1
    words = shlex.split(meta["training"]["command"])
    assert words[:2] == ["python", "train_model.py"]
    assert vars(get_args_parser().parse_args(words[2:])) == parsed  # the recorded command reproduces the run
    assert meta["class_names"] == ["NORMAL", "PNEUMONIA"] and meta["positive_class"] == "PNEUMONIA"
    assert 0 < meta["threshold"] < 1 and meta["temperature"] > 0
    assert meta["training"]["split"]["rule"] == "patient"
    assert meta["training"]["images"]["test"] == {"NORMAL": 4, "PNEUMONIA": 4}
    assert {"validation", "test"} <= set(meta["metrics"])
    assert meta["training"]["args"]["threshold_rule"] == "robust"  # the default
    parity = meta["precision_parity"]  # reduced precision measured against float32 on validation
    assert set(parity) == {"bfloat16", "float16"}
    assert all(0 <= r["agreement"] <= 1 and r["max_prob_diff"] >= 0 and r["n"] == sum(meta["training"]["images"]["val"].values())
               for r in parity.values())
    scope = meta["scope"]  # the scope-fit step: statistics on training, threshold on validation and its shifts
    assert scope["method"] == "mahalanobis" and scope["threshold"] > 0 and len(scope["validation_in_scope"]) == 9
    assert scope["validation_in_scope"]["as acquired"] >= 0.9 and "## Scope" in out.with_suffix(".md").read_text()
    shifted = meta["metrics"]["validation_shifted"]
    assert len(shifted) == 8 and all(0 <= v["sensitivity"] <= 1 and 0 <= v["specificity"] <= 1 for v in shifted.values())
    report = out.with_name("m_report")
    card = out.with_suffix(".md").read_text()
    assert "python" in card and "--image-size 64" in card and "| validation |" in card and "not a medical device" in card.lower()
    assert "| zoom out x0.87 |" in card
    assert "## Heat maps" in card and "| evidence map (what the viewer draws) |" in card and "Sanity check: " in card
    text = (report / "metrics.json").read_text()
    assert "NaN" not in text and "Infinity" not in text  # strict JSON
    data = json.loads(text)
    assert {"validation", "test"} <= set(data["splits"] if "splits" in data else data)
    for png in ("history.png", "roc_validation.png", "confusion_validation.png", "reliability_validation.png"):
        assert (report / png).stat().st_size > 1000
    rad = load_radiograph(next((tiny_data / "test" / "PNEUMONIA").iterdir()))
    x = torch.from_numpy(rad.pixels)[None, None]
    x = torch.nn.functional.interpolate(x, size=model.input_size, mode="bilinear")
    with torch.inference_mode():
        logits, cams = model.logits_and_cams(model.normalize(x))
    assert cams.shape == (1, 2, 2, 2) and torch.isfinite(logits).all()


class _Interrupted(Exception):
    pass


def test_resume_continues_the_interrupted_run_exactly(tiny_data, tmp_path, monkeypatch):
    """Weights, optimiser, scheduler and random streams come back: a run stopped after epoch 1 and resumed
    has the same loss curve, learning rates and final weights as the run that was never stopped."""
    import cxrviewer.core.training.train as train

    # Two epochs: stopped after the first, the resumed run trains the second. The steps after training
    # (report plots, scope fit) read the weights and change none; they are tested elsewhere; keep this fast.
    extra = ("--epochs", "2", "--image-size", "32", "--threshold-rule", "youden", "--no-half", "--no-scope")
    monkeypatch.setattr(train, "write_report", lambda *a, **k: [])
    whole = tmp_path / "whole.safetensors"
    main(_args(tiny_data, whole, *extra))

    save = train.save_checkpoint

    def save_then_stop(state, path, rt):
        save(state, path, rt)
        if state["epoch"] == 0:
            raise _Interrupted

    monkeypatch.setattr(train, "save_checkpoint", save_then_stop)
    cut = tmp_path / "cut.safetensors"
    with pytest.raises(_Interrupted):
        main(_args(tiny_data, cut, *extra))
    monkeypatch.setattr(train, "save_checkpoint", save)
    resumed = tmp_path / "resumed.safetensors"
    main(_args(tiny_data, resumed, *extra, "--resume", str(cut.with_name("cut_report") / "checkpoint.pt")))

    def curve(out):
        ck = torch.load(out.with_name(out.stem + "_report") / "checkpoint.pt", weights_only=True)
        return [{k: v for k, v in row.items() if k != "seconds"} for row in json.loads(ck["history"])]

    assert [row["epoch"] for row in curve(resumed)] == [1, 2]  # 1-based, as in the log and the model card
    assert curve(resumed) == curve(whole)
    a, b = load_model(whole).state_dict(), load_model(resumed).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_from_something_else_is_a_clear_error(tiny_data, tmp_path):
    image = next((tiny_data / "train" / "NORMAL").iterdir())
    with pytest.raises(TrainingError, match="file not found"):
        main(_args(tiny_data, tmp_path / "x.safetensors", "--resume", str(tmp_path / "none.pt")))
    with pytest.raises(TrainingError, match="not a training checkpoint"):
        main(_args(tiny_data, tmp_path / "x.safetensors", "--resume", str(image)))


def test_missing_train_folder_is_a_clear_error(tmp_path):
    with pytest.raises(TrainingError, match="no train/ folder"):
        main(_args(tmp_path, tmp_path / "x.safetensors"))


def test_pretrained_offline_without_file_says_how(tiny_data, tmp_path, monkeypatch):
    import torchvision

    def offline(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline, raising=False)
    with pytest.raises(TrainingError, match="--backbone-weights"):
        main(_args(tiny_data, tmp_path / "p.safetensors", "--pretrained"))


def test_backbone_weights_file_is_used(tiny_data, tmp_path, no_report_plots):
    import torchvision

    ref = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "resnet18.pth"
    torch.save(ref, path)
    out = tmp_path / "pre.safetensors"
    main(_args(tiny_data, out, "--pretrained", "--backbone-weights", str(path), "--freeze-backbone", "--no-half",
               "--image-size", "32", "--no-scope"))
    model = load_model(out)
    torch.testing.assert_close(model.features.layer1[0].conv1.weight, ref["layer1.0.conv1.weight"])
    assert model.input_channels == 3 and model.meta["mean"] == [0.485, 0.456, 0.406]


# train_model.py with the report's plots written empty (they are drawn on rank 0 only, tested in test_report.py)
_TRAIN_WITHOUT_PLOTS = """
import runpy, sys
from pathlib import Path
from cxrviewer.core.training import report

def empty_png(fig, path):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(b"")
    return Path(path)

report._save = empty_png
sys.argv[0] = {script!r}
runpy.run_path({script!r}, run_name="__main__")
"""


def test_ddp_two_cpu_processes_under_torchrun(tiny_data, tmp_path):
    out = tmp_path / "ddp.safetensors"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    script = tmp_path / "train_without_plots.py"
    script.write_text(_TRAIN_WITHOUT_PLOTS.format(script=str(ROOT / "train_model.py")))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(script), "--data", str(tiny_data), "--out", str(out), "--image-size", "32",
           "--epochs", "1", "--batch-size", "4", "--val-fraction", "0.25", "--device", "cpu",
           "--audit-images", "0"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    model = load_model(out)
    assert model.meta["training"]["world_size"] == 2
    assert model.meta["precision_parity"]["bfloat16"]["n"] == sum(model.meta["training"]["images"]["val"].values())
    assert list(tmp_path.glob("*.safetensors")) == [out]  # only rank 0 wrote


def test_recipe_options_train_record_their_flags_and_write_the_ema_weights(tiny_data, tmp_path, monkeypatch,
                                                                          no_report_plots):
    import cxrviewer.core.training.train as train_module

    made, original = [], train_module.build_ema
    monkeypatch.setattr(train_module, "build_ema", lambda model, args: made.append(original(model, args)) or made[-1])
    out = tmp_path / "r.safetensors"
    flags = ["--framing", "0.5", "--markers", "0.3", "--detail", "0.3", "--mixup", "0.2", "--cutmix", "0.2",
             "--ema", "0.9", "--no-half", "--dilate-last", "--equalize", "--intended-use", "kermany", "--no-scope"]
    main(_args(tiny_data, out, *flags))
    meta = load_model(out).meta
    assert meta["intended_use"]["population"]["age_years"] == [1, 5]  # asked for, so written (never guessed)
    assert "- Population: ages 1-5 y, AP views" in out.with_suffix(".md").read_text()
    assert meta["dilate_last"] is True and load_model(out).logits_and_cams(torch.rand(1, 1, 64, 64))[1].shape[-2:] == (4, 4)
    assert meta["equalize"] is True   # statistics of the equalised images: uniform on (0, 1)
    assert abs(meta["mean"][0] - 0.5) < 0.01 and abs(meta["std"][0] - 12 ** -0.5) < 0.01
    for flag in ("--framing 0.5", "--markers 0.3", "--detail 0.3", "--mixup 0.2", "--cutmix 0.2", "--ema 0.9", "--dilate-last",
                 "--equalize", "--intended-use kermany"):
        assert flag in meta["training"]["command"]
    ema_state = made[0].module.state_dict()
    written = load_model(out).state_dict()
    assert all(torch.equal(written[k], ema_state[k].cpu()) for k in written)  # one epoch: the best is the last EMA


def test_ema_averages_weights_with_its_decay():
    from cxrviewer.core.training.augment import build_ema

    net = torch.nn.Linear(2, 1)
    ema = build_ema(net, get_args_parser().parse_args(["--data", ".", "--ema", "0.9"]))
    assert build_ema(net, get_args_parser().parse_args(["--data", "."])) is None
    ema.update_parameters(net)                    # the first update copies
    old = net.weight.detach().clone()
    with torch.no_grad():
        net.weight += 1.0
    ema.update_parameters(net)
    assert torch.allclose(ema.module.weight, 0.9 * old + 0.1 * net.weight)
