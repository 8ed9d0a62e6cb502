"""The model-file loader directly: valid files load, every malformed or hostile one is one clear line."""

from __future__ import annotations

import json
import os
import struct
import threading
from pathlib import Path

import pytest
import torch

from cxrviewer.core.errors import ModelFileError
from cxrviewer.core.model import checkpoint
from cxrviewer.core.model.checkpoint import MAX_INPUT_SIDE, load_model, read_header, save_model
from tests.conftest import make_tiny_model


def _split(path: Path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def _write(path: Path, header: dict | bytes, body: bytes = b"", pad_to: int | None = None) -> Path:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    if pad_to is not None:
        raw += b" " * (pad_to - len(raw))
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)
    return path


def _edited(src: Path, dst: Path, meta: dict | None = None, tensors=None, header=None) -> Path:
    """A copy of ``src`` with metadata keys replaced (JSON-encoded), or a tensor edit, or a raw header edit."""
    if tensors is not None:
        from safetensors.torch import load_file, save_file

        t = load_file(str(src))
        tensors(t)
        h, _ = _split(src)
        save_file(t, str(dst), metadata=h["__metadata__"])
        return dst
    h, body = _split(src)
    for k, v in (meta or {}).items():
        h["__metadata__"][k] = json.dumps(v) if not isinstance(v, _Raw) else v.text
    if header:
        header(h)
    return _write(dst, h, body)


class _Raw:
    def __init__(self, text):
        self.text = text


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    return save_model(make_tiny_model(threshold=0.5, temperature=1.0), folder / "good.safetensors")


def test_a_valid_file_loads_whatever_its_header_length(good, tmp_path):
    model = load_model(good)
    assert model.class_names == ["NORMAL", "PNEUMONIA"] and not model.training
    h, body = _split(good)
    raw = json.dumps(h).encode()
    size = (len(raw) // 256 + 1) * 256 + 0x80  # the low byte of the length is 0x80, a pickle's first byte
    odd = _write(tmp_path / "odd.safetensors", h, body, pad_to=size)
    assert odd.read_bytes()[0] == 0x80
    for k, v in load_model(odd).state_dict().items():
        assert torch.equal(v, model.state_dict()[k])


@pytest.mark.parametrize("meta, needle", [
    ({"format_version": "abc"}, "format_version"),
    ({"format_version": None}, "format_version"),
    ({"format_version": [1]}, "format_version"),
    ({"format_version": 99}, "newer"),
    ({"arch": ["resnet18"]}, "architecture"),
    ({"input_size": [MAX_INPUT_SIDE * 4, MAX_INPUT_SIDE * 4]}, "input_size"),
    ({"input_size": [64.0, 64]}, "input_size"),
    ({"input_channels": True}, "input_channels"),
    ({"mean": _Raw("[Infinity]")}, "mean"),
    ({"mean": [7.0]}, "mean"),
    ({"std": _Raw("[NaN]")}, "std"),
    ({"std": _Raw("[Infinity]")}, "std"),
    ({"std": [0.0]}, "std"),
    ({"std": [1e9]}, "std"),
    ({"temperature": 1e-300}, "temperature"),
    ({"temperature": _Raw("Infinity")}, "temperature"),
    ({"threshold": _Raw("NaN")}, "threshold"),
    ({"threshold": True}, "threshold"),
    ({"threshold": 1.5}, "threshold"),
    ({"class_names": ["A"]}, "class_names"),
])
def test_out_of_range_metadata_is_refused(good, tmp_path, meta, needle):
    bad = _edited(good, tmp_path / "bad.safetensors", meta)
    for read in (read_header, load_model):
        with pytest.raises(ModelFileError, match=needle) as e:
            read(bad)
        assert "\n" not in str(e.value) and str(e.value).startswith("bad.safetensors")


@pytest.mark.parametrize("edit, needle", [
    (lambda h: h.__setitem__("__metadata__", ["a"]), "__metadata__"),
    (lambda h: h.__setitem__("__metadata__", "text"), "__metadata__"),
    (lambda h: h["__metadata__"].__setitem__("arch", 3), "__metadata__"),
    (lambda h: h["classifier.bias"].__setitem__("data_offsets", None), "malformed"),
    (lambda h: h["classifier.bias"].__setitem__("data_offsets", [0]), "malformed"),
    (lambda h: h["classifier.bias"].__setitem__("data_offsets", ["a", "b"]), "malformed"),
    (lambda h: h["classifier.bias"].__setitem__("data_offsets", [8, 4]), "malformed"),
    (lambda h: h["classifier.bias"].__setitem__("shape", "2"), "malformed"),
    (lambda h: h.__setitem__("classifier.bias", 7), "malformed"),
    (lambda h: h["classifier.bias"].__setitem__("data_offsets", [0, 10 ** 12]), "truncated"),
])
def test_malformed_headers_are_one_line(good, tmp_path, edit, needle):
    bad = _edited(good, tmp_path / "bad.safetensors", header=edit)
    with pytest.raises(ModelFileError, match=needle) as e:
        load_model(bad)
    assert "\n" not in str(e.value)


def test_hostile_headers_are_one_line(tmp_path):
    deep = _write(tmp_path / "deep.safetensors", b'{"a":' + b"[" * 200_000 + b"]" * 200_000 + b"}")
    deep_meta = _write(tmp_path / "deepmeta.safetensors",
                       {"__metadata__": {"arch": "[" * 200_000 + "]" * 200_000}})
    cases = {
        deep: "nested too deeply",
        deep_meta: "nested too deeply",
        _write(tmp_path / "list.safetensors", b"[1, 2]"): "not a safetensors file",
        _write(tmp_path / "nojson.safetensors", b"{nope"): "not JSON",
        _write(tmp_path / "short.safetensors", b"{"): "too short|bad or truncated",
        _write(tmp_path / "empty.safetensors", b"{}"): "lacks",
        _write(tmp_path / "meta.safetensors", {"__metadata__": {"format_version": "1"}}): "lacks",
    }
    (tmp_path / "tiny.safetensors").write_bytes(b"\x02\x00")
    cases[tmp_path / "tiny.safetensors"] = "too short"
    for path, needle in cases.items():
        with pytest.raises(ModelFileError, match=needle) as e:
            load_model(path)
        assert "\n" not in str(e.value), path


def test_pickles_and_zips_are_named_by_their_signatures(tmp_path):
    zipped = tmp_path / "zipped.safetensors"
    torch.save({"w": torch.zeros(3)}, zipped)
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.zeros(3)}, legacy, _use_new_zipfile_serialization=False)
    for path in (zipped, legacy):
        with pytest.raises(ModelFileError, match="pickle"):
            load_model(path)


@pytest.mark.parametrize("edit, needle", [
    (lambda t: t["classifier.weight"].__setitem__((0, 0), float("nan")), "non-finite"),
    (lambda t: t["features.conv1.weight"].__setitem__((0, 0, 0, 0), float("inf")), "non-finite"),
    (lambda t: t.__setitem__("classifier.weight", t["classifier.weight"].to(torch.int8)), "dtype I8"),
    (lambda t: t.__setitem__("classifier.bias", t["classifier.bias"] > 0), "dtype BOOL"),
    (lambda t: t.__setitem__("classifier.bias", t["classifier.bias"].to(torch.int64)), "int64"),
    (lambda t: t["features.bn1.running_var"].__setitem__(0, -1.0), "negative"),
    (lambda t: t.__setitem__("classifier.bias", torch.zeros(5)), "shape"),
    (lambda t: t.pop("classifier.bias"), "missing"),
])
def test_bad_weights_are_refused(good, tmp_path, edit, needle):
    bad = _edited(good, tmp_path / "bad.safetensors", tensors=edit)
    with pytest.raises(ModelFileError, match=needle):
        load_model(bad)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_only_regular_files_are_opened(tmp_path):
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    outcome = []
    t = threading.Thread(target=lambda: outcome.append(_refusal(fifo)), daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # unblock the stuck reader so the test can end, then fail
        with open(fifo, "wb"):
            pass
        pytest.fail("opening a FIFO as a model blocked")
    assert "not a regular file" in outcome[0]
    assert "is a folder" in _refusal(tmp_path)
    assert "not found" in _refusal(tmp_path / "absent.safetensors")


def _refusal(path) -> str:
    try:
        load_model(path)
    except ModelFileError as e:
        return str(e)
    return "loaded"


def test_save_then_read_header_round_trips(good):
    meta = read_header(good)
    assert meta["threshold"] == 0.5 and meta["input_size"] == [64, 64] and meta["format_version"] == 1


def test_default_model_is_the_newest_file(tmp_path, monkeypatch):
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setattr(checkpoint, "resources_dir", lambda: tmp_path)
    assert checkpoint.default_model_path() is None
    for name, mtime in (("b.safetensors", 100), ("z.safetensors", 50), ("a.safetensors", 200)):
        (models / name).write_bytes(b"")
        os.utime(models / name, (mtime, mtime))
    assert checkpoint.default_model_path() == models / "a.safetensors"
    (models / "DEFAULT").write_text("z.safetensors\n")  # named: wins over the newest
    assert checkpoint.default_model_path() == models / "z.safetensors"
    (models / "DEFAULT").write_text("gone.safetensors\n")  # names a missing file: the newest again
    assert checkpoint.default_model_path() == models / "a.safetensors"
