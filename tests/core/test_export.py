"""Exports: atomic writes, never overwriting silently, streaming CSV, output folder rules."""

from __future__ import annotations

import csv
import errno
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrviewer.core.results import columns, export
from cxrviewer.core.results.columns import Batch, csv_columns
from cxrviewer.core.results.export import (
    CsvWriter, ExportError, check_output_dir, csv_cell, overlay_path, path_from_csv, save_png, unique_path, write_csv,
)
from cxrviewer.core.results.file_result import FileResult


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


BATCH = Batch(("NORMAL", "PNEUMONIA"), "PNEUMONIA", 0.5, "m")
SHORT = [columns.PATH, columns.LABEL, columns.probability_column("NORMAL"), columns.probability_column("PNEUMONIA"),
         columns.ERROR, columns.WIDTH, columns.HEIGHT, columns.MODEL]


def test_csv_streams_rows_and_appears_atomically(tmp_path):
    out = tmp_path / "results.csv"
    with CsvWriter(out, BATCH, SHORT) as w:
        w.write(_ok("a.jpg", 0.9))
        assert not out.exists()
        (part,) = [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
        assert "a.jpg,PNEUMONIA" in part.read_text()  # rows are flushed as they come
        w.write(FileResult(path=Path("b.jpg"), error="truncated JPEG data"))
    assert not _leftovers(tmp_path)
    rows = list(csv.DictReader(out.open(newline="")))
    assert list(rows[0]) == ["path", "label", "p_NORMAL", "p_PNEUMONIA", "error", "width", "height", "model"]
    assert rows[0] == {"path": "a.jpg", "label": "PNEUMONIA", "p_NORMAL": "0.100000", "p_PNEUMONIA": "0.900000",
                       "error": "", "width": "30", "height": "20", "model": "m"}
    assert rows[1]["error"] == "truncated JPEG data" and rows[1]["label"] == "" and rows[1]["p_NORMAL"] == ""
    assert rows[1]["width"] == "" and rows[1]["model"] == "m"


def test_csv_columns_come_from_the_column_specs(tmp_path):
    r = _ok("a.jpg", 0.9)
    r.overlay = tmp_path / "a_cam.png"
    out = write_csv([r], tmp_path / "r.csv", BATCH)
    (row,) = csv.DictReader(out.open(newline=""))
    assert list(row) == [c.key for c in csv_columns(BATCH)]
    assert row["threshold"] == "0.500000" and row["format"] == "JPEG" and "overlay" not in row
    with CsvWriter(tmp_path / "o.csv", BATCH, csv_columns(BATCH, overlays=True)) as w:
        w.write(r)
    (row,) = csv.DictReader((tmp_path / "o.csv").open(newline=""))
    assert row["overlay"] == str(tmp_path / "a_cam.png")


def test_csv_refuses_an_existing_file_unless_told(tmp_path):
    out = tmp_path / "results.csv"
    out.write_text("precious\n")
    with pytest.raises(ExportError, match="already exists"):
        CsvWriter(out, Batch(("A", "B")))
    assert out.read_text() == "precious\n"
    with CsvWriter(out, Batch(("A", "B")), SHORT[:3], overwrite=True) as w:
        w.write(_ok("a.jpg", 0.2))
    assert out.read_text().splitlines()[0] == "path,label,p_NORMAL"
    with pytest.raises(ExportError, match="folder"):
        CsvWriter(tmp_path, Batch(("A", "B")))


def test_csv_interrupted_leaves_nothing(tmp_path):
    out = tmp_path / "results.csv"
    with pytest.raises(KeyboardInterrupt):
        with CsvWriter(out, BATCH) as w:
            w.write(_ok("a.jpg", 0.9))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="duplicate"):
        CsvWriter(out, BATCH, [columns.PATH, columns.PATH])


def test_csv_target_that_appears_meanwhile_is_not_overwritten(tmp_path):
    out = tmp_path / "r.csv"
    w = CsvWriter(out, Batch(("A", "B")))
    out.write_text("someone else's\n")
    assert w.close() == tmp_path / "r (1).csv"
    assert out.read_text() == "someone else's\n"


@pytest.mark.skipif(os.name == "nt", reason="POSIX file names are bytes")
def test_csv_file_names_round_trip_whatever_their_bytes(tmp_path):
    names = [b"bad\xff.png", b"50% off.png", b"caf\xc3\xa9.jpg", b"=HYPERLINK(1).png", b"-2+3.png", b"%41.png",
             b"line\nbreak.png", b"\tlead.png"]
    results = [FileResult(path=Path(os.fsdecode(n)), error="x") for n in names]
    out = write_csv(results, tmp_path / "r.csv", BATCH)
    rows = list(csv.DictReader(out.open(newline="", encoding="utf-8")))
    assert [os.fsencode(path_from_csv(r["path"])) for r in rows] == names
    assert rows[1]["path"] == "50%25 off.png" and rows[2]["path"] == "caf\u00e9.jpg" and rows[0]["path"] == "bad%FF.png"
    assert not any(r["path"].startswith(("=", "+", "-", "@", "\t")) for r in rows)


def test_csv_neutralises_formulas_in_names(tmp_path):
    batch = Batch(("=cmd|' /C calc'!A0", "@SUM(1)"), None, None, "+evil")
    r = FileResult(path=Path("=HYPERLINK(\"http://x\").png"), probs={"=cmd|' /C calc'!A0": 0.25, "@SUM(1)": 0.75},
                   label="@SUM(1)", meta={"format": "-x"})
    out = write_csv([r], tmp_path / "r.csv", batch)
    header, row = list(csv.reader(out.open(newline="")))
    cells = dict(zip(header, row))
    assert cells["label"] == "'@SUM(1)" and cells["model"] == "'+evil" and cells["format"] == "'-x"
    assert cells["path"].startswith("%3D") and path_from_csv(cells["path"]) == r.path
    assert cells["p_@SUM(1)"] == "0.750000"  # numbers stay numbers
    assert not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in header + row)
    assert csv_cell("-0.5") == "-0.5" and csv_cell("-x") == "'-x" and csv_cell("\tx") == "'\tx"


def test_csv_abort_removes_the_file_even_when_closing_fails(tmp_path, monkeypatch):
    w = CsvWriter(tmp_path / "r.csv", BATCH)
    w.write(_ok("a.jpg", 0.9))
    real = w._file

    class Full:
        def __getattr__(self, name):
            return getattr(real, name)

        def close(self):
            raise OSError(errno.ENOSPC, "No space left on device")

    w._file = Full()
    w.abort()  # no exception
    assert list(tmp_path.iterdir()) == []
    w.abort()  # twice is fine


def test_csv_disk_full_on_close_is_one_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    w = CsvWriter(tmp_path / "r.csv", BATCH)
    w.write(_ok("a.jpg", 0.9))

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ExportError, match="No space left"):
        w.close()
    w.abort()
    assert list(tmp_path.iterdir()) == []


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
    assert overlay_path(tmp_path, "x/chest.jpeg", "gradcam") == tmp_path / "chest_gradcam.png"  # named after its map
    assert overlay_path(tmp_path, "x/chest.jpeg", "occlusion").name == "chest_occlusion.png"
    assert export.numbered(Path("a.b.csv"), 2) == Path("a.b (2).csv")
