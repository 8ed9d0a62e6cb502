"""Cross-batch hold-out: train without one acquisition batch of NORMAL images, then score on it.

The Kermany NORMAL file names show two acquisition batches, ``IM-*`` and ``NORMAL2-IM-*``. Removing
one batch's NORMAL images from training and validation and scoring them afterwards measures how
specificity survives an acquisition shift (``docs/selection-protocol.md``, section 1). The other
class keeps its patient split, so its validation patients are never trained on.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .data import Sample

#: Batch name -> file-name pattern of that batch's NORMAL images.
NORMAL_BATCHES = {"IM": re.compile(r"^IM-\d"), "NORMAL2": re.compile(r"^NORMAL2-IM-\d")}
NEGATIVE_NAMES = {"NORMAL", "NEGATIVE", "HEALTHY"}


def negative_label(class_names: list[str]) -> int:
    """Index of the NORMAL (negative) class; ``ValueError`` when there is none."""
    for i, name in enumerate(class_names):
        if name.upper() in NEGATIVE_NAMES:
            return i
    raise ValueError(f"no NORMAL class among {class_names}: a cross-batch hold-out needs one")


def in_batch(sample: Sample, batch: str, negative: int) -> bool:
    """Whether ``sample`` is a NORMAL image of acquisition ``batch`` (``IM`` or ``NORMAL2``)."""
    if batch not in NORMAL_BATCHES:
        raise ValueError(f"unknown NORMAL batch {batch!r}; choose one of {', '.join(NORMAL_BATCHES)}")
    return sample.label == negative and bool(NORMAL_BATCHES[batch].match(sample.path.name))


def hold_out_normal_batch(train: list[Sample], val: list[Sample], batch: str,
                          class_names: list[str]) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """Split off ``batch``'s NORMAL images: returns ``(train, val, held_out)``.

    ``held_out`` holds every NORMAL image of the batch (from both sides of the split) followed by the
    validation images of the other classes, so it can be scored as a two-class set on its own.
    """
    neg = negative_label(class_names)
    out_train = [s for s in train if not in_batch(s, batch, neg)]
    out_val = [s for s in val if not in_batch(s, batch, neg)]
    held = sorted((s for s in train + val if in_batch(s, batch, neg)), key=lambda s: s.path)
    if not held:
        raise ValueError(f"no NORMAL image of batch {batch} ({NORMAL_BATCHES[batch].pattern}) in the data")
    return out_train, out_val, held + [s for s in val if s.label != neg]
