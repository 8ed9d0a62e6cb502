"""The four-corner text drawn over the image axes (the lines come from :mod:`cxrviewer.core.io.corner_text`;
where they go: :mod:`cxrviewer.gui.overlay_layout`)."""

from __future__ import annotations

from dataclasses import replace

from matplotlib import patheffects

from ..core.io.corner_text import CORNERS, CornerInfo, corner_text
from .theme import TEXT

_PLACES = {  # corner -> (x, y, ha, va) in axes coordinates
    "top_left": (0.01, 0.99, "left", "top"),
    "top_right": (0.99, 0.99, "right", "top"),
    "bottom_left": (0.01, 0.01, "left", "bottom"),
    "bottom_right": (0.99, 0.01, "right", "bottom"),
}
_OUTLINE = [patheffects.withStroke(linewidth=2.5, foreground="black")]  # readable over white bone


class CornerText:
    """Four text artists in the corners of ``ax``; :meth:`refresh` rewrites them from the info, the window
    and the zoom of the moment."""

    def __init__(self, ax):
        self.info: CornerInfo | None = None
        self.anonymise = False
        self.visible = True
        self.artists = {c: ax.text(x, y, "", transform=ax.transAxes, ha=ha, va=va, color=TEXT, fontsize=9,
                                   zorder=6, path_effects=_OUTLINE, clip_on=False)
                        for c, (x, y, ha, va) in _PLACES.items()}

    def lines(self, window, zoom) -> dict[str, list[str]]:
        """What each corner says for ``window`` and ``zoom`` (empty when there is no info)."""
        if self.info is None:
            return {c: [] for c in CORNERS}
        return corner_text(replace(self.info, window=window, zoom=zoom), self.anonymise)

    def refresh(self, window, zoom) -> dict[str, list[str]]:
        """The lines to show now (none while the corner text is switched off); the canvas's
        :class:`~cxrviewer.gui.overlay_layout.OverlayText` places them."""
        lines = self.lines(window, zoom) if self.visible else {c: [] for c in CORNERS}
        for corner, artist in self.artists.items():
            artist.set_visible(bool(lines.get(corner)))
        return lines
