"""Linux desktop integration: install the .desktop entry and icon for the current user.

``install_desktop_entry()`` writes ``~/.local/share/applications/cxrviewer.desktop``
(Exec = the installed ``cxrviewer-gui``) and the icon into the hicolor theme.
``python -m cxrviewer.gui.desktop`` does the same from a shell.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ..core import atomic
from .icons import PNG_SIZES, png_path, svg_path

TEMPLATE = """[Desktop Entry]
Type=Application
Version=1.0
Name=cxrviewer
GenericName=Chest Radiograph Viewer
Comment=Review chest radiographs with an AI second reader and class activation maps (research use only)
Exec={exec} %F
TryExec={tryexec}
Icon=cxrviewer
Terminal=false
Categories=Graphics;Viewer;Science;MedicalSoftware;
MimeType=image/jpeg;image/png;image/tiff;image/bmp;application/dicom;inode/directory;
Keywords=X-ray;radiograph;chest;CAM;DICOM;
StartupWMClass=cxrviewer
"""


def gui_command() -> str:
    """The absolute path of the ``cxrviewer-gui`` launcher (next to this Python first, then on PATH)."""
    candidates = [Path(sys.executable).with_name("cxrviewer-gui")]
    found = shutil.which("cxrviewer-gui")
    if found:
        candidates.append(Path(found))
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c.resolve())
    raise FileNotFoundError("cxrviewer-gui is not installed; run `pip install .` first")


def desktop_entry(exec_path: str) -> str:
    quoted = f'"{exec_path}"' if " " in exec_path else exec_path
    return TEMPLATE.format(exec=quoted, tryexec=exec_path)


def data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def install_desktop_entry(exec_path: str | None = None, data_dir: Path | None = None) -> Path:
    """Install the entry and icons for this user; returns the ``.desktop`` file written."""
    data_dir = Path(data_dir) if data_dir else data_home()
    exec_path = exec_path or gui_command()
    apps = data_dir / "applications"
    apps.mkdir(parents=True, exist_ok=True)
    for size in PNG_SIZES:
        if png_path(size).is_file():
            dest = data_dir / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "cxrviewer.png"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(png_path(size), dest)
    if svg_path().is_file():
        dest = data_dir / "icons" / "hicolor" / "scalable" / "apps" / "cxrviewer.svg"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(svg_path(), dest)
    entry = apps / "cxrviewer.desktop"
    return atomic.write_text(entry, desktop_entry(exec_path), mode=0o755)


if __name__ == "__main__":
    try:
        print(f"installed {install_desktop_entry()}")
    except (FileNotFoundError, OSError) as e:
        print(f"cxrviewer: cannot install the desktop entry: {e}", file=sys.stderr)
        sys.exit(1)
