"""The trainer's heat-map audit step and its model-card section."""

from __future__ import annotations

import torch

from cxrviewer.core.training.explanations import THRESHOLD_KEY, apply_record, explanation_record
from cxrviewer.core.training.model_card import _explanations
from tests.conftest import make_tiny_model


def test_record_from_uint8_batches_and_merged_into_the_metrics():
    model = make_tiny_model(threshold=0.5, temperature=1.0)
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, 256, (3, 1, 64, 64), dtype=torch.uint8, generator=g) for _ in range(2)]
    record = explanation_record(model, batches, images=2)
    assert record["explanations"]["checks"]["n"] == 6
    assert record[THRESHOLD_KEY] == record["explanations"]["checks"][THRESHOLD_KEY]
    meta = apply_record({"metrics": {"validation": {"auroc": 0.9}}, "arch": "resnet18"}, record)
    assert meta["metrics"]["validation"] == {"auroc": 0.9} and meta["metrics"]["explanations"] is record["explanations"]
    assert meta[THRESHOLD_KEY] == record[THRESHOLD_KEY] and meta["arch"] == "resnet18"


def _audit(evidence_del, passed):
    row = {"deletion_mean": evidence_del, "insertion_mean": 0.8, "deletion_blur": 0.9, "insertion_blur": 0.9}
    floor = {"deletion_mean": 0.75, "insertion_mean": 0.75, "deletion_blur": 0.9, "insertion_blur": 0.9}
    step = {"step": "classifier", "evidence": {"mean": 0.9 if not passed else -0.1, "mean_abs": 0.9 if not passed else 0.2},
            "gradcam": {"mean": 0.0, "mean_abs": 0.1}}
    return {"faithfulness": {"n": 10, "steps": 20, "mean": {"evidence": row, "random": floor, "prior": floor},
                             "margins": {f: {"deletion_mean": [0.75 - evidence_del, 0.02], "insertion_mean": [0.05, 0.02],
                                             "deletion_blur": [0.0, 0.01], "insertion_blur": [0.0, 0.01]}
                                         for f in ("random", "prior")}},
            "sanity": {"n": 5, "limit": 0.5, "steps": [step], "passed": {"evidence": passed}},
            "checks": {"n": 100, "evidence_outside_threshold": 0.3, "evidence_flag_rate": 0.03, "unstable_rate": 0.2,
                       "flip_rate": {"border": 0.02, "blur": 0.03}, "no_positive_evidence_rate": 0.0}}


def test_card_section_states_the_margins_and_the_sanity_verdict_in_plain_words():
    text = "\n".join(_explanations(_audit(0.6, passed=True)))
    assert "| evidence map (what the viewer draws) | 0.600 | 0.800 | 0.900 | 0.900 |" in text
    assert "against the random map: better beyond chance on deletion with mean fill, insertion with mean fill;" in text
    assert "Sanity check: PASSED" in text and "| classifier | -0.10 (abs 0.20) |" in text
    failed = "\n".join(_explanations(_audit(0.74, passed=False)))
    assert "Sanity check: FAILED" in failed and "Do not read them as the model's evidence" in failed
    assert "against the centred prior: better beyond chance on insertion with mean fill;" in failed
    assert _explanations(None) == [] and _explanations({}) == []


def test_card_counts_the_comparisons_states_grad_cams_margins_and_names_classes_no_map_separates():
    audit = _audit(0.6, passed=True)
    fa = audit["faithfulness"]
    fa["margins_gradcam"] = {f: {k: [0.05, 0.01] for k in fa["mean"]["evidence"]} for f in ("random", "prior")}
    fa["margins"]["prior"]["deletion_blur"] = [-0.03, 0.01]
    flat = {m: {"deletion_mean": 0.96 + d, "insertion_mean": 0.97, "deletion_blur": 0.97, "insertion_blur": 0.97 - d}
            for m, d in (("evidence", 0.0), ("gradcam", 0.01), ("random", 0.02), ("prior", 0.0))}
    apart = {m: {k: 0.5 + d for k in ("deletion_mean", "insertion_mean", "deletion_blur", "insertion_blur")}
             for m, d in (("evidence", 0.0), ("gradcam", 0.1), ("random", 0.3), ("prior", 0.2))}
    fa["by_predicted_class"] = {"NORMAL": {"n": 5, **apart}, "PNEUMONIA": {"n": 5, **flat}}
    text = "\n".join(_explanations(audit))
    # evidence map: deletion and insertion with mean fill beat both floors (4 of 8), blur-fill deletion loses to the prior
    assert "better beyond chance: the evidence map on 4 of 8 (worse on 1); Grad-CAM on layer3 on 8 of 8.**" in text
    assert "Margin of Grad-CAM on layer3 (the viewer's second map) over the centred prior" in text
    assert "Grad-CAM on layer3 (the viewer's second map) against the random map: better beyond chance on deletion with mean fill, " in text
    assert "| PNEUMONIA (5) | evidence map | 0.960 | 0.970 | 0.970 | 0.970 |" in text
    assert "| NORMAL (5) | centred Gaussian prior | 0.700 | 0.700 | 0.700 | 0.700 |" in text
    assert "For PNEUMONIA calls (5 images) every map, the floors included, scores within 0.020 of one another" in text
    assert "the margins above come from the NORMAL calls." in text and "For NORMAL calls" not in text


def test_audit_helpers_count_comparisons_and_say_them_in_a_line():
    from cxrviewer.core.explain.audit import audit_line, floor_tally, method_notes

    margins = {"random": {"deletion_mean": [0.1, 0.02], "insertion_mean": [0.01, 0.02]},
               "prior": {"deletion_mean": [-0.05, 0.02], "insertion_mean": [0.03, 0.01]}}
    assert floor_tally(margins) == (2, 1, 4)
    ex = {"faithfulness": {"n": 12, "margins": margins}, "sanity": {"passed": {"evidence": False}}}
    assert method_notes(ex) == {"evidence": "beats the no-knowledge maps (random, centred prior) beyond chance in 2 of 4 "
                                            "deletion/insertion comparisons and loses 1 (12 validation images)"}
    assert audit_line(ex) == ("CAM beats a random and a centred map in 2 of 4 comparisons (loses 1); sanity check FAILED "
                              "(12 validation images; see the model card)")
    assert method_notes(None) == {} and audit_line(None) == "" and audit_line({}) == ""


def test_recording_an_audit_rewrites_only_the_metadata(tiny_model_file, tmp_path):
    import json

    import pytest

    from cxrviewer.core.model.checkpoint import read_header
    from cxrviewer.core.errors import CxrError
    from cxrviewer.core.training.explanations import get_args_parser, main
    from cxrviewer.core.training.parity import weights_digest

    before = weights_digest(tiny_model_file)
    found = tmp_path / "audit.json"
    found.write_text(json.dumps({"model": tiny_model_file.name, "audit": _audit(0.6, passed=True)}))
    main(get_args_parser().parse_args([str(tiny_model_file), "--from-json", str(found)]))
    meta = read_header(tiny_model_file)
    assert meta[THRESHOLD_KEY] == 0.3 and meta["metrics"]["explanations"]["sanity"]["passed"] == {"evidence": True}
    assert weights_digest(tiny_model_file) == before and meta["threshold"] == 0.5
    assert "Sanity check: PASSED" in tiny_model_file.with_suffix(".md").read_text()  # the card follows the metadata
    found.write_text(json.dumps({"model": "other.safetensors", "audit": _audit(0.6, passed=True)}))
    with pytest.raises(CxrError, match="audits 'other.safetensors'"):
        main(get_args_parser().parse_args([str(tiny_model_file), "--from-json", str(found)]))


def test_the_viewers_default_map_is_the_one_that_beats_both_floors_on_mean_fill():
    """Protocol amendment 2: deletion and insertion with mean fill decide; blur fill is information only."""
    from cxrviewer.core.explain.audit import beats_floors, default_method

    good = {f: {"deletion_mean": [0.05, 0.02], "insertion_mean": [0.03, 0.01], "deletion_blur": [-0.02, 0.01],
                "insertion_blur": [0.0, 0.01]} for f in ("random", "prior")}
    weak = {"random": good["random"], "prior": {**good["prior"], "insertion_mean": [0.01, 0.02]}}  # interval spans 0
    assert beats_floors(good) and not beats_floors(weak) and not beats_floors(None)
    assert default_method(None) == ("evidence", "")
    assert default_method({"faithfulness": {"margins": good, "margins_gradcam": weak}}) == ("evidence", "")
    method, why = default_method({"faithfulness": {"margins": weak, "margins_gradcam": good}})
    assert method == "gradcam" and "CAM does not beat" in why
    method, why = default_method({"faithfulness": {"margins": weak, "margins_gradcam": weak}})
    assert method == "evidence" and "neither" in why
