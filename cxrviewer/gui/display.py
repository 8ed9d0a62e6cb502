"""Display decisions shared by the canvas and the viewer's exports (no widgets here).

Which CAM to show, on which colour scale, and the composed RGB image of what the
canvas shows at the image's own size.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps

from ..core.overlay import upsample_cam
from ..core.results import FileResult
from .canvas import Overlay

SCALE_IMAGE = "image"  # per-image min-max (the seed article's look)
SCALE_FIXED = "fixed"  # the model's cam_range in logit units, shared by all images


def cam_range(meta: dict) -> tuple[float, float] | None:
    """The model's fixed CAM scale ``(lo, hi)`` in logit units, if its file declares one."""
    r = meta.get("cam_range") if meta else None
    try:
        lo, hi = float(r[0]), float(r[1])
    except (TypeError, ValueError, IndexError):
        return None
    return (lo, hi) if hi > lo else None


def choose_overlay(result: FileResult | None, class_names: list[str], class_name: str | None,
                   scale: str, fixed: tuple[float, float] | None) -> Overlay | None:
    """The overlay for ``result``: the CAM of ``class_name`` (default: the predicted class)."""
    if result is None or not result.ok or result.cams is None:
        return None
    name = class_name or result.label
    if name not in class_names:
        name = class_names[0] if class_names else None
    if name is None:
        return None
    k = class_names.index(name)
    if k >= result.cams.shape[0]:
        return None
    cam = np.asarray(result.cams[k], dtype=np.float32)
    if scale == SCALE_FIXED and fixed is not None:
        lo, hi = fixed
        label = f"CAM {name} (logit units, fixed scale)"
    else:
        lo, hi = float(cam.min()), float(cam.max())
        if hi - lo < 1e-6:
            hi = lo + 1e-6
        label = f"CAM {name} (per-image min-max)"
    return Overlay(cam=cam, vmin=lo, vmax=hi, label=label)


def compose_rgb(pixels: np.ndarray, overlay: Overlay | None, opacity: float = 0.4,
                window: tuple[float, float] = (0.0, 1.0), inverted: bool = False) -> np.ndarray:
    """H x W x 3 uint8: the grey image (window, invert) with ``overlay`` blended at ``opacity``."""
    low, high = window
    grey = np.clip((pixels.astype(np.float32) - low) / max(high - low, 1e-6), 0.0, 1.0)
    if inverted:
        grey = 1.0 - grey
    rgb = np.repeat(grey[..., None], 3, axis=2)
    if overlay is not None and opacity > 0:
        cam = upsample_cam(overlay.cam, pixels.shape)
        norm = np.clip((cam - overlay.vmin) / max(overlay.vmax - overlay.vmin, 1e-6), 0.0, 1.0)
        colour = colormaps["jet"](norm)[..., :3].astype(np.float32)
        rgb = (1.0 - opacity) * rgb + opacity * colour
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
