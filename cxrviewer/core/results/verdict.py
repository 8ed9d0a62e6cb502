"""The verdict in words: the class and the probability that decided it, for the badge, the details and captions.

A two-class model with a threshold decides on one number, the positive class's probability against
the threshold, so that is the number shown: ``"NORMAL: P(PNEUMONIA) 69% < 72%"``. Showing the chosen
class's own probability instead ("NORMAL 31%") reads as a contradiction when the positive class is
the more likely one but under the threshold. Without a threshold the top class is chosen:
``"PNEUMONIA 87.0%"``. Qt-free.
"""

from __future__ import annotations

from typing import Any

from .columns import percent
from .file_result import FileResult


def compared(p: float, threshold: float) -> str:
    """``p`` and ``threshold`` as whole percentages with the comparison that the decision made
    (``"69% < 72%"``); more decimals when rounding would make them look equal or the wrong way round,
    and for ``p`` when it would read as 0% or 100%."""
    sign = "\u2265" if p >= threshold else "<"
    digits = 0
    while digits < 4:
        a, b = round(100 * p, digits), round(100 * threshold, digits)
        if (a >= b) == (p >= threshold) and (a != b or p >= threshold):
            break
        digits += 1
    shown = digits
    while shown < 4 and ((p > 0 and round(100 * p, shown) == 0) or (p < 1 and round(100 * p, shown) == 100)):
        shown += 1
    return f"{100 * p:.{shown}f}% {sign} {100 * threshold:.{digits}f}%"


def decision(result: FileResult, batch: Any) -> str:
    """Why the model chose ``result.predicted``: ``"P(PNEUMONIA) 69% < 72%"`` for a two-class model with a
    threshold (``batch``: a :class:`~cxrviewer.core.results.columns.Batch`), else the chosen class's probability."""
    shown = result.predicted or result.label
    positive, threshold = getattr(batch, "positive", None), getattr(batch, "threshold", None)
    if positive and threshold is not None and positive in result.probs:
        return f"P({positive}) {compared(result.probs[positive], threshold)}"
    return percent(result.probs.get(shown or "", float("nan"))) if shown in result.probs else ""


def verdict(result: FileResult, batch: Any) -> str:
    """The badge: ``"NORMAL: P(PNEUMONIA) 69% < 72%"`` (two classes with a threshold), ``"PNEUMONIA 87.0%"``
    (the top class otherwise); "" for a result without a verdict."""
    shown = result.predicted or result.label
    if not result.ok or not shown:
        return ""
    why = decision(result, batch)
    if getattr(batch, "positive", None) and getattr(batch, "threshold", None) is not None and why.startswith("P("):
        return f"{shown}: {why}"
    return f"{shown} {why}".strip()
