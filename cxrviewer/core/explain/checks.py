"""Per-verdict checks that cost at most two extra forward passes per image.

- **Evidence location**: the share of the positive evidence for the predicted
  class that lies outside the thorax (a band along the edges, the four corners
  where markers are burned in, and any black frame). A verdict whose evidence
  sits there was reached for a reason a reader should check ("evidence outside
  the chest: check the framing"). The threshold is fitted on validation
  (:func:`fit_outside_threshold`) and stored in the model file.
- **Frame test** (:func:`frame_test`, part of the location check): an image with a
  black frame of at least :data:`MIN_FRAME` of the side is re-scored with the frame
  cropped away; when that changes the label, the frame decided the verdict and the
  image is flagged the same way. A frame can change a verdict while the map glows
  over the lungs, which the share above cannot see. It costs a forward pass for
  framed images only.
- **No positive evidence** (:func:`no_positive_evidence`): when the positive part
  of the map is tiny (a mean below :data:`MIN_POSITIVE_MASS` logit, or less than
  :data:`MIN_POSITIVE_SHARE` of the map's absolute evidence), a per-image stretch
  would paint noise in bright colours; the viewer says so instead of drawing it.
- **Stability**: the image is re-scored with a 10% black border and with a
  Gaussian blur of sigma 2 px (at the model's input size), in one batch. The
  verdict is unstable when either copy changes the label or moves the log-odds
  of the predicted class by more than :data:`MAX_LOG_ODDS_SHIFT`. Optional: it
  costs two more forward passes per image (evidence location costs none, the
  frame test one for framed images).

All functions are batched and take the model input as grey values in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..model.classifier import CamClassifier
from ..results.file_result import VerdictChecks
from .methods import eval_mode, evidence_maps
from .perturb import add_border, gaussian_blur

BAND = 0.06
"""Width of the edge band, as a fraction of the side."""
CORNER = 0.15
"""Side of the corner squares (markers), as a fraction of the side."""
DARK = 0.04
"""Grey level below which an edge row or column counts as a black frame."""
MIN_POSITIVE_MASS = 0.05
"""Mean positive evidence (logit units) below which a map is 'no positive evidence'."""
MIN_POSITIVE_SHARE = 0.05
"""Share of a map's absolute evidence (``mean relu(m) / mean |m|``) below which its positive part is 'none'.

On the shipped model's validation split neither rule fires for the predicted class (lowest share 0.31,
lowest mass 0.44); for the other class they fire on 33% of images (mostly confident NORMAL calls)."""
DEFAULT_OUTSIDE_THRESHOLD = 0.5
"""Flag threshold for models whose file has none (``meta["evidence_outside_threshold"]``)."""
MIN_FRAME = 0.02
"""Width (fraction of the side) a black frame must reach on some edge before :func:`frame_test` re-scores the image.

On the shipped model's validation split 89 of 784 images have such a frame; cropping it changes none of their
labels, while it restores 20-21 of the 23 labels that a 5% or 10% added black border changes."""
MAX_LOG_ODDS_SHIFT = 1.0
BORDER_FRACTION = 0.10
BLUR_SIGMA = 2.0
PERTURBATIONS = ("border", "blur")


def black_frame(images: torch.Tensor, dark: float = DARK, min_fraction: float = 0.95) -> torch.Tensor:
    """``N x H x W`` mask of the rows and columns that form a black frame, scanned in from each edge.

    A row (column) belongs to the frame while at least ``min_fraction`` of its
    pixels are darker than ``dark`` and every row (column) between it and the edge does too.
    """
    g = images[:, 0]
    n, H, W = g.shape
    row_dark = (g < dark).float().mean(dim=2) >= min_fraction  # N x H
    col_dark = (g < dark).float().mean(dim=1) >= min_fraction  # N x W

    def from_edges(d: torch.Tensor) -> torch.Tensor:
        head = d.int().cumprod(dim=1).bool()
        tail = d.flip(1).int().cumprod(dim=1).bool().flip(1)
        return head | tail

    rows, cols = from_edges(row_dark), from_edges(col_dark)
    return rows[:, :, None] | cols[:, None, :]


def frame_boxes(images: torch.Tensor, min_fraction: float = MIN_FRAME) -> torch.Tensor:
    """``N x 4`` long tensor ``(top, bottom, left, right)``: the box inside each image's :func:`black_frame`
    (bottom and right exclusive), or ``-1`` rows for images whose frame is narrower than ``min_fraction``
    of the side on every edge, or that are black all over."""
    fr = black_frame(images)
    n, H, W = fr.shape
    rows, cols = ~fr.all(dim=2), ~fr.all(dim=1)  # N x H, N x W: not wholly frame
    out = torch.full((n, 4), -1, dtype=torch.long)
    r_idx = torch.arange(H, device=fr.device).expand(n, H)
    c_idx = torch.arange(W, device=fr.device).expand(n, W)
    top = torch.where(rows, r_idx, H).min(dim=1).values
    bottom = torch.where(rows, r_idx, -1).max(dim=1).values + 1
    left = torch.where(cols, c_idx, W).min(dim=1).values
    right = torch.where(cols, c_idx, -1).max(dim=1).values + 1
    widest = torch.stack([top.float() / H, (H - bottom).float() / H, left.float() / W, (W - right).float() / W], 1).amax(1)
    keep = rows.any(dim=1) & cols.any(dim=1) & (widest >= min_fraction)
    out[keep.cpu()] = torch.stack([top, bottom, left, right], 1)[keep].cpu()
    return out


def unframed(images: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Each image cropped to its box (:func:`frame_boxes`, no ``-1`` rows) and resized back to the input size."""
    H, W = images.shape[-2:]
    return torch.cat([F.interpolate(images[i:i + 1, :, t:b, l:r], size=(H, W), mode="bilinear", align_corners=False,
                                    antialias=True) for i, (t, b, l, r) in enumerate(boxes.tolist())])


def frame_test(model: CamClassifier, images: torch.Tensor, logits: torch.Tensor,
               labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Re-score framed images (:func:`frame_boxes`) with the frame cropped away, in one batch.

    Returns ``N``-long ``{"frame_flipped": bool, "frame_shift": change of the clean label's calibrated
    log-odds (NaN for images without a frame)}``.
    """
    n = images.shape[0]
    boxes = frame_boxes(images)
    framed = torch.nonzero(boxes[:, 0] >= 0).flatten()
    flipped, shift = torch.zeros(n, dtype=torch.bool), torch.full((n,), float("nan"))
    if framed.numel():
        idx = framed.to(images.device)
        with eval_mode(model), torch.inference_mode():
            new_logits = model(model.normalize(unframed(images[idx], boxes[framed]))).float()
            new_labels = model.decide(model.probabilities(new_logits))
        own = labels.to(new_logits.device)[idx]
        moved = log_odds(model, new_logits, own) - log_odds(model, logits.to(new_logits.device)[idx].float(), own)
        flipped[framed], shift[framed] = (new_labels != own).cpu(), moved.cpu()
    return {"frame_flipped": flipped, "frame_shift": shift}


def outside_mask(images: torch.Tensor, band: float = BAND, corner: float = CORNER) -> torch.Tensor:
    """``N x H x W`` boolean mask of 'outside the thorax': edge band, corner squares and black frame."""
    n, _, H, W = images.shape
    ys = torch.arange(H, device=images.device).view(-1, 1).float() + 0.5
    xs = torch.arange(W, device=images.device).view(1, -1).float() + 0.5
    dy, dx = torch.minimum(ys, H - ys) / H, torch.minimum(xs, W - xs) / W
    fixed = (dy < band) | (dx < band) | ((dy < corner) & (dx < corner))
    return fixed.expand(n, H, W) | black_frame(images)


def positive_mass(evidence: torch.Tensor) -> torch.Tensor:
    """Mean of the positive part of each ``N x h x w`` evidence map (logit units)."""
    return F.relu(evidence).mean(dim=(1, 2))


def no_positive_evidence(maps: torch.Tensor | np.ndarray, min_mass: float = MIN_POSITIVE_MASS) -> torch.Tensor:
    """``N`` bools for ``N x h x w`` maps (log-odds units; one ``h x w`` map gives one): the positive part is tiny.

    Tiny: its mean is below ``min_mass`` (default :data:`MIN_POSITIVE_MASS`; 0 for maps whose
    mean is not a share of the log-odds, such as occlusion's per-patch drops), or at most
    :data:`MIN_POSITIVE_SHARE` of the map's mean absolute value (negative almost everywhere, or all zero).
    """
    m = torch.as_tensor(maps).float()
    m = m[None] if m.ndim == 2 else m
    pos, total = positive_mass(m), m.abs().mean(dim=(1, 2))
    return (pos < min_mass) | (pos <= MIN_POSITIVE_SHARE * total)


def no_evidence_note(class_name: str, grid: np.ndarray, method: str = "CAM") -> str:
    """What a viewer or an export says instead of drawing a map with no positive evidence."""
    mean = float(np.maximum(np.asarray(grid, dtype=np.float32), 0).mean())
    return f"no positive evidence for {class_name} ({method}: mean positive part {mean:.3f})"


def outside_share(evidence: torch.Tensor, images: torch.Tensor, **mask_options) -> torch.Tensor:
    """Share (0..1) of each map's positive evidence that falls in :func:`outside_mask`.

    ``evidence``: ``N x h x w`` maps of the predicted class, bilinearly upsampled to
    the images' size. NaN where the map has no positive part at all.
    """
    H, W = images.shape[-2:]
    pos = F.relu(F.interpolate(evidence[:, None].float(), size=(H, W), mode="bilinear", align_corners=False)[:, 0])
    total = pos.sum(dim=(1, 2))
    out = (pos * outside_mask(images, **mask_options)).sum(dim=(1, 2))
    return torch.where(total > 0, out / total.clamp_min(1e-12), torch.full_like(total, float("nan")))


def fit_outside_threshold(shares: Sequence[float], quantile: float = 0.975) -> float:
    """The flag threshold: the ``quantile`` of validation shares (NaN ignored), so ~2.5% of clean images flag."""
    v = np.asarray(shares, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError("no finite evidence shares to fit a threshold on")
    return float(np.quantile(v, quantile))


def perturbed_copies(images: torch.Tensor) -> torch.Tensor:
    """``2N`` images: each with a 10% black border, then each blurred with sigma 2 px (that order)."""
    return torch.cat([add_border(images, BORDER_FRACTION), gaussian_blur(images, BLUR_SIGMA)])


def log_odds(model: CamClassifier, logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Calibrated log-odds ``log(p / (1 - p))`` of class ``index`` per row, computed from the logits (no saturation)."""
    z = logits.float() / model.temperature
    own = z.gather(1, index.view(-1, 1)).squeeze(1)
    rest = z.scatter(1, index.view(-1, 1), float("-inf")).logsumexp(dim=1)
    return own - rest


def stability(model: CamClassifier, images: torch.Tensor, logits: torch.Tensor,
              labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Re-score :func:`perturbed_copies` of ``images`` in one batch.

    ``logits`` (``N x K``) and ``labels`` (``N``): the clean verdicts. Returns
    ``{"flipped": N x 2 bool, "shift": N x 2 change of the clean label's calibrated
    log-odds, "unstable": N bool}``; columns follow :data:`PERTURBATIONS`.
    """
    n = images.shape[0]
    with eval_mode(model), torch.inference_mode():
        new_logits = model(model.normalize(perturbed_copies(images))).float()
        new_labels = model.decide(model.probabilities(new_logits)).view(2, n).T
    labels = labels.to(new_logits.device)
    base = log_odds(model, logits.to(new_logits.device), labels)
    moved = log_odds(model, new_logits, labels.repeat(2)).view(2, n).T - base[:, None]
    flipped = new_labels != labels[:, None]
    unstable = flipped.any(dim=1) | (moved.abs() > MAX_LOG_ODDS_SHIFT).any(dim=1)
    return {"flipped": flipped.cpu(), "shift": moved.cpu(), "unstable": unstable.cpu()}


def outside_threshold(model: CamClassifier) -> float:
    """The model's fitted flag threshold (``meta["evidence_outside_threshold"]``), else the default."""
    t = model.meta.get("evidence_outside_threshold")
    return float(t) if isinstance(t, (int, float)) and 0.0 < t <= 1.0 else DEFAULT_OUTSIDE_THRESHOLD


def verdict_checks(model: CamClassifier, images: torch.Tensor, logits: torch.Tensor, cams: torch.Tensor,
                   labels: torch.Tensor, threshold: float | None = None,
                   with_stability: bool = True) -> dict[str, torch.Tensor]:
    """Every per-verdict check for a batch, from the forward pass already run plus :func:`stability`.

    Returns ``N``-long tensors: ``outside_share`` (NaN without positive evidence),
    ``positive_mass``, ``no_positive_evidence``, :func:`frame_test`'s ``frame_flipped`` and
    ``frame_shift``, ``evidence_flag`` (share above ``threshold``, default
    :func:`outside_threshold`, with some positive evidence; or the frame decided the label),
    and :func:`stability`'s ``flipped``, ``shift`` (``N x 2``), ``unstable`` unless
    ``with_stability`` is False (then no extra forward pass but the frame test's).
    """
    ev = evidence_maps(logits.float(), cams.float(), labels)
    mass = positive_mass(ev).cpu()
    share = outside_share(ev, images).cpu()
    limit = outside_threshold(model) if threshold is None else float(threshold)
    none = no_positive_evidence(ev).cpu()
    flag = torch.nan_to_num(share, nan=0.0) > limit
    frame = frame_test(model, images, logits, labels)
    found = {"outside_share": share, "positive_mass": mass, "no_positive_evidence": none, **frame,
             "evidence_flag": (flag & ~none) | frame["frame_flipped"]}
    return {**found, **stability(model, images, logits, labels)} if with_stability else found


def as_results(found: dict[str, torch.Tensor]) -> list[VerdictChecks]:
    """:func:`verdict_checks`' tensors as one plain :class:`~cxrviewer.core.results.file_result.VerdictChecks` per image
    (``unstable`` None when the stability check was not run)."""
    out = []
    for i in range(found["outside_share"].shape[0]):
        share = float(found["outside_share"][i])
        out.append(VerdictChecks(
            outside_share=None if math.isnan(share) else round(share, 4),
            evidence_outside=bool(found["evidence_flag"][i]),
            frame_flipped=bool(found["frame_flipped"][i]),
            frame_shift=None if math.isnan(float(found["frame_shift"][i])) else round(float(found["frame_shift"][i]), 4),
            no_positive_evidence=bool(found["no_positive_evidence"][i]),
            **(_stability_fields(found, i) if "unstable" in found else {"unstable": None})))
    return out


def _stability_fields(found: dict[str, torch.Tensor], i: int) -> dict:
    return {"shifts": {p: round(float(found["shift"][i, j]), 4) for j, p in enumerate(PERTURBATIONS)},
            "flipped": tuple(p for j, p in enumerate(PERTURBATIONS) if bool(found["flipped"][i, j])),
            "unstable": bool(found["unstable"][i])}
