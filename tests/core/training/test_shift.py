import pytest
import torch

from cxrviewer.core.training.shift import SHIFTS, blur, zoom


@pytest.mark.parametrize("name", list(SHIFTS))
def test_shift_keeps_shape_and_range_and_changes_the_image(name):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 64, 64, generator=g) * 0.6 + 0.2
    y = SHIFTS[name](x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    assert not torch.allclose(y, x, atol=1e-3)
    assert torch.equal(SHIFTS[name](x), y)  # deterministic


def test_blur_and_zoom_are_what_they_say():
    x = torch.zeros(1, 1, 65, 65)
    x[..., 32, 32] = 1.0
    b = blur(1.5 * 224 / 65)(x)  # sigma 1.5 px at 65 px
    assert b.sum() == pytest.approx(1.0, abs=1e-4) and b[0, 0, 32, 32] < 0.1 and b.argmax() == 32 * 65 + 32
    flat = torch.full((1, 1, 40, 40), 0.5)
    assert torch.allclose(zoom(1.15)(flat), flat) and torch.allclose(zoom(0.87)(flat), flat)
    ramp = torch.linspace(0, 1, 40).repeat(1, 1, 40, 1)  # varies along x
    assert zoom(1.15)(ramp)[..., 0].mean() > ramp[..., 0].mean()   # zoom in: the edge moves inwards
    assert zoom(0.87)(ramp)[..., 5].mean() < ramp[..., 5].mean()   # zoom out: content shrinks to the middle
