"""Model files: safetensors weights with JSON metadata in the safetensors header.

Each metadata value is stored JSON-encoded under its own key in the header's
``__metadata__``. Loading never unpickles anything: pickles, PyTorch ``.pt``
zips, truncated files, missing keys and wrong shapes are refused with a
:class:`ModelFileError` before any weight is used.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import ModelFileError
from .model import ARCHS, CamClassifier
from .paths import resources_dir

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "arch", "class_names", "input_size", "input_channels", "mean", "std")
MAX_HEADER = 100 * 1024 * 1024


def default_model_path() -> Path | None:
    """The shipped default model (the newest ``*.safetensors`` in the package's models folder), if any."""
    folder = resources_dir() / "models"
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    return files[-1] if files else None


def save_model(model: CamClassifier, path: str | Path, meta: dict[str, Any] | None = None, half: bool = False) -> Path:
    """Write ``model`` with ``meta`` (merged over ``model.meta``) atomically to ``path``."""
    from safetensors.torch import save_file

    meta = {**model.meta, **(meta or {})}
    meta.setdefault("format_version", FORMAT_VERSION)
    meta.setdefault("arch", model.arch)
    meta.setdefault("input_channels", model.input_channels)
    _check_meta(meta, Path(path))
    dtype = torch.float16 if half else torch.float32
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        tensors[k] = (v.to(dtype) if v.is_floating_point() else v).contiguous()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={k: json.dumps(v) for k, v in meta.items()})
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_header(path: str | Path) -> dict[str, Any]:
    """Return the decoded metadata of a model file without loading any weight."""
    path = Path(path)
    header = _read_raw_header(path)
    raw = header.get("__metadata__") or {}
    meta = {}
    for k, v in raw.items():
        try:
            meta[k] = json.loads(v)
        except (TypeError, json.JSONDecodeError):
            meta[k] = v
    _check_meta(meta, path)
    return meta


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> CamClassifier:
    """Load a model file (default: the shipped model) in eval mode on ``device``."""
    if path is None:
        path = default_model_path()
        if path is None:
            raise ModelFileError(f"no default model is installed (expected a .safetensors file in {resources_dir() / 'models'}); pass a model file")
    path = Path(path)
    meta = read_header(path)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelFileError(f"{path.name}: cannot read the weights ({_one_line(e)})") from None
    model = CamClassifier(meta["arch"], len(meta["class_names"]), int(meta["input_channels"]), meta=meta)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        what = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise ModelFileError(f"{path.name}: weights do not match a {meta['arch']} with {len(meta['class_names'])} classes ({what})")
    for k, v in expected.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise ModelFileError(f"{path.name}: tensor {k} has shape {tuple(tensors[k].shape)}, expected {tuple(v.shape)}")
        tensors[k] = tensors[k].to(v.dtype)
    model.load_state_dict(tensors, strict=True)
    model.meta["file"] = str(path)
    return model.eval().to(device)


def _read_raw_header(path: Path) -> dict[str, Any]:
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ModelFileError(f"{path.name}: file is too short to be a model file ({size} bytes)")
            if head[:2] == b"PK" or head[:1] == b"\x80":
                raise ModelFileError(f"{path.name}: this is a pickle / PyTorch checkpoint; cxrviewer only loads safetensors model files and never unpickles")
            (n,) = struct.unpack("<Q", head)
            if n <= 1 or n > MAX_HEADER or 8 + n > size:
                raise ModelFileError(f"{path.name}: not a safetensors file (bad or truncated header)")
            raw = f.read(n)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: model file not found") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path}: is a folder, not a model file") from None
    except OSError as e:
        raise ModelFileError(f"{path.name}: cannot read ({e.strerror or e})") from None
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFileError(f"{path.name}: not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path.name}: not a safetensors file (header is not an object)")
    end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v), default=0)
    if 8 + n + end > size:
        raise ModelFileError(f"{path.name}: file is truncated ({size} bytes, header promises {8 + n + end})")
    return header


def _check_meta(meta: dict[str, Any], path: Path) -> None:
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelFileError(f"{path.name}: not a cxrviewer model file (metadata lacks {', '.join(missing)})")
    if int(meta["format_version"]) > FORMAT_VERSION:
        raise ModelFileError(f"{path.name}: model format {meta['format_version']} is newer than this cxrviewer supports ({FORMAT_VERSION})")
    if meta["arch"] not in ARCHS:
        raise ModelFileError(f"{path.name}: unknown architecture {meta['arch']!r}")
    names = meta["class_names"]
    if not isinstance(names, list) or len(names) < 2 or not all(isinstance(c, str) and c for c in names) or len(set(names)) != len(names):
        raise ModelFileError(f"{path.name}: class_names must be a list of at least two distinct names")
    size = meta["input_size"]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) and 32 <= s <= 4096 for s in size)):
        raise ModelFileError(f"{path.name}: input_size must be [H, W] with 32..4096 pixels")
    ch = meta["input_channels"]
    if ch not in (1, 3):
        raise ModelFileError(f"{path.name}: input_channels must be 1 or 3")
    for key in ("mean", "std"):
        v = meta[key]
        if not (isinstance(v, list) and len(v) in (1, ch) and all(isinstance(x, (int, float)) for x in v)):
            raise ModelFileError(f"{path.name}: {key} must be a list of {ch} numbers")
    if any(x <= 0 for x in meta["std"]):
        raise ModelFileError(f"{path.name}: std must be positive")
    t = meta.get("threshold")
    if t is not None and not (isinstance(t, (int, float)) and 0.0 < t < 1.0):
        raise ModelFileError(f"{path.name}: threshold must be a number between 0 and 1")
    temp = meta.get("temperature")
    if temp is not None and not (isinstance(temp, (int, float)) and temp > 0):
        raise ModelFileError(f"{path.name}: temperature must be a positive number")


def _one_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
