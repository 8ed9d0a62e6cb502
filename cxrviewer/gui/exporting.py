"""Viewer exports, run on a background Task, built on the core's overlay and export modules.

Overlay PNGs are what the canvas shows (its :class:`ViewState`: class, scale, opacity,
window in modality units (per image unless locked), invert) at the image's own size, with the core's colour bar and caption. Files are
written atomically; batch exports never overwrite (``name (1).png``), and a
single export replaces a file only when the user chose that name in a save
dialog (which asked first).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image

from ..core.errors import CxrError
from ..core.export import overlay_path, save_png
from ..core.imaging import Radiograph, load_radiograph
from ..core.overlay import DEFAULT_CMAP, compose, render_export
from ..core.results import FileResult
from ..core.window import Window
from .view_state import ViewState


@dataclass(frozen=True)
class RenderOptions:
    """What an export draws: the canvas's :class:`ViewState` plus the model's fixed colour range and name."""

    view: ViewState = ViewState()
    cam_range: tuple[float, float] | None = None  # the "fixed" scale's limits
    model_name: str | None = None
    windows: Mapping[Path, Window | None] = field(default_factory=dict)  # per-image windows, over ``view.window``
    measurements: dict | None = None  # image path (text) -> its measurements (a MeasurementStore snapshot)

    def window_for(self, path: Path) -> Window | None:
        """The window (modality units) image ``path`` is drawn with; None: its own default."""
        return self.windows[path] if path in self.windows else self.view.window


def render(result: FileResult, options: RenderOptions, radiograph: Radiograph | None = None) -> Image.Image:
    """The PNG image for ``result``: the overlay with colour bar and caption, or the grey image alone."""
    radiograph = radiograph or load_radiograph(result.path)
    v = options.view
    window = radiograph.scale.grey_window(options.window_for(result.path))
    radiograph = replace(radiograph, pixels=radiograph.linear_pixels)  # the linear grey, windowed as on the canvas
    if v.overlay and result.ok:
        class_name = v.class_name if v.class_name in result.probs else None
        return render_export(radiograph, result, class_name=class_name, scale=v.scale, cam_range=options.cam_range,
                             alpha=v.opacity, cmap=DEFAULT_CMAP, window=window, invert=v.invert,
                             model_name=options.model_name)
    grey = compose(radiograph.pixels, None, 0.0, 1.0, window=window, invert=v.invert)
    return Image.fromarray(grey, "RGB")


def suggested_name(result: FileResult) -> str:
    return overlay_path(".", result.path).name


def export_overlay(result: FileResult, options: RenderOptions, path: Path,
                   radiograph: Radiograph | None = None) -> Path:
    """Write one PNG at ``path`` (replacing it: the save dialog asked)."""
    return save_png(render(result, options, radiograph), path, overwrite=True)


def export_overlays(results: list[FileResult], options: RenderOptions, folder: Path) -> Generator[tuple[int, int], None, dict]:
    """One ``<stem>_cam.png`` per successful result into ``folder``, never overwriting.

    A generator (run as a task): yields ``(done, total)`` after each file (closing it stops
    the export there) and returns a summary: ``written`` paths, ``failed`` reasons, ``folder``.
    """
    todo = [r for r in results if r.ok]
    written, failed = [], []
    for i, r in enumerate(todo):
        try:
            written.append(save_png(render(r, options), overlay_path(folder, r.path)))
        except CxrError as e:
            failed.append(str(e))
        except Exception as e:  # noqa: BLE001 - one bad file never stops the export
            failed.append(f"{r.path.name}: {type(e).__name__}: {e}")
        yield i + 1, len(todo)
    return {"written": written, "failed": failed, "folder": Path(folder)}
