"""Shared fixtures: tiny models and images, and guards that keep tests hermetic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
import torch

# Tests use tiny tensors: one thread is as fast and leaves the other core free.
torch.set_num_threads(1)

from cxrviewer import CamClassifier, save_model


def make_tiny_model(class_names=("NORMAL", "PNEUMONIA"), size=64, arch="resnet18", seed=0, **meta):
    """A randomly initialised CamClassifier with valid metadata."""
    torch.manual_seed(seed)
    m = CamClassifier(arch, len(class_names), 1, meta=dict(
        format_version=1, arch=arch, class_names=list(class_names), input_size=[size, size],
        input_channels=1, mean=[0.5], std=[0.25], **meta))
    return m.eval()


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path_factory, monkeypatch):
    """Every test gets its own results-cache folder: no test reads or writes the user's cache."""
    monkeypatch.setenv("CXRVIEWER_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def tiny_model_file(tmp_path):
    """Path to a saved tiny two-class model (64 x 64 input, threshold 0.5)."""
    return save_model(make_tiny_model(threshold=0.5, temperature=1.0), tmp_path / "tiny.safetensors")


@pytest.fixture(scope="session")
def orthanc_server(tmp_path_factory):
    """A real Orthanc (the distribution's package) on free loopback ports with a temporary storage folder and the
    DICOMweb plugin, for the whole session; skipped only when the ``Orthanc`` binary is absent (.ci/run installs it)."""
    from tests.pacs.orthanc import ORTHANC, start_orthanc

    if ORTHANC is None:
        pytest.skip("Orthanc is not installed (apt-get install orthanc orthanc-dicomweb; .ci/run does it)")
    server = start_orthanc(tmp_path_factory.mktemp("orthanc"), {})
    yield server
    server.stop()


@pytest.fixture
def orthanc(orthanc_server):
    """The session's Orthanc, emptied for this test."""
    orthanc_server.clear()
    yield orthanc_server
    orthanc_server.clear()


@pytest.fixture
def no_report_plots(monkeypatch):
    """Training writes its report's PNG files empty instead of drawing them (seconds per run): for tests of
    something else. The plots themselves are tested in ``tests/core/training/test_report.py``."""
    from cxrviewer.core.training import report

    def empty_png(fig, path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        return path

    monkeypatch.setattr(report, "_save", empty_png)


_IMPORT_PROBE = """
import importlib, json, pkgutil, sys
import cxrviewer, cxrviewer.cli, cxrviewer.core
for m in pkgutil.walk_packages(cxrviewer.core.__path__, "cxrviewer.core."):
    importlib.import_module(m.name)
core = sorted(sys.modules)
import cxrviewer.gui.view_state
print(json.dumps({"core and cli": core, "gui.view_state": sorted(sys.modules)}))
"""


@pytest.fixture(scope="session")
def fresh_imports():
    """The modules a fresh interpreter (no ``MPLBACKEND``) holds after importing the package root, the CLI and
    every core module (``"core and cli"``), then after also importing ``cxrviewer.gui.view_state``
    (``"gui.view_state"``): one subprocess (it imports torch: seconds) for every test of run-time imports."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    env.pop("MPLBACKEND", None)
    proc = subprocess.run([sys.executable, "-c", _IMPORT_PROBE], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])
