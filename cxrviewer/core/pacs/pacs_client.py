"""Query a PACS for radiograph studies, retrieve them into a cache folder, send results back. Qt-free.

Two ways to talk to a PACS, chosen in :class:`PacsConfig`: DICOMweb (QIDO-RS to find, WADO-RS to
retrieve, STOW-RS to send; dicomweb-client) or DIMSE (C-FIND, C-GET and C-STORE; pynetdicom). C-GET
brings the images back on the same association, so the PACS need not know the viewer's address.
Studies are kept to those with a CR or DX series (or the modality asked for).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from .dicom_net import RADIOGRAPH_CLASSES, RECEIVE_SYNTAXES, DicomNetError, Peer, check_aet, echo, send_files
from .node_queue import check_uid

RADIOGRAPH_MODALITIES = ("CR", "DX")
STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_GET = "1.2.840.10008.5.1.4.1.2.2.3"


@dataclass
class PacsConfig:
    """Where the PACS is: ``protocol`` "dicomweb" (``url``) or "dimse" (``host``, ``port``, ``called_aet``)."""

    protocol: str = "dicomweb"
    url: str = "http://127.0.0.1:8042/dicom-web"
    host: str = "127.0.0.1"
    port: int = 4242
    called_aet: str = "ORTHANC"
    calling_aet: str = "CXRVIEWER"

    @property
    def peer(self) -> Peer:
        return Peer(check_aet(self.called_aet), self.host, int(self.port))


@dataclass
class StudyQuery:
    """What to look for; empty fields match anything. ``study_date``: YYYYMMDD or a range YYYYMMDD-YYYYMMDD;
    ``modality``: "CR", "DX", or "" for either; ``patient_name`` may hold * wildcards."""

    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""
    modality: str = ""
    accession: str = ""


@dataclass
class Study:
    """One study found: its UID and what a reader chooses it by."""

    study_uid: str
    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""
    accession: str = ""
    description: str = ""
    modalities: list[str] = field(default_factory=list)


_KEYS = {"PatientID": "patient_id", "PatientName": "patient_name", "StudyDate": "study_date",
         "AccessionNumber": "accession"}


def _filters(query: StudyQuery) -> dict[str, str]:
    found = {key: str(getattr(query, attr)).strip() for key, attr in _KEYS.items() if str(getattr(query, attr)).strip()}
    if query.modality:
        found["ModalitiesInStudy"] = query.modality
    return found


def _wanted(study: Study, query: StudyQuery) -> bool:
    wanted = {query.modality} if query.modality else set(RADIOGRAPH_MODALITIES)
    return not study.modalities or bool(wanted & set(study.modalities))


def find_studies(config: PacsConfig, query: StudyQuery) -> list[Study]:
    """The studies matching ``query`` that hold radiographs (CR or DX, or ``query.modality``)."""
    found = _find_web(config, query) if config.protocol == "dicomweb" else _find_dimse(config, query)
    return [s for s in found if _wanted(s, query)]


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):  # DICOM JSON person name
        return str(value.get("Alphabetic", ""))
    return str(value)


def _study(ds) -> Study:
    mods = ds.get("ModalitiesInStudy") or []
    mods = [str(mods)] if isinstance(mods, str) else [str(m) for m in mods]
    return Study(str(ds.StudyInstanceUID), _text(ds.get("PatientID")), _text(ds.get("PatientName")),
                 _text(ds.get("StudyDate")), _text(ds.get("AccessionNumber")), _text(ds.get("StudyDescription")), mods)


def _web(config: PacsConfig):
    from dicomweb_client.api import DICOMwebClient

    return DICOMwebClient(url=config.url.rstrip("/"))


def _web_errors():
    import requests

    return (requests.RequestException, OSError, ValueError)


def _find_web(config: PacsConfig, query: StudyQuery) -> list[Study]:
    """QIDO-RS. A name's ``^``, ``*`` and ``?`` reach some servers URL-encoded and unmatched (Orthanc's plugin
    1.7), so such a name is matched here, on the studies the other filters find."""
    import fnmatch

    from pydicom.dataset import Dataset

    filters = _filters(query)
    pattern = query.patient_name.strip().upper()
    if any(c in pattern for c in "^*?"):
        del filters["PatientName"]
    try:
        found = _web(config).search_for_studies(
            search_filters=filters, fields=["ModalitiesInStudy", "StudyDescription"], fuzzymatching=False)
    except _web_errors() as e:
        raise DicomNetError(f"{config.url}: the DICOMweb query failed ({e})") from None
    studies = [_study(Dataset.from_json(item)) for item in found]
    if any(c in pattern for c in "^*?"):
        studies = [s for s in studies if fnmatch.fnmatchcase(s.patient_name.upper(), pattern)]
    return studies


def _find_dimse(config: PacsConfig, query: StudyQuery) -> list[Study]:
    from pydicom.dataset import Dataset
    from pynetdicom import AE

    ident = Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    for key in ("StudyInstanceUID", "PatientID", "PatientName", "StudyDate", "AccessionNumber", "StudyDescription",
                "ModalitiesInStudy"):
        setattr(ident, key, "")
    for key, value in _filters(query).items():
        setattr(ident, key, value)
    ae = AE(ae_title=check_aet(config.calling_aet))
    ae.add_requested_context(STUDY_FIND)
    assoc = ae.associate(config.host, int(config.port), ae_title=config.called_aet)
    if not assoc.is_established:
        raise DicomNetError(f"{config.peer}: no association for C-FIND")
    studies = []
    try:
        for status, found in assoc.send_c_find(ident, STUDY_FIND):
            if not status or int(status.Status) not in (0x0000, 0xFF00, 0xFF01):
                raise DicomNetError(f"{config.peer}: C-FIND failed (status "
                                    f"{'none' if not status else hex(int(status.Status))})")
            if found is not None and int(status.Status) in (0xFF00, 0xFF01):
                studies.append(_study(found))
    finally:
        assoc.release()
    return studies


def retrieve_study(config: PacsConfig, study_uid: str, cache: str | Path,
                   cancel: threading.Event | None = None) -> Path:
    """Fetch the radiographs of study ``study_uid`` into ``cache/<study UID>/``; returns that folder."""
    folder = Path(cache) / check_uid(study_uid)
    folder.mkdir(parents=True, exist_ok=True)
    if config.protocol == "dicomweb":
        _retrieve_web(config, study_uid, folder, cancel)
    else:
        _retrieve_dimse(config, study_uid, folder)
    return folder


def _keep(ds, folder: Path) -> None:
    """Write one retrieved radiograph into ``folder`` (other classes, e.g. our own results, are skipped)."""
    if str(ds.get("SOPClassUID", "")) in RADIOGRAPH_CLASSES:
        ds.save_as(folder / f"{check_uid(ds.SOPInstanceUID)}.dcm", enforce_file_format=True)


def _retrieve_web(config: PacsConfig, study_uid: str, folder: Path, cancel) -> None:
    try:
        client = _web(config)
        for series in client.search_for_series(study_uid, fields=["Modality"]):
            if cancel is not None and cancel.is_set():
                return
            from pydicom.dataset import Dataset

            s = Dataset.from_json(series)
            if str(s.get("Modality", "")) not in RADIOGRAPH_MODALITIES:
                continue
            for ds in client.retrieve_series(study_uid, str(s.SeriesInstanceUID)):
                _keep(ds, folder)
    except _web_errors() as e:
        raise DicomNetError(f"{config.url}: retrieving study {study_uid} failed ({e})") from None


def _retrieve_dimse(config: PacsConfig, study_uid: str, folder: Path) -> None:
    from pydicom.dataset import Dataset
    from pynetdicom import AE, build_role, evt

    ae = AE(ae_title=check_aet(config.calling_aet))
    ae.add_requested_context(STUDY_GET)
    for uid in RADIOGRAPH_CLASSES:
        ae.add_requested_context(uid, list(RECEIVE_SYNTAXES))
    roles = [build_role(uid, scp_role=True) for uid in RADIOGRAPH_CLASSES]

    def on_store(event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        _keep(ds, folder)
        return 0x0000

    assoc = ae.associate(config.host, int(config.port), ae_title=config.called_aet, ext_neg=roles,
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])
    if not assoc.is_established:
        raise DicomNetError(f"{config.peer}: no association for C-GET")
    ident = Dataset()
    ident.QueryRetrieveLevel, ident.StudyInstanceUID = "STUDY", study_uid
    try:
        for status, _ in assoc.send_c_get(ident, STUDY_GET):
            if status and int(status.Status) in (0xA701, 0xA702, 0xA900, 0xAA00, 0xC000):
                raise DicomNetError(f"{config.peer}: C-GET failed (status {hex(int(status.Status))})")
    finally:
        assoc.release()


def check_connection(config: PacsConfig) -> str:
    """A one-line description of a working connection; :class:`DicomNetError` with the reason otherwise."""
    if config.protocol == "dicomweb":
        try:
            _web(config).search_for_studies(limit=1)
        except _web_errors() as e:
            raise DicomNetError(f"{config.url}: no DICOMweb answer ({e})") from None
        return f"DICOMweb at {config.url} answers"
    echo(config.peer, config.calling_aet)
    return f"{config.peer} answers C-ECHO"


def send_results(config: PacsConfig, paths: list[Path]) -> int:
    """Store result files (SR, Secondary Capture) in the PACS (STOW-RS or C-STORE); returns how many."""
    if config.protocol != "dicomweb":
        return send_files(config.peer, paths, config.calling_aet)
    import pydicom

    try:
        _web(config).store_instances([pydicom.dcmread(p) for p in paths])
    except _web_errors() as e:
        raise DicomNetError(f"{config.url}: STOW-RS failed ({e})") from None
    return len(paths)
