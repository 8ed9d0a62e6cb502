"""Keep a window within the screen it opens on (a 1366 x 768 laptop gets a window that fits, not one cut off)."""

from __future__ import annotations

from PySide6.QtCore import QRect
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget

LIST_SHARE, DETAILS_SHARE = 0.33, 0.18
MIN_LIST, MAX_LIST, MIN_DETAILS = 300, 560, 240


def split_sizes(width: int) -> list[int]:
    """Default widths of the list, the image and the details for a window ``width`` wide: a third for the list
    (300 to 560 px: a narrower table hides its optional columns), the details at least 240 px, the image the
    rest (at 1366 px: 451, 675, 240; at 1024: 338, 446, 240)."""
    listing = min(MAX_LIST, max(MIN_LIST, round(LIST_SHARE * width)))
    details = max(MIN_DETAILS, round(DETAILS_SHARE * width)) if width >= 1500 else MIN_DETAILS
    return [listing, max(0, width - listing - details), details]


def fit_to_screen(window: QWidget, free: QRect | None = None) -> bool:
    """Shrink ``window`` to the free area of its screen (or ``free``) when it is larger, and move it inside
    that area; True when it had to shrink."""
    if free is None:
        screen = window.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return False
        free = screen.availableGeometry()
    before = window.size()
    frame = window.frameGeometry().size() - window.size()  # the title bar and borders, once shown
    width = min(window.width(), free.width() - frame.width())
    height = min(window.height(), free.height() - frame.height())
    window.resize(max(width, window.minimumSizeHint().width()), max(height, window.minimumSizeHint().height()))
    x = min(max(window.x(), free.left()), free.right() - window.frameGeometry().width() + 1)
    y = min(max(window.y(), free.top()), free.bottom() - window.frameGeometry().height() + 1)
    window.move(max(x, free.left()), max(y, free.top()))
    return window.size() != before
