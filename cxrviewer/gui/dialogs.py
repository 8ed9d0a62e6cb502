"""Every question the viewer asks the user, as small functions that tests monkeypatch.

Each returns plain Python values (paths, bools) so that callers never see a dialog object.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox, QWidget

from ..core.io.radiograph import IMAGE_SUFFIXES

IMAGE_FILTER = f"Radiographs ({' '.join(f'*{s}' for s in sorted(IMAGE_SUFFIXES))});;All files (*)"
MODEL_FILTER = "cxrviewer model (*.safetensors);;All files (*)"
SESSION_FILTER = "cxrviewer session (*.cxrsession.json);;JSON (*.json);;All files (*)"


def _start(start: Path | None) -> str:
    return str(start) if start else str(Path.home())


def ask_folder(parent: QWidget | None, start: Path | None = None, title: str = "Open Folder") -> Path | None:
    folder = QFileDialog.getExistingDirectory(parent, title, _start(start))
    return Path(folder) if folder else None


def ask_files(parent: QWidget | None, start: Path | None = None) -> list[Path]:
    files, _ = QFileDialog.getOpenFileNames(parent, "Open Files", _start(start), IMAGE_FILTER)
    return [Path(f) for f in files]


def ask_model_file(parent: QWidget | None, start: Path | None = None) -> Path | None:
    path, _ = QFileDialog.getOpenFileName(parent, "Load Model", _start(start), MODEL_FILTER)
    return Path(path) if path else None


def ask_open_file(parent: QWidget | None, title: str, start: Path | None, file_filter: str) -> Path | None:
    path, _ = QFileDialog.getOpenFileName(parent, title, _start(start), file_filter)
    return Path(path) if path else None


def ask_item(parent: QWidget | None, title: str, label: str, items: list[str], editable: bool = True) -> str | None:
    """Pick one of ``items`` (or type another when ``editable``); None when cancelled."""
    text, ok = QInputDialog.getItem(parent, title, label, items, 0, editable)
    return text.strip() if ok and text.strip() else None


def ask_save_file(parent: QWidget | None, title: str, suggested: Path, file_filter: str) -> Path | None:
    """A save dialog; the dialog itself asks before replacing an existing file."""
    path, _ = QFileDialog.getSaveFileName(parent, title, str(suggested), file_filter)
    return Path(path) if path else None


def confirm(parent: QWidget | None, title: str, text: str) -> bool:
    answer = QMessageBox.question(parent, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                  QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


def inform(parent: QWidget | None, title: str, text: str) -> None:
    QMessageBox.information(parent, title, text)


def show_error(parent: QWidget | None, title: str, text: str) -> None:
    QMessageBox.warning(parent, title, text)


def show_about(parent: QWidget | None, title: str, html: str) -> None:
    QMessageBox.about(parent, title, html)
