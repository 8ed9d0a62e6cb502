"""Faithfulness, sanity and per-verdict checks on synthetic models whose true evidence is known."""

import math

import pytest
import torch

from cxrviewer.core.explain import checks
from cxrviewer.core.explain.audit import audit, stratified_subset
from cxrviewer.core.explain.faithfulness import (auc, centred_prior_maps, deletion_insertion, pixel_order,
                                                 random_smooth_maps)
from cxrviewer.core.explain.methods import EvidenceMap
from cxrviewer.core.explain.perturb import add_border, gaussian_blur
from cxrviewer.core.explain.sanity import PASS_LIMIT, cascade, cascading_randomization, spearman
from explain_models import (centre_model, corner_marker_model, noise_image, quadrant_image, quadrant_model,
                            quadrant_texture_image, quadrant_texture_model, texture_model)
from tests.conftest import make_tiny_model


# -- perturbations ---------------------------------------------------------------------
def test_border_frames_the_shrunk_image_in_black_and_blur_keeps_flat_images():
    x = torch.full((1, 1, 100, 100), 0.6)
    framed = add_border(x, 0.10)
    assert framed.shape == x.shape
    assert framed[0, 0, :5].max() == 0 and framed[0, 0, :, -5:].max() == 0
    assert torch.allclose(framed[0, 0, 5:95, 5:95], torch.tensor(0.6))
    torch.testing.assert_close(gaussian_blur(x, 2.0), x)
    noisy = noise_image(size=32, n=1)
    assert gaussian_blur(noisy, 2.0).std() < 0.5 * noisy.std()


# -- deletion and insertion --------------------------------------------------------------
def test_auc_and_pixel_order():
    assert auc(torch.full((1, 21), 0.7)).item() == pytest.approx(0.7)
    assert auc(torch.linspace(0, 1, 11)[None]).item() == pytest.approx(0.5)
    ranks = pixel_order(torch.tensor([[[0.0, 1.0], [2.0, 3.0]]]), (2, 2))
    assert ranks.tolist() == [[3, 2, 1, 0]]
    flat = pixel_order(torch.zeros(1, 2, 2), (8, 8))
    assert sorted(flat[0].tolist()) == list(range(64))


@pytest.mark.parametrize("fill, model, images", [
    ("mean", quadrant_model(), quadrant_image(n=2)),  # reads brightness: mean fill removes it
    ("blur", quadrant_texture_model(), quadrant_texture_image(n=2)),  # reads texture: blur removes it
])
def test_a_quadrant_model_scores_better_with_its_own_map_than_a_shifted_map(fill, model, images):
    index = torch.tensor([1, 1])
    own = EvidenceMap()(model, model.normalize(images), index)
    shifted = torch.roll(own, shifts=(4, 4), dims=(1, 2))  # the opposite quadrant
    a = deletion_insertion(model, images, own, index, fill=fill, steps=10)
    b = deletion_insertion(model, images, shifted, index, fill=fill, steps=10)
    assert (a["deletion"] < b["deletion"] - 0.1).all()
    assert (a["insertion"] > b["insertion"] + 0.1).all()
    assert a["deletion_curve"].shape == (2, 11)
    # the curves start from the image (deletion) and from the fill (insertion), and end swapped
    torch.testing.assert_close(a["deletion_curve"][:, 0], a["insertion_curve"][:, -1])
    torch.testing.assert_close(a["deletion_curve"][:, -1], a["insertion_curve"][:, 0])


def test_floor_maps():
    r = random_smooth_maps(3, (7, 7), seed=1)
    assert r.shape == (3, 7, 7) and not torch.equal(r[0], r[1])
    torch.testing.assert_close(random_smooth_maps(3, (7, 7), seed=1), r)
    p = centred_prior_maps(2, (7, 7))
    assert p[0].argmax() == 24 and torch.equal(p[0], p[1])


# -- cascading randomization -------------------------------------------------------------
def test_spearman():
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert spearman(a, a * 10 + 3).item() == pytest.approx(1.0)
    assert spearman(a, -a).item() == pytest.approx(-1.0)
    assert spearman(a, torch.tensor([[1.0, 1.0, 2.0, 2.0]])).item() == pytest.approx(0.8944, abs=1e-4)
    assert spearman(a, torch.ones(1, 4)).item() == 0.0


def test_randomization_lowers_the_correlation_and_a_weight_blind_map_fails():
    model = make_tiny_model(size=96, seed=3)
    x = model.normalize(torch.rand(4, 1, 96, 96, generator=torch.Generator().manual_seed(0)))
    index = torch.tensor([0, 1, 0, 1])

    def brightness(m, inputs, idx):  # depends on the image only: what the check must catch
        return torch.nn.functional.avg_pool2d(inputs[:, 0], 32)

    before = [p.clone() for p in model.parameters()]
    rng_before = torch.random.get_rng_state()
    res = cascading_randomization(model, x, index, {"evidence": EvidenceMap(), "image": brightness})
    steps = [row["step"] for row in res["steps"]]
    assert steps == ["classifier", "layer4", "layer3", "layer2", "layer1", "bn1", "conv1"]
    assert all(row["evidence"]["mean_abs"] < 0.9 for row in res["steps"])
    assert res["steps"][-1]["evidence"]["mean_abs"] < PASS_LIMIT
    assert all(row["image"]["mean"] == pytest.approx(1.0) for row in res["steps"])
    assert res["passed"] == {"evidence": True, "image": False}
    # the model itself and the global RNG are untouched
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert torch.equal(torch.random.get_rng_state(), rng_before)


def test_cascade_of_a_densenet_opens_its_blocks():
    names = [n for n, _ in cascade(make_tiny_model(arch="densenet121"))]
    assert names[:3] == ["classifier", "features.norm5", "features.denseblock4"] and names[-1] == "features.conv0"


# -- evidence location --------------------------------------------------------------------
def test_outside_share_of_maps_in_a_corner_and_in_the_middle():
    images = torch.full((2, 1, 70, 70), 0.5)
    corner = torch.zeros(2, 7, 7)
    corner[:, 0, 0] = 5.0
    assert (checks.outside_share(corner, images) > 0.8).all()
    middle = torch.zeros(2, 7, 7)
    middle[:, 3, 3] = 5.0
    assert (checks.outside_share(middle, images) < 0.05).all()
    assert math.isnan(checks.outside_share(-torch.ones(1, 7, 7), images[:1]).item())


def test_black_frame_is_outside_but_dark_lungs_are_not():
    chest = torch.full((1, 1, 100, 100), 0.5)
    chest[..., 20:80, 15:45] = 0.02  # dark 'lungs' away from the edges
    chest[..., 20:80, 55:85] = 0.02
    assert not checks.black_frame(chest).any()
    framed = add_border(chest, 0.30)  # 15 px of black on every edge
    frame = checks.black_frame(framed)[0]
    assert frame[:15].all() and frame[:, -15:].all() and not frame[20:80, 20:80].any()
    assert checks.outside_mask(framed)[0].float().mean() > checks.outside_mask(chest)[0].float().mean()


def test_the_flag_fires_on_a_model_whose_evidence_is_a_corner_marker():
    model = corner_marker_model()
    images = torch.full((2, 1, 64, 64), 0.3)
    images[0, :, :6, :6] = 1.0  # a burned-in marker: the model calls PNEUMONIA for it
    with torch.inference_mode():
        logits, cams = model.logits_and_cams(model.normalize(images))
    labels = model.decide(model.probabilities(logits))
    assert labels.tolist() == [1, 0]
    res = checks.verdict_checks(model, images, logits, cams, labels, threshold=0.5)
    assert res["outside_share"][0] > 0.8
    assert res["evidence_flag"].tolist() == [True, False]


def test_frame_boxes_find_the_content_inside_a_black_frame_of_at_least_two_percent():
    images = torch.full((3, 1, 64, 64), 0.5)
    images[1, :, :10], images[1, :, :, 60:] = 0.0, 0.0  # 10 px on top, 4 px on the right
    images[2, :, :1] = 0.0  # 1 px (1.6%): too thin to count
    boxes = checks.frame_boxes(images)
    assert boxes.tolist() == [[-1] * 4, [10, 64, 0, 60], [-1] * 4]
    assert checks.frame_boxes(torch.zeros(1, 1, 64, 64)).tolist() == [[-1] * 4]  # black all over: no content
    crop = checks.unframed(images[1:2], boxes[1:2])
    assert crop.shape == (1, 1, 64, 64) and crop.min() > 0.45


def _verdicts(model, images):
    with torch.inference_mode():
        logits, cams = model.logits_and_cams(model.normalize(images))
    return logits, cams, model.decide(model.probabilities(logits))


def test_the_frame_test_flags_a_verdict_that_a_black_frame_decides():
    model = centre_model()  # PNEUMONIA when the central half is bright (mean above 0.5)
    ring = torch.full((1, 1, 64, 64), 0.4)
    ring[..., 8:56, 8:56] = 1.0
    ring[..., 16:48, 16:48] = 0.4  # bright ring outside the central half: NORMAL
    framed = add_border(ring, 0.5)  # shrunk into a black frame, the ring moves into the central half
    flat = add_border(torch.full((1, 1, 64, 64), 0.7), 0.5)  # PNEUMONIA with or without its frame
    images = torch.cat([ring, framed, flat])
    logits, cams, labels = _verdicts(model, images)
    assert labels.tolist() == [0, 1, 1]
    res = checks.verdict_checks(model, images, logits, cams, labels, threshold=0.5, with_stability=False)
    assert res["outside_share"][1] < 0.5  # the map glows in the middle: the share alone cannot see it
    assert res["frame_flipped"].tolist() == [False, True, False]
    assert res["evidence_flag"].tolist() == [False, True, False]
    assert math.isnan(res["frame_shift"][0]) and res["frame_shift"][1] < 0 and abs(res["frame_shift"][2]) < 0.2
    found = checks.as_results(res)
    assert found[0].frame_shift is None and found[1].frame_flipped and found[1].evidence_outside
    assert found[1].warnings("PNEUMONIA")[0] == ("evidence outside the chest: check the framing "
                                                 "(the label changes without the black frame)")


def test_fit_outside_threshold_is_a_high_quantile_ignoring_nan():
    shares = [i / 100 for i in range(101)] + [float("nan")]
    assert checks.fit_outside_threshold(shares) == pytest.approx(0.975)
    with pytest.raises(ValueError):
        checks.fit_outside_threshold([float("nan")])


def test_model_threshold_from_metadata():
    model = make_tiny_model(evidence_outside_threshold=0.42)
    assert checks.outside_threshold(model) == 0.42
    assert checks.outside_threshold(make_tiny_model()) == checks.DEFAULT_OUTSIDE_THRESHOLD


# -- stability and 'no positive evidence' ---------------------------------------------------
def test_the_stability_badge_fires_on_a_model_that_flips_under_blur():
    model = texture_model()
    images = noise_image(n=2)
    with torch.inference_mode():
        logits, cams = model.logits_and_cams(model.normalize(images))
    labels = model.decide(model.probabilities(logits))
    assert labels.tolist() == [1, 1]
    res = checks.verdict_checks(model, images, logits, cams, labels)
    assert res["flipped"][:, 1].all()  # blur flips both
    assert res["unstable"].all()
    assert (res["shift"][:, 1] < -1).all()


def test_a_flat_image_on_a_centre_model_is_stable():
    model = centre_model()
    images = torch.full((1, 1, 64, 64), 0.7)
    with torch.inference_mode():
        logits, cams = model.logits_and_cams(model.normalize(images))
    labels = model.decide(model.probabilities(logits))
    res = checks.verdict_checks(model, images, logits, cams, labels)
    assert not res["unstable"].any() and not res["flipped"].any()
    assert res["shift"].abs().max() < 0.05


def test_no_positive_evidence_when_the_positive_mass_is_tiny():
    model = quadrant_model()
    images = torch.full((1, 1, 64, 64), 0.05)  # dim everywhere: the PNEUMONIA map is negative everywhere
    with torch.inference_mode():
        logits, cams = model.logits_and_cams(model.normalize(images))
    res = checks.verdict_checks(model, images, logits, cams, torch.tensor([1]))
    assert res["no_positive_evidence"].item() and not res["evidence_flag"].item()
    assert res["positive_mass"].item() < checks.MIN_POSITIVE_MASS


def test_no_positive_evidence_rule_counts_mass_and_share():
    strong = torch.full((7, 7), -4.0)
    strong[0, 0] = 8.0  # mean positive 0.16 logit, but 4% of the absolute evidence
    some = torch.full((7, 7), -1.0)
    some[:2] = 2.0      # 29% of the absolute evidence
    flat = torch.full((7, 7), 0.02)  # all positive, but 0.02 logit
    assert checks.no_positive_evidence(torch.stack([strong, some, flat])).tolist() == [True, False, True]
    assert checks.no_positive_evidence(some.numpy()).tolist() == [False]  # one numpy map


# -- the audit ---------------------------------------------------------------------------
def test_stratified_subset_balances_the_predicted_classes():
    labels = torch.tensor([0] * 3 + [1] * 20)
    sub = stratified_subset(labels, 8)
    assert len(sub) == 8 and int((labels[sub] == 0).sum()) == 3
    torch.testing.assert_close(stratified_subset(labels, 8), sub)


def test_audit_returns_plain_summaries():
    model = make_tiny_model(size=64, threshold=0.5, temperature=1.0)
    images = torch.rand(6, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    res = audit(model, images, n_faithfulness=2, n_sanity=1, steps=2)
    assert 0.0 <= res["checks"]["evidence_outside_threshold"] <= 1.0
    assert set(res["faithfulness"]["mean"]) == {"evidence", "gradcam", "random", "prior"}
    assert set(res["faithfulness"]["mean"]["evidence"]) == {"deletion_mean", "insertion_mean", "deletion_blur", "insertion_blur"}
    assert res["faithfulness"]["n"] == 2 and res["sanity"]["n"] == 1
    assert set(res["faithfulness"]["margins"]) == {"random", "prior"} == set(res["faithfulness"]["margins_gradcam"])
    assert res["faithfulness"]["margins_gradcam"] != res["faithfulness"]["margins"]
    import json
    json.dumps(res, allow_nan=False)
