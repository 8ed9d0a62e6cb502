"""The image view: a matplotlib canvas with the radiograph in grey, the CAM overlay and a colour bar.

Mouse: wheel zooms about the cursor, left or middle drag pans, right drag sets
window (horizontal) and level (vertical), double-click fits the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QSizePolicy

BACKGROUND = "#101216"
TEXT = "#c9ced6"


@dataclass
class Overlay:
    """One map to draw over the whole image: a smooth map (any resolution), its colour limits and a label."""

    cam: np.ndarray
    vmin: float
    vmax: float
    label: str


class ImageCanvas(FigureCanvasQTAgg):
    """Shows one radiograph and one overlay; knows nothing about files, models or tables."""

    windowChanged = Signal(float, float)  # low, high grey limits in [0, 1] after a right-drag
    hovered = Signal(str)                 # "x, y: value" under the cursor, "" when outside

    def __init__(self, parent=None):
        super().__init__(Figure(facecolor=BACKGROUND))
        if parent is not None:
            self.setParent(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 240)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.ax = self.figure.add_axes((0.01, 0.01, 0.86, 0.98))
        self.cax = self.figure.add_axes((0.895, 0.12, 0.022, 0.76))
        self.ax.set_facecolor(BACKGROUND)
        self.ax.set_axis_off()
        self._pixels: np.ndarray | None = None
        self._grey = None
        self._cam_im = None
        self._colorbar = None
        self._caption = None
        self._message = self.ax.text(0.5, 0.5, "", transform=self.ax.transAxes, ha="center", va="center",
                                     color=TEXT, fontsize=12, wrap=True)
        self._overlay: Overlay | None = None
        self.overlay_visible = True
        self.opacity = 0.4
        self.grey_window = (0.0, 1.0)
        self.inverted = False
        self._drag: tuple | None = None
        self.cax.set_visible(False)
        self.mpl_connect("scroll_event", self._on_scroll)
        self.mpl_connect("button_press_event", self._on_press)
        self.mpl_connect("motion_notify_event", self._on_motion)
        self.mpl_connect("button_release_event", self._on_release)
        self.show_message("Open a folder (Ctrl+O) or drop radiographs here")

    # -- content -----------------------------------------------------------------
    @property
    def has_image(self) -> bool:
        return self._pixels is not None

    def show_message(self, text: str) -> None:
        """Clear the image and show ``text`` in the middle of the view."""
        self._pixels = None
        self._overlay = None
        for artist in (self._grey, self._cam_im, self._caption):
            if artist is not None:
                artist.remove()
        self._grey = self._cam_im = self._caption = None
        self.cax.set_visible(False)
        self._message.set_text(text)
        self._message.set_visible(True)
        self.ax.set_aspect("auto")
        self.ax.set_xlim(0, 1)
        self.ax.set_ylim(1, 0)
        self.draw_idle()

    def set_image(self, pixels: np.ndarray, keep_view: bool = False) -> None:
        """Show grey ``pixels`` (H x W in [0, 1], dense = bright); fits it unless ``keep_view``."""
        same_shape = self._pixels is not None and self._pixels.shape == pixels.shape
        view = (self.ax.get_xlim(), self.ax.get_ylim())
        self._pixels = pixels
        self._message.set_visible(False)
        h, w = pixels.shape
        if self._grey is None:
            self._grey = self.ax.imshow(pixels, cmap=self._grey_cmap(), vmin=self.grey_window[0], vmax=self.grey_window[1],
                                        interpolation="antialiased", zorder=1)
        else:
            self._grey.set_data(pixels)
            self._grey.set_extent((-0.5, w - 0.5, h - 0.5, -0.5))
        if self._cam_im is not None:
            self._cam_im.set_extent((-0.5, w - 0.5, h - 0.5, -0.5))
        if keep_view and same_shape:
            self.ax.set_xlim(view[0])
            self.ax.set_ylim(view[1])
        else:
            self.fit()
        self.draw_idle()

    def set_overlay(self, overlay: Overlay | None) -> None:
        """Show ``overlay`` over the image (or none); the colour bar follows it."""
        self._overlay = overlay
        if overlay is None or self._pixels is None:
            if self._cam_im is not None:
                self._cam_im.set_visible(False)
            self.cax.set_visible(False)
            self._set_caption("")
            self.draw_idle()
            return
        h, w = self._pixels.shape
        smooth = overlay.cam
        extent = (-0.5, w - 0.5, h - 0.5, -0.5)
        if self._cam_im is None:
            self._cam_im = self.ax.imshow(smooth, cmap="jet", vmin=overlay.vmin, vmax=overlay.vmax, alpha=self.opacity,
                                          extent=extent, interpolation="bilinear", zorder=2)
            self._colorbar = self.figure.colorbar(self._cam_im, cax=self.cax)
            self.cax.tick_params(colors=TEXT, labelsize=8)
            self._colorbar.outline.set_edgecolor("#3a3f47")
        else:
            self._cam_im.set_data(smooth)
            self._cam_im.set_extent(extent)
            self._cam_im.set_clim(overlay.vmin, overlay.vmax)
        self._colorbar.set_label(overlay.label, color=TEXT, fontsize=9)
        self._apply_overlay_visibility()
        self.draw_idle()

    def set_caption(self, text: str, colour: str = TEXT) -> None:
        self._set_caption(text, colour)
        self.draw_idle()

    # -- display settings ------------------------------------------------------
    def set_overlay_visible(self, visible: bool) -> None:
        self.overlay_visible = bool(visible)
        self._apply_overlay_visibility()
        self.draw_idle()

    def set_opacity(self, opacity: float) -> None:
        self.opacity = float(np.clip(opacity, 0.0, 1.0))
        if self._cam_im is not None:
            self._cam_im.set_alpha(self.opacity)
        self.draw_idle()

    def set_window(self, low: float, high: float) -> None:
        """Grey limits in [0, 1] (window/level); ``high`` > ``low``."""
        low, high = float(np.clip(low, 0.0, 0.99)), float(np.clip(high, 0.01, 1.0))
        if high <= low:
            high = min(1.0, low + 0.01)
        self.grey_window = (low, high)
        if self._grey is not None:
            self._grey.set_clim(low, high)
        self.draw_idle()

    def set_inverted(self, inverted: bool) -> None:
        self.inverted = bool(inverted)
        if self._grey is not None:
            self._grey.set_cmap(self._grey_cmap())
        self.draw_idle()

    def fit(self) -> None:
        """Show the whole image."""
        if self._pixels is None:
            return
        h, w = self._pixels.shape
        self.ax.set_xlim(-0.5, w - 0.5)
        self.ax.set_ylim(h - 0.5, -0.5)
        self.ax.set_aspect("equal", adjustable="box")
        self.draw_idle()

    def zoom(self, factor: float, center: tuple[float, float] | None = None) -> None:
        """Zoom by ``factor`` (> 1 enlarges) about ``center`` in image coordinates."""
        x0, x1 = self.ax.get_xlim()
        y0, y1 = self.ax.get_ylim()
        cx, cy = center if center is not None else ((x0 + x1) / 2, (y0 + y1) / 2)
        self.ax.set_xlim(cx + (x0 - cx) / factor, cx + (x1 - cx) / factor)
        self.ax.set_ylim(cy + (y0 - cy) / factor, cy + (y1 - cy) / factor)
        self.draw_idle()

    def rgba(self) -> np.ndarray:
        """What the canvas shows now, as an H x W x 4 uint8 array (renders first)."""
        self.draw()
        return np.asarray(self.buffer_rgba()).copy()

    # -- internals ---------------------------------------------------------------
    def _grey_cmap(self) -> str:
        return "gray_r" if self.inverted else "gray"

    def _apply_overlay_visibility(self) -> None:
        shown = self.overlay_visible and self._overlay is not None and self._pixels is not None
        if self._cam_im is not None:
            self._cam_im.set_visible(shown)
        self.cax.set_visible(shown)

    def _set_caption(self, text: str, colour: str = TEXT) -> None:
        if self._caption is None:
            if not text:
                return
            self._caption = self.ax.text(0.015, 0.985, text, transform=self.ax.transAxes, ha="left", va="top",
                                         fontsize=11, fontweight="bold", color=colour, zorder=5,
                                         bbox=dict(boxstyle="round,pad=0.35", fc="#000000", ec="none", alpha=0.55))
        else:
            self._caption.set_text(text)
            self._caption.set_color(colour)
            self._caption.set_visible(bool(text))

    def _on_scroll(self, event) -> None:
        if self._pixels is None or event.inaxes is not self.ax:
            return
        self.zoom(1.2 if event.button == "up" else 1 / 1.2, (event.xdata, event.ydata))

    def _on_press(self, event) -> None:
        if self._pixels is None or event.inaxes is not self.ax:
            return
        if event.dblclick:
            self.fit()
            return
        if event.button in (1, 2):
            self._drag = ("pan", event.x, event.y, self.ax.get_xlim(), self.ax.get_ylim())
        elif event.button == 3:
            self._drag = ("window", event.x, event.y, self.grey_window)

    def _on_motion(self, event) -> None:
        if self._drag is None:
            self._report_hover(event)
            return
        kind, x0, y0 = self._drag[:3]
        if event.x is None or event.y is None:
            return
        dx, dy = event.x - x0, event.y - y0
        if kind == "pan":
            xlim, ylim = self._drag[3], self._drag[4]
            inv = self.ax.transData.inverted()
            (ax0, ay0), (ax1, ay1) = inv.transform([(0, 0), (dx, dy)])
            self.ax.set_xlim(xlim[0] - (ax1 - ax0), xlim[1] - (ax1 - ax0))
            self.ax.set_ylim(ylim[0] - (ay1 - ay0), ylim[1] - (ay1 - ay0))
            self.draw_idle()
        else:
            low, high = self._drag[3]
            width = max(0.02, (high - low) * (1.0 + dx / 200.0))
            level = (low + high) / 2 + dy / 400.0
            self.set_window(level - width / 2, level + width / 2)
            self.windowChanged.emit(*self.grey_window)

    def _on_release(self, event) -> None:
        self._drag = None

    def _report_hover(self, event) -> None:
        if self._pixels is None or event.inaxes is not self.ax or event.xdata is None:
            self.hovered.emit("")
            return
        h, w = self._pixels.shape
        x, y = int(round(event.xdata)), int(round(event.ydata))
        if 0 <= x < w and 0 <= y < h:
            text = f"x {x}, y {y}: grey {self._pixels[y, x]:.3f}"
            if self._overlay is not None and self.overlay_visible:
                cam = self._overlay.cam
                ch, cw = cam.shape
                text += f", CAM {cam[min(ch - 1, y * ch // h), min(cw - 1, x * cw // w)]:+.2f}"
            self.hovered.emit(text)
        else:
            self.hovered.emit("")
