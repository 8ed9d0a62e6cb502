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


DEFAULT_MODEL_FILE = "DEFAULT"


def default_model_path() -> Path | None:
    """The shipped default model: the ``*.safetensors`` that ``models/DEFAULT`` names; without that file
    (or when the file it names is missing), the newest (last modified) one in the package's models folder."""
    folder = resources_dir() / "models"
    try:
        named = folder / (folder / DEFAULT_MODEL_FILE).read_text(encoding="utf-8").strip().splitlines()[0].strip()
        if named.suffix == ".safetensors" and named.is_file():
            return named
    except (OSError, IndexError, UnicodeDecodeError):
        pass
    files = [p for p in folder.glob("*.safetensors") if p.is_file()] if folder.is_dir() else []
    return max(files, key=lambda p: (p.stat().st_mtime, p.name), default=None)
