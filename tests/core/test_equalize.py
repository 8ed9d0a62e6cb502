"""Histogram equalisation as input normalisation (``train_model.py --equalize``; issue 11's study row P8)."""

import pytest
import torch

from cxrviewer import load_model, save_model
from cxrviewer.core.checkpoint import ModelFileError, read_header
from cxrviewer.core.model import equalize_histogram

from tests.conftest import make_tiny_model


def _levels(seed=0, shape=(2, 1, 32, 32)):
    """Grey images on every fourth 8-bit level, so contrast and gamma changes keep the levels apart."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 64, shape, generator=g).float() * 4 / 255


def test_equalised_images_ignore_contrast_brightness_and_gamma():
    x = _levels()
    want = equalize_histogram(x)
    for changed in (x * 0.5 + 0.25, x ** 0.7, (x * 0.8 + 0.1) ** 1.3):
        torch.testing.assert_close(equalize_histogram(changed), want)
    assert not torch.allclose(equalize_histogram(x.flip(-1) * 0.5), want)   # but the picture itself still counts


def test_equalised_values_spread_evenly_and_a_flat_image_is_mid_grey():
    y = equalize_histogram(torch.rand(3, 1, 64, 64))
    assert 0 < y.min() and y.max() < 1
    assert abs(float(y.mean()) - 0.5) < 0.01 and abs(float(y.std()) - 12 ** -0.5) < 0.01   # uniform on (0, 1)
    assert torch.equal(equalize_histogram(torch.full((1, 1, 8, 8), 0.3)), torch.full((1, 1, 8, 8), 0.5))
    ranked = equalize_histogram(torch.linspace(0, 1, 256).view(1, 1, 16, 16))
    assert torch.all(ranked.flatten().diff() > 0)                                 # order kept, ties never split


def test_each_image_is_equalised_on_its_own():
    a, b = _levels(1, (1, 1, 16, 16)), _levels(2, (1, 1, 16, 16)) * 0.3
    both = equalize_histogram(torch.cat([a, b]))
    torch.testing.assert_close(both, torch.cat([equalize_histogram(a), equalize_histogram(b)]))


def test_a_model_that_declares_it_equalises_wherever_it_runs_and_keeps_it_in_its_file(tmp_path):
    x = _levels(3)
    model = make_tiny_model(equalize=True)
    plain = make_tiny_model()
    assert model.equalize and not plain.equalize
    with torch.inference_mode():
        torch.testing.assert_close(model(model.normalize(x * 0.5 + 0.2)), model(model.normalize(x)))
        assert not torch.allclose(plain(plain.normalize(x * 0.5 + 0.2)), plain(plain.normalize(x)))
    path = save_model(model, tmp_path / "eq.safetensors")
    assert read_header(path)["equalize"] is True
    assert load_model(path).equalize


def test_a_model_file_with_a_bad_equalize_entry_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match="equalize"):
        save_model(make_tiny_model(), tmp_path / "m.safetensors", meta={"equalize": "yes"})
    assert not (tmp_path / "m.safetensors").exists()
