"""Atomic writes: a finished write replaces the file whole; a failed one leaves it and no litter."""

from __future__ import annotations

import json
import stat

import pytest

from cxrviewer.core import atomic


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    target = tmp_path / "data.json"
    atomic.write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic.replacing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["data.json"]


def test_the_new_file_replaces_the_old_with_ordinary_permissions(tmp_path):
    target = tmp_path / "entry.desktop"
    atomic.write_text(target, "old")
    atomic.write_text(target, "new", mode=0o755)
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o755
    atomic.write_json(tmp_path / "m.json", {"x": float("nan")})  # plain json.dumps options by default
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o644  # not mkstemp's 0600
    with pytest.raises(ValueError):
        atomic.write_json(tmp_path / "strict.json", {"x": float("nan")}, allow_nan=False)
    assert not (tmp_path / "strict.json").exists()
