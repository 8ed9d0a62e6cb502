"""The amended protocol's robustness constraints (docs/selection-protocol.md, amendment 2)."""

import pytest
import torch

from cxrviewer.core.training import robustness
from cxrviewer.core.training.shift import SUITE

from tests.conftest import make_tiny_model


def _full(spec_at_level4=0.95, w=0.93):
    views = [{"family": fam, "level": lvl, "at_protocol_threshold": {"sensitivity": 0.97, "specificity": 0.99 - 0.01 * lvl}}
             for fam in SUITE for lvl in range(1, 6)]
    for v in views:
        if v["family"] == "mask-black" and v["level"] == 4:
            v["at_protocol_threshold"]["specificity"] = spec_at_level4
    return {"complete": True, "views": views, "summary": {"W": w}}


def test_constraints_met_name_every_view_and_the_badge():
    c = robustness.check(_full(), badge=0.05)
    assert c["ok"] is True and c["failed"] == []
    assert set(c["specificity"]) == {"border-black-4", "mask-black-4", "crop-4", "blur-2"}
    assert c["specificity"]["blur-2"] == pytest.approx(0.97) and c["specificity"]["mask-black-4"] == pytest.approx(0.95)
    assert robustness.words(c).startswith("meets the robustness constraints")
    assert "| stability badge, clean validation | 5.0% | <= 10% | yes |" in robustness.specificity_table(c)


def test_each_constraint_fails_on_its_own():
    assert robustness.check(_full(w=0.85), 0.05)["failed"] == ["W 0.850 < 0.9"]
    mask = robustness.check(_full(spec_at_level4=0.5), 0.05)
    assert mask["ok"] is False and mask["failed"] == ["NORMAL specificity 0.500 < 0.9 under mask-black-4"]
    badge = robustness.check(_full(), 0.2)
    assert badge["ok"] is False and "stability badge on 20.0%" in badge["failed"][0]
    assert "fails the robustness constraints" in robustness.words(badge)


def test_unmeasured_badge_leaves_the_verdict_open_unless_something_failed():
    assert robustness.check(_full(), None)["ok"] is None
    assert robustness.check(_full(w=0.5), None)["ok"] is False


def test_badge_rate_uses_the_given_threshold_and_restores_the_models():
    model = make_tiny_model(size=32, threshold=0.5, temperature=1.0)
    images = (torch.rand(6, 1, 32, 32) * 255).to(torch.uint8)
    rate = robustness.badge_rate(model, images, threshold=0.3, batch_size=4)
    assert 0.0 <= rate <= 1.0 and model.meta["threshold"] == 0.5
    assert robustness.badge_rate(model, images, threshold=None) == robustness.badge_rate(model, images, threshold=0.5)
    # at a threshold on one image's probability, any move of it flips the label one way or the other: unstable
    with torch.inference_mode():
        p = model.probabilities(model(model.normalize(images[:1].float() / 255)))[0, 1].item()
    assert max(robustness.badge_rate(model, images[:1], threshold=t) for t in (p, p + 1e-6)) == 1.0
