"""Thread layout: torch's OpenMP threads wait passively unless the user says otherwise."""

import importlib
import os

import cxrviewer


def test_openmp_threads_wait_passively_unless_set(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    importlib.reload(cxrviewer)
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    importlib.reload(cxrviewer)
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
