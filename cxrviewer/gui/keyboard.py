"""Keys that work wherever the focus is: window shortcuts from inside a text field, and row steps from the image.

Text fields claim the Ctrl keys of their platform's editing bindings (on Linux, Ctrl+E moves to the end
of the line), so the window's Ctrl+E would do nothing while the filter box has focus.
:class:`ShortcutPassThrough` lets a Ctrl/Alt key that is one of the window's shortcuts reach its action;
the fields keep copy, cut, paste, undo, redo, select all, and every key the window does not use.
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt
from PySide6.QtGui import QAction, QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import QLineEdit, QPlainTextEdit, QTextEdit, QWidget

_K = QKeySequence.StandardKey
EDIT_KEYS = (_K.Copy, _K.Cut, _K.Paste, _K.Undo, _K.Redo, _K.SelectAll)
_CHORD = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier | Qt.KeyboardModifier.MetaModifier
_TEXT_FIELDS = (QLineEdit, QTextEdit, QPlainTextEdit)
NAVIGATION_KEYS = {Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_PageUp, Qt.Key.Key_PageDown, Qt.Key.Key_Home,
                   Qt.Key.Key_End}


def window_shortcut(widget: QWidget, event: QKeyEvent) -> QAction | None:
    """The enabled action of ``widget``'s window that ``event`` (a Ctrl/Alt/Meta key, not a core editing key)
    triggers, if any."""
    if not event.modifiers() & _CHORD or any(event.matches(k) for k in EDIT_KEYS):
        return None
    keys = QKeySequence(event.keyCombination())
    window = widget.window()
    for action in [*window.actions(), *window.findChildren(QAction)]:
        if action.isEnabled() and keys in action.shortcuts():
            return action
    return None


class ShortcutPassThrough(QObject):
    """Application event filter: text fields stop claiming the window's Ctrl and Alt shortcuts."""

    def eventFilter(self, watched, event) -> bool:
        if (event.type() == QEvent.Type.ShortcutOverride and isinstance(watched, _TEXT_FIELDS)
                and window_shortcut(watched, event) is not None):
            event.ignore()  # not claimed: the window's shortcut fires
            return True
        return False


def pass_shortcuts_through_text_fields() -> None:
    """Install :class:`ShortcutPassThrough` on the application (once)."""
    app = QCoreApplication.instance()
    if app is not None and app.findChild(ShortcutPassThrough) is None:
        app.installEventFilter(ShortcutPassThrough(app))


class KeyForwarder(QObject):
    """Event filter for a widget that takes clicks but not row keys (the image): Up/Down, PageUp/PageDown
    and Home/End go to ``target`` (the results table), as if it had the focus."""

    def __init__(self, source: QWidget, target: QWidget):
        super().__init__(source)
        self.target = target
        source.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.KeyPress and event.key() in NAVIGATION_KEYS and not event.modifiers() & _CHORD:
            copy = QKeyEvent(event.type(), event.key(), event.modifiers(), event.text(), event.isAutoRepeat())
            QCoreApplication.sendEvent(self.target, copy)
            return True
        return False


def close_with_keys(window: QWidget) -> list[QShortcut]:
    """Esc, Ctrl+W and the platform's Close key (Ctrl+F4 on some) close ``window`` (a secondary window)."""
    keys = [QKeySequence(Qt.Key.Key_Escape), QKeySequence("Ctrl+W"), *QKeySequence.keyBindings(QKeySequence.StandardKey.Close)]
    shortcuts, seen = [], set()
    for key in keys:
        if key.isEmpty() or key.toString() in seen:
            continue
        seen.add(key.toString())
        shortcut = QShortcut(key, window)
        shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        shortcut.activated.connect(window.close)
        shortcuts.append(shortcut)
    return shortcuts
