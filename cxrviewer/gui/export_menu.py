"""File > Export Options: what exports burn in and whether DICOM inputs also go back as DICOM (kept in the settings)."""

from __future__ import annotations

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QWidget

from .settings import Settings


class ExportOptions:
    """Two checkable actions bound to ``settings``: four-corner text in exports, DICOM Secondary Captures."""

    def __init__(self, settings: Settings, parent: QWidget):
        self.settings = settings
        self.corners_act = QAction("Burn In &Four-Corner Text", parent, checkable=True,
                                   checked=settings.export_corners, statusTip="Exports carry the four-corner text "
                                   "(patient, study, window); anonymised when View > Anonymise is on")
        self.corners_act.toggled.connect(lambda on: setattr(settings, "export_corners", on))
        self.dicom_act = QAction("Also Write DICOM &Secondary Capture", parent, checkable=True,
                                 checked=settings.export_dicom, statusTip="For DICOM inputs, also write the overlay as "
                                 "a DICOM Secondary Capture in the same study (new series), for PACS")
        self.dicom_act.toggled.connect(lambda on: setattr(settings, "export_dicom", on))
        self.actions = [self.corners_act, self.dicom_act]


def summary_text(outcome: dict) -> str:
    """One status line for an export summary (``written``, ``failed``, ``not_dicom``, ``folder``)."""
    written = outcome["written"]
    pngs = sum(1 for p in written if p.suffix.lower() == ".png")
    text = f"Saved {written[0]}" if len(written) == 1 else f"Exported {pngs} overlays to {outcome['folder']}"
    dicoms = len(written) - pngs
    if dicoms:
        text += f" and {dicoms} DICOM Secondary Capture{'s' if dicoms > 1 else ''}"
    if outcome.get("not_dicom"):
        n = len(outcome["not_dicom"])
        text += f"; no DICOM for {n} input{'s' if n > 1 else ''} that {'are' if n > 1 else 'is'} not DICOM " \
                f"({outcome['not_dicom'][0]})"
    if outcome["failed"]:
        text += f"; {len(outcome['failed'])} failed ({outcome['failed'][0]})"
    return text
