"""Frame normalisation as a model-file setting: stored, validated, applied by CamClassifier.normalize."""

import pytest
import torch

from cxrviewer import load_model, save_model
from cxrviewer.core.errors import ModelFileError

from tests.conftest import make_tiny_model


def test_normalize_crops_a_frame_only_when_the_file_says_so(tmp_path):
    plain, framed = make_tiny_model(size=64), make_tiny_model(size=64, frame_normalize=True)
    x = torch.rand(2, 1, 64, 64)
    x[0, :, :, :13] = 0.0  # a 20 % black frame on the left of the first image only
    assert torch.equal(plain.normalize(x), plain.normalize(x, frame=False))
    out = framed.normalize(x)
    assert torch.equal(out[1], plain.normalize(x)[1])  # no frame: unchanged
    assert not torch.equal(out[0], plain.normalize(x)[0]) and (x[0, 0, :, 16:] > 0).all()
    # the frame is gone: the left column of the normalised input is the image's content, not the frame's level
    assert out[0, 0, :, 0].std() > 0.05
    assert torch.equal(framed.normalize(x, frame=False), plain.normalize(x))
    path = save_model(framed, tmp_path / "framed.safetensors")
    assert load_model(path).frame_normalize is True and load_model(save_model(plain, tmp_path / "p.safetensors")).frame_normalize is False


def test_a_non_boolean_frame_normalize_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match="frame_normalize must be true or false"):
        save_model(make_tiny_model(size=64, frame_normalize="yes"), tmp_path / "bad.safetensors")
