"""Per-file results of the batch engine: plain data shared by the CLI, exports and the viewer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class FileResult:
    """What the model made of one file.

    ``probs``: calibrated probability per class name (empty on error).
    ``label``: the class chosen by the model's decision rule (None on error).
    ``cams``: float32 K x h x w maps at the model's feature resolution, in logit
    units without the bias (the spatial mean plus the bias of class k is logit k);
    None on error.
    ``image_size``: (W, H) of the original image. ``meta``: the radiograph's meta.
    ``error``: one-line reason when the file failed, else None.
    ``overlay``: the overlay PNG written for this file, if any.
    ``precision``: the floating-point type the model ran in ("float32", "bfloat16", ...).

    The columns that show these fields are declared in :mod:`cxrviewer.core.columns`.
    """

    path: Path
    index: int = 0
    probs: dict[str, float] = field(default_factory=dict)
    label: str | None = None
    logits: list[float] | None = None
    cams: np.ndarray | None = None
    image_size: tuple[int, int] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    overlay: Path | None = None
    precision: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
