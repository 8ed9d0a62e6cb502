"""Training augmentation aimed at acquisition shifts: framing, markers, detail loss; mixup and cutmix.

Complements :class:`.data.Augment` (rotation, shift, zoom, exposure, contrast, noise). Each transform
takes an ``N x 1 x H x W`` batch in [0, 1] and a ``torch.Generator`` and draws its parameters per
image, using the primitives of :mod:`.framing` that the protocol's corruption suite is built from
(with other, random parameters: training never sees the suite's fixed views).
"""

from __future__ import annotations

import argparse
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from . import framing
from .shift import blur as _blur, down_up as _down_up


def _u(generator, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=generator))


@dataclass
class FramingAugment:
    """Random framing per image, with probability ``p``: one of a frame of black or grey (zoom out
    with borders), a crop (zoom in), edge masks of black or bright (shutters, collimation), or an
    off-centre shift; each side up to ``max_frac`` of the image. Independently, with probability
    ``markers``, an "R" marker is burned in somewhere or an edge patch is erased."""

    p: float = 0.5
    max_frac: float = 0.15
    markers: float = 0.0

    def _frame(self, x, g):
        kind, f = int(torch.randint(5, (), generator=g)), _u(g, 0.01, self.max_frac)
        if kind == 0:
            return framing.frame(x, f, value=0.0 if _u(g) < 0.5 else _u(g, 0.2, 0.8))
        if kind == 1:
            return framing.crop(x, f)
        if kind == 2:
            sides = [_u(g, 0, f) if _u(g) < 0.7 else 0.0 for _ in range(4)]
            value = 0.0 if _u(g) < 0.5 else _u(g, 0.7, 1.0)
            return framing.mask_edges(x, *sides, value=value, soft=_u(g, 0, 0.02))
        if kind == 3:
            return framing.translate(x, _u(g, -f, f), _u(g, -f, f), value=0.0)
        return framing.crop(framing.frame(x, f, 0.0), _u(g, 0, f))  # borders, then a different crop

    def _marker(self, x, g):
        if _u(g) < 0.5:
            return framing.draw_marker(x, _u(g, 0.03, 0.12), _u(g, 0.03, 0.97), _u(g, 0.03, 0.97), value=_u(g, 0.8, 1.0))
        x0, y0 = _u(g, 0, 0.9), _u(g, 0, 0.9)
        return framing.erase_patch(x, x0, x0 + _u(g, 0.03, 0.12), y0, y0 + _u(g, 0.05, 0.5), q=_u(g, 0.05, 0.5))

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        out = []
        for im in x.split(1):
            if _u(generator) < self.p:
                im = self._frame(im, generator)
            if _u(generator) < self.markers:
                im = self._marker(im, generator)
            out.append(im)
        return torch.cat(out).clamp(0, 1)


@dataclass
class DetailAugment:
    """With probability ``p`` per image, lose detail: a Gaussian blur of sigma 1 to ``max_sigma`` px
    (at 224 px) or a down-then-up resampling to 1/2..1/4 of the side, chosen at random."""

    p: float = 0.3
    max_sigma: float = 3.0

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        out = []
        for im in x.split(1):
            if _u(generator) < self.p:
                im = _blur(_u(generator, 1.0, self.max_sigma))(im) if _u(generator) < 0.5 else _down_up(_u(generator, 0.25, 0.5))(im)
            out.append(im)
        return torch.cat(out)


def mix_batch(x: torch.Tensor, y: torch.Tensor, num_classes: int, mixup: float = 0.0, cutmix: float = 0.0,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al. 2018) or cutmix (Yun et al. 2019) with a shuffled copy of the batch.

    Returns the mixed images and soft targets (N x num_classes). With both alphas > 0, each batch
    uses one of the two at random; with both 0 the targets are one-hot and the images unchanged.
    """
    target = F.one_hot(y, num_classes).to(x.dtype)
    use = [a for a in (("mixup", mixup), ("cutmix", cutmix)) if a[1] > 0]
    if not use:
        return x, target
    kind, alpha = use[int(torch.randint(len(use), (), generator=generator))]
    lam = _beta(alpha, generator)
    perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
    if kind == "mixup":
        return lam * x + (1 - lam) * x[perm], lam * target + (1 - lam) * target[perm]
    h, w = x.shape[-2:]
    ch, cw = round(h * math.sqrt(1 - lam)), round(w * math.sqrt(1 - lam))
    cy, cx = int(torch.randint(h, (), generator=generator)), int(torch.randint(w, (), generator=generator))
    t, b, l, r = max(cy - ch // 2, 0), min(cy + ch - ch // 2, h), max(cx - cw // 2, 0), min(cx + cw - cw // 2, w)
    x = x.clone()
    x[..., t:b, l:r] = x[perm][..., t:b, l:r]
    lam = 1 - (b - t) * (r - l) / (h * w)
    return x, lam * target + (1 - lam) * target[perm]


def _beta(alpha: float, generator: torch.Generator | None) -> float:
    """A Beta(alpha, alpha) draw from ``generator`` (Johnk's method: torch's Beta takes no generator)."""
    while True:
        u, v = float(torch.rand((), generator=generator)), float(torch.rand((), generator=generator))
        a, b = u ** (1 / alpha), v ** (1 / alpha)
        if 0 < a + b <= 1:
            return a / (a + b)


@dataclass
class Pipeline:
    """Batch augmentations applied in order, each called as ``step(x, generator)``."""

    steps: list

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for step in self.steps:
            x = step(x, generator)
        return x


def build_pipeline(args: argparse.Namespace, base: Callable) -> Callable:
    """``base`` (the geometric and photometric :class:`.data.Augment`) preceded by the framing and
    detail augmentations that ``--framing``, ``--markers`` and ``--detail`` switch on."""
    steps = []
    if getattr(args, "framing", 0) > 0 or getattr(args, "markers", 0) > 0:
        steps.append(FramingAugment(getattr(args, "framing", 0.0), getattr(args, "framing_max", 0.15), getattr(args, "markers", 0.0)))
    if getattr(args, "detail", 0) > 0:
        steps.append(DetailAugment(args.detail, getattr(args, "detail_max_sigma", 3.0)))
    return Pipeline(steps + [base]) if steps else base


def build_mix(args: argparse.Namespace, num_classes: int) -> Callable | None:
    """``mix(x, y, generator=g) -> (x, soft targets)`` for ``--mixup`` / ``--cutmix``, or None when both are 0."""
    mixup, cutmix = getattr(args, "mixup", 0.0), getattr(args, "cutmix", 0.0)
    if mixup <= 0 and cutmix <= 0:
        return None
    return functools.partial(mix_batch, num_classes=num_classes, mixup=mixup, cutmix=cutmix)


def build_ema(model: torch.nn.Module, args: argparse.Namespace) -> AveragedModel | None:
    """An exponential moving average of ``model``'s weights and buffers for ``--ema DECAY`` (None when 0)."""
    decay = getattr(args, "ema", 0.0)
    if decay <= 0:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
