"""The four-corner text drawn over the image axes (the lines come from :mod:`cxrviewer.core.io.corner_text`)."""

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
LINE_SPACING = 1.25  # a text line's height in font sizes (matplotlib's default spacing is 1.2)
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

    def refresh(self, window, zoom) -> None:
        for corner, lines in self.lines(window, zoom).items():
            artist = self.artists[corner]
            artist.set_text("\n".join(lines))
            artist.set_visible(self.visible and bool(lines))

    def bottom_height(self) -> float:
        """Points above the axes' bottom edge that the bottom corners' text takes (0 when none is shown)."""
        shown = [a for c, a in self.artists.items() if c.startswith("bottom") and a.get_visible() and a.get_text()]
        lines = max((a.get_text().count("\n") + 1 for a in shown), default=0)
        return lines * self.artists["bottom_left"].get_fontsize() * LINE_SPACING + (6 if lines else 0)

