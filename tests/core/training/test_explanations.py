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


def test_recording_an_audit_rewrites_only_the_metadata(tiny_model_file, tmp_path):
    import json

    import pytest

    from cxrviewer.core.checkpoint import read_header
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
    found.write_text(json.dumps({"model": "other.safetensors", "audit": _audit(0.6, passed=True)}))
    with pytest.raises(CxrError, match="audits 'other.safetensors'"):
        main(get_args_parser().parse_args([str(tiny_model_file), "--from-json", str(found)]))
