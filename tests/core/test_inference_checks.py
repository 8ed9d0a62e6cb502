"""The batch engine attaches the per-verdict checks to every result."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cxrviewer.core.batch.inference import Predictor
from cxrviewer.core.explain import checks
from cxrviewer.core.io.radiograph import to_model_input
from cxrviewer.core.io.reading import load_radiograph
from cxrviewer.core.results.file_result import VerdictChecks
from explain_models import texture_model


@pytest.fixture
def grainy_files(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        p = tmp_path / f"grain{i}.png"
        Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(p)
        paths.append(p)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return paths + [bad]


def test_results_carry_the_checks_and_the_blur_flip_is_caught(grainy_files):
    model = texture_model()  # grainy images read PNEUMONIA; a slight blur turns them NORMAL
    results = list(Predictor(model, device="cpu", batch_size=2, stability=True).predict(grainy_files))
    assert [r.ok for r in results] == [True, True, True, False] and results[3].checks is None
    for r in results[:3]:
        assert r.label == "PNEUMONIA" and isinstance(r.checks, VerdictChecks)
        assert r.checks.unstable and "blur" in r.checks.flipped and set(r.checks.shifts) == {"border", "blur"}
    # the same numbers as the checks computed directly
    x = torch.from_numpy(to_model_input(load_radiograph(grainy_files[0]).pixels, model.input_size))[None, None]
    with torch.inference_mode():
        logits, cams = model.logits_and_cams(model.normalize(x))
    direct = checks.as_results(checks.verdict_checks(model, x, logits, cams, torch.tensor([1])))[0]
    assert results[0].checks.shifts == pytest.approx(direct.shifts, abs=1e-3)


def test_stability_is_opt_in_and_never_reads_as_stable(grainy_files):
    model = texture_model()
    with_it = list(Predictor(model, device="cpu", batch_size=2, stability=True).predict(grainy_files[:3]))
    results = list(Predictor(model, device="cpu", batch_size=2).predict(grainy_files[:3]))
    for r, full in zip(results, with_it):
        assert r.label == full.label and r.probs == pytest.approx(full.probs, abs=1e-6)
        assert r.checks.unstable is None and not r.checks.stability_checked and not r.checks.shifts
        assert not r.checks.flipped and full.checks.unstable  # the flip the off state does not claim to have checked
        # the evidence-location check runs either way, from the same forward pass
        assert r.checks.outside_share == full.checks.outside_share
        assert r.checks.no_positive_evidence == full.checks.no_positive_evidence
        assert not any(w.startswith("unstable") for w in r.checks.warnings())


def test_checks_can_be_switched_off_and_never_cost_a_verdict(grainy_files, monkeypatch):
    model = texture_model()
    assert all(r.checks is None for r in Predictor(model, device="cpu", checks=False).predict(grainy_files[:2]))

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr("cxrviewer.core.batch.inference.verdict_checks", broken)
    results = list(Predictor(model, device="cpu", stability=True).predict(grainy_files[:2]))
    assert all(r.ok and r.label == "PNEUMONIA" and r.checks is None for r in results)
