"""New model files from old ones with changed metadata: the weight bytes are copied verbatim.

Used by ``calibrate``, the scope refit, the parity record and the heat-map audit. The safetensors layout is an 8-byte header length,
a JSON header (tensor entries + ``__metadata__``) and the tensor data; only ``__metadata__``
changes, the tensor entries and the data bytes are kept as they are. The source is never
modified, and an existing output is replaced only when asked.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

from .. import atomic
from ..errors import ModelFileError
from .checkpoint import _check_meta, read_header


def weights_digest(path: str | Path) -> str:
    """SHA-256 of a model file's tensor data (everything after the header): equal digests, equal weights."""
    path = Path(path)
    with path.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        f.seek(8 + n)
        h = hashlib.sha256()
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_output(source: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Refuse an output that is the source model, or that exists (unless ``overwrite``); return it."""
    source, out = Path(source), Path(out)
    if out.suffix.lower() != ".safetensors":
        raise ModelFileError(f"{out.name}: the new model file must end in .safetensors")
    if out.exists() and (out.resolve() == source.resolve() or os.path.samefile(out, source)):
        raise ModelFileError(f"{out.name}: is the source model; write the new model to another file (the source is never overwritten)")
    if out.exists() and not overwrite:
        raise ModelFileError(f"{out}: already exists; choose another name or pass --overwrite")
    if not out.parent.is_dir():
        raise ModelFileError(f"{out.parent}: folder does not exist")
    return out


def write_with_metadata(source: str | Path, out: str | Path, updates: dict[str, Any],
                        overwrite: bool = False) -> Path:
    """Write ``out``: ``source``'s tensors byte for byte, its metadata updated with ``updates`` (None deletes a key)."""
    source = Path(source)
    out = check_output(source, out, overwrite)
    return _copy_with_metadata(source, out, _updated(source, updates))


def rewrite_metadata(path: str | Path, updates: dict[str, Any]) -> Path:
    """Replace ``path`` atomically by the same tensor bytes with its metadata updated (None deletes a key)."""
    path = Path(path)
    return _copy_with_metadata(path, path, _updated(path, updates))


def _updated(source: Path, updates: dict[str, Any]) -> dict[str, Any]:
    meta = read_header(source)  # checks the file first
    meta.pop("file", None)
    for k, v in updates.items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    return meta


def _copy_with_metadata(source: Path, out: Path, meta: dict[str, Any]) -> Path:
    """Write ``meta`` and ``source``'s tensor entries and bytes to a temporary file, check the weights, move it to ``out``."""
    _check_meta(meta, out)
    with source.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    header["__metadata__"] = {k: json.dumps(v) for k, v in meta.items()}
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # safetensors pads the header to 8 bytes
    before = weights_digest(source)
    with atomic.replacing(out) as tmp:
        with tmp.open("wb") as dst, source.open("rb") as src:
            dst.write(struct.pack("<Q", len(raw)))
            dst.write(raw)
            (n,) = struct.unpack("<Q", src.read(8))
            src.seek(8 + n)
            for block in iter(lambda: src.read(1 << 20), b""):
                dst.write(block)
        if weights_digest(tmp) != before:
            raise ModelFileError(f"{out.name}: the copied weights differ from {source.name}; nothing written")
    return out
