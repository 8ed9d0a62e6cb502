"""Cascading randomization (Adebayo et al., NeurIPS 2018): do the maps depend on what was learned?

The weights are re-initialised from the top down (the classifier, then the last
stage of the trunk, ... down to the first convolution), cumulatively, on a copy of
the model. After each step the maps of the same images and classes are compared
with the trained model's by Spearman rank correlation. A map that still looks the
same once the weights are random shows the image or the architecture, not the
model's reasons: the check **passes** when the mean absolute correlation stays
below :data:`PASS_LIMIT` at every step.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from ..model.classifier import CamClassifier
from .methods import ExplanationMethod, eval_mode

PASS_LIMIT = 0.5


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of each row of ``a`` with the same row of ``b`` (``N x ...``; ties averaged)."""
    ra, rb = _ranks(a.flatten(1).double()), _ranks(b.flatten(1).double())
    ra, rb = ra - ra.mean(dim=1, keepdim=True), rb - rb.mean(dim=1, keepdim=True)
    den = (ra.norm(dim=1) * rb.norm(dim=1))
    return torch.where(den > 0, (ra * rb).sum(dim=1) / den.clamp_min(1e-300), torch.zeros_like(den)).float()


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Average ranks per row (ties share the mean of their positions)."""
    sorted_x, order = x.sort(dim=1)
    n = x.shape[1]
    pos = torch.arange(n, dtype=x.dtype, device=x.device).expand_as(x)
    # tie groups: a new group starts wherever the sorted value changes
    new = torch.ones_like(sorted_x, dtype=torch.bool)
    new[:, 1:] = sorted_x[:, 1:] != sorted_x[:, :-1]
    group = new.cumsum(dim=1) - 1
    total = torch.zeros_like(x).scatter_add_(1, group, pos)
    count = torch.zeros_like(x).scatter_add_(1, group, torch.ones_like(pos))
    avg = (total / count.clamp_min(1)).gather(1, group)
    return torch.empty_like(x).scatter_(1, order, avg)


def cascade(model: CamClassifier) -> list[tuple[str, list[nn.Module]]]:
    """The randomization steps, top down: ``classifier``, then each trunk stage with weights, last first."""
    stages = [(name, mod) for name, mod in _trunk_stages(model.features) if any(True for _ in mod.parameters())]
    return [("classifier", [model.classifier])] + [(name, [mod]) for name, mod in reversed(stages)]


def _trunk_stages(trunk: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """Named stages; a plain ``Sequential`` named ``features`` (DenseNet) is opened one level."""
    out = []
    for name, mod in trunk.named_children():
        if type(mod) is nn.Sequential and name == "features":
            out += _trunk_stages(mod, prefix + name + ".")
        else:
            out.append((prefix + name, mod))
    return out


def _reinitialise(modules: list[nn.Module]) -> None:
    for top in modules:
        for m in top.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()


def cascading_randomization(model: CamClassifier, x: torch.Tensor, index: torch.Tensor,
                            methods: dict[str, ExplanationMethod | Callable], seed: int = 0) -> dict:
    """Rank correlations of each method's maps with the trained ones, per cumulative randomization step.

    ``x``: normalised input ``N x C x H x W``; ``index``: class per image. The model is
    not changed (a copy is randomised; the global RNG state is restored).
    Returns ``{"steps": [{"step": name, "<method>": {"mean": r, "mean_abs": |r|}}, ...],
    "limit": PASS_LIMIT, "passed": {method: bool}}``.
    """
    with eval_mode(model):
        trained = {name: m(model, x, index).detach() for name, m in methods.items()}
    work = copy.deepcopy(model).eval()
    steps = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for step, modules in cascade(work):
            _reinitialise(modules)
            work.eval()
            row: dict = {"step": step}
            for name, m in methods.items():
                r = spearman(trained[name], m(work, x, index).detach())
                row[name] = {"mean": float(r.mean()), "mean_abs": float(r.abs().mean())}
            steps.append(row)
    passed = {name: all(row[name]["mean_abs"] < PASS_LIMIT for row in steps) for name in methods}
    return {"steps": steps, "limit": PASS_LIMIT, "passed": passed}
