"""The four-corner text of a radiograph viewer, as plain lines (the canvas draws it, exports burn it in).

DICOM: patient name, ID, birth date and sex top left; study date, modality and body part, view
position and laterality, study description top right. Raster images: file name top left, size
and format top right. Always: window/level (modality units) and zoom bottom left, image i of n
bottom right. ``anonymise`` drops every attribute in :data:`IDENTIFYING` (the patient block
says "Anonymised" instead); file names are not patient attributes and stay.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .window import ValueScale, Window

CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")
#: Meta keys (DICOM keywords) that identify a patient: hidden when anonymised, here and in the details panel.
IDENTIFYING = frozenset({"PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge",
                         "AccessionNumber", "InstitutionName", "OtherPatientIDs", "ReferringPhysicianName"})


@dataclass(frozen=True)
class CornerInfo:
    """What the corners describe: a file's ``name`` and radiograph ``meta``, the ``window`` shown (None:
    the scale's default) on ``scale``, ``zoom`` (screen pixels per image pixel) and ``index`` (1-based) of ``count``."""

    name: str
    meta: Mapping[str, Any] = field(default_factory=dict)
    scale: ValueScale | None = None
    window: Window | None = None
    zoom: float | None = None
    index: int | None = None
    count: int | None = None


def corner_info(radiograph, window: Window | None = None, zoom: float | None = None,
                index: int | None = None, count: int | None = None) -> CornerInfo:
    """The :class:`CornerInfo` of a :class:`~cxrviewer.core.io.radiograph.Radiograph` shown with ``window``."""
    return CornerInfo(Path(radiograph.path).name, radiograph.meta, radiograph.scale, window, zoom, index, count)


def corner_text(info: CornerInfo, anonymise: bool = False) -> dict[str, list[str]]:
    """The lines of each corner (keys :data:`CORNERS`, top lines first); empty lines are left out."""
    meta = {k: v for k, v in info.meta.items() if not (anonymise and k in IDENTIFYING)}
    dicom = info.meta.get("format") == "DICOM"
    top_left = _patient_lines(meta, anonymise) if dicom else [info.name]
    top_right = _study_lines(meta) if dicom else _raster_lines(meta)
    corners = {"top_left": top_left, "top_right": top_right,
               "bottom_left": _display_lines(info), "bottom_right": _position_lines(info)}
    return {k: [line for line in v if line] for k, v in corners.items()}


def _patient_lines(meta: Mapping[str, Any], anonymise: bool) -> list[str]:
    if anonymise:
        return ["Anonymised"]
    birth = " ".join(x for x in (_date(meta.get("PatientBirthDate")), str(meta.get("PatientSex", ""))) if x)
    return [_person(meta.get("PatientName")), f"ID {meta['PatientID']}" if meta.get("PatientID") else "",
            f"Born {birth}" if birth else "", str(meta.get("AccessionNumber") or "")]


def _study_lines(meta: Mapping[str, Any]) -> list[str]:
    view = str(meta.get("ViewPosition") or "").strip()
    side = meta.get("ImageLaterality") or meta.get("Laterality") or ""
    return [" ".join(x for x in (_date(meta.get("StudyDate")), _time(meta.get("StudyTime"))) if x),
            str(meta.get("InstitutionName") or ""),
            " ".join(str(meta.get(k) or "") for k in ("Modality", "BodyPartExamined")).strip(),
            " ".join(x for x in (view, f"Lat {side}" if side else "") if x),
            str(meta.get("StudyDescription") or "")]


def _raster_lines(meta: Mapping[str, Any]) -> list[str]:
    size = meta.get("original_size")
    return [f"{size[0]} x {size[1]} px" if size else "", str(meta.get("format") or "")]


def _display_lines(info: CornerInfo) -> list[str]:
    lines = []
    if info.scale is not None:
        w = info.window or info.scale.default_window
        unit = f" {info.scale.unit}" if info.scale.unit else ""
        lines.append(f"W {info.scale.format(w.width)}  L {info.scale.format(w.center)}{unit}")
    if info.zoom is not None:
        lines.append(f"Zoom {100 * info.zoom:.0f}%")
    return lines


def _position_lines(info: CornerInfo) -> list[str]:
    if info.index is None:
        return []
    return [f"Image {info.index} of {info.count}" if info.count else f"Image {info.index}"]


def _person(value: Any) -> str:
    """A DICOM person name ("DOE^JOHN") as "DOE, JOHN"."""
    parts = [p for p in str(value or "").split("^") if p.strip()]
    return ", ".join(parts[:2]) + (" " + " ".join(parts[2:]) if len(parts) > 2 else "")


def _date(value: Any) -> str:
    """A DICOM date ("20240102") as "2024-01-02"; anything else as it is."""
    s = str(value or "").strip()
    return f"{s[:4]}-{s[4:6]}-{s[6:8]}" if len(s) == 8 and s.isdigit() else s


def _time(value: Any) -> str:
    """A DICOM time ("134501.123") as "13:45"."""
    s = str(value or "").strip()
    return f"{s[:2]}:{s[2:4]}" if len(s) >= 4 and s[:4].isdigit() else ""
