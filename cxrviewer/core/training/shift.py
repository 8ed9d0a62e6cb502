"""Fixed acquisition shifts of a validation batch: exposure, contrast, sharpness, compression, framing.

``SHIFTS``: eight mild shifts used to choose a decision threshold that holds up when the images a
model meets differ from its training set (``--threshold-rule robust``: Youden's J averaged over the
clean validation images and these). ``SUITE``: the corruption suite of the selection protocol
(``docs/selection-protocol.md``), 17 families with five severity levels each.
All are deterministic (noise is seeded from each image's own pixels, so results do not depend on
batching) and take and return N x C x H x W tensors in [0, 1].
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import framing

Transform = Callable[[torch.Tensor], torch.Tensor]


def gamma(g: float) -> Transform:
    return lambda x: x.clamp(0, 1).pow(g)


def contrast(factor: float) -> Transform:
    """Scale each image's contrast about its own mean."""
    def apply(x):
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return ((x - mean) * factor + mean).clamp(0, 1)
    return apply


def brightness(delta: float) -> Transform:
    return lambda x: (x + delta).clamp(0, 1)


def blur(sigma_at_224: float) -> Transform:
    """Gaussian blur; ``sigma`` in pixels of a 224 px image (scaled with the input size)."""
    def apply(x):
        sigma = sigma_at_224 * x.shape[-1] / 224
        r = max(1, math.ceil(3 * sigma))
        k = torch.exp(-torch.arange(-r, r + 1, dtype=x.dtype, device=x.device) ** 2 / (2 * sigma * sigma))
        k = (k / k.sum()).repeat(x.shape[1], 1, 1, 1)
        x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(x.shape[1], 1, 1, -1), groups=x.shape[1])
        return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(x.shape[1], 1, -1, 1), groups=x.shape[1])
    return apply


def zoom(factor: float) -> Transform:
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


def noise(std: float) -> Transform:
    """Additive Gaussian noise, seeded per image from its pixels and ``std`` (same image, same noise)."""
    def apply(x):
        out = torch.empty_like(x)
        for i, im in enumerate(x):
            seed = int(im.double().mul(255).round().sum()) * 1009 + round(std * 1e6)
            g = torch.Generator().manual_seed(seed % (2 ** 63))
            out[i] = im + std * torch.randn(im.shape, generator=g, dtype=x.dtype).to(x.device)
        return out.clamp(0, 1)
    return apply


def jpeg(quality: int) -> Transform:
    """Re-encode each channel as an 8-bit JPEG of ``quality`` (PIL) and decode it."""
    def apply(x):
        out = torch.empty_like(x)
        for i, im in enumerate(x):
            for c, ch in enumerate(im):
                buf = io.BytesIO()
                Image.fromarray(ch.mul(255).round().clamp(0, 255).byte().cpu().numpy()).save(buf, "JPEG", quality=quality)
                dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"), dtype=np.float32) / 255.0
                out[i, c] = torch.from_numpy(dec).to(x)
        return out
    return apply


def down_up(scale: float) -> Transform:
    """Downsample to ``scale`` of the side (area-averaged) and back up (bilinear): detail lost to resolution."""
    def apply(x):
        h, w = x.shape[-2:]
        small = F.interpolate(x, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="bilinear",
                              align_corners=False, antialias=True)
        return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)
    return apply


def _then(*fns: Transform) -> Transform:
    def apply(x):
        for fn in fns:
            x = fn(x)
        return x
    return apply


# Marker positions (centre x, y as fractions) for the `marker-move` family, one per level.
_MOVED_TO = ((0.06, 0.06), (0.94, 0.06), (0.06, 0.94), (0.94, 0.94), (0.95, 0.5))

SUITE: dict[str, tuple[Callable[[float], Transform], tuple]] = {
    "gamma-bright": (gamma, (0.85, 0.75, 0.65, 0.55, 0.45)),
    "gamma-dark": (gamma, (1.2, 1.4, 1.7, 2.0, 2.5)),
    "contrast": (contrast, (0.85, 0.7, 0.55, 0.4, 0.3)),
    "noise": (noise, (0.01, 0.02, 0.035, 0.05, 0.08)),
    "blur": (blur, (1.0, 2.0, 3.0, 4.0, 5.0)),
    "jpeg": (jpeg, (75, 50, 30, 15, 8)),
    "down-up": (down_up, (0.75, 0.5, 0.35, 0.25, 0.18)),
    "rotate": (lambda d: lambda x: framing.rotate(x, d), (3, 6, 10, 15, 20)),
    "border-black": (lambda f: lambda x: framing.frame(x, f, 0.0), (0.02, 0.04, 0.07, 0.10, 0.15)),
    "border-grey": (lambda f: lambda x: framing.frame(x, f, 0.5), (0.02, 0.04, 0.07, 0.10, 0.15)),
    "mask-black": (lambda f: lambda x: framing.mask_edges(x, f, f, f, f, 0.0), (0.02, 0.04, 0.07, 0.10, 0.15)),
    "crop": (lambda f: lambda x: framing.crop(x, f), (0.02, 0.04, 0.07, 0.10, 0.15)),
    "shift": (lambda f: lambda x: framing.translate(x, f, f, 0.0), (0.02, 0.04, 0.07, 0.10, 0.15)),
    "collimation": (lambda f: lambda x: framing.mask_edges(x, f, 0.4 * f, f, 0.6 * f, 0.9, soft=0.01),
                    (0.03, 0.06, 0.09, 0.12, 0.15)),
    "marker-add": (lambda s: lambda x: framing.draw_marker(x, s, 0.9, 0.1), (0.04, 0.06, 0.08, 0.10, 0.12)),
    "marker-erase": (lambda w: lambda x: framing.erase_patch(x, 0.0, w, 0.05, 0.6), (0.04, 0.06, 0.08, 0.10, 0.12)),
    "marker-move": (lambda i: _then(lambda x: framing.erase_patch(x, 0.0, 0.12, 0.05, 0.6),
                                    lambda x: framing.draw_marker(x, 0.08, *_MOVED_TO[i])), (0, 1, 2, 3, 4)),
}
"""Corruption suite of the selection protocol: family -> (maker of a transform from a parameter, the
parameters of severity levels 1..5)."""


def suite_views(families: list[str] | None = None) -> Iterator[tuple[str, int, Transform]]:
    """``(family, level, transform)`` for every level (1..5) of every family of :data:`SUITE` (or of ``families``)."""
    for family in families or list(SUITE):
        make, params = SUITE[family]
        for level, param in enumerate(params, start=1):
            yield family, level, make(param)


SHIFTS: dict[str, Transform] = {
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
