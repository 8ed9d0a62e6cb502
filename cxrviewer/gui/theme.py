"""A dark Fusion palette suited to reading radiographs, and every colour the viewer draws with."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

# -- named colours (the canvas, the table, the details panel and the About box use these) --
CANVAS_BACKGROUND = "#101216"
TEXT = "#c9ced6"           # canvas text, colour-bar ticks
FRAME = "#3a3f47"          # colour-bar outline
CAPTION_BOX = "#000000"    # behind the canvas caption (drawn translucent)
CAPTION_POSITIVE = "#ffb066"
CAPTION_NEGATIVE = "#8fe38f"
CAPTION_OUT_OF_SCOPE = "#ff6b6b"  # the banner over an image whose verdict is withheld
MUTED = "#8a8f98"          # secondary text: labels, queued rows
ERROR = "#d9534f"
POSITIVE = "#e8833a"       # the positive class (e.g. PNEUMONIA), and the intended-use notice
NEGATIVE = "#5cb85c"
PROBABILITY_BAR = "#4a90d9"
DISAGREES_WITH_TRUTH = "#5a2327"  # table cell behind an AI verdict that differs from the folder's class
MEASURE = "#ffd400"        # measurements on the image
MEASURE_SELECTED = "#00e5ff"  # the measurement Delete would remove
MEASURE_DRAFT = "#ff8c00"  # a measurement being placed

_STYLE = """
QToolTip { color: #e6e9ee; background: #2b2f36; border: 1px solid #3a3f47; }
QTableView { gridline-color: #2b2f36; selection-background-color: #2f6db5; }
QHeaderView::section { background: #23272e; color: #c9ced6; padding: 4px 6px; border: none;
                       border-right: 1px solid #2e333b; border-bottom: 1px solid #2e333b; }
QTextBrowser#details { background: #181b20; border: none; padding: 6px; }
QStatusBar { background: #1b1e23; color: #c9ced6; }
QStatusBar QLabel { padding: 0 6px; }
QSplitter::handle { background: #23272e; }
"""


def apply_dark_theme(app: QApplication) -> None:
    """Fusion style, dark palette, and a few style-sheet touches."""
    app.setStyle("Fusion")
    p = QPalette()
    colours = {
        QPalette.ColorRole.Window: "#1e2127", QPalette.ColorRole.WindowText: "#e6e9ee",
        QPalette.ColorRole.Base: "#16191d", QPalette.ColorRole.AlternateBase: "#1c1f25",
        QPalette.ColorRole.ToolTipBase: "#2b2f36", QPalette.ColorRole.ToolTipText: "#e6e9ee",
        QPalette.ColorRole.Text: "#e6e9ee", QPalette.ColorRole.Button: "#2a2e35",
        QPalette.ColorRole.ButtonText: "#e6e9ee", QPalette.ColorRole.BrightText: "#ff6b6b",
        QPalette.ColorRole.Highlight: "#2f6db5", QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#6aa9ff", QPalette.ColorRole.PlaceholderText: "#7d838c",
    }
    for role, colour in colours.items():
        p.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6b7078"))
    app.setPalette(p)
    app.setStyleSheet(_STYLE)
