"""DICOM networking shared by the node and the viewer (pynetdicom): peers, contexts, C-ECHO and C-STORE. Qt-free.

Radiographs are accepted in every transfer syntax the viewer decodes (:data:`RECEIVE_SYNTAXES`).
Results (SR, Secondary Capture) are sent as they were written: Explicit VR Little Endian.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import CxrError

#: What the viewer decodes (see :mod:`cxrviewer.core.io`): uncompressed, deflated, JPEG baseline, extended
#: and lossless, JPEG-LS, JPEG 2000 and RLE.
RECEIVE_SYNTAXES = (
    "1.2.840.10008.1.2",       # Implicit VR Little Endian
    "1.2.840.10008.1.2.1",     # Explicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",     # Explicit VR Big Endian
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline (Process 1)
    "1.2.840.10008.1.2.4.51",  # JPEG Extended (Process 2 & 4)
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless (Process 14)
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",     # RLE Lossless
)
#: The radiograph storage classes the node accepts: CR, DX for presentation and for processing.
RADIOGRAPH_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.1",      # Computed Radiography Image Storage
    "1.2.840.10008.5.1.4.1.1.1.1",    # Digital X-Ray Image Storage - For Presentation
    "1.2.840.10008.5.1.4.1.1.1.1.1",  # Digital X-Ray Image Storage - For Processing
)
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
RESULT_CLASSES = (SECONDARY_CAPTURE, COMPREHENSIVE_SR)
RESULT_SYNTAXES = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")
_AET = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # 16 printable characters, no backslash
TIMEOUT = 30.0


class DicomNetError(CxrError):
    """A peer that cannot be reached, refuses the association or answers with a failure status."""


@dataclass(frozen=True)
class Peer:
    """A DICOM application entity: AE title, host, port."""

    aet: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.aet}@{self.host}:{self.port}"


def check_aet(aet: str) -> str:
    """``aet`` if it is a valid AE title (1 to 16 printable characters, not only spaces, no backslash)."""
    if not _AET.match(aet or "") or not aet.strip():
        raise DicomNetError(f"{aet!r} is not a valid AE title (1 to 16 printable characters, no backslash)")
    return aet


def parse_peer(text: str) -> Peer:
    """``AET@HOST:PORT`` as a :class:`Peer`; :class:`DicomNetError` with the expected form otherwise."""
    m = re.match(r"^(?P<aet>[^@]+)@(?P<host>[^:@]+):(?P<port>\d{1,5})$", text.strip())
    if not m or not 0 < int(m["port"]) < 65536:
        raise DicomNetError(f"{text!r}: expected AET@HOST:PORT, e.g. ORTHANC@127.0.0.1:4242")
    return Peer(check_aet(m["aet"]), m["host"], int(m["port"]))


def _ae(calling_aet: str):
    from pynetdicom import AE

    ae = AE(ae_title=check_aet(calling_aet))
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT
    return ae


def echo(peer: Peer, calling_aet: str = "CXRVIEWER") -> None:
    """C-ECHO ``peer``; :class:`DicomNetError` with the reason if it does not answer with success."""
    ae = _ae(calling_aet)
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.aet)
    if not assoc.is_established:
        raise DicomNetError(f"{peer}: no association (not listening, or the AE title {calling_aet} is not accepted)")
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    if not status or status.Status != 0:
        raise DicomNetError(f"{peer}: C-ECHO failed (status {_status(status)})")


def _status(status) -> str:
    return "none: the peer did not answer" if not status else f"0x{int(status.Status):04X}"


def send_files(peer: Peer, paths: Iterable[str | Path], calling_aet: str = "CXRVIEWER",
               classes: Iterable[str] = RESULT_CLASSES, sent=None) -> int:
    """C-STORE each DICOM file of ``paths`` to ``peer`` on one association; returns how many were stored.

    ``sent(path, sop_instance_uid)`` is called after each success (the caller records it). The first
    failure (no association, a failure status, no answer) raises :class:`DicomNetError`; files before it stay sent.
    """
    import pydicom

    paths = [Path(p) for p in paths]
    if not paths:
        return 0
    ae = _ae(calling_aet)
    for uid in classes:
        ae.add_requested_context(uid, list(RESULT_SYNTAXES))
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.aet)
    if not assoc.is_established:
        raise DicomNetError(f"{peer}: no association (not listening, or it does not accept {calling_aet})")
    done = 0
    try:
        for path in paths:
            ds = pydicom.dcmread(path)
            status = assoc.send_c_store(ds)
            if not status or int(status.Status) not in (0x0000, 0xB000, 0xB007, 0xB006):
                raise DicomNetError(f"{peer}: C-STORE of {path.name} failed (status {_status(status)})")
            done += 1
            if sent is not None:
                sent(path, str(ds.SOPInstanceUID))
    finally:
        if assoc.is_established:
            assoc.release()
    return done
