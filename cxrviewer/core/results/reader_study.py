"""The reader study: per image, the reader's verdict beside the AI's, and the truth from folder names.

A :class:`ReaderStudy` holds one :class:`ReaderEntry` per file of the batch (the reader's own
label, whether they agreed with the AI, a free-text note, measurements as plain dicts, and the
truth read from the file's folder names). :func:`relabel` applies a live threshold to stored
probabilities with the model's own decision rule, so the batch is re-labelled without running
the model again. Qt-free; the viewer and the session file read these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .file_result import OUT_OF_SCOPE, FileResult

AGREE, DISAGREE = "agree", "disagree"


@dataclass
class ReaderEntry:
    """What the reader recorded for one image; ``truth`` comes from the folder names (not the reader).

    ``label``: the reader's own class (None: not given). ``agrees``: the agreement as recorded
    (used when the reader gave no class). ``measurements``: plain dicts (the measurement tools'
    ``to_dict``), kept as they are.
    """

    label: str | None = None
    agrees: bool | None = None
    note: str = ""
    measurements: list[dict] = field(default_factory=list)
    truth: str | None = None

    @property
    def recorded(self) -> bool:
        """The reader has recorded something for this image (truth aside)."""
        return self.label is not None or self.agrees is not None or bool(self.note) or bool(self.measurements)


def agreement(entry: ReaderEntry | None, ai_label: str | None) -> str | None:
    """``"agree"`` / ``"disagree"`` / None: the reader's label against the AI's current one, else as recorded."""
    if entry is None:
        return None
    if entry.label is not None and ai_label is not None and ai_label != OUT_OF_SCOPE:
        return AGREE if entry.label == ai_label else DISAGREE
    return None if entry.agrees is None else (AGREE if entry.agrees else DISAGREE)


def record(entry: ReaderEntry, action: str, ai_label: str | None, class_names: list[str]) -> None:
    """Apply a reader action: ``"agree"``, ``"disagree"``, ``"clear"`` or a class name (the reader's own label).

    Agree takes the AI's label as the reader's; disagree with a two-class model takes the other class.
    """
    ai = ai_label if ai_label in class_names else None
    if action == AGREE:
        entry.label, entry.agrees = ai, True
    elif action == DISAGREE:
        others = [c for c in class_names if c != ai]
        entry.label = others[0] if ai is not None and len(others) == 1 else None
        entry.agrees = False
    elif action == "clear":
        entry.label = entry.agrees = None
    elif action in class_names:
        entry.label, entry.agrees = action, None if ai is None else action == ai
    else:
        raise ValueError(f"unknown reader action {action!r}")


def truth_from_path(path: Path, root: Path | None, class_names: list[str]) -> str | None:
    """The class named by the nearest folder of ``path`` (up to and including ``root``), case-insensitively."""
    by_name = {c.casefold(): c for c in class_names}
    path = Path(path)
    folders = list(path.parents)
    if root is not None and (root == path.parent or root in folders):
        folders = folders[:folders.index(root) + 1]
    else:
        folders = folders[:1]
    for folder in folders:
        found = by_name.get(folder.name.casefold())
        if found is not None:
            return found
    return None


def relabel(results: list[FileResult], threshold: float | None, positive: str | None) -> None:
    """Set each two-class result's label from its stored probabilities at ``threshold``, with the model's
    decision rule (out-of-scope results keep ``OUT_OF_SCOPE``; ``predicted`` follows)."""
    rows = [r for r in results if r.ok and len(r.probs) == 2 and positive in r.probs]
    if threshold is None or not rows:
        return
    from ..model.classifier import decide  # (torch: only when a threshold is applied)

    names = list(rows[0].probs)
    p = np.array([[r.probs.get(n, np.nan) for n in names] for r in rows], dtype=np.float32)
    for r, k in zip(rows, decide(p, threshold, names.index(positive))):
        if k >= 0:
            r.predicted = names[int(k)]
            r.label = r.predicted if r.in_scope is not False else OUT_OF_SCOPE


class ReaderStudy:
    """The reader's entries for the files of one batch, keyed by path, with the truth of each file."""

    def __init__(self, root: Path | None = None, class_names: list[str] | None = None):
        self.root = Path(root) if root is not None else None
        self.class_names = list(class_names or [])
        self.entries: dict[Path, ReaderEntry] = {}
        self.threshold: float | None = None  # the live threshold (None: the model's)

    def entry(self, path: Path) -> ReaderEntry:
        """The entry of ``path`` (made, with its truth, on first use)."""
        path = Path(path)
        e = self.entries.get(path)
        if e is None:
            e = self.entries[path] = ReaderEntry(truth=truth_from_path(path, self.root, self.class_names))
        return e

    def set_classes(self, class_names: list[str]) -> None:
        """The model's classes: every truth is read again against them."""
        self.class_names = list(class_names)
        for path, e in self.entries.items():
            e.truth = truth_from_path(path, self.root, self.class_names)

    def attach(self, result: FileResult) -> FileResult:
        """Give ``result`` its entry (``result.reader``) and return it."""
        result.reader = self.entry(result.path)
        return result

    def recorded(self) -> dict[Path, ReaderEntry]:
        """The entries that hold something the reader recorded."""
        return {p: e for p, e in self.entries.items() if e.recorded}
