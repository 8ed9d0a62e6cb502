"""The results cache: known results come back without a forward pass, equal to what the model gave;
anything that changes the result (file bytes, model, precision, checks) misses; a corrupt cache is rebuilt."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrviewer.core.batch.inference import Predictor
from cxrviewer.core.results.file_result import FileResult, VerdictChecks
from cxrviewer.core.results.results_cache import ResultsCache, decode_result, encode_result
from tests.conftest import make_tiny_model


def _jpeg(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (80, 70), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    paths = [_jpeg(folder / f"{i}.jpg", i) for i in range(6)]
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return [*paths[:3], folder / "broken.jpg", *paths[3:]]


@pytest.fixture
def model():
    return make_tiny_model(threshold=0.5, temperature=1.0)


class CountingForward:
    """Counts the images the predictor's forward passes see."""

    def __init__(self, monkeypatch):
        self.images = 0
        real = Predictor.forward

        def counted(predictor, arrays):
            self.images += len(arrays)
            return real(predictor, arrays)

        monkeypatch.setattr(Predictor, "forward", counted)


def _same(a: FileResult, b: FileResult) -> None:
    assert (a.path, a.index, a.label, a.predicted, a.error, a.precision) == (b.path, b.index, b.label, b.predicted, b.error,
                                                                                b.precision)
    assert a.probs == b.probs and a.logits == b.logits and a.meta == b.meta and a.image_size == b.image_size
    assert (a.in_scope, a.scope_score, a.scope_reason, a.checks) == (b.in_scope, b.scope_score, b.scope_reason, b.checks)
    assert (a.cams is None) == (b.cams is None)
    if a.cams is not None:
        assert a.cams.dtype == b.cams.dtype and np.array_equal(a.cams, b.cams)


def _run(model, paths, cache, **kw) -> list[FileResult]:
    return list(Predictor(model, device="cpu", batch_size=2, cache=cache, **kw).predict(paths))


def test_second_run_takes_every_result_from_the_cache_and_they_are_equal(images, model, tmp_path, monkeypatch):
    cache = ResultsCache(tmp_path / "c")
    first = _run(model, images, cache, stability=True)
    forward = CountingForward(monkeypatch)
    second = _run(model, images, ResultsCache(tmp_path / "c"), stability=True)
    assert forward.images == 0  # the stability check runs forward passes too: none ran
    assert len(first) == len(second) == len(images)
    for a, b in zip(first, second):
        if a.ok:
            _same(a, b)
    assert [r.index for r in second] == list(range(len(images)))
    assert second[3].error == first[3].error and not any(r.error for i, r in enumerate(second) if i != 3)
    assert first[0].checks.stability_checked and second[0].checks == first[0].checks


def test_only_changed_or_new_files_are_classified(images, model, tmp_path, monkeypatch):
    cache = ResultsCache(tmp_path / "c")
    _run(model, images, cache)
    _jpeg(images[1], 99)  # new bytes under the same name
    os.utime(images[1], ns=(images[1].stat().st_atime_ns, images[1].stat().st_mtime_ns))
    added = _jpeg(images[0].parent / "new.jpg", 7)
    forward = CountingForward(monkeypatch)
    results = _run(model, [*images, added], cache)
    assert forward.images == 2  # the rewritten file and the new one (the broken one fails before the model)
    fresh = list(Predictor(model, device="cpu", batch_size=2).predict([images[1]]))[0]
    assert results[1].probs == pytest.approx(fresh.probs, abs=1e-5)  # batch composition moves the last digits


@pytest.mark.parametrize("change", ["precision", "stability", "checks", "threshold"])
def test_anything_that_changes_a_result_misses(images, model, tmp_path, monkeypatch, change):
    cache = ResultsCache(tmp_path / "c")
    _run(model, images[:2], cache)
    kw = {"precision": {"precision": "bfloat16"}, "stability": {"stability": True}, "checks": {"checks": False}}.get(change, {})
    other = make_tiny_model(threshold=0.7, temperature=1.0) if change == "threshold" else model
    forward = CountingForward(monkeypatch)
    _run(other, images[:2], cache, **kw)
    assert forward.images == 2


def test_a_cancelled_run_resumes_where_it_stopped(images, model, tmp_path, monkeypatch):
    cache = ResultsCache(tmp_path / "c")
    cancel = threading.Event()
    seen = []
    for r in Predictor(model, device="cpu", batch_size=2, first_batch=2, workers=1, cache=cache).predict(images, cancel=cancel):
        seen.append(r)
        if len(seen) == 2:
            cancel.set()
    assert len(seen) == 2
    forward = CountingForward(monkeypatch)
    results = _run(model, images, cache)
    assert len(results) == len(images)
    assert forward.images == len(images) - 1 - 2  # the broken file never reaches the model; two were kept


def test_a_corrupt_database_is_moved_aside_and_rebuilt(images, model, tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "results.sqlite3").write_bytes(b"this is not a database" * 100)
    cache = ResultsCache(folder)
    results = _run(model, images[:2], cache)
    assert all(r.ok for r in results) and cache.moved_aside and cache.moved_aside[0].exists()
    assert cache.count() == 2


def test_a_tampered_row_is_never_trusted(images, model, tmp_path, monkeypatch):
    cache = ResultsCache(tmp_path / "c")
    truth = _run(model, images[:2], cache)
    cache.close()
    con = sqlite3.connect(tmp_path / "c" / "results.sqlite3")
    con.execute("UPDATE results SET json = replace(json, '\"label\": \"', '\"label\": \"X')")
    con.commit()
    con.close()
    forward = CountingForward(monkeypatch)
    again = _run(model, images[:2], ResultsCache(tmp_path / "c"))
    assert forward.images == 2  # the whole file was moved aside: nothing read from it
    assert [r.label for r in again] == [r.label for r in truth]
    assert list((tmp_path / "c").glob("results-*.corrupt"))


def test_a_schema_from_elsewhere_is_rebuilt(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    con = sqlite3.connect(folder / "results.sqlite3")
    con.execute("CREATE TABLE info (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    con.execute("INSERT INTO info VALUES ('schema', '999')")
    con.commit()
    con.close()
    cache = ResultsCache(folder)
    assert cache.count() == 0 and cache.moved_aside


def test_clear_forgets_everything(images, model, tmp_path, monkeypatch):
    cache = ResultsCache(tmp_path / "c")
    _run(model, images[:3], cache)
    assert cache.clear() == 3 and cache.count() == 0
    forward = CountingForward(monkeypatch)
    _run(model, images[:3], cache)
    assert forward.images == 3


def test_every_field_round_trips_without_pickle():
    r = FileResult(path=Path("/x/a.dcm"), index=4, probs={"NORMAL": 0.25, "PNEUMONIA": 0.75}, label="PNEUMONIA",
                   logits=[-1.0, 0.5], cams=np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3),
                   image_size=(640, 480), meta={"format": "DICOM", "window": (40.0, 400.0), "rescale": None,
                                                "PixelSpacing": [0.1, 0.1], "n": np.float32(2.5)},
                   precision="bfloat16", predicted="PNEUMONIA", in_scope=True, scope_score=1.5,
                   checks=VerdictChecks(outside_share=0.1, shifts={"border": -0.5}, flipped=("blur",), unstable=True))
    text, data = encode_result(r)
    assert "pickle" not in text
    back = decode_result(text, data, Path("/y/a.dcm"), 7)
    assert back.path == Path("/y/a.dcm") and back.index == 7
    assert back.meta["window"] == (40.0, 400.0) and back.meta["n"] == 2.5 and back.checks == r.checks
    assert back.cams.shape == (2, 3, 3) and np.array_equal(back.cams, r.cams) and back.image_size == (640, 480)


def test_the_cache_goes_to_the_tests_folder_never_the_users(tmp_path):
    assert os.environ["CXRVIEWER_CACHE_DIR"]
    assert ResultsCache().folder == Path(os.environ["CXRVIEWER_CACHE_DIR"])
