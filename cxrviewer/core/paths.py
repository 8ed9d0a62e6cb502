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
