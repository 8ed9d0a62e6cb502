"""How a batch's files are named on screen: the file name with the folders below the batch's common folder.

``NORMAL/IM-0601-0001.jpeg`` and ``PNEUMONIA/IM-0601-0001.jpeg`` read differently, and a file's class
folder is in view, where the bare names would read the same. Qt-free.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def shown_names(paths: Sequence[Path]) -> list[str]:
    """Each of ``paths`` relative to the folder that holds them all ("/"-separated); the bare name when
    they share one folder (or there is one file)."""
    if not paths:
        return []
    parents = {str(Path(p).parent) for p in paths}
    if len(parents) == 1:
        return [Path(p).name for p in paths]
    try:
        root = Path(os.path.commonpath(sorted(parents)))
    except ValueError:  # different drives: no common folder
        return [Path(p).name for p in paths]
    return [Path(p).relative_to(root).as_posix() if Path(p).is_relative_to(root) else Path(p).name for p in paths]
