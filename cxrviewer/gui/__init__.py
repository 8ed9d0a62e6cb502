"""The Qt layer of cxrviewer (the only package that imports PySide6)."""

from ._preload import preload as _preload

_preload()  # before any PySide6 import: see _preload
