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


# -- the corruption suite of the selection protocol ----------------------------------------------

from cxrviewer.core.training import framing  # noqa: E402
from cxrviewer.core.training.shift import SUITE, noise, suite_views  # noqa: E402


def _radiograph_like(n=2, size=64):
    """Smooth anatomy-like structure plus fine texture, away from 0 and 1."""
    g = torch.Generator().manual_seed(1)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    base = 0.5 + 0.25 * torch.cos(3 * xx) * torch.cos(2 * yy)
    return (base + 0.08 * torch.rand(n, 1, size, size, generator=g)).clamp(0.05, 0.95)


def test_suite_has_17_families_of_five_levels():
    views = list(suite_views())
    assert len(SUITE) == 17 and len(views) == 85
    assert {level for _, level, _ in views} == {1, 2, 3, 4, 5}
    assert [f for f, _, _ in suite_views(["blur", "crop"])] == ["blur"] * 5 + ["crop"] * 5


@pytest.mark.parametrize("family", list(SUITE))
def test_suite_views_keep_shape_and_range_are_deterministic_and_grow_with_severity(family):
    x = _radiograph_like()
    change = []
    for _, level, fn in suite_views([family]):
        y = fn(x)
        assert y.shape == x.shape and y.dtype == x.dtype
        assert float(y.min()) >= 0 and float(y.max()) <= 1
        assert torch.equal(fn(x), y)
        assert torch.equal(x, _radiograph_like())  # the input is never modified
        change.append(float((y - x).abs().mean()))
    assert change[0] > 1e-4
    if family != "marker-move":  # its levels are positions, not severities
        assert all(b >= a * 0.98 for a, b in zip(change, change[1:])), change


def test_noise_does_not_depend_on_the_batch():
    x = _radiograph_like(3)
    y = noise(0.05)(x)
    assert torch.equal(noise(0.05)(x[1:2]), y[1:2])
    assert not torch.equal(y[0] - x[0], y[1] - x[1])  # each image gets its own noise
    assert float((y - x).std()) == pytest.approx(0.05, rel=0.15)


def test_framing_primitives_do_what_they_say():
    x = torch.full((1, 1, 50, 50), 0.6)
    f = framing.frame(x, 0.1, value=0.0)
    assert float(f[..., :5, :].max()) == 0 and float(f[..., :, 45:].max()) == 0
    assert torch.allclose(f[..., 5:45, 5:45], x[..., 5:45, 5:45])
    assert torch.allclose(framing.crop(x, 0.1), x)
    dot = torch.zeros(1, 1, 50, 50)
    dot[..., 10, 20] = 1
    assert framing.translate(dot, 0.1, 0.2).argmax() == (10 + 10) * 50 + (20 + 5)
    m = framing.mask_edges(x, 0.1, 0.0, 0.0, 0.2, value=1.0)
    assert float(m[..., :5, :].min()) == 1 and float(m[..., :, 40:].min()) == 1 and float(m[..., 20, 20]) == pytest.approx(0.6)
    r = framing.draw_marker(x, 0.2, 0.5, 0.5)
    assert int((r == 1).sum()) > 20 and float(r[..., 20:30, 20:30].max()) == 1
    assert float(r[..., :10, :].max()) == pytest.approx(0.6)  # nothing drawn outside its box
    ramp = torch.linspace(0, 1, 50).repeat(1, 1, 50, 1)
    e = framing.erase_patch(ramp, 0.0, 0.2, 0.0, 1.0, q=0.1)
    assert torch.allclose(e[..., :, :10], torch.full((1, 1, 50, 10), float(ramp[..., :, :10].quantile(0.1))))
    assert torch.equal(e[..., :, 10:], ramp[..., :, 10:])
    turned = framing.rotate(torch.full((1, 1, 40, 40), 0.5), 45)
    assert float(turned[..., 0, 0]) == 0 and float(turned[..., 20, 20]) == pytest.approx(0.5)
