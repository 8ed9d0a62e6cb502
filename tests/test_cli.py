"""The ``cxrviewer`` command end to end with a tiny model: CSV, overlays, exit codes, one-line errors."""

from __future__ import annotations

import re
import csv
import shutil
import signal
import subprocess
import sys
import threading
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cxrviewer import __version__
from cxrviewer.cli import main

SIZES = {"a.jpg": (70, 90), "b.JPEG": (120, 64), "sub/c.jpg": (64, 100)}


@pytest.fixture
def scans(tmp_path):
    return _write_scans(tmp_path / "scans")


def _write_scans(root: Path) -> Path:
    """Three small JPEGs (one in a subfolder), a broken JPEG and a text file in ``root``."""
    rng = np.random.default_rng(0)
    for name, (w, h) in SIZES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (h, w), dtype=np.uint8)).save(root / name)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(200)))
    (root / "readme.txt").write_text("not an image")
    return root


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    # the line that says which precision runs (printed once the model is prepared) is not an error
    lines = [ln for ln in err.strip().splitlines() if not re.match(r"cxrviewer: (float32|bfloat16|float16|int8) \(", ln)]
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("cxrviewer")
    return lines[0]


def test_predict_writes_csv_and_overlays_without_touching_inputs(scans, tiny_model_file, tmp_path, capsys):
    before = _snapshot(scans)
    out, ov = tmp_path / "results.csv", tmp_path / "overlays"
    code = main(["predict", str(scans), "--csv", str(out), "--overlays", str(ov), "--model", str(tiny_model_file),
                 "--batch-size", "2"])
    assert code == 0, capsys.readouterr().err
    assert _snapshot(scans) == before
    rows = list(csv.DictReader(out.open(newline="")))
    assert list(rows[0])[:9] == ["path", "label", "p_NORMAL", "p_PNEUMONIA", "in_scope", "scope_score", "scope_reason",
                                 "population", "error"]
    assert {"threshold", "width", "height", "format", "model", "overlay"} <= set(rows[0])
    assert [Path(r["path"]).name for r in rows] == ["a.jpg", "b.JPEG", "broken.jpg", "c.jpg"]
    assert {(r["unstable"], r["shift_border"], r["shift_blur"]) for r in rows if not r["error"]} == {("not run",) * 3}
    assert all(r["evidence_flag"] in ("yes", "no") for r in rows if not r["error"])  # evidence location: always on
    broken = rows[2]
    assert broken["error"] and broken["label"] == "" and broken["overlay"] == ""
    for r in rows[:2] + rows[3:]:
        assert r["error"] == "" and r["label"] in ("NORMAL", "PNEUMONIA")
        assert float(r["p_NORMAL"]) + float(r["p_PNEUMONIA"]) == pytest.approx(1, abs=1e-5)
        rel = str(Path(r["path"]).relative_to(scans))
        assert (int(r["width"]), int(r["height"])) == SIZES[rel]
        with Image.open(r["overlay"]) as im:  # the image at its own size; a small one gets its caption in a band below
            w, h = SIZES[rel]
            assert im.format == "PNG" and im.size[0] == max(w, 224) and im.size[1] > h
    assert sorted(p.name for p in ov.iterdir()) == ["a_cam.png", "b_cam.png", "c_cam.png"]
    assert "4 file(s): 3 classified, 1 failed" in capsys.readouterr().err

    # again into the same folder: new names, nothing overwritten; an existing CSV is refused
    first = (ov / "a_cam.png").read_bytes()
    assert main(["predict", str(scans / "a.jpg"), "--csv", str(out), "--model", str(tiny_model_file)]) == 1
    assert "already exists" in _one_error_line(capsys)
    assert main(["predict", str(scans / "a.jpg"), "--csv", str(out), "--overwrite", "--overlays", str(ov),
                 "--model", str(tiny_model_file), "--class", "NORMAL", "--scale", "fixed"]) == 0
    assert (ov / "a_cam (1).png").exists() and (ov / "a_cam.png").read_bytes() == first
    assert len(list(csv.DictReader(out.open()))) == 1


def test_predict_stability_fills_the_stability_columns(scans, tiny_model_file, tmp_path):
    out = tmp_path / "stable.csv"
    assert main(["predict", str(scans), "--csv", str(out), "--model", str(tiny_model_file), "--stability"]) == 0
    rows = [r for r in csv.DictReader(out.open(newline="")) if not r["error"]]
    assert len(rows) == 3 and all(r["unstable"] in ("yes", "no") for r in rows)
    for r in rows:
        shifts = float(r["shift_border"]), float(r["shift_blur"])
        assert (r["unstable"] == "yes") == (max(map(abs, shifts)) > 1 or "unstable" in r["checks"])


def test_overlays_never_go_inside_an_input_folder(scans, tiny_model_file, tmp_path, capsys):
    before = _snapshot(scans)
    code = main(["predict", str(scans), "--csv", str(tmp_path / "r.csv"), "--overlays", str(scans / "ov"),
                 "--model", str(tiny_model_file)])
    assert code == 1 and "inside the input folder" in _one_error_line(capsys)
    assert _snapshot(scans) == before and not (scans / "ov").exists() and not (tmp_path / "r.csv").exists()
    # nor the input folder itself, nor the CSV into, onto or inside an input
    target = tmp_path / "r.csv"
    cases = [
        (["--csv", str(target), "--overlays", str(scans / "sub")], "input folder"),
        (["--csv", str(scans / "r.csv")], "inside the input folder"),
        (["--csv", str(scans / "sub" / "c.jpg"), "--overwrite"], "input folder"),
    ]
    for extra, needle in cases:
        assert main(["predict", str(scans), *extra, "--model", str(tiny_model_file)]) == 1
        assert needle in _one_error_line(capsys)
    assert main(["predict", str(scans / "a.jpg"), "--csv", str(scans / "a.jpg"), "--overwrite",
                 "--model", str(tiny_model_file)]) == 1
    assert "is one of the input files" in _one_error_line(capsys)
    assert _snapshot(scans) == before and not target.exists()
    assert main(["predict", str(scans), "--csv", str(tmp_path), "--model", str(tiny_model_file)]) == 1
    line = _one_error_line(capsys)
    assert "is a folder" in line and "--overwrite" not in line


def test_bad_model_files_missing_inputs_and_bad_options_give_one_line(scans, tiny_model_file, tmp_path, capsys):
    out = str(tmp_path / "r.csv")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(np.random.default_rng(1).bytes(2000))
    pickled = tmp_path / "pickled.safetensors"
    torch.save({"w": torch.zeros(3)}, pickled)
    cases = [
        (["--model", str(junk)], "junk.safetensors"),
        (["--model", str(pickled)], "pickle"),
        (["--model", str(tmp_path / "absent.safetensors")], "not found"),
        (["--model", str(tiny_model_file), "--class", "COVID"], "COVID"),
        (["--model", str(tiny_model_file), "--device", "banana"], "unknown device"),
    ]
    for extra, needle in cases:
        assert main(["predict", str(scans), "--csv", out, *extra]) == 1
        assert needle in _one_error_line(capsys)
    assert main(["predict", str(tmp_path / "nowhere"), "--csv", out, "--model", str(tiny_model_file)]) == 1
    assert "no such file or folder" in _one_error_line(capsys)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", str(empty), "--csv", out, "--model", str(tiny_model_file)]) == 1
    assert "no images found" in _one_error_line(capsys)
    assert main(["predict", str(scans), "--csv", str(tmp_path / "no" / "r.csv"), "--model", str(tiny_model_file)]) == 1
    assert "does not exist" in _one_error_line(capsys)
    assert main(["predict", str(scans), "--csv", out, "--batch-size", "0"]) == 2
    assert "--batch-size" in _one_error_line(capsys)
    assert main(["predict", str(scans)]) == 2
    assert "--csv" in _one_error_line(capsys)
    assert not Path(out).exists() and list(tmp_path.glob(".*.part")) == []


def test_interrupt_mid_batch_leaves_no_csv(scans, tiny_model_file, tmp_path, monkeypatch, capsys):
    from cxrviewer.core.batch import inference

    real = inference.Predictor.predict

    def interrupted(self, paths, cancel=None, progress=None):
        for i, r in enumerate(real(self, paths, cancel, progress)):
            if i == 1:
                raise KeyboardInterrupt
            yield r

    monkeypatch.setattr(inference.Predictor, "predict", interrupted)
    code = main(["predict", str(scans), "--csv", str(tmp_path / "r.csv"), "--model", str(tiny_model_file)])
    assert code == 130 and "interrupted" in _one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["scans", tiny_model_file.name])


def test_version_and_gui_dispatch(monkeypatch, scans, capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"cxrviewer {__version__}"
    calls = []
    fake = types.ModuleType("cxrviewer.gui.app")
    fake.main = lambda paths=None: calls.append(paths) or 0
    monkeypatch.setitem(sys.modules, "cxrviewer.gui.app", fake)
    assert main([]) == 0 and main([str(scans), str(scans / "a.jpg")]) == 0
    assert calls == [None, [str(scans), str(scans / "a.jpg")]]
    assert main([str(scans / "missing.jpg")]) == 1
    assert "no such file or folder" in _one_error_line(capsys)
    monkeypatch.setitem(sys.modules, "cxrviewer.gui.app", None)  # viewer cannot be imported
    assert main([]) == 1 and "cannot start the viewer" in _one_error_line(capsys)


def test_python_dash_m_runs_quietly_off_a_terminal(scans, tiny_model_file, tmp_path):
    from pydicom.data import get_testdata_file

    from tests.core.dicom_factory import make_dicom

    odd = tmp_path / "odd"
    odd.mkdir()
    shutil.copy(get_testdata_file("SC_rgb_jpeg.dcm", download=False), odd)  # pydicom warns about its VR
    make_dicom(odd / "overflow.dcm", np.full((32, 32), 4000, np.uint16), RescaleSlope="1e38")  # numpy overflows
    Image.fromarray(np.zeros((9000, 9999), np.uint8)).save(odd / "huge.png")  # Pillow warns, cxrviewer refuses
    out = tmp_path / "r.csv"
    proc = subprocess.run([sys.executable, "-m", "cxrviewer", "predict", str(scans / "a.jpg"), str(odd), "--csv", str(out),
                           "--model", str(tiny_model_file)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert proc.stdout == "" and lines[1:] == [f"cxrviewer: 4 file(s): 2 classified, 2 failed -> {out}"]
    assert lines[0].startswith("cxrviewer: float32 (auto: ")  # which precision and why, once
    rows = {Path(r["path"]).name: r for r in csv.DictReader(out.open(newline=""))}
    assert "not finite" in rows["overflow.dcm"]["error"] and "refused" in rows["huge.png"]["error"]
    assert rows["SC_rgb_jpeg.dcm"]["error"] == ""


def test_install_desktop_writes_an_entry(tmp_path, monkeypatch, capsys):
    from cxrviewer.cli import main

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert main(["--install-desktop"]) == 0
    entry = tmp_path / "applications" / "cxrviewer.desktop"
    text = entry.read_text()
    assert "Exec=" in text and "Icon=" in text
    assert "installed" in capsys.readouterr().out


_STUCK = """
import sys, threading
from pathlib import Path
from cxrviewer.cli import main
from cxrviewer.core.batch import inference

real, marker = inference._decode, Path(sys.argv[1])

def stuck(i, *rest):
    if i >= 1:
        marker.touch()
        threading.Event().wait()  # a read that never returns
    return real(i, *rest)

inference._decode = stuck
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture(scope="module")
def stuck_predicts(tmp_path_factory):
    """The signal tests' ``predict`` subprocesses, one per signal, started together (each imports torch for
    seconds; two cores start both in the time of one): signal -> (process, stuck marker, CSV path, its folder)."""
    from cxrviewer import save_model
    from tests.conftest import make_tiny_model

    model = save_model(make_tiny_model(threshold=0.5, temperature=1.0),
                       tmp_path_factory.mktemp("model") / "tiny.safetensors")
    started = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        folder = tmp_path_factory.mktemp(f"stuck_{sig.name}")
        scans, marker, out = _write_scans(folder / "scans"), folder / "stuck", folder / "r.csv"
        started[sig] = (subprocess.Popen([sys.executable, "-c", _STUCK, str(marker), "predict", str(scans), "--csv",
                                          str(out), "--model", str(model), "--batch-size", "2"],
                                         stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1]),
                        marker, out, folder)
    yield started
    for proc, *_ in started.values():
        proc.kill()
        proc.communicate()


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_ends_predict_while_a_decode_is_stuck(stuck_predicts, sig, code):
    proc, marker, out, tmp_path = stuck_predicts[sig]
    try:
        for _ in range(2400):  # until a decode thread is stuck (a hang guard, not a timing)
            if marker.exists() or proc.poll() is not None:
                break
            threading.Event().wait(0.05)
        assert marker.exists(), proc.stderr.read() if proc.poll() is not None else "no decode got stuck"
        proc.send_signal(sig)
        err = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert err.strip().splitlines()[-1].endswith("no CSV written")
    assert not out.exists() and not list(tmp_path.glob(".*.part"))


def test_unreadable_folders_are_named_not_dropped(scans, tiny_model_file, tmp_path, monkeypatch, capsys):
    import os

    real_scandir = os.scandir

    def scandir(path="."):
        if str(path).endswith("sub"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert main(["predict", str(scans), "--csv", str(tmp_path / "r.csv"), "--model", str(tiny_model_file)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == f"cxrviewer: skipped {scans / 'sub'}: folder cannot be read (Permission denied)"
    assert "3 file(s)" in err[-1]


def test_predict_twice_takes_known_results_from_the_cache(scans, tiny_model_file, tmp_path, monkeypatch, capsys):
    import os

    from cxrviewer.core.batch.inference import Predictor

    first, second, third = tmp_path / "1.csv", tmp_path / "2.csv", tmp_path / "3.csv"
    args = [str(scans), "--model", str(tiny_model_file), "--stability"]
    assert main(["predict", *args, "--csv", str(first)]) == 0
    capsys.readouterr()
    calls = []
    real = Predictor.forward
    monkeypatch.setattr(Predictor, "forward", lambda self, arrays: calls.append(len(arrays)) or real(self, arrays))
    assert main(["predict", *args, "--csv", str(second)]) == 0
    assert "all from the results cache (no model run)" in capsys.readouterr().err
    assert calls == [] and first.read_bytes() == second.read_bytes()
    cache = Path(os.environ["CXRVIEWER_CACHE_DIR"])
    before = sorted(p.name for p in cache.iterdir())
    assert main(["predict", *args, "--csv", str(third), "--no-cache"]) == 0
    assert sum(calls) == 3 and third.read_bytes() == first.read_bytes()  # every image classified again
    assert "results cache" not in capsys.readouterr().err


def test_a_rerun_answered_from_the_cache_imports_no_torch(scans, tiny_model_file, tmp_path):
    """Most of a small rerun's time would be importing torch: a rerun the cache answers never does."""
    code = ("import sys; from cxrviewer.cli import main; "
            f"code = main(['predict', {str(scans)!r}, '--model', {str(tiny_model_file)!r}, '--csv', sys.argv[1]]); "
            "print(code, 'torch' in sys.modules)")
    runs = [subprocess.run([sys.executable, "-c", code, str(tmp_path / f"{i}.csv")], capture_output=True, text=True,
                           timeout=120) for i in range(2)]
    assert [r.stdout.split() for r in runs] == [["0", "True"], ["0", "False"]], runs[1].stderr
    assert (tmp_path / "0.csv").read_bytes() == (tmp_path / "1.csv").read_bytes()
