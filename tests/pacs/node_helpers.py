"""Helpers for the node tests: small radiographs, a node run as ``python -m cxrviewer serve``, waiting on Orthanc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

from cxrviewer.core.pacs.dicom_net import DicomNetError, Peer, echo
from tests.core.dicom_factory import make_dicom
from tests.pacs.orthanc import free_port

ROOT = Path(__file__).resolve().parents[2]
SR_CLASS, SC_CLASS = "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.7"


def radiographs(folder: Path, n: int, size: int = 96, **tags) -> list[Path]:
    """``n`` small DX chest radiographs (12-bit noise over a gradient), each in its own study."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    paths = []
    for i in range(n):
        pixels = (np.linspace(0, 3000, size)[None, :] + rng.integers(0, 1000, (size, size))).astype(np.uint16)
        values = dict(StudyInstanceUID=generate_uid(), SeriesInstanceUID=generate_uid(), PatientID=f"P{i:03d}",
                      PatientName=f"Test^Patient{i}", AccessionNumber=f"A{i:04d}", StudyID="1", SeriesNumber=1,
                      InstanceNumber=1, StudyTime="120000")
        values.update(tags)
        paths.append(make_dicom(folder / f"cxr{i:02d}.dcm", pixels, bits_stored=12, **values))
    return paths


def store(peer: Peer, paths, calling: str = "MODALITY") -> list[int | None]:
    """C-STORE ``paths`` (sent as files, not re-encoded) on one association; the status of each (None: refused)."""
    from pydicom.filereader import read_file_meta_info
    from pynetdicom import AE

    metas = [read_file_meta_info(p) for p in paths]
    pairs = {(str(m.MediaStorageSOPClassUID), str(m.TransferSyntaxUID)) for m in metas}
    ae = AE(ae_title=calling)
    for cls, syntax in sorted(pairs):  # one context per pair: the node accepts one transfer syntax per context
        ae.add_requested_context(cls, [syntax])
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.aet)
    assert assoc.is_established, f"no association with {peer}"
    statuses = []
    try:
        for p in paths:
            try:
                status = assoc.send_c_store(Path(p))
                statuses.append(int(status.Status) if status else None)
            except (ValueError, AttributeError, TypeError):
                statuses.append(None)  # no accepted context: refused at negotiation
            if not assoc.is_established:
                assoc = ae.associate(peer.host, peer.port, ae_title=peer.aet)
    finally:
        if assoc.is_established:
            assoc.release()
    return statuses


class NodeProcess:
    """``python -m cxrviewer serve`` in a subprocess, with a tiny model; its stderr goes to ``log``."""

    def __init__(self, workdir: Path, model: Path, send_to: str | None, port: int | None = None, *extra: str):
        self.workdir, self.model, self.send_to = workdir, model, send_to
        self.port = port or free_port()
        self.extra = list(extra)
        self.log = workdir.parent / f"{workdir.name}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def peer(self) -> Peer:
        return Peer("CXRVIEWER", "127.0.0.1", self.port)

    def start(self, wait: float = 120.0) -> NodeProcess:
        cmd = [sys.executable, "-m", "cxrviewer", "serve", "--aet", "CXRVIEWER", "--host", "127.0.0.1", "--port",
               str(self.port), "--workdir", str(self.workdir), "--model", str(self.model), "--device", "cpu",
               "--batch-size", "8", *self.extra]
        if self.send_to:
            cmd += ["--send-to", self.send_to]
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=open(self.log, "ab"), stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + wait
        while True:
            try:
                echo(self.peer, "MODALITY")
                return self
            except DicomNetError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the node did not start:\n{self.log.read_text()[-3000:]}")
                time.sleep(0.2)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines()


def wait_for(check, timeout: float = 180.0, what: str = "the condition"):
    """Poll ``check()`` until it returns a true value; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def by_class(instances: list[dict]) -> dict[str, list[dict]]:
    """Orthanc's instances (simplified tags) grouped by SOP Class UID."""
    found: dict[str, list[dict]] = {}
    for tags in instances:
        found.setdefault(tags.get("SOPClassUID", ""), []).append(tags)
    return found
