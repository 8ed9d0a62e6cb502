"""Pooled features and logits of image files, read exactly as the viewer and ``predict`` read them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..errors import RadiographError
from ..io.radiograph import to_model_input
from ..io.reading import load_radiograph
from ..model.classifier import CamClassifier


@torch.inference_mode()
def extract_features(model: CamClassifier, paths: list[Path], batch_size: int = 32, device: str | torch.device = "cpu",
                     transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(features N' x F, logits N' x K, ok N)`` for ``paths``; ``ok`` marks the files that could be read.

    Float32, eval mode (restored afterwards), the model's input size and normalisation;
    ``transform`` (e.g. an acquisition shift of :mod:`.shift`) acts on the N x 1 x H x W batch in [0, 1].
    """
    size = model.input_size
    was_training = model.training
    model.eval().to(device)
    feats, logits, ok, batch = [], [], [], []

    def run() -> None:
        x = torch.from_numpy(np.stack(batch))[:, None].to(device)
        if transform is not None:
            x = transform(x)
        lg, _, pooled = model.logits_cams_pooled(model.normalize(x))
        feats.append(pooled.float().cpu().numpy())
        logits.append(lg.float().cpu().numpy())
        batch.clear()

    try:
        for p in paths:
            try:
                batch.append(to_model_input(load_radiograph(p, target_size=size).pixels, size))
                ok.append(True)
            except RadiographError:
                ok.append(False)
            if len(batch) == batch_size:
                run()
        if batch:
            run()
    finally:
        model.train(was_training)
    width, k = model.classifier.in_features, model.classifier.out_features
    return (np.concatenate(feats) if feats else np.zeros((0, width), np.float32),
            np.concatenate(logits) if logits else np.zeros((0, k), np.float32), np.array(ok, dtype=bool))
