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
