"""Persistent viewer preferences (QSettings, INI format) behind a small typed wrapper.

Tests redirect the INI location with ``QSettings.setPath`` (see tests/gui/conftest.py),
so they never touch the user's real settings.
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

from ..core.model.precision_policy import PRECISIONS
from ..core.pacs.pacs_client import PacsConfig
from ..core.results.overlay import DEFAULT_ALPHA

ORGANIZATION = "cxrviewer"
APPLICATION = "cxrviewer"
MAX_RECENT = 8


def _path(v) -> Path | None:
    return Path(str(v)) if v not in (None, "") else None


def _blob(v) -> QByteArray | None:
    return v if isinstance(v, QByteArray) and not v.isEmpty() else None


class _Setting:
    """One QSettings key as an attribute of :class:`Settings`: ``read`` turns the stored value
    (or None) into what the attribute gives, ``write`` turns an assigned value into what is stored."""

    def __init__(self, key: str, read, write=lambda v: v):
        self.key, self.read, self.write = key, read, write

    def __get__(self, settings: Settings | None, owner=None):
        return self if settings is None else self.read(settings._s.value(self.key))

    def __set__(self, settings: Settings, value) -> None:
        settings._s.setValue(self.key, self.write(value))


def _path_setting(key: str) -> _Setting:
    """A ``Path | None`` (assigning None or "" clears it)."""
    return _Setting(key, _path, lambda p: str(p) if p else "")


class Settings:
    """Typed access to the keys the viewer keeps: folders, recent list, window, view and model."""

    def __init__(self, qsettings: QSettings | None = None):
        self._s = qsettings or QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)

    @property
    def file_name(self) -> str:
        return self._s.fileName()

    @property
    def sessions_folder(self) -> Path:
        """Where reader sessions and their index go unless the user chooses: beside the settings file
        (the application's own folder; tests redirect it with the settings)."""
        return Path(self.file_name).parent / "sessions"

    def sync(self) -> None:
        self._s.sync()

    @property
    def pacs_cache(self) -> Path:
        """Where studies retrieved from a PACS are kept: beside the settings file, never in the user's folders."""
        return Path(self.file_name).parent / "pacs-cache"

    @property
    def pacs(self) -> PacsConfig:
        """The PACS the viewer queries and sends results to (File > PACS Settings)."""
        try:
            stored = json.loads(self._s.value("pacs/config", "{}"))
            return PacsConfig(**{k: v for k, v in stored.items() if k in PacsConfig.__dataclass_fields__})
        except (TypeError, ValueError, AttributeError):
            return PacsConfig()

    @pacs.setter
    def pacs(self, config: PacsConfig) -> None:
        self._s.setValue("pacs/config", json.dumps(vars(config)))

    # -- plain values ------------------------------------------------------------
    last_folder = _path_setting("files/last_folder")
    last_export_folder = _path_setting("files/last_export_folder")
    model_path = _path_setting("model/path")
    precision = _Setting("model/precision", lambda v: v if v in PRECISIONS else "auto")
    stability = _Setting("model/stability", lambda v: str(v).lower() not in ("false", "0"), bool)
    """Run the per-verdict stability check (default on: two more forward passes per image)."""
    results_cache = _Setting("model/results_cache", lambda v: str(v).lower() not in ("false", "0"), bool)
    """Keep results between runs in the results cache (default on; :mod:`cxrviewer.core.results.results_cache`)."""
    population_refuse = _Setting("model/population_refuse", lambda v: str(v).lower() in ("true", "1"), bool)
    """Withhold the verdicts of images outside the model's intended population (default off: flagged only)."""
    show_corners = _Setting("view/corner_text", lambda v: str(v).lower() != "false", bool)  # default on
    anonymise = _Setting("view/anonymise", lambda v: str(v).lower() == "true", bool)      # default off
    export_corners = _Setting("export/corners", lambda v: str(v).lower() == "true", bool)  # default off
    export_dicom = _Setting("export/dicom", lambda v: str(v).lower() == "true", bool)  # default off

    @property
    def opacity(self) -> float:
        try:
            return min(1.0, max(0.0, float(self._s.value("view/opacity", DEFAULT_ALPHA))))
        except (TypeError, ValueError):
            return DEFAULT_ALPHA

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
    geometry = _Setting("window/geometry", _blob)

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
