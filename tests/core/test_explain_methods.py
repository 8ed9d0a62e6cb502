import numpy as np
import pytest
import torch

from tests.conftest import make_tiny_model
from cxrviewer.core.explain import METHODS, EvidenceMap, GradCAM, Occlusion, evidence_maps, get_method
from cxrviewer.core.explain.methods import class_log_odds, split_trunk
from cxrviewer.core.results.overlay import class_evidence
from explain_models import quadrant_image, quadrant_model


def test_evidence_maps_match_the_viewer_map_and_average_to_the_log_odds():
    model = make_tiny_model(class_names=("A", "B", "C"))
    x = model.normalize(torch.rand(2, 1, 64, 64))
    with torch.inference_mode():
        logits, cams = model.logits_and_cams(x)
    index = torch.tensor([2, 0])
    ev = evidence_maps(logits, cams, index)
    for n in range(2):
        np.testing.assert_allclose(ev[n].numpy(), class_evidence(cams[n].numpy(), logits[n].numpy(), int(index[n])),
                                   rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ev.mean(dim=(1, 2)), class_log_odds(logits, index), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(EvidenceMap()(model, x, index), ev)


def test_gradcam_on_the_last_stage_is_the_positive_evidence_without_bias():
    # Why the default is layer3: on layer4, Grad-CAM repeats the CAM.
    model = make_tiny_model()
    x = model.normalize(torch.rand(3, 1, 64, 64))
    index = torch.tensor([0, 1, 1])
    with torch.inference_mode():
        _, cams = model.logits_and_cams(x)
    no_bias = evidence_maps(cams.mean(dim=(2, 3)), cams, index)
    torch.testing.assert_close(GradCAM("layer4")(model, x, index), torch.relu(no_bias), rtol=1e-4, atol=1e-5)


def test_gradcam_layer3_is_finer_and_not_a_rescaling_of_the_cam():
    model = make_tiny_model(size=128)
    x = model.normalize(torch.rand(2, 1, 128, 128))
    index = torch.tensor([1, 1])
    maps = GradCAM()(model, x, index)
    assert maps.shape == (2, 8, 8)  # 128 / 16, twice the CAM's 4 x 4
    assert (maps >= 0).all() and maps.abs().sum() > 0
    assert not any(m._forward_hooks or m._backward_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters())


def test_gradcam_works_inside_inference_mode_and_restores_training_flag():
    model = make_tiny_model().train()
    x = model.normalize(torch.rand(1, 1, 64, 64))
    from cxrviewer.core.explain.methods import eval_mode
    with eval_mode(model), torch.inference_mode():
        maps = GradCAM()(model, x, torch.tensor([0]))
    assert maps.shape == (1, 4, 4) and model.training


def test_split_trunk_names_stages_and_refuses_unknown_ones():
    model = make_tiny_model()
    head, tail = split_trunk(model.features, "layer3")
    assert len(head) + len(tail) == len(model.features)
    x = torch.rand(1, 1, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(tail(head(x)), model.features(x))
    with pytest.raises(ValueError, match="no stage 'layer9'"):
        split_trunk(model.features, "layer9")
    dense = make_tiny_model(arch="densenet121")
    head, _ = split_trunk(dense.features, "features.denseblock3")
    with torch.inference_mode():
        assert head(torch.rand(1, 1, 64, 64)).shape[-1] == 4  # 64 / 16


def test_occlusion_finds_the_quadrant_the_model_reads():
    model = quadrant_model()
    x = model.normalize(quadrant_image(n=1))
    calls = []
    maps = Occlusion(patch=1 / 4, stride=1.0)(model, x, torch.tensor([1]), progress=lambda d, t: calls.append((d, t)))
    assert maps.shape == (1, 4, 4)
    top_left = maps[0, :2, :2]
    assert (top_left > 0.5).all()
    assert maps[0, 2:, :].abs().max() < 1e-5 and maps[0, :, 2:].abs().max() < 1e-5
    assert calls[-1] == (16, 16)


def test_every_method_declares_its_units_and_the_registry_builds_them():
    for name in METHODS:
        method = get_method(name)
        assert method.name == name and method.label and method.units
    assert not EvidenceMap.on_demand and GradCAM.on_demand
    with pytest.raises(ValueError, match="unknown explanation method"):
        get_method("lime")


def test_explain_image_on_demand_gives_a_map_with_units_and_display_limits():
    from cxrviewer.core.explain.on_demand import explain_image

    model = make_tiny_model(size=128)
    pixels = np.random.default_rng(0).random((300, 260)).astype(np.float32)
    m = explain_image(model, pixels, "PNEUMONIA", GradCAM())
    assert m.grid.shape == (8, 8) and m.units and m.colorbar_label.startswith("Grad-CAM")
    up, lo, hi = m.for_display((300, 260))
    assert up.shape == (300, 260) and lo == 0.0 and hi >= up.max() - 1e-5
    ev = explain_image(model, pixels, "NORMAL", EvidenceMap())
    _, lo, hi = ev.for_display((30, 26))
    assert ev.signed and lo == -hi and ev.grid.shape == (4, 4)
    with pytest.raises(ValueError, match="unknown class"):
        explain_image(model, pixels, "COVID", GradCAM())
