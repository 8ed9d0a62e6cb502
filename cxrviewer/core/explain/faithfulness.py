"""Deletion and insertion (Petsiuk et al., BMVC 2018): does the map rank the pixels the model uses?

Deletion replaces the image's pixels, most salient first, by a fill (the image's
mean grey, or a blur of it) in ``steps`` equal steps and follows the calibrated
probability of the class; insertion starts from the fill and puts the pixels back
in the same order. The score is the area under that curve over the fraction
changed (0..1): for deletion lower is better, for insertion higher is better.

A map only means something if it beats maps that know nothing about the image:
:func:`random_smooth_maps` (a random 7 x 7 map, smoothly upsampled) and
:func:`centred_prior_maps` (a centred Gaussian) are those floors.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from ..model.classifier import CamClassifier
from .methods import eval_mode
from .perturb import FILLS

STEPS = 20


def pixel_order(maps: torch.Tensor, size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """``N x H*W`` rank of each pixel (0 = most salient) after bilinear upsampling to ``size``.

    Ties (flat regions) are broken by a fixed random jitter, so a constant map
    deletes in a random order rather than row by row.
    """
    up = F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0].flatten(1)
    span = (up.amax(dim=1, keepdim=True) - up.amin(dim=1, keepdim=True)).clamp_min(1e-12)
    g = torch.Generator().manual_seed(seed)
    up = up + 1e-6 * span * torch.rand(up.shape, generator=g).to(up.device)
    order = up.argsort(dim=1, descending=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return ranks


def auc(curves: torch.Tensor) -> torch.Tensor:
    """Trapezoidal area under ``N x (steps + 1)`` curves sampled evenly on [0, 1]."""
    steps = curves.shape[1] - 1
    return (curves.sum(dim=1) - 0.5 * (curves[:, 0] + curves[:, -1])) / steps


def deletion_insertion(model: CamClassifier, images: torch.Tensor, maps: torch.Tensor, index: torch.Tensor,
                       fill: str = "blur", steps: int = STEPS, batch_size: int = 64) -> dict[str, torch.Tensor]:
    """Deletion and insertion curves and AUCs of ``maps`` (``N x h x w``) for class ``index`` (``N``).

    ``images``: ``N x 1 x H x W`` grey values in [0, 1] at the model's input size.
    Returns ``{"deletion": N, "insertion": N, "deletion_curve": N x steps+1,
    "insertion_curve": N x steps+1}`` of calibrated probabilities.
    """
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {', '.join(FILLS)}, got {fill!r}")
    n, _, H, W = images.shape
    ranks = pixel_order(maps, (H, W)).view(n, 1, H, W)
    canvas = FILLS[fill](images)
    cut = torch.round(torch.linspace(0, H * W, steps + 1)).to(ranks.device).view(1, -1, 1, 1)
    curves = {"deletion": [], "insertion": []}
    per_chunk = max(1, batch_size // (2 * (steps + 1)))
    with eval_mode(model), torch.inference_mode():
        for s in range(0, n, per_chunk):
            sl = slice(s, s + per_chunk)
            masks = ranks[sl] < cut  # m x steps+1 x H x W: True = already changed
            x, c = images[sl], canvas[sl]
            deleted = torch.where(masks, c, x)
            inserted = torch.where(masks, x, c)
            batch = torch.cat([deleted, inserted]).flatten(0, 1)[:, None]
            probs = _probabilities(model, batch, batch_size)
            m = masks.shape[0]
            cls = index[sl].repeat(2).repeat_interleave(steps + 1)
            p = probs.gather(1, cls.view(-1, 1).to(probs.device)).view(2, m, steps + 1)
            curves["deletion"].append(p[0].cpu())
            curves["insertion"].append(p[1].cpu())
    out = {f"{k}_curve": torch.cat(v) for k, v in curves.items()}
    out.update({k: auc(out[f"{k}_curve"]) for k in curves})
    return out


def _probabilities(model: CamClassifier, grey: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([model.probabilities(model(model.normalize(grey[i:i + batch_size])))
                      for i in range(0, grey.shape[0], batch_size)])


def random_smooth_maps(n: int, grid: tuple[int, int] = (7, 7), seed: int = 0) -> torch.Tensor:
    """``n`` maps of uniform noise on a ``grid`` (smooth once upsampled): a floor no map should lose to."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, *grid), generator=g)


def centred_prior_maps(n: int, grid: tuple[int, int] = (7, 7), sigma: float = 0.25) -> torch.Tensor:
    """``n`` copies of a centred Gaussian (``sigma`` as a fraction of the side): 'the middle matters'."""
    ys = (torch.arange(grid[0]) + 0.5) / grid[0] - 0.5
    xs = (torch.arange(grid[1]) + 0.5) / grid[1] - 0.5
    g = torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * sigma * sigma))
    return g.expand(n, *grid).clone()


def faithfulness_scores(model: CamClassifier, images: torch.Tensor, maps: Mapping[str, torch.Tensor],
                        index: torch.Tensor, fills: tuple[str, ...] = ("mean", "blur"),
                        steps: int = STEPS) -> dict[str, dict[str, list[float]]]:
    """Per-image deletion and insertion AUCs for each named map and each fill.

    Returns ``{map name: {"deletion_mean": [...], "insertion_mean": [...], "deletion_blur": ...}}``.
    """
    out: dict[str, dict[str, list[float]]] = {}
    for name, m in maps.items():
        row = out.setdefault(name, {})
        for fill in fills:
            r = deletion_insertion(model, images, m, index, fill=fill, steps=steps)
            row[f"deletion_{fill}"] = r["deletion"].tolist()
            row[f"insertion_{fill}"] = r["insertion"].tolist()
    return out
