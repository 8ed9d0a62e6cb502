"""File > Open from PACS and Send Results to PACS against a real Orthanc, over DICOMweb and over DIMSE."""

from __future__ import annotations

import pydicom
import pytest

from cxrviewer.core.pacs.dicom_net import Peer
from cxrviewer.core.pacs.dicom_sr import read_verdict_sr
from cxrviewer.core.pacs.pacs_client import PacsConfig
from cxrviewer.gui import pacs_dialog
from tests.pacs.node_helpers import SC_CLASS, SR_CLASS, by_class, radiographs, store


def _config(orthanc, protocol: str) -> PacsConfig:
    return PacsConfig(protocol, orthanc.dicomweb, "127.0.0.1", orthanc.dicom_port, orthanc.aet, "CXRVIEWER")


@pytest.mark.parametrize("protocol", ["dicomweb", "dimse"])
def test_query_retrieve_review_and_send_results_back(protocol, orthanc, window, qtbot, tmp_path, monkeypatch):
    paths = radiographs(tmp_path / "modality", 3)
    assert store(Peer(orthanc.aet, "127.0.0.1", orthanc.dicom_port), paths) == [0, 0, 0]
    window.settings.pacs = _config(orthanc, protocol)

    dialog = pacs_dialog.OpenFromPacsDialog(window.settings.pacs, window.tasks, window)
    qtbot.addWidget(dialog)
    dialog.patient_id.setText("P001")
    dialog.search_button.click()
    qtbot.waitUntil(lambda: dialog.search_button.isEnabled() and dialog.status.text().startswith("1 study"), timeout=20000)
    assert dialog.table.item(0, 0).text() == "P001" and dialog.table.item(0, 4).text() == "A0001"
    dialog.patient_id.clear()
    dialog.patient_name.setText("Test^Patient2*")
    dialog.study_date.setText("20240101-20240131")
    dialog.search_button.click()
    qtbot.waitUntil(lambda: dialog.search_button.isEnabled() and dialog.status.text().startswith("1 study"), timeout=20000)
    assert dialog.table.item(0, 0).text() == "P002"
    dialog.patient_name.clear()
    dialog.study_date.clear()
    dialog.modality.setCurrentIndex(dialog.modality.findData("CR"))  # the radiographs are DX
    dialog.patient_id.clear()
    dialog.search_button.click()
    qtbot.waitUntil(lambda: dialog.search_button.isEnabled() and dialog.status.text().startswith("0 studies"),
                    timeout=20000)
    dialog.modality.setCurrentIndex(0)
    dialog.search_button.click()
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 3 and dialog.search_button.isEnabled(), timeout=20000)
    dialog.table.selectRow(0)
    chosen = dialog.chosen()
    assert len(chosen) == 1

    wanted = [s for s in dialog.studies if s.patient_id in ("P000", "P002")]
    monkeypatch.setattr(pacs_dialog, "choose_studies", lambda *a: wanted)
    with qtbot.waitSignal(window.batchFinished, timeout=60000):
        window.pacs.open_act.trigger()
    opened = window.results_model.results()
    assert len(opened) == 2 and all(r.ok for r in opened)
    cache = window.settings.pacs_cache
    assert all(cache in r.path.parents for r in opened)
    assert {str(pydicom.dcmread(r.path).PatientID) for r in opened} == {"P000", "P002"}

    assert window.pacs.send_act.isEnabled()
    with qtbot.waitSignal(window.pacs.sent, timeout=60000) as sent:
        window.pacs.send_act.trigger()
    assert sent.args[0]["sent"] == 4  # an SR and a Secondary Capture for each
    found = by_class(orthanc.instances())
    assert len(found[SR_CLASS]) == 2 and len(found[SC_CLASS]) == 2
    studies = {s.study_uid for s in wanted}
    assert {t["StudyInstanceUID"] for t in found[SR_CLASS] + found[SC_CLASS]} == studies


def test_settings_are_kept_and_the_connection_test_says_what_it_found(orthanc, window, qtbot):
    window.settings.pacs = _config(orthanc, "dimse")
    dialog = pacs_dialog.PacsSettingsDialog(window.settings.pacs, window.tasks, window)
    qtbot.addWidget(dialog)
    dialog.test_button.click()
    qtbot.waitUntil(lambda: dialog.outcome.text().startswith(("OK", "Failed")), timeout=20000)
    assert dialog.outcome.text() == f"OK: {orthanc.aet}@127.0.0.1:{orthanc.dicom_port} answers C-ECHO"
    dialog.port.setValue(1)
    dialog.test_button.click()
    qtbot.waitUntil(lambda: dialog.test_button.isEnabled() and dialog.outcome.text().startswith("Failed"),
                    timeout=20000)
    dialog.protocol.setCurrentIndex(dialog.protocol.findData("dicomweb"))
    dialog.test_button.click()
    qtbot.waitUntil(lambda: dialog.test_button.isEnabled() and dialog.outcome.text().startswith("OK"), timeout=20000)
    window.settings.pacs = dialog.config()
    assert window.settings.pacs.protocol == "dicomweb" and window.settings.pacs.port == 1


def test_an_sr_sent_from_the_viewer_reads_back(orthanc, window, qtbot, tmp_path):
    paths = radiographs(tmp_path / "local", 1, BodyPartExamined="HAND")
    window.settings.pacs = _config(orthanc, "dicomweb")
    with qtbot.waitSignal(window.batchFinished, timeout=60000):
        window.open_inputs(paths)
    with qtbot.waitSignal(window.pacs.sent, timeout=60000) as sent:
        window.pacs.send_act.trigger()
    assert sent.args[0]["sent"] == 1  # out of scope: the SR says so, and there is no Secondary Capture
    (tags,) = by_class(orthanc.instances())[SR_CLASS]
    iid = orthanc.post("/tools/lookup", tags["SOPInstanceUID"])[0]["ID"]
    import io
    import urllib.request

    with urllib.request.urlopen(f"{orthanc.url}/instances/{iid}/file", timeout=10) as r:
        report = read_verdict_sr(pydicom.dcmread(io.BytesIO(r.read())))
    assert report["Finding"] == "Not assessed" and "HAND" in report["Reason not assessed"]
    assert report["Source"] == str(pydicom.dcmread(paths[0]).SOPInstanceUID)
