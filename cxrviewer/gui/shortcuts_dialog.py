"""Help > Keyboard Shortcuts: every key of the window, read from its actions (menus first, in menu order),
plus the keys the results table and the image take without an action (row steps, zoom, window)."""

from __future__ import annotations

import html

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QMenu, QTextBrowser, QVBoxLayout, QWidget

from . import theme
from .keyboard import close_with_keys

#: Keys that are no action's: the table's and the image's own (see :class:`~cxrviewer.gui.keyboard.KeyForwarder`).
OTHER_KEYS = (
    ("Up / Down", "Previous / next row (also from the image)"),
    ("PgUp / PgDn", "A page of rows up / down"),
    ("Home / End", "First / last row"),
    ("Wheel", "Zoom about the pointer"),
    ("Left drag", "Pan"),
    ("Right drag", "Window (across) and level (up and down)"),
    ("Double-click", "Fit and reset the window"),
)


def _plain(text: str) -> str:
    """A menu text without its mnemonic and trailing dots ("&Open Folder..." -> "Open Folder")."""
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&").rstrip(".").strip()


def _keys(action: QAction) -> str:
    return ", ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts() if not k.isEmpty())


def shortcut_rows(window: QWidget) -> list[tuple[str, str, str]]:
    """(menu, what, keys) for every action of ``window`` that has a key: those in the menu bar under their menu
    path ("View > Window Presets"), then the window's other actions under "Other"; each action once."""
    rows, seen = [], set()

    def walk(menu: QMenu, path: str) -> None:
        for action in menu.actions():
            if action.menu() is not None:
                walk(action.menu(), f"{path} > {_plain(action.menu().title())}")
            elif action.shortcuts() and id(action) not in seen:
                seen.add(id(action))
                keys, what = _keys(action), _plain(action.text())
                if what.startswith(keys + " "):  # "3 Lung (darker part)" under the key 3: said once
                    what = what[len(keys) + 1:]
                rows.append((path, what, keys))

    bar = window.menuBar() if hasattr(window, "menuBar") else None
    for top in (bar.actions() if bar is not None else []):
        if top.menu() is not None:
            walk(top.menu(), _plain(top.menu().title()))
    for action in [*window.actions(), *window.findChildren(QAction)]:
        if action.shortcuts() and id(action) not in seen:
            seen.add(id(action))
            rows.append(("Other", _plain(action.text()), _keys(action)))
    return rows


def shortcuts_html(window: QWidget) -> str:
    """The table of :func:`shortcut_rows` grouped by menu, and :data:`OTHER_KEYS`."""
    parts, last = ["<table cellspacing='0' cellpadding='2'>"], None
    for menu, what, keys in shortcut_rows(window):
        if menu != last:
            parts.append(f"<tr><td colspan='2'><b>{html.escape(menu)}</b></td></tr>")
            last = menu
        parts.append(f"<tr><td style='color:{theme.MUTED}' nowrap>&nbsp;&nbsp;{html.escape(keys)}</td>"
                     f"<td>&nbsp;{html.escape(what)}</td></tr>")
    parts.append("<tr><td colspan='2'><b>List and image</b></td></tr>")
    for keys, what in OTHER_KEYS:
        parts.append(f"<tr><td style='color:{theme.MUTED}' nowrap>&nbsp;&nbsp;{html.escape(keys)}</td>"
                     f"<td>&nbsp;{html.escape(what)}</td></tr>")
    parts.append("</table>")
    return "".join(parts)


class ShortcutsDialog(QDialog):
    """A scrolling list of the window's keys (made when opened, so it matches the actions of the moment)."""

    def __init__(self, window: QWidget):
        super().__init__(window)
        self.setWindowTitle("Keyboard Shortcuts - cxrviewer")
        self.view = QTextBrowser(self)
        self.view.setHtml(shortcuts_html(window))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, parent=self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.view, 1)
        layout.addWidget(buttons)
        self.close_keys = close_with_keys(self)
        screen = window.screen()
        limit = 600 if screen is None else min(600, screen.availableGeometry().height() - 60)
        self.resize(480, limit)
