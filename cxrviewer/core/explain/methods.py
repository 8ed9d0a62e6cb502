"""Explanation methods behind one small interface: maps for a batch, in declared units.

Every method is called as ``method(model, x, index)`` with ``x`` the
normalised model input (``N x C x H x W``) and ``index`` the class per image
(``N``); it returns ``N x h x w`` float32 maps at its own grid and declares
``units`` (the colour bar's label) and whether its values are ``signed``.

- :class:`EvidenceMap`: what the viewer draws, the class-evidence CAM in logit
  units, from the forward pass alone.
- :class:`GradCAM`: Grad-CAM (Selvaraju et al., 2017) on an inner stage
  (``layer3`` of a ResNet: a 14 x 14 grid at 224 px), one forward and one
  backward pass. On the last stage it equals the positive part of the evidence
  map (tested), which is why the default is one stage earlier.
- :class:`Occlusion`: the drop in log-odds when a patch is replaced by the
  image's mean, over a sliding window; many forward passes, model-agnostic.

The target of the gradient-based and occlusion methods is the same quantity the
evidence map splits over space: ``logit_c - mean of the other logits`` (the
log-odds of ``c`` for two classes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from ..model.classifier import RESNETS, CamClassifier

Progress = Callable[[int, int], None]


def class_log_odds(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``logit_c - mean over k != c of logit_k`` per row (log-odds of ``c`` for two classes)."""
    k = logits.shape[1]
    own = logits.gather(1, index.view(-1, 1)).squeeze(1)
    if k == 1:
        return own
    return (k * own - logits.sum(dim=1)) / (k - 1)


def evidence_maps(logits: torch.Tensor, cams: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Class-evidence maps ``N x h x w`` (logit units) from ``logits_and_cams`` output.

    The batched form of :func:`cxrviewer.core.results.overlay.class_evidence`: the spatial
    mean of map ``n`` is ``class_log_odds(logits, index)[n]``.
    """
    bias = logits - cams.mean(dim=(2, 3))
    full = cams + bias[:, :, None, None]
    k = full.shape[1]
    own = full[torch.arange(full.shape[0], device=full.device), index]
    if k == 1:
        return own
    return (k * own - full.sum(dim=1)) / (k - 1)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode for the block; its ``training`` flag restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


class ExplanationMethod:
    """Base of all methods: a name, a label for menus, units for the colour bar, and ``__call__``."""

    name = ""
    label = ""
    short = ""  # for a compact menu entry
    units = ""
    signed = True
    #: True when the method needs more than the one forward pass the batch engine already ran.
    on_demand = True
    #: True when a map's mean is (about) the class log-odds, so its positive mass is in logit units.
    additive = True

    def __call__(self, model: CamClassifier, x: torch.Tensor, index: torch.Tensor,
                 progress: Progress | None = None) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class EvidenceMap(ExplanationMethod):
    """The CAM the viewer draws: class evidence, ``(cam_c + b_c) - mean_k≠c (cam_k + b_k)``."""

    name = "evidence"
    label = "Evidence map (CAM)"
    short = "CAM"
    units = "log-odds (logit units)"
    signed = True
    on_demand = False

    def __call__(self, model, x, index, progress=None):
        with torch.inference_mode():
            logits, cams = model.logits_and_cams(x)
            return evidence_maps(logits.float(), cams.float(), index).clone()


def split_trunk(trunk: nn.Sequential, layer: str) -> tuple[nn.Sequential, nn.Sequential]:
    """``trunk`` cut after the stage named ``layer`` (dotted for nested ``Sequential``s)."""
    def walk(seq: nn.Module, parts: list[str]) -> tuple[list[nn.Module], list[nn.Module]]:
        names = [n for n, _ in seq.named_children()]
        if not isinstance(seq, nn.Sequential) or parts[0] not in names:
            raise ValueError(f"no stage {layer!r} in the model's trunk (stages: {', '.join(names)})")
        i = names.index(parts[0])
        kids = list(seq.children())
        if len(parts) == 1:
            return kids[:i + 1], kids[i + 1:]
        head, tail = walk(kids[i], parts[1:])
        return kids[:i] + head, tail + kids[i + 1:]

    head, tail = walk(trunk, layer.split("."))
    return nn.Sequential(*head), nn.Sequential(*tail)


def default_layer(model: CamClassifier) -> str:
    """The stage one before the last: ``layer3`` (ResNet) or ``features.denseblock3`` (DenseNet)."""
    return "layer3" if getattr(model, "arch", None) in RESNETS else "features.denseblock3"


class GradCAM(ExplanationMethod):
    """Grad-CAM of the class log-odds on ``layer`` (default: :func:`default_layer`).

    ``ReLU(h·w · sum_k mean_ij(dT/dA_k) · A_k)``: scaled by the grid size so that on
    the last stage it is exactly the positive part of the evidence map without its
    bias, i.e. a first-order estimate in log-odds.
    """

    name = "gradcam"
    label = "Grad-CAM (layer3, 14 x 14)"
    short = "Grad-CAM"
    units = "log-odds, first-order (positive part)"
    signed = False

    def __init__(self, layer: str | None = None):
        self.layer = layer
        if layer:
            self.label = f"Grad-CAM ({layer})"

    def __repr__(self) -> str:
        return f"GradCAM(layer={self.layer!r})"

    def __call__(self, model, x, index, progress=None):
        head, tail = split_trunk(model.features, self.layer or default_layer(model))
        with torch.inference_mode(False), torch.no_grad():
            acts = head(x.clone())
        with torch.inference_mode(False), torch.enable_grad():
            acts = acts.clone().float().requires_grad_(True)
            logits = model.classifier(tail(acts).mean(dim=(2, 3)))
            (grads,) = torch.autograd.grad(class_log_odds(logits, index.clone()).sum(), acts)
        h, w = acts.shape[-2:]
        weights = grads.mean(dim=(2, 3), keepdim=True)
        maps = F.relu((weights * acts.detach()).sum(dim=1)) * (h * w)
        if progress is not None:
            progress(1, 1)
        return maps.float()


class Occlusion(ExplanationMethod):
    """Drop of the class log-odds when a square patch is set to the image's mean grey.

    ``patch``: side as a fraction of the image (default 1/7: one CAM cell);
    ``stride``: as a fraction of ``patch`` (default 1/2). The map has one value per
    patch position (13 x 13 at the defaults) and costs one forward pass each.
    """

    name = "occlusion"
    label = "Occlusion sensitivity"
    short = "Occlusion"
    units = "log-odds drop when the patch is greyed"
    signed = True
    additive = False

    def __init__(self, patch: float = 1 / 7, stride: float = 0.5, batch_size: int = 32):
        self.patch, self.stride, self.batch_size = patch, stride, batch_size

    def __call__(self, model, x, index, progress=None):
        n, _, H, W = x.shape
        ph, pw = max(1, round(H * self.patch)), max(1, round(W * self.patch))
        sh, sw = max(1, round(ph * self.stride)), max(1, round(pw * self.stride))
        tops, lefts = range(0, H - ph + 1, sh), range(0, W - pw + 1, sw)
        spots = [(t, left) for t in tops for left in lefts]
        fill = x.mean(dim=(2, 3), keepdim=True)
        out = torch.empty(n, len(spots))
        with torch.inference_mode():
            base = class_log_odds(model(x).float(), index)
            for i in range(n):
                for s in range(0, len(spots), self.batch_size):
                    chunk = spots[s:s + self.batch_size]
                    batch = x[i:i + 1].repeat(len(chunk), 1, 1, 1)
                    for j, (t, left) in enumerate(chunk):
                        batch[j, :, t:t + ph, left:left + pw] = fill[i]
                    lo = class_log_odds(model(batch).float(), index[i].expand(len(chunk)))
                    out[i, s:s + len(chunk)] = base[i] - lo.cpu()
                    if progress is not None:
                        progress(i * len(spots) + s + len(chunk), n * len(spots))
        return out.view(n, len(tops), len(lefts))


#: The methods a viewer offers, by name.
METHODS: dict[str, Callable[[], ExplanationMethod]] = {
    EvidenceMap.name: EvidenceMap,
    GradCAM.name: GradCAM,
    Occlusion.name: Occlusion,
}


def get_method(name: str) -> ExplanationMethod:
    """A fresh instance of the method called ``name`` (see :data:`METHODS`)."""
    try:
        return METHODS[name]()
    except KeyError:
        raise ValueError(f"unknown explanation method {name!r}; choose one of {', '.join(METHODS)}") from None
