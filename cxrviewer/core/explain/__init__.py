"""Explanations and their checks, Qt-free.

- :mod:`.methods`: the explanation-method interface and its implementations
  (evidence map, Grad-CAM on an inner stage, occlusion);
- :mod:`.faithfulness`: deletion and insertion AUCs with their floors;
- :mod:`.sanity`: cascading randomization;
- :mod:`.checks`: per-verdict evidence location and stability;
- :mod:`.perturb`: the image perturbations they share.
"""

from .methods import METHODS, EvidenceMap, ExplanationMethod, GradCAM, Occlusion, evidence_maps, get_method

__all__ = ["METHODS", "EvidenceMap", "ExplanationMethod", "GradCAM", "Occlusion", "evidence_maps", "get_method"]
