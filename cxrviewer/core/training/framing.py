"""Framing of a radiograph: borders, edge masks, crops, shifts, rotation and burned-in markers.

The primitives behind the framing views of the corruption suite (:mod:`.shift`) and the framing
augmentation of training (:mod:`.augment`). Each takes an ``N x C x H x W`` batch of grey values in
[0, 1] and scalar parameters (sizes are fractions of the image side), applies the same change to every
image, and returns a new batch of the same shape.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: A 5 x 7 block "R", the laterality marker burned into most training NORMALs (on their left edge).
_R_GLYPH = torch.tensor([
    [1, 1, 1, 1, 0],
    [1, 0, 0, 0, 1],
    [1, 0, 0, 0, 1],
    [1, 1, 1, 1, 0],
    [1, 0, 1, 0, 0],
    [1, 0, 0, 1, 0],
    [1, 0, 0, 0, 1],
], dtype=torch.float32)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def frame(x: torch.Tensor, frac: float, value: float = 0.0) -> torch.Tensor:
    """Shrink the image into a frame of ``value`` that is ``frac`` of the side wide on every side."""
    h, w = x.shape[-2:]
    ph, pw = round(h * frac), round(w * frac)
    if ph == 0 and pw == 0:
        return x.clone()
    inner = _resize(x, (h - 2 * ph, w - 2 * pw))
    return F.pad(inner, (pw, pw, ph, ph), value=value)


def crop(x: torch.Tensor, frac: float) -> torch.Tensor:
    """Cut ``frac`` of the side off every edge and scale the rest back up (zoom in)."""
    h, w = x.shape[-2:]
    ph, pw = round(h * frac), round(w * frac)
    if ph == 0 and pw == 0:
        return x.clone()
    return _resize(x[..., ph:h - ph, pw:w - pw], (h, w))


def mask_edges(x: torch.Tensor, top: float, bottom: float, left: float, right: float,
               value: float = 0.0, soft: float = 0.0) -> torch.Tensor:
    """Paint bands of ``value`` over the edges (fractions of the side), with a linear ramp ``soft`` wide."""
    h, w = x.shape[-2:]

    def ramp(n: int, lo: float, hi: float) -> torch.Tensor:
        # 1 inside the image, 0 inside a band; bands grow from both ends of the axis.
        pos = (torch.arange(n, dtype=x.dtype, device=x.device) + 0.5) / n
        s = max(soft, 1e-6)
        return ((pos - lo) / s).clamp(0, 1) * ((1 - hi - pos) / s).clamp(0, 1)

    keep = ramp(h, top, bottom).view(h, 1) * ramp(w, left, right).view(1, w)
    return x * keep + value * (1 - keep)


def translate(x: torch.Tensor, dx: float, dy: float, value: float = 0.0) -> torch.Tensor:
    """Move the content by ``dx``, ``dy`` of the side (positive: right, down); ``value`` fills the gap."""
    h, w = x.shape[-2:]
    sx, sy = round(w * dx), round(h * dy)
    out = torch.full_like(x, value)
    src = x[..., max(0, -sy):h - max(0, sy), max(0, -sx):w - max(0, sx)]
    out[..., max(0, sy):max(0, sy) + src.shape[-2], max(0, sx):max(0, sx) + src.shape[-1]] = src
    return out


def rotate(x: torch.Tensor, degrees: float, value: float = 0.0) -> torch.Tensor:
    """Rotate by ``degrees`` about the centre; the corners are filled with ``value``."""
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), math.sin(a), 0.0], [-math.sin(a), math.cos(a), 0.0]],
                         dtype=x.dtype, device=x.device).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return (F.grid_sample(x - value, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + value).clamp(0, 1)


def draw_marker(x: torch.Tensor, height: float, cx: float, cy: float, value: float = 1.0) -> torch.Tensor:
    """Burn an "R" glyph ``height`` of the side tall, centred at (``cx``, ``cy``) (fractions), into the image."""
    h, w = x.shape[-2:]
    gh = max(7, round(h * height))
    gw = max(5, round(gh * 5 / 7))
    glyph = F.interpolate(_R_GLYPH[None, None].to(x), size=(gh, gw), mode="nearest")[0, 0]
    top = min(max(0, round(cy * h - gh / 2)), h - gh)
    left = min(max(0, round(cx * w - gw / 2)), w - gw)
    out = x.clone()
    region = out[..., top:top + gh, left:left + gw]
    out[..., top:top + gh, left:left + gw] = torch.where(glyph > 0, torch.full_like(region, value), region)
    return out


def erase_patch(x: torch.Tensor, x0: float, x1: float, y0: float, y1: float, q: float = 0.1) -> torch.Tensor:
    """Fill a rectangle (fractions of the side) with its own ``q``-quantile grey, per image (erases markers)."""
    h, w = x.shape[-2:]
    t, b, l, r = round(y0 * h), max(round(y1 * h), round(y0 * h) + 1), round(x0 * w), max(round(x1 * w), round(x0 * w) + 1)
    out = x.clone()
    patch = out[..., t:b, l:r]
    fill = patch.flatten(1).quantile(q, dim=1).view(-1, 1, 1, 1)
    out[..., t:b, l:r] = fill.expand_as(patch)
    return out
