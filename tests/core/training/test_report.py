"""The report writes strict JSON and readable PNG plots."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cxrviewer.core.training.metrics import choose_threshold, classification_metrics, softmax
from cxrviewer.core.training.report import plot_history, plot_reliability, write_report


def _no_nan(token):
    raise AssertionError(f"non-standard JSON constant {token}")


def _split(rng, n, k, names, threshold_rule=None):
    labels = rng.integers(0, k, n)
    z = rng.normal(0.0, 1.0, (n, k))
    z[np.arange(n), labels] += 2.0
    probs = softmax(z)
    t = choose_threshold(labels == 1, probs[:, 1], threshold_rule) if threshold_rule else None
    pos = 1 if k == 2 else None
    m = classification_metrics(probs, labels, names, t, pos)
    return dict(probs=probs, labels=labels, metrics=m, class_names=names, positive_index=pos, threshold=t)


def _history(n=6):
    rows = []
    for e in range(1, n + 1):
        row = dict(epoch=e, train_loss=1.0 / e, lr=1e-3 * min(1, e / 2))
        if e % 2 == 0:  # validation every other epoch; the others lack it or carry NaN
            row.update(val_loss=1.1 / e, val_auroc=0.8 + 0.01 * e)
        elif e == 3:
            row.update(val_loss=float("nan"), val_auroc=float("nan"))
        rows.append(row)
    return rows


def _check_png(path, min_w=500, min_h=300):
    with Image.open(path) as im:
        assert im.format == "PNG"
        w, h = im.size
        im.load()
    assert min_w <= w <= 2000 and min_h <= h <= 1500, (path.name, im.size)
    # Not a blank canvas: plenty of distinct grey levels.
    assert len(np.unique(np.asarray(im.convert("L")))) > 20


def test_write_report_binary(tmp_path):
    rng = np.random.default_rng(0)
    names = ["NORMAL", "PNEUMONIA"]
    splits = {"validation": _split(rng, 200, 2, names, "youden"), "test": _split(rng, 120, 2, names, "youden")}
    history = _history()
    out = tmp_path / "report"
    paths = write_report(out, history, splits, extra={"model": "m.safetensors"})

    expected = {"metrics.json", "history.png"} | {
        f"{kind}_{s}.png" for kind in ("roc", "confusion", "reliability") for s in splits}
    assert {p.name for p in paths} == expected
    assert all(p.parent == out and p.is_file() for p in paths)
    assert not list(out.glob(".metrics-*"))  # no temporary file left behind

    data = json.loads((out / "metrics.json").read_text(), parse_constant=_no_nan)
    assert set(data["splits"]) == {"validation", "test"}
    v = data["splits"]["validation"]
    assert v["confusion_matrix"] == splits["validation"]["metrics"]["confusion_matrix"]
    assert v["sensitivity"] == pytest.approx(splits["validation"]["metrics"]["sensitivity"])
    assert 0 < v["threshold"] < 1 and v["positive_class"] == "PNEUMONIA"
    assert data["model"] == "m.safetensors"
    assert len(data["history"]) == 6
    assert data["history"][2]["val_auroc"] is None  # NaN written as null
    assert data["history"][1]["val_auroc"] == pytest.approx(0.82)

    for p in paths:
        if p.suffix == ".png":
            _check_png(p)


def test_write_report_three_classes_computes_missing_metrics(tmp_path):
    rng = np.random.default_rng(1)
    s = _split(rng, 150, 3, ["a", "b", "c"])
    del s["metrics"]
    paths = write_report(tmp_path, _history(3), {"validation": s})
    data = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=_no_nan)
    m = data["splits"]["validation"]
    assert len(m["confusion_matrix"]) == 3 and sum(map(sum, m["confusion_matrix"])) == 150
    assert 0.5 < m["macro_auroc"] <= 1
    for p in paths[1:]:
        _check_png(p)


def test_plots_cope_with_sparse_input(tmp_path):
    # No epochs, or no validation at all, still gives a figure.
    plot_history([], tmp_path / "empty.png")
    plot_history([dict(epoch=1, train_loss=0.7, lr=0.0)], tmp_path / "train_only.png")
    # A single confidence bin.
    plot_reliability(np.tile([0.3, 0.7], (5, 1)), np.array([1, 1, 0, 1, 1]), tmp_path / "rel.png")
    for name in ("empty.png", "train_only.png", "rel.png"):
        with Image.open(tmp_path / name) as im:
            assert im.size[0] >= 500

