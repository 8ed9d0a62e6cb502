"""Helpers shared by the GUI tests."""

from __future__ import annotations

import numpy as np
from PIL import Image


def write_image(path, width=80, height=96, seed=0, fmt=None):
    """A small radiograph-like grey image: noise plus a bright blob whose place depends on ``seed``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
    img = 0.3 + 0.6 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (width / 6) ** 2)) + 0.1 * rng.random((height, width))
    Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8), "L").save(path, format=fmt)
    return path


def png_folder(folder, count):
    """``folder`` made and filled with ``count`` 32 x 32 images named 000.png, 001.png, ...; returns it."""
    folder.mkdir()
    for i in range(count):
        write_image(folder / f"{i:03d}.png", 32, 32, seed=i)
    return folder


def open_and_wait(qtbot, window, inputs, timeout=90000):
    """Open ``inputs`` and wait until the batch has finished (a hang guard: the wait ends on the signal, and
    a batch of a few dozen images takes several times longer on a loaded machine than on an idle one)."""
    with qtbot.waitSignal(window.batchFinished, timeout=timeout) as blocker:
        window.open_inputs(inputs)
    return blocker.args[0]
