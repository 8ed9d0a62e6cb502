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


def test_lanes_share_the_thread_budget_and_runs_restore_it(tmp_path, monkeypatch):
    import numpy as np
    import torch
    from PIL import Image

    from cxrviewer.core.batch import inference, thread_layout
    from cxrviewer.core.batch.inference import Predictor
    from tests.conftest import make_tiny_model

    assert thread_layout.default_lanes(2) == 2 and thread_layout.threads_per_lane(2, 2) == 1
    assert thread_layout.default_lanes(16) == 4 and thread_layout.threads_per_lane(16, 4) == 4
    assert thread_layout.default_lanes(1) == 1 and thread_layout.threads_per_lane(1, 3) == 1
    before = torch.get_num_threads()
    with thread_layout.intra_op_threads(1):
        with thread_layout.intra_op_threads(1):  # overlapping runs: the first one's setting is what comes back
            assert torch.get_num_threads() == 1 and thread_layout.thread_budget() == before
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before

    paths = []
    for i in range(6):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (70, 80), dtype=np.uint8)).save(paths[-1])
    seen = []
    real = inference._decode
    monkeypatch.setattr(inference, "_decode", lambda *a: seen.append(torch.get_num_threads()) or real(*a))
    predictor = Predictor(make_tiny_model(), device="cpu", batch_size=2, workers=2)
    assert predictor.lane_threads == max(1, before // 2)
    assert [r.index for r in predictor.predict(paths)] == list(range(6))
    assert set(seen) == {predictor.lane_threads} and torch.get_num_threads() == before
