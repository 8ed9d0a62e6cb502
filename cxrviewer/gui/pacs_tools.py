"""File > Open from PACS, Send Results to PACS and PACS Settings: the viewer's side of a PACS.

Chosen studies are retrieved (off the GUI thread) into the app's cache folder
(:attr:`Settings.pacs_cache`, never the user's folders) and opened as a folder is. Sending makes
the same results as ``cxrviewer serve`` (verdict SR, heat-map Secondary Capture for assessed
images; :mod:`cxrviewer.core.pacs.node_results`) for the batch's DICOM inputs and stores them in the PACS.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction

from ..core.results.dicom_export import DicomExportError
from ..core.pacs.node_queue import check_uid
from ..core.pacs.node_results import RenderSettings, ResultMaker, model_info
from ..core.pacs.pacs_client import PacsConfig, retrieve_study, send_results
from . import dialogs, pacs_dialog


def retrieve(cancel, config: PacsConfig, studies, cache: Path, progress) -> list[Path]:
    """Fetch each study into ``cache``; the folders that hold radiographs."""
    folders = []
    for i, study in enumerate(studies):
        if cancel.is_set():
            break
        folder = retrieve_study(config, study.study_uid, cache, cancel)
        if any(folder.glob("*.dcm")):
            folders.append(folder)
        progress((i + 1, len(studies)))
    return folders


def send(_cancel, config: PacsConfig, results, maker: ResultMaker) -> dict:
    """Make and store the results of ``results``; a summary: ``sent`` instances, ``skipped`` non-DICOM names."""
    summary = {"sent": 0, "skipped": []}
    with tempfile.TemporaryDirectory(prefix="cxrviewer-send-") as tmp:
        paths = []
        for r in results:
            try:
                for ds in maker.results_for(r):
                    path = Path(tmp) / f"{check_uid(ds.SOPInstanceUID)}.dcm"
                    ds.save_as(path, enforce_file_format=True)
                    paths.append(path)
            except DicomExportError:
                summary["skipped"].append(r.path.name)
        summary["sent"] = send_results(config, paths) if paths else 0
    return summary


class PacsTools(QObject):
    """The PACS actions of ``window`` (a MainWindow)."""

    opened = Signal(object)  # list of folders opened
    sent = Signal(object)  # send summary
    progress = Signal(object)  # (done, total) studies retrieved

    def __init__(self, window):
        super().__init__(window)
        self.w = window
        self.open_act = self._act("Open from &PACS...", self.open_from_pacs,
                                  "Find radiograph studies in the PACS and review them as a folder")
        self.send_act = self._act("Send Results to PA&CS", self.send_results,
                                  "Store the batch's verdicts (DICOM SR) and heat maps (Secondary Capture) in the PACS")
        self.settings_act = self._act("PACS &Settings...", self.edit_settings,
                                      "Where the PACS is (DICOMweb or DIMSE), with a connection test")
        self.progress.connect(lambda p: self.w.message.show_message(f"Retrieving from PACS: {p[0]} of {p[1]} studies"))

    def _act(self, text: str, slot, tip: str) -> QAction:
        a = QAction(text, self.w, statusTip=tip)
        a.triggered.connect(slot)
        return a

    def edit_settings(self) -> None:
        config = pacs_dialog.edit_settings(self.w, self.w.settings.pacs, self.w.tasks)
        if config is not None:
            self.w.settings.pacs = config

    def open_from_pacs(self) -> None:
        config = self.w.settings.pacs
        studies = pacs_dialog.choose_studies(self.w, config, self.w.tasks)
        if not studies:
            return
        cache = self.w.settings.pacs_cache
        self.w.message.show_message(f"Retrieving {len(studies)} stud{'y' if len(studies) == 1 else 'ies'} from PACS")
        task = self.w.tasks.start(retrieve, config, studies, cache, self.progress.emit, name="pacs-retrieve")
        task.done.connect(self._retrieved)
        task.failed.connect(lambda msg: dialogs.show_error(self.w, "Open from PACS", f"Could not retrieve:\n{msg}"))

    def _retrieved(self, folders: list[Path]) -> None:
        if not folders:
            self.w.message.show_message("No radiographs (CR or DX) in the chosen studies", 10000)
            return
        self.w.open_inputs(folders)
        self.opened.emit(folders)

    def send_results(self) -> None:
        results = [replace(r, reader=None) for r in self.w.results_model.results() if r.ok]
        if not results or self.w.model is None:
            return
        maker = ResultMaker(model_info(self.w.model, self.w.model_path), RenderSettings.for_model(self.w.model))
        task = self.w.tasks.start(send, self.w.settings.pacs, results, maker, name="pacs-send")
        task.done.connect(self._sent)
        task.failed.connect(lambda msg: dialogs.show_error(self.w, "Send Results to PACS", f"Could not send:\n{msg}"))

    def _sent(self, summary: dict) -> None:
        text = f"Sent {summary['sent']} result(s) to PACS"
        if summary["skipped"]:
            text += f"; {len(summary['skipped'])} image(s) are not DICOM and have no study to join"
        self.w.message.show_message(text, 10000)
        self.sent.emit(summary)

    def update_actions(self, has_results: bool) -> None:
        self.send_act.setEnabled(has_results and self.w.model is not None)
