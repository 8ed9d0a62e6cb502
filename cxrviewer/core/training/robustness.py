"""The robustness constraints on a shipped model (``docs/selection-protocol.md``, amendment 2, 2026-12-07).

Robustness is a constraint, not a score to trade: a model ships only when, at its shipped threshold,

- W (the worst suite family's mean bal95) is at least :data:`W_MIN`;
- NORMAL specificity on validation is at least :data:`SPEC_MIN` under each view of :data:`VIEWS`
  (black border, black edge mask and crop at their 10 % level, blur at sigma 2 px);
- the stability badge fires on at most :data:`BADGE_MAX` of the clean validation radiographs.

:func:`check` reads the first two from the protocol scorer's result; :func:`badge_rate` measures the third.
"""

from __future__ import annotations

import numpy as np
import torch

from ..explain.checks import stability
from ..explain.methods import eval_mode
from ..model.classifier import CamClassifier

W_MIN = 0.90
SPEC_MIN = 0.90
BADGE_MAX = 0.10
#: ``(family, level)`` views whose NORMAL specificity at the shipped threshold must reach :data:`SPEC_MIN`.
VIEWS = (("border-black", 4), ("mask-black", 4), ("crop", 4), ("blur", 2))


@torch.inference_mode()
def badge_rate(model: CamClassifier, images: torch.Tensor, threshold: float | None, batch_size: int = 64) -> float:
    """Share of ``images`` (``N x 1 x H x W`` uint8, clean validation) whose verdict at ``threshold`` the
    stability check calls unstable (the viewer's badge: 10 % border or sigma-2 blur flips the label or moves
    its log-odds by more than 1)."""
    saved = model.meta.get("threshold")
    if threshold is not None:
        model.meta["threshold"] = float(threshold)
    dev = next(model.parameters()).device
    flags = []
    try:
        with eval_mode(model):
            for i in range(0, len(images), batch_size):
                x = images[i:i + batch_size].to(dev).float().div_(255.0)
                logits = model(model.normalize(x)).float()
                labels = model.decide(model.probabilities(logits))
                flags.append(stability(model, x, logits, labels)["unstable"])
    finally:
        if saved is None:
            model.meta.pop("threshold", None)
        else:
            model.meta["threshold"] = saved
    return float(torch.cat(flags).float().mean()) if flags else float("nan")


def check(full: dict, badge: float | None) -> dict:
    """The constraints for a complete protocol result ``full`` (:func:`.protocol.score_model`) at its protocol
    threshold, and ``badge`` (:func:`badge_rate` at that threshold; None: not measured).

    Returns ``{"W": ..., "specificity": {"border-black-4": ...}, "badge_rate": ..., "failed": [reasons], "ok": bool}``;
    ``ok`` is None when a part could not be measured.
    """
    w = (full.get("summary") or {}).get("W")
    spec = {}
    for fam, level in VIEWS:
        view = next((v for v in full.get("views", []) if v["family"] == fam and v["level"] == level), None)
        spec[f"{fam}-{level}"] = None if view is None else float(view["at_protocol_threshold"]["specificity"])
    failed = [f"W {w:.3f} < {W_MIN}"] if w is not None and w < W_MIN else []
    failed += [f"NORMAL specificity {v:.3f} < {SPEC_MIN} under {k}" for k, v in spec.items() if v is not None and v < SPEC_MIN]
    if badge is not None and badge > BADGE_MAX:
        failed.append(f"stability badge on {badge:.1%} of clean validation images > {BADGE_MAX:.0%}")
    unknown = w is None or badge is None or None in spec.values()
    return {"W": w, "specificity": spec, "badge_rate": badge, "failed": failed,
            "ok": False if failed else (None if unknown else True)}


def words(c: dict) -> str:
    """One line for a table or a card: met, or which constraints failed."""
    if c.get("ok"):
        return (f"meets the robustness constraints (W {c['W']:.3f}; NORMAL specificity "
                + ", ".join(f"{k} {v:.3f}" for k, v in c["specificity"].items())
                + f"; stability badge {c['badge_rate']:.1%} of clean validation images)")
    if c.get("failed"):
        return "fails the robustness constraints: " + "; ".join(c["failed"])
    return "robustness constraints not fully measured"


def specificity_table(c: dict) -> list[str]:
    """Markdown lines: each constrained view's NORMAL specificity against the bar."""
    rows = ["| constraint | value | bar | met |", "|---|---:|---:|---|",
            f"| W (worst family, mean bal95) | {_f(c.get('W'))} | >= {W_MIN} | {_met(c.get('W'), W_MIN)} |"]
    rows += [f"| NORMAL specificity, {k} | {_f(v)} | >= {SPEC_MIN} | {_met(v, SPEC_MIN)} |" for k, v in c["specificity"].items()]
    b = c.get("badge_rate")
    rows.append(f"| stability badge, clean validation | {'–' if b is None else f'{b:.1%}'} | <= {BADGE_MAX:.0%} | "
                f"{'–' if b is None else ('yes' if b <= BADGE_MAX else 'no')} |")
    return rows


def _f(v) -> str:
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3f}"


def _met(v, bar) -> str:
    return "–" if v is None else ("yes" if v >= bar else "no")
