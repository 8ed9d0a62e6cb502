"""How the image is shown, as one Qt-free value: the controls edit it, the canvas draws it, exports use it.

:class:`ViewState` is frozen; a change is a new value (``dataclasses.replace`` or the
``with_*`` helpers), handed to ``MainWindow.set_view``, which passes it to the controls, the
canvas and the actions. Nothing reads a view setting back from a widget.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..core.overlay import DEFAULT_ALPHA, SCALES

SCALE_IMAGE, SCALE_FIXED = SCALES  # per-image min-max, or the model's fixed range in logit units
MIN_WINDOW = 0.02  # narrowest window, in grey units


def _clip(v: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, float(v)))


@dataclass(frozen=True)
class ViewState:
    """``window``/``level``: width and centre of the grey window, in the image's [0, 1] grey units;
    ``invert``; ``overlay``: the CAM on or off; ``opacity`` of the CAM in [0, 1]; ``class_name``: whose
    map (None: the predicted class); ``scale``: the CAM's colour scale, "image" or "fixed".
    Values out of range are clipped."""

    window: float = 1.0
    level: float = 0.5
    invert: bool = False
    overlay: bool = True
    opacity: float = DEFAULT_ALPHA
    class_name: str | None = None
    scale: str = SCALE_IMAGE

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {self.scale!r}")
        object.__setattr__(self, "window", _clip(self.window, MIN_WINDOW, 1.0))
        object.__setattr__(self, "level", _clip(self.level, 0.0, 1.0))
        object.__setattr__(self, "opacity", _clip(self.opacity, 0.0, 1.0))
        object.__setattr__(self, "invert", bool(self.invert))
        object.__setattr__(self, "overlay", bool(self.overlay))
        object.__setattr__(self, "class_name", self.class_name or None)

    @property
    def grey_window(self) -> tuple[float, float]:
        """(low, high) grey limits of the window, as the core's ``compose(window=...)`` takes them."""
        return self.level - self.window / 2, self.level + self.window / 2

    def with_grey_window(self, low: float, high: float) -> ViewState:
        """This view with the window spanning ``low``..``high`` (e.g. from a right-drag)."""
        return replace(self, window=high - low, level=(low + high) / 2)
