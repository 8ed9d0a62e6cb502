"""Text and measurements burned into an export image (Pillow). Qt-free.

Sizes follow the image: the font is :data:`TEXT_FRACTION` of the image's shorter side,
never below :data:`MIN_FONT_PX`, so a caption stays legible on a 224 px export and in
proportion on a 2,000 px one. Text is wrapped to the image's width, never truncated;
every block sits on a translucent dark box.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from .measurements import Calibration, Measurement

MIN_FONT_PX = 11
TEXT_FRACTION = 0.022
MEASURE_RGBA = (255, 212, 0, 255)
CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")


@dataclass(frozen=True)
class Annotations:
    """What is burned in besides the overlay: ``measurements`` (points in full-resolution pixels of an image
    ``full_width`` wide, with their ``calibration``) and four-corner text (``corners``: corner name -> lines)."""

    measurements: Sequence[Measurement] = ()
    calibration: Calibration = Calibration()
    full_width: int | None = None
    corners: Mapping[str, Sequence[str]] = field(default_factory=dict)


def font_px(width: int, height: int) -> int:
    """The text size for an image of ``width`` x ``height``."""
    return max(MIN_FONT_PX, round(min(width, height) * TEXT_FRACTION))


@lru_cache(maxsize=32)
def font(size: int) -> Any:
    """DejaVu Sans (shipped with matplotlib) at ``size`` pixels, or Pillow's default font at that size."""
    try:
        from matplotlib import font_manager

        return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)
    except Exception:  # noqa: BLE001 - any font trouble: fall back, never fail an export
        return ImageFont.load_default(size)


def wrap(text: str, fnt: Any, width: float) -> list[str]:
    """``text`` as lines no wider than ``width`` pixels: broken between words, and inside a word only
    when the word alone is too wide. Nothing is dropped."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if fnt.getlength(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        while fnt.getlength(word) > width and len(word) > 1:
            cut = max(1, max(i for i in range(1, len(word) + 1) if fnt.getlength(word[:i]) <= width or i == 1))
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    lines.append(line)
    return lines


def text_block(draw: ImageDraw.ImageDraw, lines: Sequence[str], fnt: Any, x: float, y: float,
               right: bool = False, bottom: bool = False) -> tuple[int, int, int, int]:
    """Draw ``lines`` as one block with its corner at (x, y): the block extends left of x when
    ``right``, up from y when ``bottom``. Returns the block's box (with its padding)."""
    step = round(fnt.size * 1.2) if hasattr(fnt, "size") else 12
    pad = max(1, step // 6)
    width = max((fnt.getlength(t) for t in lines), default=0)
    top = y - step * len(lines) if bottom else y
    left = x - width if right else x
    box = (round(left - pad), round(top - pad), round(left + width + pad), round(top + step * len(lines) + pad))
    draw.rectangle(box, fill=(0, 0, 0, 150))
    for i, text in enumerate(lines):
        draw.text((x, top + i * step), text, font=fnt, anchor="ra" if right else "la", fill=(255, 255, 255, 255))
    return box


def draw_corners(draw: ImageDraw.ImageDraw, corners: Mapping[str, Sequence[str]], size: tuple[int, int],
                 fnt: Any, margin: int, bottom_limit: int | None = None, top_right_x: int | None = None) -> dict:
    """Four-corner text; returns each drawn block's box. Bottom blocks end at ``bottom_limit`` (above a
    caption), the top-right block's right edge is ``top_right_x`` (left of a colour bar)."""
    w, h = size
    bottom = h - margin if bottom_limit is None else bottom_limit
    spots = {"top_left": (margin, margin, False, False),
             "top_right": (w - margin if top_right_x is None else top_right_x, margin, True, False),
             "bottom_left": (margin, bottom, False, True), "bottom_right": (w - margin, bottom, True, True)}
    boxes = {}
    for corner in CORNERS:
        lines = [str(t) for t in corners.get(corner) or () if str(t)]
        if lines:
            x, y, right, up = spots[corner]
            wrapped = [part for t in lines for part in wrap(t, fnt, w / 2 - 2 * margin)]
            boxes[corner] = text_block(draw, wrapped, fnt, x, y, right, up)
    return boxes


def with_measurements(image: Image.Image, annotations: Annotations, fnt: Any) -> Image.Image:
    """``image`` (RGBA) with the measurements drawn in (a layer of its own, so text boxes drawn later darken
    the lines without hiding them)."""
    if not annotations.measurements:
        return image
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw_measurements(ImageDraw.Draw(layer), annotations, image.size, fnt)
    return Image.alpha_composite(image, layer)


def draw_measurements(draw: ImageDraw.ImageDraw, annotations: Annotations, size: tuple[int, int], fnt: Any) -> None:
    """The measurements as lines with end ticks and a numbered label, scaled from full-resolution pixels."""
    w, h = size
    scale = w / annotations.full_width if annotations.full_width else 1.0
    line_w = max(1, round(min(w, h) / 300))
    tick = max(3, round(fnt.size * 0.4)) if hasattr(fnt, "size") else 4
    for i, m in enumerate(annotations.measurements):
        for a, b in m.segments():
            (x0, y0), (x1, y1) = ((round(p[0] * scale), round(p[1] * scale)) for p in (a, b))  # pixel centres
            draw.line((x0, y0, x1, y1), fill=MEASURE_RGBA, width=line_w)
            for x, y in ((x0, y0), (x1, y1)):
                draw.line((x - tick, y, x + tick, y), fill=MEASURE_RGBA, width=line_w)
                draw.line((x, y - tick, x, y + tick), fill=MEASURE_RGBA, width=line_w)
        x, y = (v * scale for v in m.points[-1])
        lines = wrap(f"{i + 1}: {short_label(m, annotations.calibration)}", fnt, w / 2)
        above = y - tick > 1.2 * fnt.size * len(lines)  # above its last point, unless too near the top
        right = x > w / 2
        text_block(draw, lines, fnt, x - tick if right else x + tick, y - tick if above else y + tick, right, above)


def short_label(m: Measurement, calibration: Calibration) -> str:
    """The value alone (``"52.3 mm"``, ``"31.0°"``, ``"CTR 0.48"``): what fits beside a line on the image."""
    reading = m.read(calibration)
    return f"CTR {reading.value:.2f}" if m.kind == "ctr" else reading.text


def burn_in(image: Image.Image, annotations: Annotations) -> Image.Image:
    """``image`` (RGB) with the measurements and four-corner text of ``annotations`` drawn in."""
    if not annotations.measurements and not annotations.corners:
        return image
    fnt = font(font_px(*image.size))
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw_corners(ImageDraw.Draw(layer), annotations.corners, image.size, fnt, max(2, fnt.size // 2))
    return Image.alpha_composite(with_measurements(image.convert("RGBA"), annotations, fnt), layer).convert("RGB")
