"""Image perturbations shared by the checks: Gaussian blur, a black frame, a mean fill.

All take and return ``N x C x H x W`` float tensors of grey values in [0, 1]
(the model's input before normalisation), at the model's input size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with ``sigma`` in pixels of ``x`` (edges replicated)."""
    if sigma <= 0:
        return x.clone()
    r = max(1, math.ceil(3 * sigma))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=x.dtype, device=x.device) ** 2 / (2 * sigma * sigma))
    k = (k / k.sum()).repeat(x.shape[1], 1, 1, 1)
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(c, 1, -1, 1), groups=c)


def add_border(x: torch.Tensor, fraction: float = 0.10, value: float = 0.0) -> torch.Tensor:
    """The image shrunk to ``1 - fraction`` of each side, centred in a frame of ``value``.

    ``fraction=0.10`` leaves a black band of 5% of the side on every edge, as a
    scanned film or a padded export would.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    h, w = x.shape[-2:]
    ih, iw = max(1, round(h * (1 - fraction))), max(1, round(w * (1 - fraction)))
    inner = F.interpolate(x, size=(ih, iw), mode="bilinear", align_corners=False, antialias=True)
    out = torch.full_like(x, float(value))
    top, left = (h - ih) // 2, (w - iw) // 2
    out[..., top:top + ih, left:left + iw] = inner
    return out


def mean_fill(x: torch.Tensor) -> torch.Tensor:
    """Each image replaced by its own mean grey value."""
    return x.mean(dim=(-2, -1), keepdim=True).expand_as(x).clone()


def blur_fill(x: torch.Tensor) -> torch.Tensor:
    """Petsiuk et al.'s insertion canvas: a Gaussian blur of sigma 5 px at 224 px (scaled with the side)."""
    return gaussian_blur(x, 5.0 * x.shape[-1] / 224)


#: The replacement images of deletion and insertion, by name.
FILLS = {"mean": mean_fill, "blur": blur_fill}
