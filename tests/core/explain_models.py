"""Synthetic CamClassifiers whose true evidence is known, for the explanation tests.

Each is a real :class:`CamClassifier` (normalisation, calibration, decision rule,
``logits_and_cams``) whose trunk is replaced by a fixed, parameter-free stage and
whose classifier reads one feature: logit(PNEUMONIA) - logit(NORMAL) =
``gain * mean(feature) + offset``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from cxrviewer import CamClassifier
from cxrviewer.core.explain.perturb import gaussian_blur


class RegionMask(nn.Module):
    """Keeps the pixels of one rectangle (fractions of the side), zero elsewhere."""

    def __init__(self, top: float, left: float, bottom: float, right: float):
        super().__init__()
        self.box = (top, left, bottom, right)

    def forward(self, x):
        H, W = x.shape[-2:]
        t, lf, b, r = self.box
        m = torch.zeros_like(x)
        m[..., round(t * H):round(b * H), round(lf * W):round(r * W)] = 1
        return x * m


class HighFrequency(nn.Module):
    """Squared difference between the image and its blur (sigma 1.5 px): fine texture."""

    def forward(self, x):
        return (x - gaussian_blur(x, 1.5)) ** 2 * 100


def synthetic_model(stage: nn.Module, gain: float, offset: float, size: int = 64) -> CamClassifier:
    """A two-class CamClassifier: trunk = ``stage`` then 8 x 8 average pooling, one feature."""
    model = CamClassifier("resnet18", 2, 1, meta=dict(
        format_version=1, arch="resnet18", class_names=["NORMAL", "PNEUMONIA"], input_size=[size, size],
        input_channels=1, mean=[0.0], std=[1.0], temperature=1.0))
    model.features = nn.Sequential(OrderedDict(stage=stage, pool=nn.AvgPool2d(size // 8)))
    model.classifier = nn.Linear(1, 2)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.tensor([[-gain / 2], [gain / 2]]))
        model.classifier.bias.copy_(torch.tensor([-offset / 2, offset / 2]))
    return model.eval()


def quadrant_model(size: int = 64) -> CamClassifier:
    """Looks only at the top-left quadrant's brightness: PNEUMONIA when it is bright."""
    return synthetic_model(RegionMask(0, 0, 0.5, 0.5), gain=40.0, offset=-4.0, size=size)


def quadrant_texture_model(size: int = 64) -> CamClassifier:
    """Looks only at the fine texture of the top-left quadrant: PNEUMONIA when it is grainy."""
    return synthetic_model(nn.Sequential(HighFrequency(), RegionMask(0, 0, 0.5, 0.5)), gain=2.0, offset=-2.0, size=size)


def corner_marker_model(size: int = 64) -> CamClassifier:
    """Looks only at the top-left corner (10% of the side), where markers are burned in."""
    return synthetic_model(RegionMask(0, 0, 0.1, 0.1), gain=400.0, offset=-2.0, size=size)


def texture_model(size: int = 64) -> CamClassifier:
    """PNEUMONIA when the image has fine texture: a blur of sigma 2 px turns it NORMAL."""
    return synthetic_model(HighFrequency(), gain=1.0, offset=-2.0, size=size)


def centre_model(size: int = 64) -> CamClassifier:
    """Reads the brightness of the central half: unmoved by a border or a blur of a flat image."""
    return synthetic_model(RegionMask(0.25, 0.25, 0.75, 0.75), gain=16.0, offset=-2.0, size=size)


def quadrant_image(size: int = 64, n: int = 2, seed: int = 0) -> torch.Tensor:
    """``n x 1 x size x size`` dim noise with a bright top-left quadrant."""
    g = torch.Generator().manual_seed(seed)
    x = 0.1 + 0.1 * torch.rand((n, 1, size, size), generator=g)
    x[..., : size // 2, : size // 2] += 0.7
    return x


def quadrant_texture_image(size: int = 64, n: int = 2, seed: int = 0) -> torch.Tensor:
    """``n x 1 x size x size`` flat grey with a grainy top-left quadrant."""
    x = torch.full((n, 1, size, size), 0.5)
    x[..., : size // 2, : size // 2] = noise_image(size // 2, n, seed)
    return x


def noise_image(size: int = 64, n: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, 1, size, size), generator=g)

