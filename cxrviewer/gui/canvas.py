"""The image view: a matplotlib canvas with the radiograph, its CAM overlay and a colour bar (:mod:`.colour_bar`).

The picture is one RGB image composed by the core (:func:`cxrviewer.core.results.overlay.compose`:
window, invert, jet overlay at the chosen opacity), so the canvas shows exactly
what exports write, and a redraw only resamples one ``uint8`` image. A reduced
preview is drawn while the whole image is in view, full resolution when zoomed in.

The canvas draws the image's *linear grey* (modality values, no window) through the
view's window in modality units, converted by the image's :class:`ValueScale`.

Mouse: wheel zooms about the cursor, left or middle drag pans (the image never leaves the
view), right drag sets window (horizontal) and level (vertical), a whole view's drag being
the image's whole value range; double-click asks for a reset (fit and default window). A measuring
``tool`` set on the canvas sees presses first (left clicks place its points).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.transforms import IdentityTransform
from PIL import Image
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QSizePolicy

from ..core.io.corner_text import CornerInfo
from ..core.results.overlay import DEFAULT_CMAP, compose, upsample_cam
from .colour_bar import ColourBar
from ..core.io.window import ValueScale
from .corners import CornerText
from .overlay_layout import OverlayText
from .theme import CANVAS_BACKGROUND, CAPTION_BOX, TEXT
from .view_state import ViewState
from .viewport import clamp_limits, dragged_window


def fit_size(shape: tuple[int, int], box: tuple[float, float]) -> tuple[int, int] | None:
    """(H, W) in whole pixels of an image of ``shape`` scaled to fit ``box`` (H, W); None for no room."""
    (h, w), (box_h, box_w) = shape[:2], box
    if box_w < 2 or box_h < 2:
        return None
    scale = min(box_w / w, box_h / h)
    return max(1, round(h * scale)), max(1, round(w * scale))


class ScreenImage(AxesImage):
    """An ``AxesImage`` that hands an RGBA ``uint8`` array already at screen size (one array pixel
    per device pixel over its extent, drawn upright, as :class:`ImageCanvas` composes the fitted
    view) to the renderer as it is, skipping matplotlib's resampling: the same pixels, several
    times faster. Anything else is drawn the usual way."""

    direct = True

    def make_image(self, renderer, magnification=1.0, unsampled=False):
        a = self.get_array()  # (public API; the pixel-for-pixel test in tests/gui catches a change here)
        if (self.direct and not unsampled and magnification == 1.0 and a is not None and a.dtype == np.uint8
                and a.ndim == 3 and a.shape[2] == 4 and self.get_interpolation() == "none"):
            x0, x1, y0, y1 = self.get_extent()
            first, last = (y1, y0) if self.origin == "upper" else (y0, y1)  # data y of array row 0 and row -1
            (left, top), (right, bottom) = self.get_transform().transform([(x0, first), (x1, last)])
            clip = self.get_clip_box() or self.axes.bbox
            if (abs(right - left - a.shape[1]) <= 1 and abs(top - bottom - a.shape[0]) <= 1  # 1:1, upright
                    and left >= clip.x0 - 1 and right <= clip.x1 + 1 and bottom >= clip.y0 - 1 and top <= clip.y1 + 1):
                return a[::-1], left, bottom, IdentityTransform()  # the renderer's rows run bottom-up
        return super().make_image(renderer, magnification, unsampled)


@dataclass
class Overlay:
    """One map to draw over the image: a low-resolution map (upsampled smoothly when drawn, over ``box``
    only when the model cropped a frame: fractions, see :func:`~cxrviewer.core.results.overlay.upsample_cam`),
    its colour limits and a label for the colour bar; or no map (``cam`` None) and a ``note`` saying why."""

    cam: np.ndarray | None
    vmin: float
    vmax: float
    label: str
    note: str = ""
    name: str = "CAM"  # what the hover readout calls the map's values
    box: tuple[float, float, float, float] | None = None  # the part of the image the map covers (None: all)


class ImageCanvas(FigureCanvasQTAgg):
    """Shows one radiograph and one overlay as a :class:`ViewState` says; knows nothing about files,
    models or tables. Zoom and pan are its own."""

    windowDragged = Signal(object)        # the Window (modality units) a right-drag asks for (drawn on set_view)
    resetRequested = Signal()             # double-click: fit the image and reset its window
    hovered = Signal(str)                 # "x, y: value" under the cursor, "" when outside
    fitBoxChanged = Signal()              # resized: fit_box() changed

    def __init__(self, parent=None):
        super().__init__(Figure(facecolor=CANVAS_BACKGROUND))
        if parent is not None:
            self.setParent(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 240)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.ax = self.figure.add_axes((0.01, 0.01, 0.86, 0.98))
        self.colour_bar = ColourBar(self.figure)
        self.cax = self.colour_bar.cax
        self.ax.set_facecolor(CANVAS_BACKGROUND)
        self.ax.set_axis_off()
        self._pixels: np.ndarray | None = None
        self._preview: np.ndarray | None = None
        self._shown: np.ndarray | None = None
        self._image = None
        self._cam_cache: tuple | None = None
        self._base_cache: tuple | None = None
        self._fitted = True  # whole image in view: drawn from a copy made at screen size
        self._caption = self.ax.text(0.5, 0.985, "", ha="center", va="top", fontsize=11, fontweight="bold",
                                     color=TEXT, zorder=5, visible=False,
                                     bbox=dict(boxstyle="round,pad=0.35", fc=CAPTION_BOX, ec="none", alpha=0.55))
        self._caption_text = ""
        self._note_text = ""
        self._message = self.ax.text(0.5, 0.5, "", transform=self.ax.transAxes, ha="center", va="center",
                                     color=TEXT, fontsize=12, wrap=True)
        self._note = self.ax.text(0.5, 0.01, "", transform=self.ax.transAxes, ha="center", va="bottom", fontsize=11,
                                  color=TEXT, zorder=5, bbox=dict(boxstyle="round,pad=0.35", fc=CAPTION_BOX, ec="none", alpha=0.55))
        self._overlay: Overlay | None = None
        self._view = ViewState()
        self._scale = ValueScale()
        self.corners = CornerText(self.ax)
        self.text_layout = OverlayText(self.ax, self._caption, self.corners.artists, self._note)
        self._drag: tuple | None = None
        self.tool = None  # a measuring tool (gui.measure_tool.MeasureTool) offered mouse events first
        self.colour_bar.lay_out(self.ax)
        self.mpl_connect("scroll_event", self._on_scroll)
        self.mpl_connect("button_press_event", self._on_press)
        self.mpl_connect("motion_notify_event", self._on_motion)
        self.mpl_connect("button_release_event", self._on_release)
        self.show_message("Open a folder (Ctrl+O) or drop radiographs here")

    # -- content -----------------------------------------------------------------
    @property
    def has_image(self) -> bool:
        return self._pixels is not None

    @property
    def image_shape(self) -> tuple[int, int] | None:
        """(H, W) of the image on show, None when there is none."""
        return None if self._pixels is None else self._pixels.shape[:2]

    @property
    def view(self) -> ViewState:
        return self._view

    def show_message(self, text: str) -> None:
        """Clear the image and show ``text`` in the middle of the view."""
        self._pixels = self._preview = self._shown = None
        self.corners.info = None
        self._overlay = None
        self._cam_cache = None
        if self._image is not None:
            self._image.remove()
        self._image = None
        self._caption_text = self._note_text = ""
        self.cax.set_visible(False)
        self._message.set_text(text)
        self._message.set_visible(True)
        self.ax.set_aspect("auto")
        self.ax.set_xlim(0, 1)
        self.ax.set_ylim(1, 0)
        self.draw_idle()

    def set_image(self, pixels: np.ndarray, preview: np.ndarray | None = None, overlay: Overlay | None = None,
                  scale: ValueScale | None = None) -> None:
        """Show linear grey ``pixels`` (H x W, dense = bright) with ``overlay``, fitted to the view.

        ``preview``: a reduced copy drawn while the whole image is in view (full
        resolution is drawn once zoomed in far enough to need it); ``scale``: the
        pixels' map to modality values (default: grey is the value).
        """
        self._overlay = overlay
        self._scale = scale or ValueScale()
        if overlay is not None and overlay.cam is not None:
            self.colour_bar.set(overlay.vmin, overlay.vmax, overlay.label)
        self._pixels = pixels
        self._preview = preview if preview is not None else pixels
        self._shown = self._preview
        self._cam_cache = self._base_cache = None
        self._message.set_visible(False)
        h, w = pixels.shape
        extent = (-0.5, w - 0.5, h - 0.5, -0.5)
        if self._image is None:
            self._image = ScreenImage(self.ax, interpolation="bilinear", extent=extent, zorder=1)
            self._image.set_data(np.zeros((*self._shown.shape, 4), np.uint8))
            self.ax.add_image(self._image)
        else:
            self._image.set_extent(extent)
        self._fit_limits()
        self._recompose()

    def set_overlay(self, overlay: Overlay | None) -> None:
        """Show ``overlay`` over the image (or none); the colour bar follows it."""
        self._overlay = overlay
        self._cam_cache = None
        if overlay is None:
            self._set_caption("")
        elif overlay.cam is not None:
            self.colour_bar.set(overlay.vmin, overlay.vmax, overlay.label)
        self._recompose()

    def set_caption(self, text: str, colour: str = TEXT) -> None:
        self._set_caption(text, colour)
        self.draw_idle()

    def set_corner_info(self, info: CornerInfo | None, anonymise: bool = False) -> None:
        """What the four-corner text describes (window and zoom are the canvas's own); None: nothing."""
        self.corners.info, self.corners.anonymise = info, anonymise
        self.draw_idle()

    def show_corners(self, on: bool) -> None:
        self.corners.visible = bool(on)
        self.draw_idle()

    def zoom_factor(self) -> float | None:
        """Screen pixels per image pixel now (None without an image)."""
        if self._pixels is None:
            return None
        target = self._fit_target() if self._fitted else None
        if target is not None:
            return target[1] / self._pixels.shape[1]
        x0, x1 = self.ax.get_xlim()
        return self.ax.bbox.width / max(abs(x1 - x0), 1e-9)

    def draw(self) -> None:
        lines = self.corners.refresh(self._view.window, self.zoom_factor())
        image = self._pixels is not None
        self.colour_bar.wrap_label(self.get_renderer())
        # badge, corners and note laid out together inside the image (none covers another)
        self.text_layout.apply(self.get_renderer(), self._caption_text if image else "", lines if image else {},
                               self._note_text if image else "")
        super().draw()

    @property
    def caption(self) -> str:
        """The badge's whole text ("" when none), however it is wrapped on screen."""
        return self._caption_text if self._pixels is not None else ""

    # -- display settings ------------------------------------------------------
    def set_view(self, view: ViewState) -> None:
        """Draw with ``view``'s window, inversion, overlay switch and opacity (class and scale pick
        the :class:`Overlay`, which the window hands over with :meth:`set_overlay`)."""
        if view != self._view:
            self._view = view
            self._recompose()

    def fit(self) -> None:
        """Show the whole image."""
        if self._pixels is None:
            return
        self._fit_limits()
        self._recompose()

    def zoom(self, factor: float, center: tuple[float, float] | None = None) -> None:
        """Zoom by ``factor`` (> 1 enlarges) about ``center`` in image coordinates."""
        if self._pixels is None:
            return
        x0, x1 = self.ax.get_xlim()
        y0, y1 = self.ax.get_ylim()
        cx, cy = center if center is not None else ((x0 + x1) / 2, (y0 + y1) / 2)
        self._set_limits((cx + (x0 - cx) / factor, cx + (x1 - cx) / factor),
                         (cy + (y0 - cy) / factor, cy + (y1 - cy) / factor))
        self._unfit()

    def rgba(self) -> np.ndarray:
        """What the canvas shows now, as an H x W x 4 uint8 array (renders first)."""
        self.draw()
        return np.asarray(self.buffer_rgba()).copy()

    # -- internals ---------------------------------------------------------------
    def _overlay_shown(self) -> bool:
        return self._view.overlay and self._overlay is not None and self._overlay.cam is not None and self._pixels is not None

    @property
    def note(self) -> str:
        """The overlay's note on show ("" when none), however it is wrapped on screen."""
        return self._note_text if self._pixels is not None else ""

    def _recompose(self) -> None:
        """Compose what is drawn: grey (window, invert) with the overlay at the current opacity."""
        if self._shown is None or self._image is None:
            self.cax.set_visible(False)
            self.draw_idle()
            return
        base, interpolation = self._base()
        cam = None
        o = self._overlay
        if self._overlay_shown():
            key = (id(o), base.shape)
            if self._cam_cache is None or self._cam_cache[0] != key:
                self._cam_cache = (key, upsample_cam(o.cam, base.shape, o.box))
            cam = self._cam_cache[1]
        v = self._view
        rgb = compose(base, cam, o.vmin if o else 0.0, o.vmax if o else 1.0, alpha=v.opacity, cmap=DEFAULT_CMAP,
                      window=self._scale.grey_window(v.window), invert=v.invert)
        rgba = np.empty((*rgb.shape[:2], 4), np.uint8)  # RGBA uint8 is matplotlib's fastest image path
        rgba[..., :3] = rgb
        rgba[..., 3] = 255
        self._image.set_interpolation(interpolation)
        self._image.set_data(rgba)
        self.cax.set_visible(self._overlay_shown())
        self._note_text = o.note if o is not None and v.overlay else ""
        self.draw_idle()

    def _base(self) -> tuple[np.ndarray, str]:
        """The grey array to compose and how matplotlib should resample it.

        Whole image in view: a copy resized (bilinear: smooth when enlarged) to the
        screen size, drawn pixel for pixel ("none"); else the preview or the full
        image, resampled by matplotlib (bilinear when enlarged, never blocky).
        """
        shown = self._shown
        if not self._fitted:
            return shown, self._zoomed_interpolation()
        target = self._fit_target()
        if target is not None and self._preview.shape == target:  # the loader made it at screen size
            return self._preview, "none"
        if target is None:
            return shown, "antialiased"
        key = (id(shown), target)
        if self._base_cache is None or self._base_cache[0] != key:
            resized = Image.fromarray(np.ascontiguousarray(shown, dtype=np.float32), mode="F").resize(
                (target[1], target[0]), Image.Resampling.BILINEAR, reducing_gap=2.0)
            self._base_cache = (key, np.asarray(resized, dtype=np.float32))
        return self._base_cache[1], "none"

    def _zoomed_interpolation(self) -> str:
        """Bilinear while the shown array is enlarged on screen (matplotlib's "antialiased" would go
        nearest-neighbour, blocky, beyond 3x), else antialiased."""
        magnification = (self.zoom_factor() or 1.0) * self._pixels.shape[1] / self._shown.shape[1]
        return "bilinear" if magnification > 1.0 else "antialiased"

    def fit_box(self) -> tuple[float, float]:
        """(H, W) in device pixels of the area a fitted image may fill."""
        pos = self.ax.get_position(original=True)
        return pos.height * self.figure.bbox.height, pos.width * self.figure.bbox.width

    def _fit_target(self) -> tuple[int, int] | None:
        """(H, W) in screen pixels of the whole image fitted into the axes."""
        return fit_size(self._pixels.shape, self.fit_box())

    def _unfit(self) -> None:
        """The view no longer shows exactly the whole image: draw from the preview or full image."""
        was_fitted, self._fitted = self._fitted, False
        if self._pick_resolution() or was_fitted:
            self._recompose()
        else:
            if self._image is not None:
                self._image.set_interpolation(self._zoomed_interpolation())
            self.draw_idle()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.colour_bar.lay_out(self.ax)
        self.fitBoxChanged.emit()
        if self._fitted and self._pixels is not None:
            self._recompose()

    def _fit_limits(self) -> bool:
        self._fitted = True
        h, w = self._pixels.shape
        self.ax.set_xlim(-0.5, w - 0.5)
        self.ax.set_ylim(h - 0.5, -0.5)
        self.ax.set_aspect("equal", adjustable="box")
        return self._pick_resolution()

    def _pick_resolution(self) -> bool:
        """Draw the preview while it has at least one pixel per screen pixel, else the full image.
        Returns whether the shown array changed."""
        if self._pixels is None or self._preview is self._pixels:
            return False
        x0, x1 = self.ax.get_xlim()
        visible = abs(x1 - x0) * self._preview.shape[1] / self._pixels.shape[1]  # preview pixels across the view
        target = self._fit_target() if self._fitted else None  # (the axes box itself follows only at the next draw)
        screen = target[1] if target is not None else self.ax.bbox.width
        wanted = self._pixels if visible < max(1.0, screen) - 0.5 else self._preview
        if wanted is self._shown:
            return False
        self._shown = wanted
        return True

    def _set_caption(self, text: str, colour: str = TEXT) -> None:
        self._caption_text = text
        self._caption.set_color(colour)

    def _on_scroll(self, event) -> None:
        if self._pixels is None or event.inaxes is not self.ax:
            return
        self.zoom(1.2 if event.button == "up" else 1 / 1.2, (event.xdata, event.ydata))

    def _on_press(self, event) -> None:
        if self._pixels is None or event.inaxes is not self.ax:
            return
        if self.tool is not None and self.tool.on_press(event):
            return
        if event.dblclick:
            self._drag = None
            self.resetRequested.emit()
            return
        if event.button in (1, 2):
            self._drag = ("pan", event.x, event.y, self.ax.get_xlim(), self.ax.get_ylim())
            if self._fitted:
                self._unfit()
        elif event.button == 3:
            self._drag = ("window", event.x, event.y, self._scale.grey_window(self._view.window))

    def _on_motion(self, event) -> None:
        if self.tool is not None:
            self.tool.on_motion(event)
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
            self._set_limits((xlim[0] - (ax1 - ax0), xlim[1] - (ax1 - ax0)), (ylim[0] - (ay1 - ay0), ylim[1] - (ay1 - ay0)))
            self.draw_idle()
        else:
            s = self._scale
            span = s.range_width / abs(s.span)  # the image's value range in grey units
            low, high = dragged_window(self._drag[3], dx, dy, (self.ax.bbox.width, self.ax.bbox.height), span)
            self.windowDragged.emit(s.window_from_grey(low, high))

    def _set_limits(self, xlim, ylim) -> None:
        """Show ``xlim``/``ylim``, shifted so that the image stays in view."""
        xlim, ylim = clamp_limits(xlim, ylim, self._pixels.shape)
        self.ax.set_xlim(*xlim)
        self.ax.set_ylim(*ylim)

    def _on_release(self, event) -> None:
        self._drag = None
        if self.tool is not None:
            self.tool.on_release(event)

    def _report_hover(self, event) -> None:
        if self._pixels is None or event.inaxes is not self.ax or event.xdata is None:
            self.hovered.emit("")
            return
        h, w = self._pixels.shape
        x, y = int(round(event.xdata)), int(round(event.ydata))
        if 0 <= x < w and 0 <= y < h:
            s = self._scale
            text = f"x {x}, y {y}: {s.format(s.value(self._pixels[y, x]))}{' ' + s.unit if s.unit else ''}"
            if self._overlay_shown() and self._cam_cache is not None:
                cam = self._cam_cache[1]
                ch, cw = cam.shape
                value = cam[min(ch - 1, y * ch // h), min(cw - 1, x * cw // w)]
                if np.isfinite(value):  # NaN: a frame the model cropped, which the map does not cover
                    text += f", {self._overlay.name} {value:+.2f}"
            self.hovered.emit(text)
        else:
            self.hovered.emit("")
