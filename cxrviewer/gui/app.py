"""GUI entry point: ``cxrviewer-gui [FOLDER_OR_FILES...]`` and ``cxrviewer.gui.app.main(paths)``."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QRect
from PySide6.QtWidgets import QApplication

from .. import __version__
from .icons import app_icon
from .screen_fit import fit_to_screen, split_sizes
from .settings import APPLICATION, ORGANIZATION
from .theme import apply_dark_theme
from .worker import stranded


def _application() -> QApplication:
    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1])
        apply_dark_theme(app)
    if not QCoreApplication.organizationName():
        QCoreApplication.setOrganizationName(ORGANIZATION)
        QCoreApplication.setApplicationName(APPLICATION)
        QCoreApplication.setApplicationVersion(__version__)
        app.setDesktopFileName("cxrviewer")
    app.setWindowIcon(app_icon())
    return app


def fit_window(window, free: QRect | None = None) -> None:
    """Keep the window within the screen (or ``free``) and share its width out between the list, the image
    and the details (unless the user's own splitter sizes were restored)."""
    fit_to_screen(window, free)
    if not window.settings.splitter:
        window.splitter.setSizes(split_sizes(window.width()))


def create_window(paths: Sequence[str | Path] | None = None, **kwargs):
    """Create (and show) the main window, opening ``paths`` if given; the QApplication must exist."""
    from .main_window import MainWindow

    window = MainWindow(**kwargs)
    fit_window(window)
    window.show()
    if paths:
        window.open_inputs([Path(p) for p in paths])
    return window


def main(paths: Sequence[str | Path] | None = None) -> int:
    """Open the viewer on ``paths`` (default: the command line's arguments) and run until it closes."""
    if paths is None:
        paths = [a for a in sys.argv[1:] if not a.startswith("-")]
    app = _application()
    window = create_window(paths)
    code = app.exec()
    del window
    if stranded():  # a task that would not stop (the window said which): never destroy its running QThread
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(code))
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
