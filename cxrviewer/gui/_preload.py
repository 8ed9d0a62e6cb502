"""Import the image decoders before PySide6 loads.

PySide6 installs an import hook that reads the source of every module imported
after it. Decoder modules imported lazily mid-batch (Pillow plugins, pydicom and
its pixel decoders) would then hold the GIL long enough to freeze the GUI for a
second, so the viewer imports them up front, before the hook exists.
"""

from __future__ import annotations

import importlib

MODULES = ("pydicom", "pydicom.pixels", "pydicom.pixels.decoders", "pydicom.pixels.processing", "pydicom.dataset",
           "pydicom.uid", "pydicom.errors", "pylibjpeg", "libjpeg", "openjpeg", "rle", "scipy.ndimage")


def preload() -> None:
    from PIL import Image

    Image.init()  # every Pillow format plugin
    for name in MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
