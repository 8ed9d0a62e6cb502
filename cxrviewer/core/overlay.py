"""CAM -> coloured overlay (first cut; being completed). Qt-free, shared by viewer and exports."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def upsample_cam(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Smoothly resize an ``h x w`` map to ``size`` (H, W)."""
    h, w = cam.shape
    return ndimage.zoom(cam.astype(np.float32), (size[0] / h, size[1] / w), order=3, mode="nearest", grid_mode=True)
