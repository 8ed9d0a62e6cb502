"""Which CAM the canvas shows and on which colour scale, via the core's overlay functions.

The map is the core's class evidence map (logit units, low resolution; the canvas
upsamples it with the core's spline to the resolution it draws), with the colour
limits of :func:`cxrviewer.core.results.overlay.cam_for_display`; exports render the same
map at the image's own size.
"""

from __future__ import annotations

import numpy as np

from ..core.explain import get_method
from ..core.explain.checks import MIN_POSITIVE_MASS, no_evidence_note, no_positive_evidence
from ..core.explain.on_demand import MethodMap
from ..core.results.overlay import cam_for_display, cam_range_from_meta, class_evidence
from ..core.results.file_result import FileResult
from .canvas import Overlay
from .view_state import SCALE_FIXED

MAX_CAM_SIDE = 256     # display resolution of the smooth map


def fixed_range(meta: dict | None) -> tuple[float, float]:
    """The fixed colour scale of a model (its ``cam_range``, else the core's default)."""
    return cam_range_from_meta(meta)


def display_size(image_hw: tuple[int, int]) -> tuple[int, int]:
    """(H, W) of the smooth map for an image of ``image_hw``: the image's aspect, at most MAX_CAM_SIDE."""
    h, w = image_hw
    scale = min(1.0, MAX_CAM_SIDE / max(h, w, 1))
    return max(2, round(h * scale)), max(2, round(w * scale))


def choose_overlay(result: FileResult | None, class_name: str | None, scale: str,
                   fixed: tuple[float, float] | None, image_hw: tuple[int, int] | None = None) -> Overlay | None:
    """The overlay of ``result`` for ``class_name`` (None or unknown: the predicted class), or None."""
    if result is None or not result.ok or result.cams is None or result.logits is None:
        return None
    if class_name not in result.probs:
        class_name = None
    if image_hw is None:
        if result.image_size is None:
            return None
        image_hw = (result.image_size[1], result.image_size[0])
    name = class_name or result.predicted or result.label  # an out-of-scope image keeps its CAM
    _smooth, lo, hi = cam_for_display(result, name, display_size(image_hw), scale, fixed)  # the limits
    cam = class_evidence(result.cams, result.logits, list(result.probs).index(name))  # upsampled when drawn
    if no_positive_evidence(cam).item():
        return no_evidence_overlay(name, cam)
    how = "fixed scale" if scale == SCALE_FIXED else "per-image min-max"
    return Overlay(cam=cam, vmin=lo, vmax=hi, label=f"CAM: {name} evidence (logit units, {how})")


def no_evidence_overlay(class_name: str, cam: np.ndarray, method: str = "CAM") -> Overlay:
    """Drawn instead of ``cam`` when its positive part is tiny (:func:`~cxrviewer.core.explain.checks.no_positive_evidence`):
    the note says so, with the positive part's mean."""
    return Overlay(cam=None, vmin=0.0, vmax=1.0, label="", note=no_evidence_note(class_name, cam, method))


def method_overlay(found: MethodMap) -> Overlay:
    """The overlay of an on-demand method's map: this image's range (signed maps centred on 0), units on the bar."""
    if no_positive_evidence(found.grid, MIN_POSITIVE_MASS if get_method(found.method).additive else 0.0).item():
        return no_evidence_overlay(found.class_name, found.grid, get_method(found.method).short)
    lo, hi = found.limits()
    return Overlay(cam=found.grid, vmin=lo, vmax=hi,
                   label=f"{found.label}: {found.class_name}\n{found.units}, this image's range",
                   name=get_method(found.method).short)


def pending_overlay(label: str) -> Overlay:
    """Shown while an on-demand map is computed: no colours, a note saying what is coming."""
    return Overlay(cam=None, vmin=0.0, vmax=1.0, label="", note=f"computing {label}...")
