"""The text drawn over the image, laid out together so that no block covers another or leaves the image.

The verdict badge has the top of the image to itself (centred, wrapped to the image's width); the top
corners sit below it, side by side, each line elided in the middle to its share of the width (so a
file name keeps its start and its extension); the bottom corners sit on the bottom edge the same way,
and the overlay's note (wrapped) above them. Top-corner lines that would reach down into the bottom
blocks are left out, last lines first. Everything is measured with the renderer that draws it.
"""

from __future__ import annotations

from collections.abc import Callable

from matplotlib.transforms import IdentityTransform

ELLIPSIS = "\u2026"
MARGIN_PT = 3.0  # from the image's edge to a block, and between blocks
SLACK_PX = 3.0  # the outline drawn round corner text, and rounding
TYPE_SIZES = (11, 10, 9)  # the badge's and the note's type, largest first


def elide_middle(text: str, width: float, measure: Callable[[str], float]) -> str:
    """``text``, or its start and end joined by an ellipsis, no wider than ``width``
    ("NORMAL2-IM-06…0001.jpeg"); just the ellipsis when even two characters do not fit."""
    if measure(text) <= width:
        return text
    lo, hi = 0, len(text) - 1  # characters kept: the largest count whose elided form fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if measure(_cut(text, mid)) <= width:
            lo = mid
        else:
            hi = mid - 1
    return _cut(text, lo) if lo >= 2 else ELLIPSIS


def _cut(text: str, keep: int) -> str:
    head = (keep + 1) // 2
    return text[:head] + ELLIPSIS + (text[len(text) - (keep - head):] if keep - head else "")


def wrap_words(text: str, width: float, measure: Callable[[str], float]) -> list[str]:
    """``text`` (its own line breaks kept) as lines no wider than ``width``: broken between words, a word
    wider than the line broken inside it. Nothing is left out."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if measure(candidate) <= width or not candidate:
                line = candidate
                continue
            if line:
                lines.append(line)
            while len(word) > 1 and measure(word) > width:
                cut = max(1, max((i for i in range(1, len(word)) if measure(word[:i]) <= width), default=1))
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        lines.append(line)
    return lines


def share_width(left: float, right: float, width: float, gap: float) -> tuple[float, float]:
    """Widths for two blocks side by side that need ``left`` and ``right``: what they need when both fit,
    else the narrower keeps its need (up to half) and the other gets the rest."""
    if not left or not right:
        return (width, 0.0) if left else (0.0, width)
    if left + right + gap <= width:
        return left, right
    half = (width - gap) / 2
    if left <= half:
        return left, width - gap - left
    if right <= half:
        return width - gap - right, right
    return half, half


class OverlayText:
    """Lays out a badge, four corner texts and a note (matplotlib ``Text`` artists over ``ax``)
    within the axes' box; :meth:`apply` sets each artist's lines and place for one draw."""

    def __init__(self, ax, badge, corners: dict, note):
        self.ax, self.badge, self.corners, self.note = ax, badge, corners, note
        for artist in (badge, note, *corners.values()):
            artist.set_transform(IdentityTransform())  # placed in display pixels at each draw
            artist.set_clip_on(False)

    def apply(self, renderer, badge: str, corners: dict[str, list[str]], note: str) -> None:
        """Show ``badge`` and ``note`` (wrapped) and ``corners`` (lines, elided) inside the axes."""
        ax = self.ax
        ax.apply_aspect()
        box = ax.bbox
        px = renderer.points_to_pixels
        m = px(MARGIN_PT)
        width = box.width - 2 * m

        def measure_with(artist):
            prop = artist.get_fontproperties()
            return lambda s: renderer.get_text_width_height_descent(s, prop, ismath=False)[0] + SLACK_PX if s else 0.0

        # the badge: top centre, its own row (smaller type rather than more than two lines, down to 9 pt)
        top = box.y1 - m
        if badge:
            lines = self._fit_type(self.badge, badge, width, renderer, measure_with, 2)
            pad = px(self._pad(self.badge))
            self._place(self.badge, "\n".join(lines), (box.x0 + box.width / 2, top - pad), "center", "top")
            top -= self._extent(self.badge, renderer).height + 2 * pad + m
        else:
            self.badge.set_visible(False)
        # the bottom corners, then the note above them
        bottom = box.y0 + m
        used = self._pair(renderer, corners, ("bottom_left", "bottom_right"), box, m, bottom, "bottom", measure_with)
        floor = bottom + used + (m if used else 0)
        if note:
            lines = self._fit_type(self.note, note, width, renderer, measure_with, 2)
            pad = px(self._pad(self.note))
            self._place(self.note, "\n".join(lines), (box.x0 + box.width / 2, floor + pad), "center", "bottom")
            floor += self._extent(self.note, renderer).height + 2 * pad + m
        else:
            self.note.set_visible(False)
        # the top corners, below the badge, without reaching the bottom blocks
        kept = {k: list(v) for k, v in corners.items()}
        while True:
            used = self._pair(renderer, kept, ("top_left", "top_right"), box, m, top, "top", measure_with)
            if top - used >= floor or not any(kept.get(k) for k in ("top_left", "top_right")):
                break
            longer = max(("top_left", "top_right"), key=lambda k: len(kept.get(k) or []))
            kept[longer] = kept[longer][:-1]  # the last line of the longer block goes first

    def _pair(self, renderer, corners, names, box, m, y, va, measure_with) -> float:
        """Place two corner blocks side by side at height ``y``; returns the height they take."""
        left_artist, right_artist = (self.corners[n] for n in names)
        left_lines, right_lines = (list(corners.get(n) or []) for n in names)
        measure = measure_with(left_artist)
        need = [max(map(measure, lines), default=0.0) for lines in (left_lines, right_lines)]
        widths = share_width(need[0], need[1], box.width - 2 * m, 2 * m)
        height = 0.0
        for artist, lines, w, x, ha in ((left_artist, left_lines, widths[0], box.x0 + m, "left"),
                                        (right_artist, right_lines, widths[1], box.x1 - m, "right")):
            if not lines:
                artist.set_visible(False)
                continue
            text = "\n".join(elide_middle(line, w, measure) for line in lines)
            self._place(artist, text, (x, y), ha, va)
            height = max(height, self._extent(artist, renderer).height)
        return height

    def _fit_type(self, artist, text: str, width: float, renderer, measure_with, most: int) -> list[str]:
        """``text`` wrapped for ``artist`` at the largest of :data:`TYPE_SIZES` that needs at most ``most`` lines
        (the smallest when none does)."""
        for size in TYPE_SIZES:
            artist.set_fontsize(size)
            pad = renderer.points_to_pixels(self._pad(artist))
            lines = wrap_words(text, width - 2 * pad, measure_with(artist))
            if len(lines) <= most:
                break
        return lines

    @staticmethod
    def _place(artist, text: str, xy, ha: str, va: str) -> None:
        artist.set_text(text)
        artist.set_position(xy)
        artist.set_horizontalalignment(ha)
        artist.set_verticalalignment(va)
        artist.set_visible(bool(text))

    @staticmethod
    def _extent(artist, renderer):
        return artist.get_window_extent(renderer)

    @staticmethod
    def _pad(artist) -> float:
        """The padding in points of ``artist``'s box (0 without one)."""
        patch = artist.get_bbox_patch()
        if patch is None:
            return 0.0
        return getattr(patch.get_boxstyle(), "pad", 0.0) * artist.get_fontsize()
