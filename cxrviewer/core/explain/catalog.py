"""The explanation methods as the menus list them (name, label, units), without importing torch.

The viewer builds its menus from this before torch is imported; :mod:`.methods` holds the
implementations (a test checks that both agree).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodInfo:
    """What a menu, a tooltip and a colour bar say about a method (the attributes of its class in :mod:`.methods`)."""

    name: str
    label: str
    short: str
    units: str
    additive: bool = True


EVIDENCE = "evidence"
CATALOG: dict[str, MethodInfo] = {m.name: m for m in (
    MethodInfo(EVIDENCE, "Evidence map (CAM)", "CAM", "log-odds (logit units)"),
    MethodInfo("gradcam", "Grad-CAM (layer3, 14 x 14)", "Grad-CAM", "log-odds, first-order (positive part)"),
    MethodInfo("occlusion", "Occlusion sensitivity", "Occlusion", "log-odds drop when the patch is greyed", False),
)}

#: Which margins of an audit (``metrics.explanations.faithfulness``) belong to which map.
AUDITED = {"evidence": "margins", "gradcam": "margins_gradcam"}

#: The deletion and insertion scores that decide whether a map is faithful (protocol amendment 2: mean fill).
DECIDING = ("deletion_mean", "insertion_mean")


def beats_floors(margins: dict | None) -> bool:
    """Whether a map beats both floors (random, centred prior) beyond chance on every score of :data:`DECIDING`
    (the paired 95 % interval of its margin wholly above zero)."""
    rows = [(margins or {}).get(floor, {}).get(k) for floor in ("random", "prior") for k in DECIDING]
    return all(r is not None and r[0] - r[1] > 0 for r in rows)


def default_method(explanations: dict | None) -> tuple[str, str]:
    """The viewer's default map for a model, and why when it is not the CAM (protocol amendment 2).

    The CAM (``evidence``) unless the model's audit shows that it does not beat the floors on mean-fill deletion
    and insertion while Grad-CAM does; without an audit, the CAM.
    """
    fa = (explanations or {}).get("faithfulness") or {}
    if not fa.get(AUDITED["evidence"]) or beats_floors(fa[AUDITED["evidence"]]):
        return "evidence", ""
    if beats_floors(fa.get(AUDITED["gradcam"])):
        return "gradcam", ("Grad-CAM is this model's default map: on its validation images the CAM does not beat the "
                           "random and centred-prior maps beyond chance on mean-fill deletion and insertion, and Grad-CAM does")
    return "evidence", ("neither the CAM nor Grad-CAM beats the random and centred-prior maps beyond chance on mean-fill "
                        "deletion and insertion for this model: read its maps with care")
