"""The DICOM results of one classified radiograph: the verdict SR, and the heat map as a Secondary Capture. Qt-free.

Shared by the node (``cxrviewer serve``) and the viewer's Send Results to PACS. The Secondary Capture
is the overlay export (:func:`cxrviewer.core.results.overlay.render_export`: map, colour bar, caption); it is
made only for an image the model assessed (in scope). Both join the source's study, in one new series
per kind and study for the life of a :class:`ResultMaker`.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..results.dicom_export import SeriesPlan, secondary_capture, source_header
from ..results.file_result import FileResult
from .dicom_sr import ModelInfo, verdict_sr

OVERLAY_SIZE_HINT = (2048, 2048)
"""Secondary Captures of large images are drawn from the image decoded at no less than twice this size."""


def model_info(model, path: str | Path | None = None) -> ModelInfo:
    """Name, version and threshold of ``model``: the version is the file's ``version`` entry, else the first 12
    hex digits of its SHA-256 (``path``: the model file; the shipped one when None)."""
    version = model.meta.get("version")
    if not version:
        from ..model.checkpoint import default_model_path

        file = Path(path) if path else default_model_path()
        version = _sha256(file) if file is not None and Path(file).is_file() else "unknown"
    from ..model.population import IntendedUse, model_line

    threshold = model.meta.get("threshold")
    use = IntendedUse.from_meta(model.meta)
    meanings = tuple((c, use.meaning(c)) for c in model.class_names if use.meaning(c)) if use is not None else ()
    return ModelInfo(model.display_name, str(version), float(threshold) if threshold is not None else None,
                     use.population_words() if use is not None else "", meanings,
                     model_line(model.display_name, model.meta))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return f"sha256:{h.hexdigest()[:12]}"


@dataclass
class RenderSettings:
    """How the Secondary Capture draws the map: the scale ("image" or "fixed") and the fixed scale's range."""

    scale: str = "image"
    cam_range: tuple[float, float] | None = None

    @classmethod
    def for_model(cls, model) -> RenderSettings:
        """The fixed scale when the model file defines ``cam_range``, else per image (as ``predict --scale auto``)."""
        from ..results.overlay import cam_range_from_meta

        rng = cam_range_from_meta(model.meta)
        return cls("fixed" if rng is not None else "image", rng)


class ResultMaker:
    """Makes the result data sets of classified DICOM radiographs (thread-safe)."""

    def __init__(self, info: ModelInfo, render: RenderSettings | None = None):
        self.info = info
        self.render = render or RenderSettings()
        self._sr_plan, self._sc_plan = SeriesPlan(), SeriesPlan()
        self._lock = threading.Lock()

    def results_for(self, result: FileResult, source=None) -> list:
        """[SR] or [SR, Secondary Capture] for ``result`` (a DICOM's); ``source``: its header (read if None).

        Raises :class:`~cxrviewer.core.results.dicom_export.DicomExportError` when the file is not a DICOM with a study.
        """
        source = source if source is not None else source_header(result.path)
        study = str(source.StudyInstanceUID)
        with self._lock:
            sr_series, sr_number = self._sr_plan.next(study)
        found = [verdict_sr(source, result, self.info, sr_series, sr_number)]
        if result.ok and result.in_scope:
            rgb = self.overlay(result)
            with self._lock:
                sc_series, sc_number = self._sc_plan.next(study)
            found.append(secondary_capture(source, rgb, sc_series, sc_number))
        return found

    def overlay(self, result: FileResult) -> np.ndarray:
        """The export image of ``result`` (RGB ``uint8``), as ``predict --overlays`` draws it."""
        from ..io.reading import load_radiograph
        from ..results.overlay import render_export

        radiograph = load_radiograph(result.path, target_size=OVERLAY_SIZE_HINT)
        image = render_export(radiograph, result, scale=self.render.scale, cam_range=self.render.cam_range,
                              model_name=self.info.caption_name or self.info.name)
        return np.asarray(image)
