"""Persistent viewer preferences (QSettings, INI format) behind a small typed wrapper.

Tests redirect the INI location with ``QSettings.setPath`` (see tests/gui/conftest.py),
so they never touch the user's real settings.
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

ORGANIZATION = "cxrviewer"
APPLICATION = "cxrviewer"
MAX_RECENT = 8


class Settings:
    """Typed access to the keys the viewer keeps: folders, recent list, window, view and model."""

    def __init__(self, qsettings: QSettings | None = None):
        self._s = qsettings or QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)

    @property
    def file_name(self) -> str:
        return self._s.fileName()

    def sync(self) -> None:
        self._s.sync()

    # -- plain values ------------------------------------------------------------
    def _str(self, key: str) -> str | None:
        v = self._s.value(key)
        return str(v) if v not in (None, "") else None

    @property
    def last_folder(self) -> Path | None:
        v = self._str("files/last_folder")
        return Path(v) if v else None

    @last_folder.setter
    def last_folder(self, folder: str | Path) -> None:
        self._s.setValue("files/last_folder", str(folder))

    @property
    def last_export_folder(self) -> Path | None:
        v = self._str("files/last_export_folder")
        return Path(v) if v else None

    @last_export_folder.setter
    def last_export_folder(self, folder: str | Path) -> None:
        self._s.setValue("files/last_export_folder", str(folder))

    @property
    def model_path(self) -> Path | None:
        v = self._str("model/path")
        return Path(v) if v else None

    @model_path.setter
    def model_path(self, path: str | Path | None) -> None:
        self._s.setValue("model/path", str(path) if path else "")

    @property
    def opacity(self) -> float:
        try:
            return min(1.0, max(0.0, float(self._s.value("view/opacity", 0.4))))
        except (TypeError, ValueError):
            return 0.4

    @opacity.setter
    def opacity(self, value: float) -> None:
        self._s.setValue("view/opacity", float(value))

    # -- recent inputs (stored as JSON: INI lists of one item come back as strings) --
    @property
    def recent(self) -> list[list[str]]:
        """Recently opened inputs, newest first; each entry is the list of paths opened together."""
        try:
            items = json.loads(self._s.value("files/recent", "[]"))
        except (TypeError, json.JSONDecodeError):
            return []
        return [list(map(str, e)) for e in items if isinstance(e, list) and e][:MAX_RECENT]

    def add_recent(self, paths: list[str | Path]) -> None:
        entry = [str(p) for p in paths]
        items = [e for e in self.recent if e != entry]
        self._s.setValue("files/recent", json.dumps([entry, *items][:MAX_RECENT]))

    def clear_recent(self) -> None:
        self._s.setValue("files/recent", "[]")

    # -- window state (opaque Qt blobs) -------------------------------------------
    def _bytes(self, key: str) -> QByteArray | None:
        v = self._s.value(key)
        return v if isinstance(v, QByteArray) and not v.isEmpty() else None

    @property
    def geometry(self) -> QByteArray | None:
        return self._bytes("window/geometry")

    @geometry.setter
    def geometry(self, blob: QByteArray) -> None:
        self._s.setValue("window/geometry", blob)

    @property
    def window_state(self) -> QByteArray | None:
        return self._bytes("window/state")

    @window_state.setter
    def window_state(self, blob: QByteArray) -> None:
        self._s.setValue("window/state", blob)

    @property
    def splitter(self) -> list[int] | None:
        try:
            sizes = json.loads(self._s.value("window/splitter", "null"))
        except (TypeError, json.JSONDecodeError):
            return None
        return [int(s) for s in sizes] if isinstance(sizes, list) and sizes else None

    @splitter.setter
    def splitter(self, sizes: list[int]) -> None:
        self._s.setValue("window/splitter", json.dumps([int(s) for s in sizes]))
