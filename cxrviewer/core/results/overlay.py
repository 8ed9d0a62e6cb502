"""CAM -> coloured overlay on the grey radiograph. Qt-free (numpy, scipy, matplotlib, Pillow).

Shared by the viewer's canvas and by exports. The building blocks:

- :func:`cam_for_display` turns a result's low-resolution CAMs into the map shown
  for one class, upsampled to the image, with the colour limits ``(vmin, vmax)``
  of the chosen scale;
- :func:`compose` blends that map (a colormap, jet by default) over the
  windowed grey image and returns RGB ``uint8``;
- :func:`render_export` adds a colour bar and a caption: the PNG of an export.

The map shown for class ``c`` is its *evidence* map in logit units:
``(cam_c + b_c) - mean_k≠c (cam_k + b_k)``, whose spatial mean is
``logit_c - mean of the other logits`` (for two classes: the log-odds of ``c``).
Two scales colour it: ``"image"`` stretches each image's own min..max over the
colormap (the seed article's look: every image glows somewhere), ``"fixed"``
uses one range in logit units for all images (``model.meta["cam_range"]`` when the
model has one, else :data:`DEFAULT_CAM_RANGE`), so a confident NORMAL image stays
cold on the PNEUMONIA map while a PNEUMONIA image glows.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from ..io.radiograph import Radiograph
from .annotate import Annotations, draw_corners, font, font_px, text_block, with_measurements, wrap
from .file_result import FileResult

SCALES = ("image", "fixed")
DEFAULT_CAM_RANGE = (-8.0, 8.0)
"""Fixed-scale colour limits (logit units) for models whose file has no ``cam_range``."""
DEFAULT_ALPHA = 0.4
DEFAULT_CMAP = "jet"


# -- the map ------------------------------------------------------------------------
def upsample_cam(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an ``h x w`` map smoothly to ``size`` (H, W) as float32.

    Cubic spline, identical to ``scipy.ndimage.zoom(cam, ..., order=3,
    mode="nearest", grid_mode=True)`` but computed as two small matrix products,
    so a 7 x 7 map reaches 2,000 x 2,000 pixels in milliseconds.
    """
    cam = np.asarray(cam)
    if cam.ndim != 2 or cam.size == 0:
        raise ValueError(f"cam must be a non-empty 2-D array, got shape {cam.shape}")
    if not np.issubdtype(cam.dtype, np.number):
        raise ValueError(f"cam must be numeric, got {cam.dtype}")
    H, W = _check_size(size)
    h, w = cam.shape
    rows, cols = _spline_matrix(h, H), _spline_matrix(w, W)
    return (rows @ cam.astype(np.float32) @ cols.T).astype(np.float32, copy=False)


@lru_cache(maxsize=64)
def _spline_matrix(n: int, N: int) -> np.ndarray:
    """``N x n`` matrix that maps n samples to N by ndimage's cubic-spline zoom."""
    m = ndimage.zoom(np.eye(n, dtype=np.float64), (N / n, 1.0), order=3, mode="nearest", grid_mode=True)
    if m.shape != (N, n):  # rounding in zoom's output shape; never expected
        raise AssertionError(f"spline matrix shape {m.shape} != {(N, n)}")
    m = m.astype(np.float32)
    m.flags.writeable = False
    return m


def class_evidence(cams: np.ndarray, logits: Any, index: int) -> np.ndarray:
    """Evidence map of class ``index`` (h x w, logit units) from a result's ``cams`` and ``logits``.

    ``(cams[c] + b_c) - mean over k != c of (cams[k] + b_k)`` with ``b_k = logits[k] -
    mean(cams[k])`` (the classifier's bias). Its spatial mean is ``logits[c]`` minus the
    mean of the other logits. Use this function to fit a model's ``cam_range``.
    """
    cams = np.asarray(cams, dtype=np.float32)
    logits = np.asarray(logits, dtype=np.float32).reshape(-1)
    if cams.ndim != 3 or cams.shape[0] != logits.shape[0] or cams.shape[0] < 1:
        raise ValueError(f"cams must be K x h x w with K = len(logits); got {cams.shape} and {logits.shape[0]} logits")
    k = cams.shape[0]
    if not 0 <= index < k:
        raise ValueError(f"class index {index} out of range 0..{k - 1}")
    bias = logits - cams.mean(axis=(1, 2))
    full = cams + bias[:, None, None]
    if k == 1:
        return full[0]
    others = np.delete(full, index, axis=0).mean(axis=0)
    return full[index] - others


def cam_range_from_meta(meta: dict[str, Any] | None) -> tuple[float, float]:
    """The fixed-scale range of a model: ``meta["cam_range"]`` if valid, else :data:`DEFAULT_CAM_RANGE`."""
    value = (meta or {}).get("cam_range")
    try:
        lo, hi = (float(v) for v in value)
        if np.isfinite(lo) and np.isfinite(hi) and lo < hi:
            return lo, hi
    except (TypeError, ValueError):
        pass
    return DEFAULT_CAM_RANGE


def cam_for_display(result: FileResult, class_name: str | None = None, size: tuple[int, int] | None = None,
                    scale: str = "image", cam_range: tuple[float, float] | None = None) -> tuple[np.ndarray, float, float]:
    """The map to draw for ``class_name`` (default: the predicted class) and its colour limits.

    ``size``: (H, W) to upsample to (default: the result's image size).
    ``scale``: "image" (limits = this map's min and max) or "fixed" (limits =
    ``cam_range``, default :data:`DEFAULT_CAM_RANGE`). Returns ``(H x W float32, vmin, vmax)``.
    """
    if result.cams is None or result.logits is None:
        raise ValueError(f"{result.path.name}: no CAM (the file failed: {result.error})")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    names = list(result.probs) or [str(i) for i in range(len(result.logits))]
    name = class_name if class_name is not None else (result.predicted or result.label)
    if name not in names:
        raise ValueError(f"unknown class {name!r}; the model's classes are {', '.join(names)}")
    if size is None:
        if result.image_size is None:
            raise ValueError("size is needed: the result has no image size")
        size = (result.image_size[1], result.image_size[0])
    cam = upsample_cam(class_evidence(result.cams, result.logits, names.index(name)), size)
    if scale == "fixed":
        lo, hi = _check_range(cam_range) if cam_range is not None else DEFAULT_CAM_RANGE
        return cam, lo, hi
    lo, hi = float(cam.min()), float(cam.max())
    if not hi > lo:
        hi = lo + 1e-6
    return cam, lo, hi


# -- colouring ------------------------------------------------------------------------
@lru_cache(maxsize=16)
def colormap_lut(cmap: str = DEFAULT_CMAP) -> np.ndarray:
    """256 x 3 ``uint8`` table of a matplotlib colormap (any registered name, e.g. "jet", "inferno")."""
    import matplotlib

    try:
        cm = matplotlib.colormaps[cmap]
    except (KeyError, TypeError):
        raise ValueError(f"unknown colormap {cmap!r}") from None
    lut = np.round(cm(np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)
    lut.flags.writeable = False
    return lut


def window_pixels(pixels: np.ndarray, window: tuple[float, float] | None = None, invert: bool = False) -> np.ndarray:
    """Grey values in [0, 1] after a window ``(low, high)`` (in pixel units) and optional inversion."""
    p = _check_pixels(pixels)
    if window is not None:
        lo, hi = (float(v) for v in window)
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise ValueError(f"window must be (low, high) with low < high, got {window!r}")
        p = (p - lo) / (hi - lo)
    p = np.clip(p, 0.0, 1.0)
    return 1.0 - p if invert else p


def compose(pixels: np.ndarray, cam: np.ndarray | None, vmin: float, vmax: float, alpha: float = DEFAULT_ALPHA,
            cmap: str = DEFAULT_CMAP, window: tuple[float, float] | None = None, invert: bool = False) -> np.ndarray:
    """Blend ``cam`` (H x W, coloured by ``cmap`` over ``vmin..vmax``) over the grey image.

    ``pixels``: H x W grey in [0, 1] (a :class:`Radiograph`'s ``pixels``);
    ``window``/``invert``: see :func:`window_pixels`; ``alpha`` in [0, 1] is the
    overlay's opacity (0, or ``cam=None``, gives the grey image alone).
    Returns H x W x 3 ``uint8``.
    """
    grey = window_pixels(pixels, window, invert)
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    base = _to_uint8(grey)
    if cam is None or alpha == 0:
        return np.repeat(base[:, :, None], 3, axis=2)
    cam = np.asarray(cam)
    if cam.shape != grey.shape:
        raise ValueError(f"cam shape {cam.shape} differs from the image's {grey.shape}; upsample it first")
    vmin, vmax = float(vmin), float(vmax)
    if not (np.isfinite(vmin) and np.isfinite(vmax) and vmax > vmin):
        raise ValueError(f"need vmin < vmax, got {vmin}, {vmax}")
    index = _to_uint8((np.asarray(cam, dtype=np.float32) - np.float32(vmin)) / np.float32(vmax - vmin))
    table = _blend_table(cmap, round(float(alpha), 4))
    return np.take(table, (base.astype(np.uint16) << 8) | index, axis=0)


def _to_uint8(unit: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (clipped; NaN -> 0) to 0..255, rounded."""
    v = np.nan_to_num(np.asarray(unit, dtype=np.float32), nan=0.0)
    np.clip(v, 0.0, 1.0, out=v)
    v *= np.float32(255.0)
    v += np.float32(0.5)
    return v.astype(np.uint8)


@lru_cache(maxsize=8)
def _blend_table(cmap: str, alpha: float) -> np.ndarray:
    """65,536 x 3 ``uint8``: row ``(grey << 8) | index`` = grey blended with colour ``index`` at ``alpha``."""
    lut = colormap_lut(cmap).astype(np.float32)
    grey = np.arange(256, dtype=np.float32)[:, None, None]
    table = np.round(grey * (1.0 - alpha) + lut[None, :, :] * alpha).astype(np.uint8).reshape(65536, 3)
    table.flags.writeable = False
    return table


def overlay_image(radiograph: Radiograph, result: FileResult, class_name: str | None = None, scale: str = "image",
                  cam_range: tuple[float, float] | None = None, alpha: float = DEFAULT_ALPHA, cmap: str = DEFAULT_CMAP,
                  window: tuple[float, float] | None = None, invert: bool = False) -> np.ndarray:
    """RGB ``uint8`` composite at the radiograph's own pixel size (see :func:`compose`)."""
    pixels = _check_pixels(radiograph.pixels)
    cam, vmin, vmax = cam_for_display(result, class_name, pixels.shape, scale, cam_range)
    return compose(pixels, cam, vmin, vmax, alpha, cmap, window, invert)


# -- the export figure --------------------------------------------------------------
@dataclass(frozen=True)
class MapLayer:
    """A map an export draws instead of the result's evidence map: ``grid`` (any size, upsampled to the
    image) with its colour limits, and what the caption calls it; ``grid`` None draws no colours, only
    the caption (for example "no positive evidence for PNEUMONIA")."""

    grid: np.ndarray | None
    vmin: float
    vmax: float
    caption: str


def render_export(radiograph: Radiograph, result: FileResult, class_name: str | None = None, scale: str = "image",
                  cam_range: tuple[float, float] | None = None, alpha: float = DEFAULT_ALPHA, cmap: str = DEFAULT_CMAP,
                  window: tuple[float, float] | None = None, invert: bool = False,
                  model_name: str | None = None, annotations: Annotations | None = None,
                  map_layer: MapLayer | None = None) -> Image.Image:
    """The overlay PNG of an export: composite, colour bar and caption, at the image's own size.

    The caption (bottom, wrapped to the width, never cut) names the predicted class and its
    probability, the class whose map is shown and the scale, and ``model_name`` in full; the
    colour bar (top right) is labelled with the limits (logit units for the evidence map).
    ``map_layer``: another map to draw (another method's, or none at all with a note), named in the
    caption. ``annotations``: measurements and four-corner text burned in too
    (:mod:`cxrviewer.core.results.annotate`). Text scales with the image, with a legible minimum.
    """
    pixels = _check_pixels(radiograph.pixels)
    h, w = pixels.shape
    name = class_name if class_name is not None else (result.predicted or result.label)
    if map_layer is None:
        cam, vmin, vmax = cam_for_display(result, name, (h, w), scale, cam_range)
        what = f"CAM {name}, {scale} scale"
    else:
        cam = upsample_cam(map_layer.grid, (h, w)) if map_layer.grid is not None else None
        vmin, vmax, what = map_layer.vmin, map_layer.vmax, map_layer.caption
    image = Image.fromarray(compose(pixels, cam, vmin, vmax, alpha, cmap, window, invert), "RGB")
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    fnt = font(font_px(w, h))
    margin = max(2, fnt.size // 2)
    a = annotations or Annotations()
    lengths = a.calibration.short() if a.measurements else None
    lines = wrap(export_caption(result, what, model_name, lengths), fnt, w - 2 * margin)
    caption_top = text_block(draw, lines, fnt, margin, h - margin, bottom=True)[1]
    boxes = draw_corners(draw, a.corners, (w, h), fnt, margin, bottom_limit=caption_top - margin)
    top = boxes["top_right"][3] + margin if "top_right" in boxes else margin
    if cam is not None:
        _colour_bar(layer, draw, (cmap, vmin, vmax), fnt, (w - margin, top), caption_top - margin)
    return Image.alpha_composite(with_measurements(image.convert("RGBA"), a, fnt), layer).convert("RGB")


def export_caption(result: FileResult, what: str, model_name: str | None, lengths: str | None = None) -> str:
    """The export's caption: verdict (or OUT OF SCOPE), ``what`` map is shown (class, scale), the model's
    full name, and where measured lengths come from (``lengths``)."""
    shown = result.predicted or result.label
    prob = result.probs.get(shown, float("nan")) if shown else float("nan")
    verdict = f"{shown} p={prob:.2f}" if result.in_scope is not False else f"OUT OF SCOPE (model: {shown} p={prob:.2f})"
    parts = [verdict, what]
    if model_name:
        parts.append(f"model {model_name}")
    if lengths:
        parts.append(lengths)
    return " | ".join(parts)


def _colour_bar(layer: Image.Image, draw: ImageDraw.ImageDraw, colours: tuple[str, float, float], fnt: Any,
                top_right: tuple[int, int], bottom_limit: int) -> None:
    """A vertical colour bar (vmax at the top) whose top right corner is ``top_right``, labelled on its left."""
    cmap, vmin, vmax = colours
    w, h = layer.size
    x1, y0 = top_right
    bar_w = max(4, round(min(w, h) * 0.025))
    bar_h = min(max(16, round(h * 0.35)), bottom_limit - y0)
    if bar_h < 16:
        return  # no room left between the corner text and the caption
    x0 = x1 - bar_w
    ramp = colormap_lut(cmap)[np.linspace(255, 0, bar_h).round().astype(np.uint8)]
    layer.paste(Image.fromarray(np.repeat(ramp[:, None, :], bar_w, axis=1), "RGB").convert("RGBA"), (x0, y0))
    draw.rectangle((x0 - 1, y0 - 1, x1, y0 + bar_h), outline=(255, 255, 255, 255))
    gap = max(2, fnt.size // 3)
    text_block(draw, [_bar_value(vmax)], fnt, x0 - 2 * gap, y0, right=True)
    text_block(draw, [_bar_value(vmin)], fnt, x0 - 2 * gap, y0 + bar_h, right=True, bottom=True)


def _bar_value(v: float) -> str:
    """A colour-bar limit: one decimal for logit-sized values, three significant digits for small ones."""
    return f"{v:+.1f}" if abs(v) >= 1 or v == 0 else f"{v:+.2g}"


# -- checks ----------------------------------------------------------------------------
def _check_size(size: Any) -> tuple[int, int]:
    try:
        H, W = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (H, W), got {size!r}") from None
    if H < 1 or W < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return H, W


def _check_range(value: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"cam_range must be (low, high), got {value!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"cam_range must be finite with low < high, got {value!r}")
    return lo, hi


def _check_pixels(pixels: Any) -> np.ndarray:
    p = np.asarray(pixels)
    if p.ndim != 2 or p.size == 0:
        raise ValueError(f"pixels must be a non-empty 2-D grey image, got shape {p.shape}")
    if p.dtype == np.uint8:
        return p.astype(np.float32) / 255.0
    if not np.issubdtype(p.dtype, np.floating):
        raise ValueError(f"pixels must be float in [0, 1] or uint8, got {p.dtype}")
    return p.astype(np.float32, copy=False)
