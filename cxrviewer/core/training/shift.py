"""Fixed acquisition shifts of a validation batch (exposure, contrast, sharpness, field of view).

Used to choose a decision threshold that holds up when the images a model meets
differ from its training set (``--threshold-rule robust``): Youden's J is averaged
over the clean validation images and these deterministic versions of them.
All take and return N x C x H x W tensors in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F


def gamma(g: float) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: x.clamp(0, 1).pow(g)


def contrast(factor: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """Scale each image's contrast about its own mean."""
    def apply(x):
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return ((x - mean) * factor + mean).clamp(0, 1)
    return apply


def brightness(delta: float) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: (x + delta).clamp(0, 1)


def blur(sigma_at_224: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """Gaussian blur; ``sigma`` in pixels of a 224 px image (scaled with the input size)."""
    def apply(x):
        sigma = sigma_at_224 * x.shape[-1] / 224
        r = max(1, math.ceil(3 * sigma))
        k = torch.exp(-torch.arange(-r, r + 1, dtype=x.dtype, device=x.device) ** 2 / (2 * sigma * sigma))
        k = (k / k.sum()).repeat(x.shape[1], 1, 1, 1)
        x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(x.shape[1], 1, 1, -1), groups=x.shape[1])
        return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(x.shape[1], 1, -1, 1), groups=x.shape[1])
    return apply


def zoom(factor: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """``factor`` > 1: the central 1/factor of the image enlarged; < 1: shrunk with its border extended."""
    def apply(x):
        h, w = x.shape[-2:]
        if factor >= 1:
            ch, cw = round(h / factor), round(w / factor)
            top, left = (h - ch) // 2, (w - cw) // 2
            x = x[..., top:top + ch, left:left + cw]
        else:
            ph, pw = round(h * (1 / factor - 1) / 2), round(w * (1 / factor - 1) / 2)
            x = F.pad(x, (pw, pw, ph, ph), mode="replicate")
        return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return apply


SHIFTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gamma 0.7": gamma(0.7),
    "gamma 1.4": gamma(1.4),
    "contrast x0.7": contrast(0.7),
    "brightness +0.1": brightness(0.1),
    "brightness -0.1": brightness(-0.1),
    "blur 1.5 px": blur(1.5),
    "zoom in x1.15": zoom(1.15),
    "zoom out x0.87": zoom(0.87),
}
"""The shifts, by the name reports use."""
