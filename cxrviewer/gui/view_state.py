"""How the image is shown, as one Qt-free value: the controls edit it, the canvas draws it, exports use it.

:class:`ViewState` is frozen; a change is a new value (``dataclasses.replace`` or the
``with_*`` helpers), handed to ``MainWindow.set_view``, which passes it to the controls, the
canvas and the actions. Nothing reads a view setting back from a widget.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.explain import METHODS, EvidenceMap
from ..core.results.overlay import DEFAULT_ALPHA, SCALES
from ..core.io.window import Window

SCALE_IMAGE, SCALE_FIXED = SCALES  # per-image min-max, or the model's fixed range in logit units


def _clip(v: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, float(v)))


@dataclass(frozen=True)
class ViewState:
    """``window``: the VOI window in the image's modality units (None: the image's own default,
    see :class:`~cxrviewer.core.io.window.ValueScale`); ``invert``; ``overlay``: the CAM on or off; ``opacity`` of the CAM in [0, 1]; ``class_name``: whose
    map (None: the predicted class); ``scale``: the CAM's colour scale, "image" or "fixed";
    ``method``: which explanation method's map (a name of ``core.explain.METHODS``; the on-demand
    ones are drawn on this image's own range). Values out of range are clipped."""

    window: Window | None = None
    invert: bool = False
    overlay: bool = True
    opacity: float = DEFAULT_ALPHA
    class_name: str | None = None
    scale: str = SCALE_IMAGE
    method: str = EvidenceMap.name

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {self.scale!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {tuple(METHODS)}, got {self.method!r}")
        object.__setattr__(self, "opacity", _clip(self.opacity, 0.0, 1.0))
        object.__setattr__(self, "invert", bool(self.invert))
        object.__setattr__(self, "overlay", bool(self.overlay))
        object.__setattr__(self, "class_name", self.class_name or None)
