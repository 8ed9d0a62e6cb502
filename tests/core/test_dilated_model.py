"""The finer-maps option (issue 13, item 6): a ResNet whose last stage runs at stride 1 with dilation 2."""

import pytest
import torch
import torchvision

from cxrviewer import CamClassifier, load_model, save_model
from cxrviewer.core.model.checkpoint import ModelFileError, read_header
from cxrviewer.core.model.classifier import build_backbone

from tests.conftest import make_tiny_model


def test_a_dilated_model_saves_loads_and_gives_twice_finer_maps(tmp_path):
    plain = make_tiny_model(size=64)
    fine = make_tiny_model(size=64, dilate_last=True)
    x = torch.rand(2, 1, 64, 64)
    with torch.inference_mode():
        assert plain.logits_and_cams(x)[1].shape[-2:] == (2, 2)
        assert fine.logits_and_cams(x)[1].shape[-2:] == (4, 4)
    path = save_model(fine, tmp_path / "fine.safetensors")
    assert read_header(path)["dilate_last"] is True
    back = load_model(path)
    assert back.dilate_last
    with torch.inference_mode():
        logits, cams = back.logits_and_cams(x)
        want, _ = fine.logits_and_cams(x)
    assert cams.shape[-2:] == (4, 4)
    torch.testing.assert_close(logits, want, rtol=1e-2, atol=1e-2)  # (stored as float16)
    torch.testing.assert_close(cams.mean(dim=(2, 3)) + back.classifier.bias, logits, rtol=1e-4, atol=1e-4)


def test_old_files_stay_undilated(tiny_model_file):
    assert "dilate_last" not in read_header(tiny_model_file)
    model = load_model(tiny_model_file)
    assert not model.dilate_last
    with torch.inference_mode():
        assert model.logits_and_cams(torch.rand(1, 1, 64, 64))[1].shape[-2:] == (2, 2)


def test_dilation_matches_torchvision_where_torchvision_supports_it():
    ours, _ = build_backbone("resnet50", 3, dilate_last=True)
    ref = torchvision.models.resnet50(weights=None, replace_stride_with_dilation=[False, False, True]).layer4
    convs = [(m.stride, m.dilation, m.padding) for m in ours.layer4.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs == [(m.stride, m.dilation, m.padding) for m in ref.modules() if isinstance(m, torch.nn.Conv2d)]


def test_dilation_is_refused_for_densenet_and_checked_in_files(tmp_path):
    with pytest.raises(ValueError, match="ResNet"):
        CamClassifier("densenet121", 2, dilate_last=True)
    with pytest.raises(ModelFileError, match="dilate_last"):
        save_model(make_tiny_model(size=64), tmp_path / "m.safetensors", meta={"dilate_last": "yes"})
    assert not (tmp_path / "m.safetensors").exists()
