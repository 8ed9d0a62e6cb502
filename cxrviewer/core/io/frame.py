"""Frame normalisation: find a constant frame around a radiograph and crop it before the image is resized.

A frame is what acquisition or software adds around the anatomy: padding, black or white borders,
electronic shutters. Its edge rows and columns are constant (digitally flat), unlike the dark air and
noisy edges of a real radiograph, whose rows vary by more than a few grey levels. A model file with
``"frame_normalize": true`` has its input cropped to :func:`frame_box` in training and wherever it runs,
and every heat map is mapped back onto the original image through that box.

All sizes are fractions of the side; grey values are in [0, 1].
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where a function needs it: the viewer's first paint stays light
    import torch

from .radiograph import to_model_input

FLAT_TOLERANCE = 3.0 / 255.0
"""A pixel is 'on the frame level' when it lies within this of its row's (column's) median."""
FLAT_SHARE = 0.98
"""Share of a row's (column's) pixels that must lie on its median level for it to be flat."""
MIN_FRAME = 0.01
"""A frame narrower than this (fraction of the side, and at least 2 px) is left alone."""
MARGIN = 0.004
"""Extra crop past a found frame (fraction of the side, at least 1 px): the soft edge a resize leaves."""
MAX_CROP = 0.30
"""The most any one edge may lose; an image that would lose more is left whole (a blank or nearly blank image)."""


def _flat(lines: torch.Tensor) -> torch.Tensor:
    """``B x L x K`` -> ``B x L``: whether each line of ``K`` pixels is flat (one level, up to the tolerance)."""
    med = lines.median(dim=2, keepdim=True).values
    return ((lines - med).abs() <= FLAT_TOLERANCE).float().mean(dim=2) >= FLAT_SHARE


def _from_edge(flat: torch.Tensor) -> torch.Tensor:
    """``B x L`` flags -> ``B``: how many lines from the start are flat without a break."""
    return flat.int().cumprod(dim=1).sum(dim=1)


def frame_boxes(images: torch.Tensor) -> torch.Tensor:
    """``N x 4`` long tensor ``(top, bottom, left, right)`` (bottom and right exclusive): the part of each
    image of an ``N x 1 x H x W`` batch inside its constant frame; the whole image when it has none."""
    import torch
    g = images[:, 0].float()
    n, H, W = g.shape
    rows, cols = _flat(g), _flat(g.transpose(1, 2))
    counts = torch.stack([_from_edge(rows), _from_edge(rows.flip(1)), _from_edge(cols), _from_edge(cols.flip(1))], 1)
    sides = torch.tensor([H, H, W, W], device=g.device)
    least = torch.clamp(torch.ceil(MIN_FRAME * sides.float()), min=2).long()
    margin = torch.clamp(torch.ceil(MARGIN * sides.float()), min=1).long()
    found = counts >= least
    cut = torch.where(found, counts + margin, torch.zeros_like(counts))
    too_much = (cut > (MAX_CROP * sides.float()).long()).any(dim=1, keepdim=True)
    cut = torch.where(too_much, torch.zeros_like(cut), cut)
    return torch.stack([cut[:, 0], H - cut[:, 1], cut[:, 2], W - cut[:, 3]], 1).cpu()


def frame_box(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of one grey image (``H x W``, values in [0, 1]) inside its frame.

    Large images are measured on a copy of at most about 1024 px a side and the box scaled back, so a
    full-resolution radiograph costs a few milliseconds.
    """
    import torch
    H, W = pixels.shape
    step = max(1, math.ceil(max(H, W) / 1024))
    small = torch.from_numpy(np.ascontiguousarray(pixels[::step, ::step], dtype=np.float32))
    t, b, left, r = frame_boxes(small[None, None])[0].tolist()
    h, w = small.shape
    if (t, b, left, r) == (0, h, 0, w):
        return 0, H, 0, W
    return t * step, min(H, b * step), left * step, min(W, r * step)


def crop_frame(pixels: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """``pixels`` without their frame, and the box (in ``pixels``' coordinates) that was kept."""
    t, b, left, r = box = frame_box(pixels)
    return pixels[t:b, left:r], box


def frame_normalized(images: torch.Tensor) -> torch.Tensor:
    """Each image of an ``N x C x H x W`` batch cropped to its frame box and resized back to ``H x W``
    (bilinear, antialiased); images without a frame are returned unchanged."""
    import torch
    import torch.nn.functional as F
    boxes = frame_boxes(images[:, :1])
    H, W = images.shape[-2:]
    whole = (boxes == torch.tensor([0, H, 0, W])).all(dim=1)
    if bool(whole.all()):
        return images
    out = images.clone()
    for i in torch.nonzero(~whole).flatten().tolist():
        t, b, left, r = boxes[i].tolist()
        out[i:i + 1] = F.interpolate(images[i:i + 1, :, t:b, left:r].float(), size=(H, W), mode="bilinear",
                                     align_corners=False, antialias=True).to(images.dtype)
    return out


def box_fraction(box: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[float, float, float, float]:
    """The share of the side each edge of ``box`` cut off an image of ``shape`` (H, W): top, bottom, left, right."""
    t, b, left, r = box
    H, W = shape
    return t / H, (H - b) / H, left / W, (W - r) / W


Fractions = tuple[float, float, float, float]
"""A kept box as fractions of the image's sides: ``(top, bottom, left, right)``, each in [0, 1]."""


def kept_fractions(box: tuple[int, int, int, int], shape: tuple[int, int]) -> Fractions | None:
    """``box`` (pixels of an image of ``shape`` (H, W)) as fractions of its sides; None when it is the whole image.

    Fractions carry the box over to any copy of the image shown the same way up: a reduced decode, the
    full-resolution image, a screen-sized copy."""
    t, b, left, r = (int(v) for v in box)
    H, W = shape
    if (t, b, left, r) == (0, H, 0, W):
        return None
    return t / H, b / H, left / W, r / W


def box_in(fractions: Fractions, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` in whole pixels of an image of ``shape`` (H, W) for a kept box in
    ``fractions`` (rounded to the nearest pixel edge, at least one pixel each way)."""
    ft, fb, fl, fr = (float(v) for v in fractions)
    if not (0.0 <= ft < fb <= 1.0 and 0.0 <= fl < fr <= 1.0):
        raise ValueError(f"a kept box must be fractions (top, bottom, left, right) with top < bottom and "
                         f"left < right in [0, 1], got {fractions!r}")
    H, W = (int(v) for v in shape)
    t, left = min(H - 1, round(ft * H)), min(W - 1, round(fl * W))
    return t, max(t + 1, min(H, round(fb * H))), left, max(left + 1, min(W, round(fr * W)))


def framed_input(pixels: np.ndarray, size: tuple[int, int], crop: bool) -> tuple[np.ndarray, Fractions | None]:
    """The model input (``size`` (H, W), see :func:`~cxrviewer.core.io.radiograph.to_model_input`) of grey ``pixels``,
    their frame cropped first at their own resolution when ``crop`` (a model file with ``frame_normalize``);
    and the kept box as :func:`kept_fractions` of ``pixels`` (None: nothing cropped)."""
    kept = None
    if crop:
        shape = pixels.shape[:2]
        pixels, box = crop_frame(pixels)
        kept = kept_fractions(box, shape)
    return to_model_input(pixels, size), kept
