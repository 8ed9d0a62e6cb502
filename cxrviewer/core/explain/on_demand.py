"""One image, one class, one method: the map a viewer computes when asked (off its GUI thread).

:func:`explain_image` runs a method of :mod:`.methods` on a radiograph's pixels and returns a
:class:`MethodMap`: the map on the method's own grid plus what the colour bar needs (units,
signed or not); :meth:`MethodMap.for_display` upsamples it like the evidence map and gives
its colour limits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..io.radiograph import to_model_input
from ..model.classifier import CamClassifier
from ..results.overlay import upsample_cam
from .methods import ExplanationMethod, Progress, eval_mode


@dataclass(frozen=True)
class MethodMap:
    """A map of one method for one class of one image, on the method's grid (``h x w`` float32)."""

    method: str
    label: str
    units: str
    signed: bool
    class_name: str
    grid: np.ndarray

    def for_display(self, size: tuple[int, int]) -> tuple[np.ndarray, float, float]:
        """``(H x W map, vmin, vmax)``: signed maps centred on 0 (``±`` their largest magnitude), others ``0..max``."""
        up = upsample_cam(self.grid, size)
        if not self.signed:
            up = np.maximum(up, 0.0)
        top = float(np.abs(up).max()) or 1e-6
        return (up, -top, top) if self.signed else (up, 0.0, top)

    def limits(self) -> tuple[float, float]:
        """Colour limits on the grid itself: ``±`` the largest magnitude when signed, else ``0..max``."""
        top = float(np.abs(self.grid).max() if self.signed else max(float(self.grid.max()), 0.0)) or 1e-6
        return (-top, top) if self.signed else (0.0, top)

    @property
    def colorbar_label(self) -> str:
        return f"{self.label}: {self.units}"


def explain_image(model: CamClassifier, pixels: np.ndarray, class_name: str, method: ExplanationMethod,
                  progress: Progress | None = None) -> MethodMap:
    """Run ``method`` for ``class_name`` on grey ``pixels`` (H x W in [0, 1], any size; resized as for inference)."""
    names = model.class_names
    if class_name not in names:
        raise ValueError(f"unknown class {class_name!r}; the model's classes are {', '.join(names)}")
    grey = to_model_input(np.asarray(pixels, dtype=np.float32), model.input_size)
    device = next(model.parameters()).device
    x = model.normalize(torch.tensor(grey)[None, None].to(device))
    with eval_mode(model):
        grid = method(model, x, torch.tensor([names.index(class_name)], device=device), progress=progress)
    return MethodMap(method.name, method.label, method.units, method.signed, class_name,
                     grid[0].detach().float().cpu().numpy())
