"""Viewer exports, run on a background Task: overlay PNGs (what the canvas shows) and the results CSV.

Files are written atomically (temporary file, then rename). Batch exports never
overwrite: an existing name gets a numbered sibling. Single-file exports replace
a file only when the user chose that name in a save dialog (which asked).
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.imaging import load_radiograph
from ..core.results import FileResult
from .display import choose_overlay, compose_rgb


@dataclass
class RenderOptions:
    """How the canvas shows an image; exports reproduce it at the image's own size."""

    class_names: list[str]
    class_name: str | None = None  # None: the predicted class
    scale: str = "image"
    fixed: tuple[float, float] | None = None
    opacity: float = 0.4
    overlay: bool = True
    window: tuple[float, float] = (0.0, 1.0)
    inverted: bool = False


def unique_path(path: Path) -> Path:
    """``path`` if free, else ``stem (2).png``, ``stem (3).png``, ..."""
    if not path.exists():
        return path
    n = 2
    while True:
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
        if not candidate.exists():
            return candidate
        n += 1


def _atomic_write(path: Path, data: bytes, overwrite: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if ``path`` appeared meanwhile: never clobbers
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def overlay_name(result: FileResult, options: RenderOptions) -> str:
    cls = options.class_name or result.label or "image"
    return f"{result.path.stem}_cam_{cls}.png" if options.overlay and result.ok else f"{result.path.stem}.png"


def render_overlay(result: FileResult, options: RenderOptions, pixels: np.ndarray | None = None) -> np.ndarray:
    """RGB uint8 at the image's own size, as the canvas shows it (grey, window, CAM, opacity)."""
    if pixels is None:
        pixels = load_radiograph(result.path).pixels
    overlay = None
    if options.overlay:
        overlay = choose_overlay(result, options.class_names, options.class_name, options.scale, options.fixed)
    return compose_rgb(pixels, overlay, options.opacity, options.window, options.inverted)


def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def export_overlay(result: FileResult, options: RenderOptions, path: Path, pixels: np.ndarray | None = None,
                   overwrite: bool = True) -> Path:
    """Write one overlay PNG; with ``overwrite`` False an existing name gets a numbered sibling."""
    data = png_bytes(render_overlay(result, options, pixels))
    return _atomic_write(Path(path) if overwrite else unique_path(Path(path)), data, overwrite)


def export_overlays(results: list[FileResult], options: RenderOptions, folder: Path,
                    cancel: threading.Event, progress: Callable[[int, int], None]) -> dict:
    """Write one PNG per successful result into ``folder``; never overwrites. Returns a summary."""
    folder = Path(folder)
    todo = [r for r in results if r.ok]
    written, failed = [], []
    for i, r in enumerate(todo):
        if cancel.is_set():
            break
        try:
            written.append(export_overlay(r, options, folder / overlay_name(r, options), overwrite=False))
        except Exception as e:  # noqa: BLE001 - one bad file never stops the export
            failed.append(f"{r.path.name}: {e}")
        progress(i + 1, len(todo))
    return {"written": written, "failed": failed, "cancelled": cancel.is_set(), "folder": folder}


def export_csv(results: list[FileResult], class_names: list[str], path: Path) -> Path:
    """Results CSV: path, label, one p_<CLASS> per class, error, then image width and height."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "label", *[f"p_{c}" for c in class_names], "error", "width", "height"])
    for r in results:
        size = r.image_size or ("", "")
        w.writerow([str(r.path), r.label or "", *[f"{r.probs[c]:.6f}" if c in r.probs else "" for c in class_names],
                    r.error or "", *size])
    return _atomic_write(Path(path), buf.getvalue().encode("utf-8"), overwrite=True)


def inside(path: Path, folders: list[Path]) -> bool:
    """Whether ``path`` is one of ``folders`` or below one of them."""
    p = Path(path).resolve()
    for f in folders:
        f = Path(f).resolve()
        if p == f or f in p.parents:
            return True
    return False
