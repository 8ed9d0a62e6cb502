"""Shared fixtures: tiny models and images, and guards that keep tests hermetic."""

from __future__ import annotations

import os

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
