"""Atomic file writes: write beside the target under a temporary name, then rename it over the target.

Readers (and a crash half-way) see the old file or the new one, never a part of one. Exports
that must never replace a file have their own rule (:func:`cxrviewer.core.results.export.save_png`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def replacing(path: str | Path, mode: int = 0o644) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to. When the block ends normally the file gets
    permissions ``mode`` and replaces ``path``; when it raises, the temporary file is removed and
    ``path`` is left as it was."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str, mode: int = 0o644) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with replacing(path, mode) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, data: Any, **dump_options: Any) -> Path:
    """Write ``data`` as indented JSON (and a final newline) to ``path`` atomically; ``dump_options`` go to ``json.dumps``."""
    return write_text(path, json.dumps(data, indent=2, **dump_options) + "\n")
