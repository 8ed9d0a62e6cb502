"""ImageNet backbone weights from torchvision (downloaded when online) or a local file."""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torchvision

from ..model.classifier import CamClassifier

_DENSENET_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def load_backbone_weights(model: CamClassifier, file: Path | None = None) -> None:
    """Copy torchvision ImageNet weights of ``model.arch`` into ``model.features``.

    ``file``: a ``.pth`` (loaded with ``weights_only=True``) or ``.safetensors`` file
    of torchvision's state dict; without it torchvision downloads the weights, and
    a clear ``OSError`` says how to get the file when that is impossible (offline).
    """
    weights = torchvision.models.get_model_weights(model.arch).DEFAULT
    if file is not None:
        file = Path(file)
        if not file.is_file():
            raise OSError(f"--backbone-weights {file}: file not found")
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(file))
        else:
            state = torch.load(file, map_location="cpu", weights_only=True)
    else:
        try:
            state = weights.get_state_dict(progress=True, check_hash=True)
        except Exception as e:  # URLError, HTTPError, socket errors, hash mismatch ...
            name = weights.url.rsplit("/", 1)[-1]
            raise OSError(
                f"cannot download ImageNet weights for {model.arch} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'offline?'}). "
                f"On a machine with internet, download {weights.url} and pass --backbone-weights /path/to/{name}"
            ) from None
    model.features.load_state_dict(_to_trunk_keys(model, state), strict=True)


def _to_trunk_keys(model: CamClassifier, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a torchvision state dict to the keys of ``model.features``; adapt conv1 to the input channels."""
    out = {}
    if model.arch.startswith("resnet"):
        for k, v in state.items():
            if not k.startswith("fc."):
                out[k] = v
        first = "conv1.weight"
    else:
        for k, v in state.items():
            if k.startswith("classifier."):
                continue
            m = _DENSENET_KEY.match(k)
            if m:
                k = m.group(1) + m.group(2)
            out[k] = v
        first = "features.conv0.weight"
    w = out[first]
    if model.input_channels == 1 and w.shape[1] == 3:
        out[first] = w.sum(dim=1, keepdim=True)
    expected = model.features.state_dict()
    missing = sorted(set(expected) - set(out))
    if missing:
        raise ValueError(f"backbone weights do not fit {model.arch}: missing {missing[:3]}")
    return {k: out[k] for k in expected}
