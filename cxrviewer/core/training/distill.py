"""Knowledge distillation: train one model towards the averaged predictions of teacher model files.

``train_model.py --teacher A.safetensors B.safetensors ...`` loads the teachers (data, never
executed: safetensors files), scores each augmented training batch with them and trains the student
on ``(1 - w) * CE(student, targets) + w * T^2 * KL(teachers' mean softmax at T || student softmax at T)``
(Hinton et al., 2015). A teacher sees the batch as its own file asks: at its input size, with its
own normalisation and channels, so teachers of another size or family work.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import ModelFileError
from ..model.checkpoint import load_model
from . import TrainingError


class Teachers:
    """Frozen teacher models and the distillation loss built on their averaged soft targets."""

    def __init__(self, paths: Sequence[Path], class_names: Sequence[str], device: torch.device | str = "cpu",
                 weight: float = 0.5, temperature: float = 2.0, channels_last: bool = False):
        if not paths:
            raise TrainingError("distillation needs at least one --teacher file")
        if not 0.0 <= weight <= 1.0 or temperature <= 0:
            raise TrainingError("--distill-weight must be in [0, 1] and --distill-temperature above 0")
        self.weight, self.temperature, self.channels_last = weight, temperature, channels_last
        self.models = []
        for path in paths:
            try:
                model = load_model(path, device)
            except (OSError, ModelFileError) as e:
                raise TrainingError(f"--teacher: {e}") from None
            if list(model.class_names) != list(class_names):
                raise TrainingError(f"--teacher {path}: classes {model.class_names}, the data has {list(class_names)}")
            model.requires_grad_(False).eval()
            self.models.append(model.to(memory_format=torch.channels_last) if channels_last else model)

    @torch.no_grad()
    def soft_targets(self, grey: torch.Tensor) -> torch.Tensor:
        """Mean over teachers of ``softmax(logits / T)`` for a batch ``N x 1 x H x W`` in [0, 1]."""
        total = None
        for model in self.models:
            x = grey
            if tuple(x.shape[-2:]) != tuple(model.input_size):
                x = F.interpolate(x, size=tuple(model.input_size), mode="bilinear", align_corners=False, antialias=True)
            x = model.normalize(x)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            p = torch.softmax(model(x).float() / self.temperature, dim=1)
            total = p if total is None else total + p
        return total / len(self.models)

    def loss(self, hard: torch.Tensor, grey: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """``(1 - w) * hard + w * T^2 * KL(teachers || student)`` for the student's ``logits`` on ``grey``."""
        t = self.temperature
        soft = self.soft_targets(grey)
        kd = F.kl_div(F.log_softmax(logits.float() / t, dim=1), soft, reduction="batchmean") * (t * t)
        return (1.0 - self.weight) * hard + self.weight * kd


def build_teachers(args, class_names: Sequence[str], device: torch.device | str,
                   channels_last: bool = False) -> Teachers | None:
    """:class:`Teachers` for ``--teacher`` (None without it)."""
    paths = getattr(args, "teacher", None) or []
    if not paths:
        return None
    return Teachers([Path(p) for p in paths], class_names, device, weight=args.distill_weight,
                    temperature=args.distill_temperature, channels_last=channels_last)


def teacher_digests(paths: Sequence[Path]) -> list[dict]:
    """Provenance of the teachers: file name and SHA-256 of each (recorded in the student's metadata)."""
    return [{"file": Path(p).name, "sha256": hashlib.sha256(Path(p).read_bytes()).hexdigest()} for p in paths]
