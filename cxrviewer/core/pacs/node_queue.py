"""The DICOM node's durable queue: received instances, results waiting to be sent, and the ledger of sent ones. Qt-free.

Layout under the work folder::

    incoming/<SOP Instance UID>.dcm     received, not yet classified (written and fsynced before success is answered)
    outbox/<SOP Instance UID>/<UID>.dcm the results of one source (SR, Secondary Capture), waiting to be sent
    ledger.sqlite                       sources classified, and result instances sent (each is sent once)

Every step is atomic, so a node killed at any point resumes where it was: a source's results appear
in ``outbox`` all at once (a folder renamed into place) before the source leaves ``incoming``; a result
is recorded as sent right after the destination's success, and a recorded one is never sent again. The
one window left (killed between the destination's success and the record) sends that instance again with
the same SOP Instance UID, which a PACS files as the same instance.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import threading
import time
from pathlib import Path

from ..errors import CxrError

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class QueueError(CxrError):
    """A work folder that cannot be used, or an instance that cannot be queued."""


def check_uid(uid: str) -> str:
    """``uid`` if it is a DICOM UID (digits and dots, at most 64 characters), which makes it a safe file name."""
    uid = str(uid).strip().rstrip("\0")
    if not (0 < len(uid) <= 64 and _UID.match(uid)):
        raise QueueError(f"{uid[:80]!r} is not a valid SOP Instance UID")
    return uid


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class NodeQueue:
    """The queue in ``workdir`` (created if missing). Thread-safe; one node process per work folder."""

    def __init__(self, workdir: str | Path):
        self.root = Path(workdir)
        self.incoming, self.outbox = self.root / "incoming", self.root / "outbox"
        try:
            for d in (self.incoming, self.outbox):
                d.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.root / "ledger.sqlite", check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("CREATE TABLE IF NOT EXISTS classified (source TEXT PRIMARY KEY, at REAL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS sent (uid TEXT PRIMARY KEY, source TEXT, at REAL)")
        except (OSError, sqlite3.Error) as e:
            raise QueueError(f"{self.root}: cannot use as the node's work folder ({e})") from None
        self._lock = threading.Lock()
        self._drop_temporaries()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _drop_temporaries(self) -> None:
        """Remove what a killed node left half-written (temporary files and folders)."""
        for d in (self.incoming, self.outbox):
            for p in d.glob(".*"):
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)

    # -- receiving ----------------------------------------------------------------------
    def put(self, uid: str, data: bytes) -> bool:
        """Store a received instance durably; False (nothing stored) when that instance was classified already."""
        uid = check_uid(uid)
        if self.was_classified(uid):
            return False
        target = self.incoming / f"{uid}.dcm"
        tmp = self.incoming / f".{uid}.{threading.get_ident()}.tmp"
        try:
            _write_synced(tmp, data)
            os.replace(tmp, target)
            _fsync_dir(self.incoming)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise QueueError(f"cannot queue {uid}: {e.strerror or e}") from None
        return True

    def pending(self) -> list[Path]:
        """Queued instances not yet classified, oldest first (a source whose results exist already leaves here)."""
        found = []
        for p in self.incoming.glob("*.dcm"):
            if (self.outbox / p.stem).is_dir() or self.was_classified(p.stem):
                p.unlink(missing_ok=True)  # killed after its results were written: nothing is lost
                continue
            try:
                found.append((p.stat().st_mtime_ns, p.name, p))
            except OSError:
                continue
        return [p for *_, p in sorted(found)]

    def was_classified(self, uid: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM classified WHERE source=?", (uid,)).fetchone() is not None

    # -- results ------------------------------------------------------------------------
    def finish(self, uid: str, datasets: list) -> Path:
        """Write the results of source ``uid`` into the outbox at once, then take the source off the queue."""
        uid = check_uid(uid)
        target = self.outbox / uid
        tmp = self.outbox / f".{uid}.{threading.get_ident()}.tmp"
        tmp.mkdir()
        try:
            for ds in datasets:
                path = tmp / f"{check_uid(ds.SOPInstanceUID)}.dcm"
                with open(path, "wb") as f:
                    ds.save_as(f, enforce_file_format=True)
                    f.flush()
                    os.fsync(f.fileno())
            _fsync_dir(tmp)
            os.replace(tmp, target)
            _fsync_dir(self.outbox)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO classified VALUES (?, ?)", (uid, time.time()))
        (self.incoming / f"{uid}.dcm").unlink(missing_ok=True)
        return target

    def waiting(self, limit: int = 100) -> list[tuple[str, Path]]:
        """Up to ``limit`` result files not yet sent, as (source UID, path), oldest source first."""
        entries = sorted((p.stat().st_mtime_ns, p.name, p) for p in self.outbox.iterdir()
                         if p.is_dir() and not p.name.startswith("."))
        found: list[tuple[str, Path]] = []
        for *_, folder in entries:
            files = sorted(folder.glob("*.dcm"))
            unsent = [f for f in files if not self.was_sent(f.stem)]
            if not unsent:
                shutil.rmtree(folder, ignore_errors=True)  # every result sent: the entry is done
                continue
            found += [(folder.name, f) for f in unsent]
            if len(found) >= limit:
                break
        return found

    def was_sent(self, uid: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM sent WHERE uid=?", (uid,)).fetchone() is not None

    def mark_sent(self, uid: str, source: str) -> None:
        """Record result ``uid`` (of source ``source``) as stored at the destination."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO sent VALUES (?, ?, ?)", (uid, source, time.time()))

    def counts(self) -> dict[str, int]:
        """How many sources are queued, how many have results waiting, and how many results were sent."""
        with self._lock:
            sent = self._db.execute("SELECT COUNT(*) FROM sent").fetchone()[0]
        return {"queued": len(list(self.incoming.glob("*.dcm"))),
                "outbox": sum(1 for p in self.outbox.iterdir() if p.is_dir() and not p.name.startswith(".")),
                "sent": int(sent)}
