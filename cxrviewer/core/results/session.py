"""Reader-study session files: versioned JSON, and an index that finds a folder's session.

A session holds, per file, the reader's label, agreement, note and measurements (plain dicts
from the measurement tools' ``to_dict``), plus the live threshold. File keys are relative to
the study's folder, so a moved folder keeps its session. Sessions live where the user saves
them; :class:`SessionIndex` (in the application's own data folder, never beside the images)
maps a folder to its session file so that reopening the folder restores it. Qt-free.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from .. import atomic
from ..errors import CxrError
from .reader_study import ReaderEntry, ReaderStudy

FORMAT = "cxrviewer-session"
VERSION = 1
SUFFIX = ".cxrsession.json"


class SessionError(CxrError):
    """A session file that cannot be read (not a session, a newer version, broken JSON)."""


@dataclass
class Session:
    """What a session file holds: the study's folder (or inputs), the live threshold and the entries."""

    root: Path | None
    inputs: list[Path] = field(default_factory=list)
    threshold: float | None = None
    model: str = ""
    entries: dict[Path, ReaderEntry] = field(default_factory=dict)


def _key(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return Path(path).relative_to(root).as_posix()
        except ValueError:
            pass
    return str(path)


def _entry_dict(e: ReaderEntry) -> dict:
    return {"reader_label": e.label, "agrees": e.agrees, "note": e.note, "measurements": list(e.measurements)}


def session_to_dict(s: Session) -> dict:
    """The JSON-ready form of ``s`` (only entries that hold something)."""
    return {"format": FORMAT, "version": VERSION, "saved": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "root": None if s.root is None else str(s.root), "inputs": [str(p) for p in s.inputs],
            "threshold": s.threshold, "model": s.model,
            "entries": {_key(p, s.root): _entry_dict(e) for p, e in s.entries.items() if e.recorded}}


def _entry(d: dict) -> ReaderEntry:
    label, agrees, note = d.get("reader_label"), d.get("agrees"), d.get("note") or ""
    measurements = d.get("measurements") or []
    if not (label is None or isinstance(label, str)) or not (agrees is None or isinstance(agrees, bool)) \
            or not isinstance(note, str) or not isinstance(measurements, list):
        raise SessionError(f"malformed entry {d!r}")
    return ReaderEntry(label=label, agrees=agrees, note=note, measurements=measurements)


def session_from_dict(data: dict, root: Path | None = None) -> Session:
    """Read a session dict; ``root`` (default: the one recorded) anchors the relative file keys."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SessionError("not a cxrviewer session file")
    version = data.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise SessionError(f"session format version {version} is newer than this cxrviewer reads ({VERSION}); update cxrviewer")
    root = Path(root) if root is not None else (Path(data["root"]) if data.get("root") else None)
    threshold = data.get("threshold")
    if threshold is not None and not (isinstance(threshold, (int, float)) and 0.0 <= threshold <= 1.0):
        raise SessionError(f"threshold {threshold!r} is not a probability")
    entries = {(root / k if root is not None and not Path(k).is_absolute() else Path(k)): _entry(v)
               for k, v in (data.get("entries") or {}).items()}
    return Session(root, [Path(p) for p in data.get("inputs") or []], threshold, str(data.get("model") or ""), entries)


def save_session(session: Session, path: str | Path) -> Path:
    """Write ``session`` to ``path`` atomically (a temporary file, then rename); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_json_atomic(session_to_dict(session), path)
    return path


def load_session(path: str | Path, root: Path | None = None) -> Session:
    """Read the session file ``path``; any problem raises :class:`SessionError` with one clear line."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise SessionError(f"{path.name}: cannot read ({e.strerror or e})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SessionError(f"{path.name}: not a session file ({e})") from None
    try:
        return session_from_dict(data, root)
    except SessionError as e:
        raise SessionError(f"{path.name}: {e}") from None


class SessionIndex:
    """``index.json`` in the app's sessions folder: study folder -> its session file."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / "index.json"

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    @staticmethod
    def key(root: Path) -> str:
        return str(Path(root).resolve())

    def lookup(self, root: Path) -> Path | None:
        """The session file last saved for ``root``, if it still exists."""
        found = self._read().get(self.key(root))
        return Path(found) if found and Path(found).is_file() else None

    def remember(self, root: Path, session_file: Path) -> None:
        data = self._read()
        data[self.key(root)] = str(Path(session_file).resolve())
        self.folder.mkdir(parents=True, exist_ok=True)
        save_json_atomic(data, self.path)

    def default_file(self, root: Path) -> Path:
        """Where a session for ``root`` goes unless the user chooses: the sessions folder, named after ``root``."""
        digest = hashlib.sha1(self.key(root).encode()).hexdigest()[:8]
        return self.folder / f"{Path(root).name or 'session'}-{digest}{SUFFIX}"


def save_json_atomic(data, path: Path) -> None:
    """Write ``data`` as JSON to ``path`` atomically."""
    atomic.write_json(path, data, ensure_ascii=False)


def session_of(study: ReaderStudy, inputs: list[Path], model: str = "") -> Session:
    """The session of ``study`` (its recorded entries and live threshold)."""
    return Session(study.root, list(inputs), study.threshold, model, study.recorded())


def restore(study: ReaderStudy, session: Session) -> int:
    """Copy ``session``'s entries and threshold into ``study``; returns how many entries were restored."""
    for path, saved in session.entries.items():
        e = study.entry(path)
        e.label, e.agrees, e.note, e.measurements = saved.label, saved.agrees, saved.note, list(saved.measurements)
    study.threshold = session.threshold
    return len(session.entries)
