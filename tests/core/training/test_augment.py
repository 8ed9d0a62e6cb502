import pytest
import torch

from cxrviewer.core.training.augment import DetailAugment, FramingAugment, mix_batch


def _batch(n=8, size=64):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, size, size, generator=g) * 0.5 + 0.25


@pytest.mark.parametrize("aug", [FramingAugment(p=1.0, markers=1.0), DetailAugment(p=1.0)])
def test_augments_change_every_image_within_range_reproducibly(aug):
    x = _batch()
    y = aug(x, torch.Generator().manual_seed(3))
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    assert all(not torch.allclose(a, b) for a, b in zip(x, y))
    assert torch.equal(aug(x, torch.Generator().manual_seed(3)), y)
    assert not torch.equal(aug(x, torch.Generator().manual_seed(4)), y)


def test_augments_with_probability_zero_change_nothing():
    x = _batch()
    assert torch.equal(FramingAugment(p=0.0, markers=0.0)(x, torch.Generator().manual_seed(0)), x)
    assert torch.equal(DetailAugment(p=0.0)(x, torch.Generator().manual_seed(0)), x)


def test_framing_puts_borders_on_some_images():
    x = torch.full((64, 1, 40, 40), 0.5)
    y = FramingAugment(p=1.0, max_frac=0.15)(x, torch.Generator().manual_seed(1))
    edge_changed = (y[..., 0, :] != 0.5).any(dim=-1).flatten()
    assert 0.3 < float(edge_changed.float().mean()) < 1.0  # crops of a flat image leave it flat


def test_mixup_and_cutmix_make_consistent_soft_targets():
    x, y = _batch(6), torch.tensor([0, 1, 0, 1, 1, 0])
    same_x, onehot = mix_batch(x, y, 2)
    assert same_x is x and torch.equal(onehot, torch.nn.functional.one_hot(y, 2).float())
    ones = torch.ones(4, 1, 20, 20)
    x01, y01 = torch.cat([ones[:2], 0 * ones[2:]]), torch.tensor([1, 1, 0, 0])  # pixel value = label
    for kind in ("mixup", "cutmix"):
        changed = False
        for seed in range(5):
            mx, t = mix_batch(x01, y01, 2, generator=torch.Generator().manual_seed(seed), **{kind: 1.0})
            assert torch.allclose(t.sum(1), torch.ones(4))
            # For every image, the share of class 1 in its target equals the share of it that came from class 1.
            assert torch.allclose(t[:, 1], mx.mean(dim=(1, 2, 3)), atol=1e-6), kind
            changed |= not torch.equal(mx, x01)
        assert changed, kind
