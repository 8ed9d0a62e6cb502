"""Exports: atomic writes, never overwriting silently, streaming CSV, output folder rules."""

from __future__ import annotations

import csv
import errno
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrviewer.core import export
from cxrviewer.core.export import CsvWriter, ExportError, check_output_dir, overlay_path, save_png, unique_path
from cxrviewer.core.results import FileResult


def _img(value: int, size=(12, 8)) -> Image.Image:
    return Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8))


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".part")]


def test_png_is_written_and_never_overwritten(tmp_path):
    target = tmp_path / "x_cam.png"
    assert save_png(_img(10), target) == target
    assert save_png(_img(20), target) == tmp_path / "x_cam (1).png"
    assert save_png(_img(30), target) == tmp_path / "x_cam (2).png"
    assert np.asarray(Image.open(target))[0, 0, 0] == 10  # the first file is untouched
    assert np.asarray(Image.open(tmp_path / "x_cam (2).png"))[0, 0, 0] == 30
    assert save_png(_img(40), target, overwrite=True) == target
    assert np.asarray(Image.open(target))[0, 0, 0] == 40
    assert not _leftovers(tmp_path)
    assert unique_path(target) == tmp_path / "x_cam (3).png"


def test_no_overwrite_without_hard_links(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(errno.EPERM, "links not supported")

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "y.png"
    save_png(_img(1), target)
    assert save_png(_img(2), target) == tmp_path / "y (1).png"
    assert np.asarray(Image.open(target))[0, 0, 0] == 1
    assert not _leftovers(tmp_path)


def test_failed_write_leaves_nothing(tmp_path):
    class Broken:
        def save(self, f, **kwargs):
            f.write(b"\x89PNG partial")
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(ExportError, match="No space left"):
        save_png(Broken(), tmp_path / "z.png")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ExportError, match="does not exist"):
        save_png(_img(1), tmp_path / "missing" / "z.png")


def _ok(name: str, p: float) -> FileResult:
    return FileResult(path=Path(name), probs={"NORMAL": 1 - p, "PNEUMONIA": p}, label="PNEUMONIA" if p >= 0.5 else "NORMAL",
                      image_size=(30, 20), meta={"format": "JPEG"})


def test_csv_streams_rows_and_appears_atomically(tmp_path):
    out = tmp_path / "results.csv"
    with CsvWriter(out, ["NORMAL", "PNEUMONIA"], extras=("width", "height", "model")) as w:
        w.write(_ok("a.jpg", 0.9), width=30, height=20, model="m")
        assert not out.exists()
        (part,) = [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
        assert "a.jpg,PNEUMONIA" in part.read_text()  # rows are flushed as they come
        w.write(FileResult(path=Path("b.jpg"), error="truncated JPEG data"), model="m")
    assert not _leftovers(tmp_path)
    rows = list(csv.DictReader(out.open(newline="")))
    assert list(rows[0]) == ["path", "label", "p_NORMAL", "p_PNEUMONIA", "error", "width", "height", "model"]
    assert rows[0] == {"path": "a.jpg", "label": "PNEUMONIA", "p_NORMAL": "0.100000", "p_PNEUMONIA": "0.900000",
                       "error": "", "width": "30", "height": "20", "model": "m"}
    assert rows[1]["error"] == "truncated JPEG data" and rows[1]["label"] == "" and rows[1]["p_NORMAL"] == ""


def test_csv_refuses_an_existing_file_unless_told(tmp_path):
    out = tmp_path / "results.csv"
    out.write_text("precious\n")
    with pytest.raises(ExportError, match="already exists"):
        CsvWriter(out, ["A", "B"])
    assert out.read_text() == "precious\n"
    with CsvWriter(out, ["A", "B"], extras=(), overwrite=True) as w:
        w.write(_ok("a.jpg", 0.2))
    assert out.read_text().splitlines()[0] == "path,label,p_A,p_B,error"
    with pytest.raises(ExportError, match="folder"):
        CsvWriter(tmp_path, ["A", "B"])


def test_csv_interrupted_leaves_nothing(tmp_path):
    out = tmp_path / "results.csv"
    with pytest.raises(KeyboardInterrupt):
        with CsvWriter(out, ["NORMAL", "PNEUMONIA"]) as w:
            w.write(_ok("a.jpg", 0.9))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError):
        CsvWriter(out, ["NORMAL", "PNEUMONIA"]).write(_ok("a.jpg", 0.1), nonsense=1)


def test_csv_target_that_appears_meanwhile_is_not_overwritten(tmp_path):
    out = tmp_path / "r.csv"
    w = CsvWriter(out, ["A", "B"])
    out.write_text("someone else's\n")
    assert w.close() == tmp_path / "r (1).csv"
    assert out.read_text() == "someone else's\n"


def test_output_folder_rules(tmp_path):
    scans = tmp_path / "scans"
    (scans / "sub").mkdir(parents=True)
    img = scans / "sub" / "a.jpg"
    img.write_bytes(b"")
    with pytest.raises(ExportError, match="inside the input folder"):
        check_output_dir(scans / "overlays", [scans])
    with pytest.raises(ExportError, match="inside the input folder"):
        check_output_dir(scans / "sub", [scans])
    assert check_output_dir(scans, [scans]) == scans.resolve()  # the input folder itself, chosen explicitly
    assert check_output_dir(scans / "sub", [img]) == (scans / "sub").resolve()  # folder of a named file
    assert check_output_dir(tmp_path / "out", [scans, img]) == (tmp_path / "out").resolve()
    with pytest.raises(ExportError, match="not a folder"):
        check_output_dir(img, [tmp_path / "elsewhere"])
    assert overlay_path(tmp_path, "x/y/chest.01.jpeg") == tmp_path / "chest.01_cam.png"
    assert export.numbered(Path("a.b.csv"), 2) == Path("a.b (2).csv")
