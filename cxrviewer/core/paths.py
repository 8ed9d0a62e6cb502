"""Where the installed resources (default model, icon, samples) live."""

from __future__ import annotations

import importlib.resources
from pathlib import Path


#: In a models folder: the file name of the default model, on its first line (modification times
#: of a fresh clone say nothing about which model is newer).
DEFAULT_MODEL_FILE = "DEFAULT"


def default_model_in(folder: Path) -> Path | None:
    """The default model of a models folder: the ``*.safetensors`` that ``folder/DEFAULT`` names; without that
    file (or when the file it names is missing), the newest (last modified) one in the folder."""
    try:
        named = folder / (folder / DEFAULT_MODEL_FILE).read_text(encoding="utf-8").strip().splitlines()[0].strip()
        if named.suffix == ".safetensors" and named.is_file():
            return named
    except (OSError, IndexError, UnicodeDecodeError):
        pass
    files = [p for p in folder.glob("*.safetensors") if p.is_file()] if folder.is_dir() else []
    return max(files, key=lambda p: (p.stat().st_mtime, p.name), default=None)


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


def file_key(path: str | Path, digest: str) -> str:
    """A model file as the results cache names it: its resolved path and the blake2b of its bytes."""
    return f"file:{Path(path).resolve()}:{digest}"



def default_model_path() -> Path | None:
    """The shipped default model: :func:`default_model_in` the package's models folder."""
    return default_model_in(resources_dir() / "models")
