"""``cxrviewer predict`` under torchrun: 2 CPU processes give the single-process CSV; a failing rank leaves none."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch.multiprocessing as mp
from PIL import Image

from cxrviewer.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def scans(tmp_path):
    root = tmp_path / "scans"
    rng = np.random.default_rng(3)
    for i in range(7):
        sub = root / ("b" if i % 3 == 0 else "a")
        sub.mkdir(parents=True, exist_ok=True)
        w, h = int(rng.integers(64, 140)), int(rng.integers(64, 140))
        Image.fromarray(rng.integers(0, 255, (h, w), dtype=np.uint8)).save(sub / f"img{i}.png")
    (root / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(100)))
    return root


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1"}


def test_two_processes_under_torchrun_write_the_single_process_csv(scans, tiny_model_file, tmp_path):
    one, two, overlays = tmp_path / "one.csv", tmp_path / "two.csv", tmp_path / "overlays"
    assert main(["predict", str(scans), "--csv", str(one), "--model", str(tiny_model_file), "--batch-size", "2",
                 "--stability"]) == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "cxrviewer",
           "predict", str(scans), "--csv", str(two), "--model", str(tiny_model_file), "--batch-size", "2",
           "--overlays", str(overlays), "--stability"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "on 2 ranks" in proc.stderr
    lines = two.read_text().splitlines()
    # the same rows in the same (input) order; only the overlay column is new
    assert [",".join(l.split(",")[:-1]) for l in lines] == one.read_text().splitlines()
    assert lines[0].endswith(",precision,evidence_outside,evidence_flag,no_positive_evidence,unstable,shift_border,"
                             "shift_blur,shift_frame,checks,overlay") and len(lines) == 1 + 8
    rows = list(csv.DictReader(two.open(newline="")))
    assert {r["unstable"] for r in rows if not r["error"]} <= {"yes", "no"}  # every rank ran the stability check
    assert all(r["shift_border"] and r["shift_border"] != "not run" for r in rows if not r["error"])
    pngs = sorted(p.name for p in overlays.iterdir())
    assert pngs == sorted(f"img{i}_cam.png" for i in range(7))  # each rank wrote its own share
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary parts left


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, argv: list[str]) -> None:
    """One torchrun-like rank; rank 1 breaks in the middle of its share. Exits with 64 plus ``main``'s return
    code (an exception out of ``main`` would exit with 1)."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if rank == 1:
        from cxrviewer.core.batch import inference

        def broken(self, batch):
            raise MemoryError("simulated failure of rank 1")

        inference.Predictor._run_batch = broken
    sys.exit(64 + main(argv))


def test_a_failing_rank_leaves_no_csv(scans, tiny_model_file, tmp_path):
    out = tmp_path / "results.csv"
    argv = ["predict", str(scans), "--csv", str(out), "--model", str(tiny_model_file), "--batch-size", "2"]
    ctx = mp.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=_rank, args=(r, 2, port, argv)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [65, 65]  # each rank's main returned 1
    assert not out.exists()
    assert list(tmp_path.glob(".results.csv*")) == []


@pytest.mark.parametrize("n, world, block", [(10, 2, 3), (7, 3, 2), (1, 2, 16), (0, 2, 4)])
def test_shares_are_whole_batches_that_cover_every_input_once(n, world, block):
    from cxrviewer.core.batch.distributed import Group

    shares = [Group(r, world, world).share(n, block) for r in range(world)]
    assert sorted(i for s in shares for i in s) == list(range(n))
    for r, share in enumerate(shares):
        assert all(i // block % world == r for i in share)
