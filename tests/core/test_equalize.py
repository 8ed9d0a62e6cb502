"""Histogram equalisation as input normalisation (``train_model.py --equalize [global|clahe]``; issue 11's rows P8, P9)."""

import pytest
import torch

from cxrviewer import load_model, save_model
from cxrviewer.core.io.equalize import clahe, equalize_histogram
from cxrviewer.core.model.checkpoint import ModelFileError, read_header

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
    assert model.equalize == "global" and plain.equalize is None
    with torch.inference_mode():
        torch.testing.assert_close(model(model.normalize(x * 0.5 + 0.2)), model(model.normalize(x)))
        assert not torch.allclose(plain(plain.normalize(x * 0.5 + 0.2)), plain(plain.normalize(x)))
    path = save_model(model, tmp_path / "eq.safetensors")
    assert read_header(path)["equalize"] is True
    assert load_model(path).equalize == "global"
    local = load_model(save_model(make_tiny_model(equalize="clahe"), tmp_path / "clahe.safetensors"))
    assert local.equalize == "clahe"
    torch.testing.assert_close(local.normalize(x), (clahe(x) - 0.5) / 0.25)


def test_a_model_file_with_a_bad_equalize_entry_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match="equalize"):
        save_model(make_tiny_model(), tmp_path / "m.safetensors", meta={"equalize": "yes"})
    with pytest.raises(ModelFileError, match="equalize"):
        save_model(make_tiny_model(), tmp_path / "m.safetensors", meta={"equalize": 1})
    assert not (tmp_path / "m.safetensors").exists()


def test_clahe_equalises_each_region_so_a_dark_half_keeps_its_detail():
    g = torch.Generator().manual_seed(0)
    dark = torch.rand(1, 1, 64, 32, generator=g) * 0.2          # a dim half with faint texture
    bright = 0.8 + torch.rand(1, 1, 64, 32, generator=g) * 0.2
    x = torch.cat([dark, bright], dim=3)

    def spread(y):                                                 # well inside the dark half
        inner = y[..., 8:56, 4:12]
        return float(inner.max() - inner.min())

    unclipped, clipped = clahe(x, tiles=4, clip=float("inf")), clahe(x, tiles=4)
    assert 0 < clipped.min() and clipped.max() < 1
    assert spread(unclipped) > 0.9                                 # stretched over the whole range locally
    assert spread(equalize_histogram(x)) < 0.55                    # globally it keeps only the lower half
    assert 0.3 < spread(clipped) < spread(unclipped)               # the clip limit holds the stretch back


def test_clahe_undoes_a_contrast_change_exactly_without_clipping_and_partly_with_it():
    x = _levels(4, (1, 1, 64, 64))
    y = x * 0.5 + 0.25
    torch.testing.assert_close(clahe(y, clip=float("inf")), clahe(x, clip=float("inf")))
    change = float((y - x).abs().mean())
    assert float((clahe(y) - clahe(x)).abs().mean()) < 0.75 * change   # the clip limit depends on the spread
