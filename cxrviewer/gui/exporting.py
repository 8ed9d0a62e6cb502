"""Viewer exports, run on a background Task, built on the core's overlay and export modules.

Overlay PNGs are what the canvas shows (its :class:`ViewState`: method, class, scale, opacity,
window in modality units (per image unless locked), invert) at the image's own size, with the core's colour bar and caption.
A map of an on-demand method comes from the viewer's cache, else it is computed in the export
task on a private copy of the model; a map with no positive evidence is not drawn, the caption says so. Files are
written atomically; batch exports never overwrite (``name (1).png``), and a
single export replaces a file only when the user chose that name in a save
dialog (which asked first).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.results.annotate import Annotations, burn_in
from ..core.explain import EvidenceMap, get_method
from ..core.explain.checks import MIN_POSITIVE_MASS, no_evidence_note, no_positive_evidence
from ..core.explain.on_demand import MethodMap, explain_image
from ..core.io.corner_text import corner_info, corner_text
from ..core.results.dicom_export import SeriesPlan, export_secondary_capture, sc_path
from ..core.errors import CxrError
from ..core.results.export import overlay_path, save_png
from ..core.io.radiograph import Radiograph
from ..core.io.reading import load_radiograph
from ..core.results.measurements import Calibration
from ..core.results.overlay import DEFAULT_CMAP, MapLayer, class_evidence, compose, render_export
from ..core.results.file_result import FileResult
from ..core.io.window import Window
from .view_state import ViewState


@dataclass(frozen=True)
class RenderOptions:
    """What an export draws: the canvas's :class:`ViewState` plus the model's fixed colour range and name."""

    view: ViewState = ViewState()
    cam_range: tuple[float, float] | None = None  # the "fixed" scale's limits
    model_name: str | None = None
    windows: Mapping[Path, Window | None] = field(default_factory=dict)  # per-image windows, over ``view.window``
    measurements: Mapping[str, tuple] = field(default_factory=dict)  # path (text) -> measurements (store snapshot)
    corners: bool = False  # burn in the four-corner text
    anonymise: bool = False  # ... without the patient's attributes
    dicom: bool = False  # also write a DICOM Secondary Capture for DICOM inputs
    maps: Mapping[tuple[Path, str], MethodMap] = field(default_factory=dict)  # (path, class) -> the view method's map
    model: object | None = None  # a private copy of the model, for maps of ``view.method`` not in ``maps``

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
        class_name = v.class_name if v.class_name in result.probs else (result.predicted or result.label)
        return render_export(radiograph, result, class_name=class_name, scale=v.scale, cam_range=options.cam_range,
                             alpha=v.opacity, cmap=DEFAULT_CMAP, window=window, invert=v.invert,
                             model_name=options.model_name, annotations=annotations(result, options, radiograph),
                             map_layer=map_layer(result, class_name, options, radiograph))
    grey = compose(radiograph.pixels, None, 0.0, 1.0, window=window, invert=v.invert)
    return burn_in(Image.fromarray(grey, "RGB"), annotations(result, options, radiograph))


def map_layer(result: FileResult, class_name: str, options: RenderOptions, radiograph: Radiograph) -> MapLayer | None:
    """The map drawn for ``class_name`` when it is not the evidence map as is: another method's map (cached,
    else computed on ``options.model``), or a note when the map has no positive evidence. None: the evidence map."""
    method = options.view.method
    if method == EvidenceMap.name:
        cam = class_evidence(result.cams, result.logits, list(result.probs).index(class_name))
        if no_positive_evidence(cam).item():
            return _no_evidence(class_name, cam, "CAM")
        return None
    found = options.maps.get((Path(result.path), class_name))
    if found is None:
        if options.model is None:
            raise CxrError(f"{result.path.name}: no {get_method(method).label} map (no model to compute it)")
        found = explain_image(options.model, radiograph.linear_pixels, class_name, get_method(method))
    spec = get_method(found.method)
    if no_positive_evidence(found.grid, MIN_POSITIVE_MASS if spec.additive else 0.0).item():
        return _no_evidence(class_name, found.grid, spec.short)
    lo, hi = found.limits()
    return MapLayer(found.grid, lo, hi, f"{found.label} {class_name}, {found.units}, this image's range")


def _no_evidence(class_name: str, grid: np.ndarray, method: str) -> MapLayer:
    return MapLayer(None, 0.0, 1.0, no_evidence_note(class_name, grid, method))


def annotations(result: FileResult, options: RenderOptions, radiograph: Radiograph) -> Annotations:
    """What ``options`` burn into the export of ``result``: its measurements, and the corner text if asked."""
    info = corner_info(radiograph, options.window_for(result.path))
    corners = corner_text(info, options.anonymise) if options.corners else {}
    width = (radiograph.meta.get("original_size") or (None,))[0]
    return Annotations(options.measurements.get(str(result.path), ()), Calibration.from_meta(radiograph.meta),
                       width, corners)


def suggested_name(result: FileResult, view: ViewState = ViewState()) -> str:
    """The file name the save dialog offers: named after the map drawn (``_cam``, ``_gradcam``, ``_occlusion``)."""
    return overlay_path(".", result.path, _method(view)).name


def _method(view: ViewState) -> str:
    """The map an export of ``view`` draws (the evidence map when the overlay is off: the name stays the usual one)."""
    return view.method if view.overlay else "evidence"


def export_overlay(result: FileResult, options: RenderOptions, path: Path,
                   radiograph: Radiograph | None = None) -> dict:
    """Write one PNG at ``path`` (replacing it: the save dialog asked), and with ``options.dicom`` its
    Secondary Capture beside it (never replacing a file). Returns a summary as :func:`export_overlays`."""
    summary = _summary(path.parent)
    _export_one(result, options, path, summary, SeriesPlan(), radiograph, overwrite=True)
    return summary


def export_overlays(results: list[FileResult], options: RenderOptions, folder: Path) -> Generator[tuple[int, int], None, dict]:
    """One ``<stem>_cam.png`` per successful result into ``folder`` (``_gradcam``, ``_occlusion`` when the view
    draws that map; and with ``options.dicom`` one ``<stem>_cam_sc.dcm`` per DICOM input, one new series per
    study), never overwriting.

    A generator (run as a task): yields ``(done, total)`` after each file (closing it stops
    the export there) and returns a summary: ``written`` paths, ``failed`` reasons, ``folder``,
    ``not_dicom`` (inputs that got no DICOM: not DICOM files).
    """
    todo = [r for r in results if r.ok]
    summary, plan = _summary(folder), SeriesPlan()
    for i, r in enumerate(todo):
        try:
            _export_one(r, options, overlay_path(folder, r.path, _method(options.view)), summary, plan)
        except CxrError as e:
            summary["failed"].append(str(e))
        except Exception as e:  # noqa: BLE001 - one bad file never stops the export
            summary["failed"].append(f"{r.path.name}: {type(e).__name__}: {e}")
        yield i + 1, len(todo)
    return summary


def _summary(folder: Path) -> dict:
    return {"written": [], "failed": [], "not_dicom": [], "folder": Path(folder)}


def _export_one(result: FileResult, options: RenderOptions, path: Path, summary: dict, plan: SeriesPlan,
                radiograph: Radiograph | None = None, overwrite: bool = False) -> None:
    radiograph = radiograph or load_radiograph(result.path)
    image = render(result, options, radiograph)
    summary["written"].append(save_png(image, path, overwrite=overwrite))
    if not options.dicom:
        return
    if radiograph.meta.get("format") != "DICOM":
        summary["not_dicom"].append(result.path.name)
        return
    try:
        summary["written"].append(export_secondary_capture(result.path, np.asarray(image),
                                                           sc_path(path.parent, result.path), plan))
    except CxrError as e:  # the PNG stands; say why there is no DICOM
        summary["failed"].append(str(e))
