"""Plain arithmetic of the image view (no Qt): keeping a panned image in view, and the window drag."""

from __future__ import annotations

MIN_WINDOW_FRACTION = 1e-3  # narrowest dragged window, as a fraction of the image's value range


def clamp_limits(xlim: tuple[float, float], ylim: tuple[float, float],
                 shape: tuple[int, int]) -> tuple[tuple[float, float], tuple[float, float]]:
    """``xlim``/``ylim`` shifted (size kept, direction kept) so that the view's centre stays on an image of
    ``shape`` (H, W): a pan never loses the image, and at least a quarter of the view shows it."""
    h, w = shape

    def clamp(lim, size):
        centre = (lim[0] + lim[1]) / 2
        shift = min(max(centre, -0.5), size - 0.5) - centre
        return lim[0] + shift, lim[1] + shift

    return clamp(xlim, w), clamp(ylim, h)


def dragged_window(start: tuple[float, float], dx: float, dy: float, view_size: tuple[float, float],
                   value_range: float) -> tuple[float, float]:
    """Grey (low, high) after a right-drag of ``dx``, ``dy`` screen pixels from window ``start``.

    A drag across the whole view (``view_size`` (W, H) in pixels) changes the width (horizontal, right
    wider) or the level (vertical, up higher) by ``value_range``, the image's whole range in grey units:
    so the feel is the same on 8-bit, 12-bit and 16-bit images.
    """
    low, high = start
    width = max((high - low) + dx / max(view_size[0], 1.0) * value_range, MIN_WINDOW_FRACTION * value_range)
    level = (low + high) / 2 + dy / max(view_size[1], 1.0) * value_range
    return level - width / 2, level + width / 2
