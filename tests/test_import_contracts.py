"""The layering is enforced: import-linter's contracts (pyproject.toml) hold, can fail, and what they
cannot see statically (lazy imports, matplotlib backends) is checked by importing in a clean interpreter."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def _lint(package_parent: Path) -> subprocess.CompletedProcess:
    """Run ``lint-imports`` with the repository's contracts on the ``cxrviewer`` under ``package_parent``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package_parent), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", LINT, "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
                          cwd=package_parent, env=env, capture_output=True, text=True, timeout=120)


def test_import_contracts_are_kept():
    proc = _lint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "6 kept, 0 broken" in proc.stdout


@pytest.mark.parametrize("module, line, contract", [
    ("core/errors.py", "import PySide6", "cxrviewer.core imports no Qt"),
    ("core/training/metrics.py", "from superqt import utils", "cxrviewer.core imports no Qt"),
    ("core/results/overlay.py", "from ...gui import theme", "cxrviewer.core imports no Qt"),
    ("cli.py", "from superqt import utils", "The package root, __main__ and the CLI"),
    ("new_helper.py", "from PySide6 import QtCore", "Only cxrviewer.gui imports PySide6"),
    ("gui/theme.py", "from .. import cli", "Layers"),
    ("core/io/window.py", "from ..model import classifier", "Core parts"),
    ("core/model/scope.py", "from ..results import columns", "Core parts"),
    ("core/training/data.py", "from ..site import evaluation", "Core parts"),
    ("core/errors.py", "from .io import window", "The core's base modules"),
])
def test_a_forbidden_import_breaks_a_contract(tmp_path, module, line, contract):
    shutil.copytree(ROOT / "cxrviewer", tmp_path / "cxrviewer", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "cxrviewer" / module
    target.write_text((target.read_text() if target.exists() else "") + f"\n{line}\n")
    proc = _lint(tmp_path)
    assert proc.returncode != 0
    assert _verdict(proc.stdout, contract) == "BROKEN", proc.stdout


def _verdict(output: str, contract: str) -> str:
    """KEPT or BROKEN: the first verdict after the contract's name in lint-imports' summary."""
    text = " ".join(output.split())
    rest = text[text.index(contract):]
    return min(("KEPT", "BROKEN"), key=lambda v: rest.find(v) if v in rest else len(rest))


QT_OR_GUI = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "superqt", "qtpy", "cxrviewer.gui", "matplotlib.pyplot",
             "matplotlib.backends.backend_qt", "matplotlib.backends.backend_tk", "matplotlib.backends.backend_gtk",
             "matplotlib.backends.backend_wx", "matplotlib.backends.backend_macosx")


def test_core_and_cli_import_no_qt_gui_or_gui_backend_at_run_time(fresh_imports):
    """Every core module, the package root and the CLI load without Qt, the GUI or an interactive backend:
    the CLI imports the GUI only inside the function that starts it."""
    assert [m for m in fresh_imports["core and cli"] if m.startswith(QT_OR_GUI)] == []
    assert "cxrviewer.core.batch.inference" in fresh_imports["core and cli"]  # the probe imported the core
