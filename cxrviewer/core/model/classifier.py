"""CamClassifier: backbone -> global average pooling -> one linear layer.

Because the head is linear after average pooling, the class activation map of
class ``c`` (Zhou et al., CVPR 2016) is ``einsum(W[c], features)`` and its
spatial mean plus the bias ``b[c]`` is exactly logit ``c``. Logits and the maps
of every class therefore come from one forward pass, with no hooks and no
backward pass.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from torch import nn

from ..io.equalize import MODES, equalized
from ..io.frame import frame_normalized

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
ARCHS = RESNETS + ("densenet121",)


def build_backbone(arch: str, input_channels: int = 1, dilate_last: bool = False) -> tuple[nn.Sequential, int]:
    """Return the convolutional trunk of a torchvision ``arch`` and its channel count.

    The trunk maps ``N x input_channels x H x W`` to ``N x F x H/32 x W/32``
    (``H/16 x W/16`` with ``dilate_last``: a ResNet's last stage at stride 1, dilation 2).
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
    if dilate_last and arch not in RESNETS:
        raise ValueError(f"dilate_last needs a ResNet, not {arch}")
    net = getattr(torchvision.models, arch)(weights=None)
    if arch in RESNETS:
        if dilate_last:
            dilate_stage(net.layer4)
        if input_channels != 3:
            net.conv1 = nn.Conv2d(input_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
        trunk = nn.Sequential(OrderedDict((n, getattr(net, n)) for n in names))
        return trunk, net.fc.in_features
    # DenseNet: torchvision applies a ReLU after `features` in forward(); keep it in the trunk.
    if input_channels != 3:
        conv0 = net.features.conv0
        net.features.conv0 = nn.Conv2d(input_channels, conv0.out_channels, kernel_size=7, stride=2, padding=3, bias=False)
    trunk = nn.Sequential(OrderedDict(features=net.features, relu=nn.ReLU(inplace=False)))
    return trunk, net.classifier.in_features


def dilate_stage(stage: nn.Sequential, dilation: int = 2) -> None:
    """Turn a ResNet stage's stride 2 into dilation, in place, as torchvision's ``replace_stride_with_dilation``.

    The first block keeps dilation 1 and loses its stride (3 x 3 conv and shortcut);
    the 3 x 3 convolutions of the later blocks get ``dilation`` (padding to match).
    Unlike torchvision this also works for BasicBlock (ResNet-18/34). Weights keep their shapes.
    """
    for i, block in enumerate(stage):
        for conv in block.modules():
            if isinstance(conv, nn.Conv2d):
                conv.stride = (1, 1)
                if i > 0 and conv.kernel_size == (3, 3):
                    conv.dilation = conv.padding = (dilation, dilation)


class CamClassifier(nn.Module):
    """Image classifier whose every class has an exact class activation map.

    ``model(x)`` returns logits for a normalized ``N x C x H x W`` batch;
    :meth:`logits_and_cams` returns the logits and the maps of all classes from
    the same forward pass. ``meta`` holds the model file's metadata (class
    names, input size, normalisation, threshold, temperature, ...). ``dilate_last``
    (ResNets; default ``meta["dilate_last"]``, else False): maps at stride 16 instead of 32.
    """

    def __init__(self, arch: str, num_classes: int, input_channels: int = 1, meta: dict[str, Any] | None = None,
                 dilate_last: bool | None = None):
        super().__init__()
        self.arch = arch
        self.input_channels = input_channels
        self.meta: dict[str, Any] = dict(meta or {})
        self.dilate_last = bool(self.meta.get("dilate_last", False) if dilate_last is None else dilate_last)
        if self.dilate_last:
            self.meta["dilate_last"] = True
        self.features, width = build_backbone(arch, input_channels, self.dilate_last)
        self.classifier = nn.Linear(width, num_classes)

    # -- forward -----------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))

    def logits_and_cams(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(logits N x K, cams N x K x h x w)`` from one forward pass.

        ``cams[n, k]`` is in logit units without the bias: its spatial mean plus
        ``classifier.bias[k]`` equals ``logits[n, k]``.
        """
        logits, cams, _ = self.logits_cams_pooled(x)
        return logits, cams

    def logits_cams_pooled(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """As :meth:`logits_and_cams`, plus the pooled features ``N x F`` the linear head reads."""
        feats = self.features(x)
        cams = torch.einsum("kc,nchw->nkhw", self.classifier.weight.to(feats.dtype), feats)
        logits = cams.mean(dim=(2, 3)) + self.classifier.bias.to(cams.dtype)
        return logits, cams, feats.mean(dim=(2, 3))

    # -- metadata-driven helpers ------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        return list(self.meta.get("class_names") or [str(i) for i in range(self.classifier.out_features)])

    @property
    def display_name(self) -> str:
        """The model's name for people and exports: ``name`` from the file, else the file's stem, else the arch."""
        name = self.meta.get("name")
        if not name and self.meta.get("file"):
            name = Path(str(self.meta["file"])).stem
        return str(name or self.arch)

    @property
    def input_size(self) -> tuple[int, int]:
        h, w = self.meta.get("input_size", (224, 224))
        return int(h), int(w)

    @property
    def temperature(self) -> float:
        return float(self.meta.get("temperature") or 1.0)

    @property
    def positive_index(self) -> int | None:
        """Index of the class the decision threshold applies to (two-class models only)."""
        names = self.class_names
        if len(names) != 2:
            return None
        pos = self.meta.get("positive_class")
        return names.index(pos) if pos in names else 1

    @property
    def threshold(self) -> float | None:
        """Decision threshold on the calibrated probability of :attr:`positive_index`."""
        t = self.meta.get("threshold")
        return None if t is None or self.positive_index is None else float(t)

    @property
    def equalize(self) -> str | None:
        """How the model's input is histogram-equalised per image: ``"global"``, ``"clahe"`` or None
        (``meta["equalize"]``; :mod:`cxrviewer.core.io.equalize`)."""
        mode = self.meta.get("equalize", False)
        return MODES[mode] if mode else None

    @property
    def frame_normalize(self) -> bool:
        """Whether a constant frame is cropped from the input before the model sees it
        (``meta["frame_normalize"]``; :mod:`cxrviewer.core.io.frame`)."""
        return bool(self.meta.get("frame_normalize", False))

    def normalize(self, x: torch.Tensor, frame: bool = True) -> torch.Tensor:
        """Turn an ``N x 1 x H x W`` batch of grey values in [0, 1] into the model's input: its constant frame
        cropped (when the model file says so and ``frame``; callers that cropped it at full resolution pass
        False), then histogram-equalised (when the file says so), then normalised."""
        if frame and self.frame_normalize:
            x = frame_normalized(x)
        x = equalized(x, self.meta.get("equalize", False))
        mean = torch.as_tensor(self.meta.get("mean", [0.5]), dtype=x.dtype, device=x.device)
        std = torch.as_tensor(self.meta.get("std", [0.25]), dtype=x.dtype, device=x.device)
        if x.shape[1] != self.input_channels:
            x = x.expand(-1, self.input_channels, -1, -1)
        return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Calibrated class probabilities: softmax of logits / temperature."""
        return torch.softmax(logits.float() / self.temperature, dim=1)

    def decide(self, probs: torch.Tensor) -> torch.Tensor:
        """Predicted class index per row by :func:`decide` with this model's threshold (-1: no decision)."""
        return decide(probs, self.threshold, self.positive_index)


def decide(probs: torch.Tensor | np.ndarray, threshold: float | None = None, positive_index: int | None = None):
    """The decision rule, in one place: class index per row of ``probs`` (N x K, torch or numpy, same type back).

    Two classes with a threshold: ``positive_index`` when ``probs[:, positive_index] >= threshold``,
    else the other class; otherwise the argmax. A row holding any non-finite probability
    gets -1: no class is decided from broken numbers.
    """
    as_numpy = not isinstance(probs, torch.Tensor)
    p = torch.as_tensor(np.asarray(probs)) if as_numpy else probs
    if threshold is None or positive_index is None or p.shape[1] != 2:
        out = p.argmax(dim=1)
    else:
        out = torch.where(p[:, positive_index] >= threshold, positive_index, 1 - positive_index)
    out = torch.where(torch.isfinite(p).all(dim=1), out, torch.full_like(out, -1))
    return out.numpy() if as_numpy else out
