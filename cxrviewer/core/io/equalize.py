"""Histogram equalisation of model inputs: global (one histogram per image) or local (CLAHE).

A model file that says ``"equalize": true`` (global) or ``"equalize": "clahe"`` gets its grey input
equalised this way before normalisation, in training and wherever it runs (:meth:`CamClassifier.normalize`).
Both map each grey level to the mean rank of its level (the midpoint of its step of the cumulative
histogram), so the output lies in (0, 1).
"""

from __future__ import annotations

import torch

#: The model-file values of ``equalize`` and what they mean.
MODES = {True: "global", "clahe": "clahe"}
#: ``train_model.py --equalize`` choices -> the model-file value.
FILE_VALUES = {mode: value for value, mode in MODES.items()}


def equalize_histogram(x: torch.Tensor, levels: int = 256) -> torch.Tensor:
    """Per-image, per-channel histogram equalisation of an ``N x C x H x W`` batch of grey values in [0, 1]:
    :func:`clahe` with one region and no clip limit.

    The output is spread evenly over (0, 1) and does not change under any increasing grey-level mapping
    that keeps the ``levels`` levels apart (gamma, contrast, brightness). A flat image becomes 0.5.
    """
    return clahe(x, tiles=1, clip=float("inf"), levels=levels)


def clahe(x: torch.Tensor, tiles: int = 8, clip: float = 2.0, levels: int = 256) -> torch.Tensor:
    """Contrast-limited adaptive histogram equalisation (Zuiderveld 1994) of an ``N x C x H x W`` batch in [0, 1].

    Each image is cut into ``tiles x tiles`` regions; each region's histogram is clipped at ``clip`` times
    its mean bin count, the excess spread evenly over all levels, and turned into a look-up table. A
    pixel's value is the bilinear blend of the tables of the four nearest region centres (the nearest
    ones at the edges).
    """
    n, c, h, w = x.shape
    b = n * c
    idx = _levels(x, levels).reshape(b, h, w)
    ty = torch.clamp(torch.arange(h, device=x.device) * tiles // h, max=tiles - 1)
    tx = torch.clamp(torch.arange(w, device=x.device) * tiles // w, max=tiles - 1)
    region = (ty[:, None] * tiles + tx[None, :]).reshape(1, -1).expand(b, -1)
    flat = region * levels + idx.reshape(b, -1)
    hist = torch.zeros(b, tiles * tiles * levels, device=x.device).scatter_add_(1, flat, torch.ones(flat.shape, device=x.device))
    hist = hist.reshape(b, tiles * tiles, levels)
    count = hist.sum(2, keepdim=True)
    limit = clip * count / levels
    excess = (hist - limit).clamp(min=0).sum(2, keepdim=True)
    hist = torch.minimum(hist, limit) + excess / levels
    lut = ((hist.cumsum(2) - hist / 2) / count).reshape(b, -1)

    def corners(size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f = ((torch.arange(size, device=x.device) + 0.5) * tiles / size - 0.5).clamp(0, tiles - 1)
        lo = f.floor().long()
        return lo, (lo + 1).clamp(max=tiles - 1), f - lo

    y0, y1, wy = corners(h)
    x0, x1, wx = corners(w)
    out = torch.zeros(b, h * w, device=x.device)
    for ry, fy in ((y0, 1 - wy), (y1, wy)):
        for rx, fx in ((x0, 1 - wx), (x1, wx)):
            at = ((ry[:, None] * tiles + rx[None, :]) * levels).reshape(1, -1) + idx.reshape(b, -1)
            out += (fy[:, None] * fx[None, :]).reshape(1, -1) * lut.gather(1, at)
    return out.reshape(x.shape).to(x.dtype)


def equalized(x: torch.Tensor, mode) -> torch.Tensor:
    """``x`` equalised as a model file's ``equalize`` value says (false or missing: unchanged)."""
    if not mode:
        return x
    return clahe(x) if MODES[mode] == "clahe" else equalize_histogram(x)


def _levels(x: torch.Tensor, levels: int) -> torch.Tensor:
    return (x.detach().float().clamp(0, 1) * (levels - 1)).round_().long()
