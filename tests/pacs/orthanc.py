"""A real Orthanc for the tests: started on free loopback ports with a temporary storage folder and DICOMweb."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ORTHANC = shutil.which("Orthanc") or next((p for p in ("/usr/sbin/Orthanc", "/usr/bin/Orthanc") if Path(p).exists()), None)
PLUGIN_DIRS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc")
AET = "ORTHANC"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dicomweb_plugin() -> str | None:
    for d in PLUGIN_DIRS:
        found = sorted(Path(d).glob("libOrthancDicomWeb.so*")) if Path(d).is_dir() else []
        if found:
            return str(found[0])
    return None


@dataclass
class Orthanc:
    """A running Orthanc: its REST base URL, DICOM port and AE title, and the process."""

    http_port: int
    dicom_port: int
    process: subprocess.Popen
    aet: str = AET

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.loads(r.read())

    def post(self, path: str, body: bytes | str):
        data = body.encode() if isinstance(body, str) else body
        with urllib.request.urlopen(urllib.request.Request(self.url + path, data=data, method="POST"), timeout=30) as r:
            return json.loads(r.read() or b"null")

    def delete(self, path: str) -> None:
        urllib.request.urlopen(urllib.request.Request(self.url + path, method="DELETE"), timeout=10).close()

    def clear(self) -> None:
        """Remove every patient (and so every instance)."""
        for pid in self.get("/patients"):
            self.delete(f"/patients/{pid}")

    def instances(self) -> list[dict]:
        """Every stored instance's main tags, with its SOP Class UID and modality from the series."""
        found = []
        for iid in self.get("/instances"):
            tags = self.get(f"/instances/{iid}/simplified-tags")
            found.append(tags)
        return found

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def start_orthanc(folder: Path, modalities: dict[str, tuple[str, int]], dicom_port: int | None = None) -> Orthanc:
    """Start Orthanc with its storage in ``folder``; ``modalities``: name -> (AE title, port) on 127.0.0.1."""
    http_port, dicom_port = free_port(), dicom_port or free_port()
    plugin = dicomweb_plugin()
    config = {
        "Name": "cxrviewer-tests", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
        "HttpPort": http_port, "DicomPort": dicom_port, "DicomAet": AET, "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomModalities": {name: [aet, "127.0.0.1", port] for name, (aet, port) in modalities.items()},
        "DicomCheckCalledAet": False, "DicomAlwaysAllowEcho": True, "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowFind": True, "DicomAlwaysAllowGet": True, "DicomAlwaysAllowMove": True,
        "UnknownSopClassAccepted": True, "StableAge": 1, "SaveJobs": False, "ConcurrentJobs": 2,
        "Plugins": [plugin] if plugin else [], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    config = {k: v for k, v in config.items() if v is not None}
    (folder / "orthanc.json").write_text(json.dumps(config, indent=2))
    log = open(folder / "orthanc.log", "wb")
    proc = subprocess.Popen([ORTHANC, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT,
                            cwd=folder)
    server = Orthanc(http_port, dicom_port, proc)
    deadline = time.monotonic() + 60
    while True:
        try:
            server.get("/system")
            return server
        except (urllib.error.URLError, ConnectionError, OSError):
            if proc.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"Orthanc did not start: {(folder / 'orthanc.log').read_text()[-2000:]}")
            time.sleep(0.1)
