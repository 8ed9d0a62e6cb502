#!/usr/bin/env python
"""Make the README's screenshots from the real main window, so they follow the UI.

    python docs/make_screenshots.py            # docs/screenshot.png and docs/screenshot-dicom.png

Opens :class:`cxrviewer.gui.main_window.MainWindow` offscreen (``QT_QPA_PLATFORM=xcb xvfb-run -s '-screen 0
1920x1080x24' python docs/make_screenshots.py`` uses a real X window instead) with the default model and default
settings, opens ``resources/samples``, waits until every image is classified, shows a chosen image and grabs the window
(``QWidget.grab``: the window's own pixels, no desktop around it). Settings and reader sessions go to a
temporary folder: the user's own settings are never read or written.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = Path("resources", "samples")
"""Opened relative to the checkout (the details panel then shows this path, not where the checkout lies)."""
MAIN_IMAGE = "person1000_virus_1681.jpeg"
DICOM_IMAGE = "IM-0115-0001__mono1_12bit_rle.dcm"


def _wait(app, done: Callable[[], bool], what: str, timeout: float) -> None:
    """Run the event loop until ``done()`` is true; exit with a message after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not done():
        if time.monotonic() > end:
            sys.exit(f"make_screenshots: gave up after {timeout:.0f} s waiting for {what}")
        app.processEvents()
        time.sleep(0.01)


def _settle(app, seconds: float = 1.0) -> None:
    """Let deferred draws (matplotlib's draw_idle, layout passes) happen."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def shoot(window, app, image: str, out: Path, timeout: float, preset: str | None = None, overlay: bool = True) -> Path:
    """Show ``image`` (a file name in the batch), optionally with a window preset and the overlay hidden, and save
    the window; the overlay is shown again afterwards."""
    model = window.results_model
    row = next((i for i in range(model.rowCount()) if model.row(i).path.name == image), None)
    if row is None:
        sys.exit(f"make_screenshots: {image} is not in {SAMPLES}")
    shown: list[Path] = []
    window.imageShown.connect(shown.append)
    window.results_view.select_source_row(row)
    _wait(app, lambda: window.current_path() is not None and window.current_path().name == image
          and any(p.name == image for p in shown), f"{image} on the canvas", timeout)
    window.imageShown.disconnect(shown.append)
    if preset is not None:
        window.windowing.apply_preset(preset)
    window.overlay_act.setChecked(overlay)  # as the O key does
    _settle(app)
    out.parent.mkdir(parents=True, exist_ok=True)
    saved = window.grab().save(str(out))
    window.overlay_act.setChecked(True)
    if not saved:
        sys.exit(f"make_screenshots: could not write {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Make the README's screenshots from the real main window.")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="folder for the PNGs (default: the checkout's docs/)")
    parser.add_argument("--size", default="1600x960", help="window size WIDTHxHEIGHT in pixels (default: 1600x960)")
    parser.add_argument("--image", default=MAIN_IMAGE, help=f"sample shown in screenshot.png (default: {MAIN_IMAGE})")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the model and the batch (default: 300)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    out = args.out.resolve()  # before the working folder changes
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))  # this checkout's package, whatever is installed
    from PySide6.QtCore import QSettings

    from cxrviewer.gui.app import _application
    from cxrviewer.gui.main_window import MainWindow
    from cxrviewer.gui.screen_fit import split_sizes
    from cxrviewer.gui.settings import Settings

    with tempfile.TemporaryDirectory(prefix="cxrviewer-shots-") as settings_dir:
        for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
            QSettings.setPath(QSettings.Format.IniFormat, scope, settings_dir)
        app = _application()
        window = MainWindow(Settings())  # default settings, default model (resources/models/DEFAULT)
        window.resize(width, height)
        window.splitter.setSizes(split_sizes(width))
        window.show()
        _wait(app, lambda: window.model is not None, "the default model to load", args.timeout)
        finished: list[bool] = []
        window.batchFinished.connect(finished.append)
        window.open_inputs([SAMPLES])
        _wait(app, lambda: bool(finished), "the batch to finish", args.timeout)
        if not finished[0]:
            sys.exit("make_screenshots: the batch was cancelled")
        written = [
            # a verdict with its evidence map, the checks in the details
            shoot(window, app, args.image, out / "screenshot.png", args.timeout),
            # the DICOM sample (MONOCHROME1, 12-bit, RLE), overlay off (O), lung window preset (key 3), corner text
            shoot(window, app, DICOM_IMAGE, out / "screenshot-dicom.png", args.timeout, preset="lung", overlay=False),
        ]
        window.close()  # waits for the window's background tasks
        app.processEvents()
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
