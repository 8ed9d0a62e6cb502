"""The shipped models' scope (the default and the previous one): non-chest images are withheld with a reason,
chest radiographs are answered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from cxrviewer.core.batch.inference import Predictor
from cxrviewer.core.model.checkpoint import load_model
from cxrviewer.core.results.file_result import OUT_OF_SCOPE

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "chest_xray"
SHIPPED = sorted((ROOT / "resources" / "models").glob("*.safetensors"))


@pytest.fixture(scope="module", params=SHIPPED, ids=[p.stem for p in SHIPPED])
def predictor(request):
    model = load_model(request.param)
    assert model.meta.get("scope", {}).get("method") == "mahalanobis", "the shipped model has no scope statistics"
    return Predictor(model, device="cpu", batch_size=8)


@pytest.fixture(scope="module")
def odd_images(tmp_path_factory):
    d = tmp_path_factory.mktemp("odd")
    Image.fromarray(np.full((512, 512), 128, np.uint8)).save(d / "blank.png")
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(d / "dot.png")
    return d


@pytest.mark.parametrize("name, reason", [
    ("CT_small.dcm", "DICOM Modality is CT"),
    ("MR_small.dcm", "DICOM Modality is MR"),
    ("US1_J2KR.dcm", "DICOM Modality is US"),
    ("RG3_UNCR.dcm", "Body Part Examined is EXTREMITY"),
    ("blank.png", "blank or nearly uniform"),
    ("dot.png", "only 1 x 1 pixels"),
])
def test_non_chest_images_are_out_of_scope_with_their_reason(predictor, odd_images, name, reason):
    path = odd_images / name if name.endswith(".png") else get_testdata_file(name, download=False)
    (r,) = predictor.predict([path])
    assert r.ok and r.in_scope is False and r.label == OUT_OF_SCOPE and reason in r.scope_reason
    assert r.predicted in r.probs and sum(r.probs.values()) == pytest.approx(1.0, abs=1e-5)  # kept for audit
    assert r.scope_score is not None and r.cams is not None


def test_the_learned_score_alone_refuses_the_tibia_and_a_photograph(predictor):
    import skimage.data

    tibia, camera = predictor.predict([get_testdata_file("RG3_UNCR.dcm", download=False),
                                       Path(skimage.data.data_dir) / "camera.png"])
    assert tibia.scope_score > 1.5 * predictor.scope.threshold  # even with the chest-header margin
    assert not camera.in_scope and camera.scope_reason.startswith("unlike the chest radiographs")


def test_chest_radiographs_are_in_scope(predictor):
    paths = [get_testdata_file("RG1_UNCR.dcm", download=False),
             *sorted(p for p in (ROOT / "resources" / "samples").iterdir() if p.suffix in (".jpeg", ".dcm"))]
    for r in predictor.predict(paths):
        assert r.in_scope and r.scope_reason is None and r.label == r.predicted in ("NORMAL", "PNEUMONIA"), r.path


@pytest.mark.skipif(not DATA.is_dir(), reason=f"training data not found at {DATA}")
def test_at_least_97_percent_of_the_validation_split_is_in_scope(predictor):
    from cxrviewer.core.training.scope_fit import model_split

    _, val = model_split(predictor.model, DATA)
    sample = [s.path for s in val[::6]]  # ~130 of 784, both classes, fast
    inside = [r.in_scope for r in predictor.predict(sample)]
    assert len(inside) == len(sample) and np.mean(inside) >= 0.97
    stored = predictor.model.meta["scope"]["validation_in_scope"]
    assert stored["as acquired"] >= 0.97 and min(stored.values()) >= 0.95
