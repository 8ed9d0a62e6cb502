"""Model files: safetensors weights with JSON metadata in the safetensors header.

Each metadata value is stored JSON-encoded under its own key in the header's
``__metadata__``. Loading never unpickles anything. A file is recognised by its
structure (an 8-byte little-endian header length, then a JSON object); only
regular files are opened. Everything else is refused with a one-line
:class:`ModelFileError` before any weight is used: pickles and PyTorch ``.pt``
zips (named as such by their signatures), truncated files, malformed headers,
missing or out-of-range metadata (``input_size`` above :data:`MAX_INPUT_SIDE`,
``mean``/``std``/``temperature``/``threshold`` outside their ranges), missing
keys, wrong shapes, non-floating-point weights and non-finite values.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import torch

from .. import atomic
from ..errors import ModelFileError
from ..io.equalize import MODES
from ..paths import resources_dir
from .classifier import ARCHS, RESNETS, CamClassifier

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "arch", "class_names", "input_size", "input_channels", "mean", "std")
MAX_HEADER = 100 * 1024 * 1024
#: Model input sides accepted, in pixels: larger inputs cost memory far beyond what a radiograph classifier needs.
MIN_INPUT_SIDE, MAX_INPUT_SIDE = 32, 1024
#: Normalisation of grey inputs in [0, 1]: ``mean`` and ``std`` outside these ranges are refused.
MEAN_RANGE, STD_RANGE = (0.0, 1.0), (0.01, 1.0)
#: Softmax temperature accepted (a tiny or huge one makes every probability 0, 1 or equal).
TEMPERATURE_RANGE = (0.05, 20.0)
FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})
INT_DTYPES = frozenset({"I64"})  # BatchNorm's num_batches_tracked only; checked against the model on load


#: In the models folder: the file name of the default model, on its first line (modification times
#: of a fresh clone say nothing about which model is newer).
DEFAULT_MODEL_FILE = "DEFAULT"


def default_model_path() -> Path | None:
    """The shipped default model: the ``*.safetensors`` that ``models/DEFAULT`` names; without that file
    (or when the file it names is missing), the newest (last modified) one in the package's models folder."""
    folder = resources_dir() / "models"
    try:
        named = folder / (folder / DEFAULT_MODEL_FILE).read_text(encoding="utf-8").strip().splitlines()[0].strip()
        if named.suffix == ".safetensors" and named.is_file():
            return named
    except (OSError, IndexError, UnicodeDecodeError):
        pass
    files = [p for p in folder.glob("*.safetensors") if p.is_file()] if folder.is_dir() else []
    return max(files, key=lambda p: (p.stat().st_mtime, p.name), default=None)


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
    with atomic.replacing(path) as tmp:
        save_file(tensors, str(tmp), metadata={k: json.dumps(v) for k, v in meta.items()})
    return path


def read_header(path: str | Path) -> dict[str, Any]:
    """Return the decoded metadata of a model file without loading any weight."""
    path = Path(path)
    with _open_model_file(path) as f:
        header, _ = _read_raw_header(f, path)
    return _decode_meta(header, path)


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> CamClassifier:
    """Load a model file (default: the shipped model) in eval mode on ``device``."""
    if path is None:
        path = default_model_path()
        if path is None:
            raise ModelFileError(f"no default model is installed (expected a .safetensors file in {resources_dir() / 'models'}); pass a model file")
    path = Path(path)
    with _open_model_file(path) as f:
        header, n = _read_raw_header(f, path)
        meta = _decode_meta(header, path)
        f.seek(0)
        data = f.read()
    from safetensors import SafetensorError
    from safetensors.torch import load as load_bytes

    try:
        tensors = load_bytes(data)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelFileError(f"{path.name}: cannot read the weights ({_one_line(e)})") from None
    del data
    model = CamClassifier(meta["arch"], len(meta["class_names"]), int(meta["input_channels"]), meta=meta)
    model.load_state_dict(_checked_weights(tensors, model.state_dict(), meta, path), strict=True)
    model.meta["file"] = str(path)
    return model.eval().to(device)


def _checked_weights(tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], meta: dict[str, Any],
                     path: Path) -> dict[str, torch.Tensor]:
    """``tensors`` cast to the model's dtypes, after refusing wrong names, shapes, dtypes and non-finite values."""
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        what = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise ModelFileError(f"{path.name}: weights do not match a {meta['arch']} with {len(meta['class_names'])} classes ({what})")
    for k, v in expected.items():
        t = tensors[k]
        if tuple(t.shape) != tuple(v.shape):
            raise ModelFileError(f"{path.name}: tensor {k} has shape {tuple(t.shape)}, expected {tuple(v.shape)}")
        if v.is_floating_point() != t.is_floating_point():
            kind = "floating-point" if v.is_floating_point() else "integer"
            raise ModelFileError(f"{path.name}: tensor {k} is {str(t.dtype).removeprefix('torch.')}, expected {kind} values")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ModelFileError(f"{path.name}: tensor {k} holds non-finite values (NaN or infinity)")
        if k.endswith("running_var") and bool((t < 0).any()):
            raise ModelFileError(f"{path.name}: tensor {k} holds negative variances")
        tensors[k] = t.to(v.dtype)
    return tensors


@contextlib.contextmanager
def _open_model_file(path: Path) -> Iterator[BinaryIO]:
    """Open ``path`` for reading if it is a regular file (never blocks on a FIFO or a device)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise ModelFileError(f"{path}: model file not found") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path}: is a folder, not a model file") from None
    except OSError as e:
        raise ModelFileError(f"{path.name}: cannot read ({e.strerror or e})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise ModelFileError(f"{path}: is a folder, not a model file")
        raise ModelFileError(f"{path.name}: not a regular file (a pipe, device or socket); give a model file")
    with os.fdopen(fd, "rb") as f:
        try:
            yield f
        except OSError as e:
            raise ModelFileError(f"{path.name}: cannot read ({e.strerror or e})") from None


def _read_raw_header(f: BinaryIO, path: Path) -> tuple[dict[str, Any], int]:
    """The safetensors header of the open file ``f`` and its length, checked as far as it describes the file."""
    size = os.fstat(f.fileno()).st_size
    head = f.read(9)
    if len(head) < 9:
        raise ModelFileError(f"{path.name}: file is too short to be a model file ({size} bytes)")
    (n,) = struct.unpack("<Q", head[:8])
    if not (2 <= n <= MAX_HEADER and 8 + n <= size and head[8:9] == b"{"):
        raise ModelFileError(f"{path.name}: {_not_safetensors(head)}")
    raw = head[8:] + f.read(n - 1)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFileError(f"{path.name}: not a safetensors file (header is not JSON)") from None
    except RecursionError:
        raise ModelFileError(f"{path.name}: not a safetensors file (header is nested too deeply)") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path.name}: not a safetensors file (header is not an object)")
    end = max((_tensor_entry(k, v, path)[1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise ModelFileError(f"{path.name}: file is truncated ({size} bytes, header promises {8 + n + end})")
    return header, n


def _not_safetensors(head: bytes) -> str:
    """Why a file whose start is not a safetensors header was refused: a pickle or zip if its signature says so."""
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06") or (head[:1] == b"\x80" and 2 <= head[1] <= 5):
        return "this is a pickle / PyTorch checkpoint; cxrviewer only loads safetensors model files and never unpickles"
    return "not a safetensors file (bad or truncated header)"


def _tensor_entry(name: str, entry: Any, path: Path) -> tuple[int, int]:
    """The ``data_offsets`` of one header entry, after checking its dtype, shape and offsets are well formed."""
    ok = (isinstance(entry, dict) and isinstance(entry.get("dtype"), str) and _int_list(entry.get("shape"))
          and _int_list(entry.get("data_offsets"), 2))
    if not ok or not 0 <= entry["data_offsets"][0] <= entry["data_offsets"][1]:
        raise ModelFileError(f"{path.name}: not a safetensors file (malformed entry for tensor {name[:80]!r})")
    if entry["dtype"] not in FLOAT_DTYPES and entry["dtype"] not in INT_DTYPES:
        raise ModelFileError(f"{path.name}: tensor {name[:80]!r} has dtype {entry['dtype'][:20]}; model weights must be floating point")
    return entry["data_offsets"][0], entry["data_offsets"][1]


def _int_list(value: Any, length: int | None = None) -> bool:
    return (isinstance(value, list) and (length is None or len(value) == length)
            and all(type(v) is int and v >= 0 for v in value))


def _decode_meta(header: dict[str, Any], path: Path) -> dict[str, Any]:
    raw = header.get("__metadata__", {})
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise ModelFileError(f"{path.name}: not a cxrviewer model file (__metadata__ must map names to strings)")
    meta = {}
    for k, v in raw.items():
        try:
            meta[k] = json.loads(v)
        except json.JSONDecodeError:
            meta[k] = v
        except RecursionError:
            raise ModelFileError(f"{path.name}: metadata {k[:40]!r} is nested too deeply") from None
    _check_meta(meta, path)
    return meta


def _check_meta(meta: dict[str, Any], path: Path) -> None:
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelFileError(f"{path.name}: not a cxrviewer model file (metadata lacks {', '.join(missing)})")
    version = meta["format_version"]
    if type(version) is not int or version < 1:
        raise ModelFileError(f"{path.name}: format_version must be a whole number, got {_short_repr(version)}")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path.name}: model format {version} is newer than this cxrviewer supports ({FORMAT_VERSION})")
    if not isinstance(meta["arch"], str) or meta["arch"] not in ARCHS:
        raise ModelFileError(f"{path.name}: unknown architecture {_short_repr(meta['arch'])}")
    names = meta["class_names"]
    if not isinstance(names, list) or len(names) < 2 or not all(isinstance(c, str) and c for c in names) or len(set(names)) != len(names):
        raise ModelFileError(f"{path.name}: class_names must be a list of at least two distinct names")
    size = meta["input_size"]
    if not (isinstance(size, list) and len(size) == 2 and all(type(s) is int and MIN_INPUT_SIDE <= s <= MAX_INPUT_SIDE for s in size)):
        raise ModelFileError(f"{path.name}: input_size must be [H, W] with {MIN_INPUT_SIDE}..{MAX_INPUT_SIDE} pixels")
    ch = meta["input_channels"]
    if type(ch) is not int or ch not in (1, 3):
        raise ModelFileError(f"{path.name}: input_channels must be 1 or 3")
    _check_numbers(meta, "mean", ch, MEAN_RANGE, path)
    _check_numbers(meta, "std", ch, STD_RANGE, path)
    t = meta.get("threshold")
    if t is not None and not (_is_number(t) and 0.0 < t < 1.0):
        raise ModelFileError(f"{path.name}: threshold must be a number between 0 and 1")
    temp = meta.get("temperature")
    if temp is not None and not (_is_number(temp) and TEMPERATURE_RANGE[0] <= temp <= TEMPERATURE_RANGE[1]):
        raise ModelFileError(f"{path.name}: temperature must be a number from {TEMPERATURE_RANGE[0]} to {TEMPERATURE_RANGE[1]}")
    dilate = meta.get("dilate_last", False)
    if type(dilate) is not bool or (dilate and meta["arch"] not in RESNETS):
        raise ModelFileError(f"{path.name}: dilate_last must be true or false, and true only for a ResNet")
    eq = meta.get("equalize", False)
    if not (eq is False or (type(eq) in (bool, str) and eq in MODES)):
        raise ModelFileError(f"{path.name}: equalize must be false, true (global) or \"clahe\"")
    if type(meta.get("frame_normalize", False)) is not bool:
        raise ModelFileError(f"{path.name}: frame_normalize must be true or false")


def _check_numbers(meta: dict[str, Any], key: str, channels: int, bounds: tuple[float, float], path: Path) -> None:
    v, (lo, hi) = meta[key], bounds
    if not (isinstance(v, list) and len(v) in (1, channels) and all(_is_number(x) and lo <= x <= hi for x in v)):
        raise ModelFileError(f"{path.name}: {key} must be a list of 1 or {channels} numbers from {lo} to {hi} "
                             "(grey values in [0, 1])")


def _is_number(x: Any) -> bool:
    """A finite int or float (JSON's NaN and Infinity, and booleans, are not numbers here)."""
    return type(x) in (int, float) and math.isfinite(x)


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _one_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
