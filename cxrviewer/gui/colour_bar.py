"""The image view's colour bar: the overlay's colormap over its value range, right of the image.

Drawn as a gradient image whose extent is the overlay's range (cheaper to update per image than
matplotlib's ``Colorbar``, which rebuilds its mesh on every change of limits); its label is wrapped
to the bar's height.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..core.results.overlay import DEFAULT_CMAP
from .overlay_layout import wrap_words
from .theme import FRAME, TEXT

BAR_ROOM_PT = 64.0  # the strip right of the image: bar, ticks, a two-line label and margins, in points
BAR_WIDTH_PT = 8.0


class ColourBar:
    """The colour bar's axes (``cax``, hidden until an overlay is drawn), its gradient and its label."""

    def __init__(self, figure: Figure):
        self.cax = cax = figure.add_axes((0.895, 0.12, 0.022, 0.76))
        self.image = cax.imshow(np.linspace(0.0, 1.0, 256)[:, None], cmap=DEFAULT_CMAP, aspect="auto", origin="lower",
                                extent=(0.0, 1.0, 0.0, 1.0), interpolation="nearest")
        self.range: tuple | None = None  # (vmin, vmax, label) on show
        cax.xaxis.set_visible(False)
        cax.yaxis.tick_right()
        cax.yaxis.set_label_position("right")
        cax.tick_params(colors=TEXT, labelsize=7, length=3, pad=2)
        for spine in cax.spines.values():
            spine.set_edgecolor(FRAME)
        cax.set_visible(False)

    def lay_out(self, ax: Axes) -> None:
        """The image's axes ``ax`` take the figure but for a strip on the right of :data:`BAR_ROOM_PT` (the bar,
        its ticks and a two-line label); the bar runs down the middle three quarters of that strip's height."""
        figure = self.cax.figure
        fw, fh = figure.bbox.width, figure.bbox.height
        if fw < 2 or fh < 2:
            return
        px = figure.dpi / 72.0
        room, edge, bar = BAR_ROOM_PT * px / fw, 2.0 * px / fw, BAR_WIDTH_PT * px / fw
        margin_y = 2.0 * px / fh
        ax.set_position((edge, margin_y, max(0.05, 1.0 - room - 2 * edge), 1.0 - 2 * margin_y))
        self.cax.set_position((1.0 - room + 4.0 * px / fw, 0.12, bar, 0.76))

    def set(self, vmin: float, vmax: float, label: str) -> None:
        """Show the range ``vmin``..``vmax`` labelled ``label`` (no work when unchanged)."""
        key = (vmin, vmax, label)
        if key == self.range:
            return
        self.range = key
        self.image.set_extent((0.0, 1.0, vmin, vmax))
        self.cax.set_xlim(0.0, 1.0)
        self.cax.set_ylim(vmin, vmax)
        self.cax.set_ylabel(label, color=TEXT, fontsize=8, labelpad=3)

    def wrap_label(self, renderer) -> None:
        """Wrap the label to the bar's height (two lines, smaller type when it needs more)."""
        if not self.cax.get_visible() or self.range is None:
            return
        label, height = self.range[2], self.cax.bbox.height
        for size in (8, 7, 6):
            prop = self.cax.yaxis.label.get_fontproperties().copy()
            prop.set_size(size)
            lines = wrap_words(label, height, lambda t: renderer.get_text_width_height_descent(t, prop, ismath=False)[0])
            if len(lines) <= 2:
                break
        self.cax.yaxis.label.set_text("\n".join(lines))
        self.cax.yaxis.label.set_fontsize(size)
