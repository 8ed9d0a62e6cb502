"""Where the installed resources (default model, icon, samples) live."""

from __future__ import annotations

import importlib.resources
from pathlib import Path


def resources_dir() -> Path:
    """The ``resources/`` folder: installed as ``cxrviewer.resources``, or the source checkout's."""
    try:
        found = Path(str(importlib.resources.files("cxrviewer.resources")))
        if found.is_dir():
            return found
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parents[2] / "resources"


#: Environment variable that overrides :func:`cache_dir` (the tests point it at a temporary folder).
CACHE_ENV = "CXRVIEWER_CACHE_DIR"


def cache_dir() -> Path:
    """The user's cache folder for cxrviewer: ``$CXRVIEWER_CACHE_DIR``, else ``$XDG_CACHE_HOME/cxrviewer``,
    else ``~/Library/Caches/cxrviewer`` (macOS), ``%LOCALAPPDATA%/cxrviewer/Cache`` (Windows) or
    ``~/.cache/cxrviewer``. Not created here."""
    import os
    import sys

    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "cxrviewer"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "cxrviewer"
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "cxrviewer" / "Cache"
    return Path.home() / ".cache" / "cxrviewer"
