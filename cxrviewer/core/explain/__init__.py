"""Explanations and their checks, Qt-free.

- :mod:`.methods`: the explanation-method interface and its implementations
  (evidence map, Grad-CAM on an inner stage, occlusion);
- :mod:`.faithfulness`: deletion and insertion AUCs with their floors;
- :mod:`.sanity`: cascading randomization;
- :mod:`.checks`: per-verdict evidence location and stability;
- :mod:`.perturb`: the image perturbations they share.
"""

import importlib

__all__ = ["METHODS", "EvidenceMap", "ExplanationMethod", "GradCAM", "Occlusion", "evidence_maps", "get_method"]


def __getattr__(name: str):
    """The public names of :mod:`.methods`, imported (with torch) on first use: the viewer paints before that."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(".methods", __name__), name)
    globals()[name] = value
    return value
