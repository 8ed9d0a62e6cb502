"""Distillation from teacher model files: soft targets, the combined loss, the trainer option."""

from __future__ import annotations

import hashlib

import pytest
import torch
import torch.nn.functional as F

from cxrviewer import save_model
from cxrviewer.core.training import TrainingError
from cxrviewer.core.training.distill import Teachers

from tests.conftest import make_tiny_model


@pytest.fixture
def teacher_files(tmp_path):
    a = save_model(make_tiny_model(size=32, seed=1, threshold=0.5), tmp_path / "a.safetensors", half=False)
    b = save_model(make_tiny_model(size=64, seed=2, threshold=0.5), tmp_path / "b.safetensors", half=False)
    return a, b


def test_soft_targets_average_the_teachers_each_at_its_own_size(teacher_files):
    grey = torch.rand(3, 1, 64, 64)
    both = Teachers(teacher_files, ["NORMAL", "PNEUMONIA"], temperature=2.0)
    a, b = both.models
    small = F.interpolate(grey, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
    with torch.no_grad():
        expected = (torch.softmax(a(a.normalize(small)) / 2.0, 1) + torch.softmax(b(b.normalize(grey)) / 2.0, 1)) / 2
    assert torch.allclose(both.soft_targets(grey), expected, atol=1e-6)
    assert torch.allclose(both.soft_targets(grey).sum(1), torch.ones(3))


def test_loss_mixes_the_label_loss_and_a_kl_term_that_vanishes_when_the_student_agrees(teacher_files):
    grey = torch.rand(4, 1, 64, 64)
    one = Teachers(teacher_files[1:], ["NORMAL", "PNEUMONIA"], weight=0.25, temperature=3.0)
    teacher = one.models[0]
    with torch.no_grad():
        agreeing = teacher(teacher.normalize(grey))
    hard = torch.tensor(0.8)
    assert one.loss(hard, grey, agreeing).item() == pytest.approx(0.75 * 0.8, abs=1e-5)  # KL(p || p) = 0
    disagreeing = -agreeing
    assert one.loss(hard, grey, disagreeing).item() > 0.75 * 0.8 + 1e-3
    assert Teachers(teacher_files, ["NORMAL", "PNEUMONIA"], weight=0.0).loss(hard, grey, disagreeing).item() == pytest.approx(0.8)


def test_teachers_must_have_the_data_classes_and_be_readable(teacher_files, tmp_path):
    with pytest.raises(TrainingError, match="classes"):
        Teachers(teacher_files, ["A", "B"])
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    with pytest.raises(TrainingError, match="--teacher"):
        Teachers([bad], ["NORMAL", "PNEUMONIA"])
    with pytest.raises(TrainingError, match="distill-weight"):
        Teachers(teacher_files, ["NORMAL", "PNEUMONIA"], weight=1.5)


def test_trainer_distils_and_records_its_teachers(teacher_files, tmp_path, monkeypatch, no_report_plots):
    from cxrviewer import load_model
    from cxrviewer.core.training import distill, train

    from tests.core.training.test_train import _args

    calls = []
    original = distill.Teachers.loss
    monkeypatch.setattr(distill.Teachers, "loss", lambda self, *a: calls.append(1) or original(self, *a))
    data = _make_data(tmp_path)
    out = tmp_path / "student.safetensors"
    train.main(_args(data, out, "--teacher", *map(str, teacher_files), "--distill-weight", "0.7", "--no-scope"))
    meta = load_model(out).meta
    assert calls  # every batch went through the distillation loss
    digests = [t["sha256"] for t in meta["training"]["teachers"]]
    assert digests == [hashlib.sha256(p.read_bytes()).hexdigest() for p in teacher_files]
    assert "--teacher" in meta["training"]["command"] and "--distill-weight 0.7" in meta["training"]["command"]


def _make_data(tmp_path):
    import numpy as np

    from tests.core.training.test_train import _image

    rng = np.random.default_rng(0)
    for label, cls in enumerate(("NORMAL", "PNEUMONIA")):
        d = tmp_path / "data" / "train" / cls
        d.mkdir(parents=True)
        for patient in range(6):
            name = f"person{patient}_bacteria_0.jpeg" if label else f"IM-{patient:04d}-0000.jpeg"
            _image(label, rng).save(d / name)
    return tmp_path / "data"
