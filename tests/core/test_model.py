import numpy as np
import pytest
import torch

from cxrviewer import CamClassifier
from cxrviewer.core.model.classifier import ARCHS, decide


@pytest.mark.parametrize("arch", ["resnet18", "resnet50", "densenet121"])
def test_cam_identity_mean_plus_bias_is_logit(arch):
    torch.manual_seed(0)
    model = CamClassifier(arch, 3, input_channels=1).eval()
    x = torch.randn(2, 1, 96, 96)
    with torch.inference_mode():
        logits, cams = model.logits_and_cams(x)
        plain = model(x)
    assert cams.shape == (2, 3, 3, 3)  # input / 32
    torch.testing.assert_close(cams.mean(dim=(2, 3)) + model.classifier.bias, logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(plain, logits, rtol=1e-4, atol=1e-4)


def test_cams_differ_between_classes_and_images():
    torch.manual_seed(1)
    model = CamClassifier("resnet18", 2).eval()
    with torch.inference_mode():
        _, cams = model.logits_and_cams(torch.rand(2, 1, 64, 64))
    assert not torch.allclose(cams[0, 0], cams[0, 1])
    assert not torch.allclose(cams[0], cams[1])


def test_no_hooks_or_state_left_on_the_module():
    model = CamClassifier("resnet18", 2).eval()
    before = dict(vars(model))
    with torch.inference_mode():
        model.logits_and_cams(torch.rand(1, 1, 64, 64))
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert vars(model).keys() == before.keys()


def test_unknown_arch_is_refused():
    with pytest.raises(ValueError, match="unknown arch"):
        CamClassifier("vgg16", 2)
    assert "resnet152" in ARCHS and "densenet121" in ARCHS


def test_threshold_rule_and_temperature():
    model = CamClassifier("resnet18", 2, meta={"class_names": ["NORMAL", "PNEUMONIA"], "threshold": 0.8, "temperature": 2.0})
    logits = torch.tensor([[0.0, 2.0], [0.0, 4.0]])
    probs = model.probabilities(logits)
    torch.testing.assert_close(probs[:, 1], torch.sigmoid(torch.tensor([1.0, 2.0])))
    assert model.decide(probs).tolist() == [0, 1]  # 0.73 < 0.8 <= 0.88


def test_decision_rule_is_one_function_for_torch_and_numpy_and_never_decides_on_nan():
    p = torch.tensor([[0.3, 0.7], [0.9, 0.1], [float("nan"), 0.5], [0.4, float("inf")]])
    assert decide(p, 0.65, 1).tolist() == [1, 0, -1, -1]
    assert decide(p, 0.75, 1).tolist() == [0, 0, -1, -1]
    assert decide(p).tolist() == [1, 0, -1, -1]  # no threshold: argmax
    out = decide(p.numpy(), 0.65, 1)
    assert isinstance(out, np.ndarray) and out.tolist() == [1, 0, -1, -1]
    three = np.array([[0.2, 0.5, 0.3]])
    assert decide(three, 0.9, 1).tolist() == [1]  # the threshold applies to two classes only
    model = CamClassifier("resnet18", 2, meta={"class_names": ["A", "B"], "threshold": 0.65})
    assert model.decide(p).tolist() == [1, 0, -1, -1]
