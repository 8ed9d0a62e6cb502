"""Per-file results of the batch engine: plain data shared by the CLI, exports and the viewer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: The label of an image the model may not answer (see :mod:`cxrviewer.core.model.scope`): its verdict is withheld.
OUT_OF_SCOPE = "OUT_OF_SCOPE"
#: How the ``population`` field of an image outside the model's intended population starts.
OUTSIDE_POPULATION = "outside"


@dataclass(frozen=True)
class VerdictChecks:
    """What the per-verdict checks found (:mod:`cxrviewer.core.explain.checks`).

    ``outside_share``: share (0..1) of the predicted class's positive evidence that lies
    outside the chest (edge band, marker corners, black frame); None without positive
    evidence. ``evidence_outside``: that share is above the model's fitted threshold, or
    ``frame_flipped``: cropping the image's black frame away changes the label (``frame_shift``:
    the change of the verdict's calibrated log-odds then; None without a frame).
    ``no_positive_evidence``: the map has (almost) no positive part, so it shows nothing.
    ``shifts``: perturbation name -> change of the verdict's calibrated log-odds.
    ``flipped``: the perturbations that changed the label. ``unstable``: a flip, or a
    change of more than 1 in log-odds; None when the stability check was not run
    (``shifts`` then empty): never read as stable.
    """

    outside_share: float | None = None
    evidence_outside: bool = False
    frame_flipped: bool = False
    frame_shift: float | None = None
    no_positive_evidence: bool = False
    shifts: dict[str, float] = field(default_factory=dict)
    flipped: tuple[str, ...] = ()
    unstable: bool | None = False

    @property
    def stability_checked(self) -> bool:
        return self.unstable is not None

    def warnings(self, label: str | None = None) -> list[str]:
        """Plain-words lines for a reader, most important first (empty when all is well)."""
        lines = []
        if self.frame_flipped:
            lines.append("evidence outside the chest: check the framing (the label changes without the black frame)")
        elif self.evidence_outside:
            lines.append("evidence outside the chest: check the framing")
        if self.flipped:
            lines.append(f"unstable: the label changes with {' and with '.join(_PERTURBATION_WORDS.get(p, p) for p in self.flipped)}")
        elif self.unstable:
            worst = max(self.shifts, key=lambda k: abs(self.shifts[k]))
            lines.append(f"unstable: the log-odds move by {self.shifts[worst]:+.1f} with {_PERTURBATION_WORDS.get(worst, worst)}")
        if self.no_positive_evidence:
            lines.append(f"no positive evidence for {label or 'the predicted class'} in the map")
        return lines


_PERTURBATION_WORDS = {"border": "a 10% black border", "blur": "a slight blur"}


@dataclass
class FileResult:
    """What the model made of one file.

    ``probs``: calibrated probability per class name (empty on error).
    ``label``: the class chosen by the model's decision rule, or ``OUT_OF_SCOPE`` when the
    image is out of scope and the verdict is withheld (None on error).
    ``predicted``: the class the decision rule chose, kept for audit (and the CAM) when the
    verdict is withheld; equal to ``label`` otherwise.
    ``in_scope``: whether the model may answer for this image (None on error);
    ``scope_score``: the learned scope score (None when the model file has no scope statistics);
    ``scope_reason``: why the image is out of scope, in one sentence (None when in scope).
    ``cams``: float32 K x h x w maps at the model's feature resolution, in logit
    units without the bias (the spatial mean plus the bias of class k is logit k);
    None on error.
    ``image_size``: (W, H) of the original image. ``meta``: the radiograph's meta.
    ``kept_box``: the part of the image the model saw when its file crops a constant frame
    (:mod:`cxrviewer.core.io.frame`): ``(top, bottom, left, right)`` as fractions of the image as
    displayed; the maps cover this box only. None: the whole image.
    ``error``: one-line reason when the file failed, else None.
    ``overlay``: the overlay PNG written for this file, if any.
    ``precision``: the floating-point type the model ran in ("float32", "bfloat16", ...).
    ``checks``: the per-verdict checks (evidence location, stability); None when not run.
    ``reader``: the viewer's reader-study entry (:mod:`cxrviewer.core.results.reader_study`); None outside the viewer.
    ``population``: the population check (:mod:`cxrviewer.core.model.population`): ``in``, ``outside: <why>`` or
    ``unknown``; None on error.

    The columns that show these fields are declared in :mod:`cxrviewer.core.results.columns`.
    """

    path: Path
    index: int = 0
    probs: dict[str, float] = field(default_factory=dict)
    label: str | None = None
    logits: list[float] | None = None
    cams: np.ndarray | None = None
    image_size: tuple[int, int] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    overlay: Path | None = None
    precision: str | None = None
    checks: VerdictChecks | None = None
    predicted: str | None = None
    in_scope: bool | None = None
    scope_score: float | None = None
    scope_reason: str | None = None
    reader: Any = None
    population: str | None = None
    kept_box: tuple[float, float, float, float] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def outside_population(self) -> bool:
        """The population check put the image outside the model's intended population."""
        return self.ok and (self.population or "").startswith(OUTSIDE_POPULATION)

    def warnings(self) -> list[str]:
        """What the checks say about this verdict, in plain words, the population first (empty: nothing, or not checked)."""
        if not self.ok:
            return []
        lines = [f"outside the intended population ({self.population.split(': ', 1)[-1]})"] if self.outside_population else []
        return lines + (self.checks.warnings(self.predicted or self.label) if self.checks is not None else [])
