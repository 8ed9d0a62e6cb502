"""The explanation audit of a model on validation images: what the trainer stores and the card shows.

:func:`run_forward` scores the images once; :func:`audit` adds the per-verdict
checks on all of them (fitting the evidence-location threshold), deletion and
insertion on a subset stratified by predicted class (the evidence map, Grad-CAM
as a peer, a random smooth map and a centred prior as floors), and cascading
randomization on a smaller subset. Everything is seeded and returns plain data.

A model whose file crops a constant frame (:mod:`..frame`) is audited on the images cropped once,
up front, as it sees them: its maps lie on those, and deletion changes the pixels they rank.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..io.frame import frame_normalized
from ..model.classifier import CamClassifier
from . import checks
from .faithfulness import STEPS, centred_prior_maps, faithfulness_scores, random_smooth_maps
from .methods import EvidenceMap, GradCAM, eval_mode, evidence_maps
from .sanity import cascading_randomization

FAITHFULNESS_MAPS = ("evidence", "gradcam", "random", "prior")
#: The maps the audit compares with the floors, and the key of their margins in the faithfulness section.
from .catalog import AUDITED, DECIDING, beats_floors, default_method  # noqa: F401 - re-exported for callers


def run_forward(model: CamClassifier, images: torch.Tensor, batch_size: int = 64,
                frame: bool = True) -> dict[str, torch.Tensor]:
    """``logits``, ``cams``, ``labels`` (decision rule) and ``evidence`` maps of the predicted class
    (``frame``: as for :meth:`CamClassifier.normalize`; False when the images are cropped already)."""
    outs = []
    with eval_mode(model), torch.inference_mode():
        for i in range(0, images.shape[0], batch_size):
            outs.append(model.logits_and_cams(model.normalize(images[i:i + batch_size], frame)))
    logits = torch.cat([o[0] for o in outs]).float()
    cams = torch.cat([o[1] for o in outs]).float()
    labels = model.decide(model.probabilities(logits))
    return {"logits": logits, "cams": cams, "labels": labels, "evidence": evidence_maps(logits, cams, labels)}


def batched_checks(model: CamClassifier, images: torch.Tensor, fwd: dict[str, torch.Tensor],
                   threshold: float | None = None, batch_size: int = 32) -> dict[str, torch.Tensor]:
    """:func:`checks.verdict_checks` over ``images`` in batches (the stability passes hold 2 copies each)."""
    parts = [checks.verdict_checks(model, images[i:i + batch_size], fwd["logits"][i:i + batch_size],
                                   fwd["cams"][i:i + batch_size], fwd["labels"][i:i + batch_size], threshold)
             for i in range(0, images.shape[0], batch_size)]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def stratified_subset(labels: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Up to ``n`` indices, as equal a share per predicted class as the classes allow, seeded."""
    rng = np.random.default_rng(seed)
    classes = sorted(set(labels.tolist()))
    pools = {c: list(rng.permutation(np.flatnonzero(labels.numpy() == c))) for c in classes}
    picked: list[int] = []
    while len(picked) < n and any(pools.values()):
        for c in classes:
            if pools[c] and len(picked) < n:
                picked.append(int(pools[c].pop()))
    return torch.tensor(sorted(picked), dtype=torch.long)


def faithfulness_maps(model: CamClassifier, images: torch.Tensor, labels: torch.Tensor,
                      seed: int = 0, frame: bool = True) -> dict[str, torch.Tensor]:
    """The maps deletion and insertion compare: evidence map, Grad-CAM (peer), random and prior (floors)
    (``frame``: as for :meth:`CamClassifier.normalize`)."""
    x = model.normalize(images, frame)
    with eval_mode(model):
        ev = EvidenceMap()(model, x, labels)
        gc = GradCAM()(model, x, labels)
    n, grid = images.shape[0], tuple(ev.shape[-2:])
    return {"evidence": ev, "gradcam": gc, "random": random_smooth_maps(n, grid, seed),
            "prior": centred_prior_maps(n, grid)}


def _summary(per_image: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    return {m: {k: round(float(np.mean(v)), 4) for k, v in row.items()} for m, row in per_image.items()}


def _margins(per_image: dict[str, dict[str, list[float]]], of: str = "evidence") -> dict:
    """Paired margin of ``of`` over each floor, per metric: ``[mean, 95% half-width]``, signed so > 0 = ``of`` better."""
    out = {}
    for floor in ("random", "prior"):
        if floor not in per_image or of not in per_image:
            continue
        row = {}
        for k, v in per_image[of].items():
            d = np.asarray(per_image[floor][k]) - np.asarray(v)
            d = -d if k.startswith("insertion") else d
            half = 1.96 * d.std(ddof=1) / np.sqrt(d.size) if d.size > 1 else float("nan")
            row[k] = [round(float(d.mean()), 4), round(float(half), 4)]
        out[floor] = row
    return out


def faithfulness_section(model: CamClassifier, images: torch.Tensor, labels: torch.Tensor,
                         steps: int = STEPS, seed: int = 0, frame: bool = True) -> dict:
    """Deletion and insertion of :func:`faithfulness_maps` on ``images`` for class ``labels`` (the predicted ones).

    ``frame``: crop each image's constant frame first when the model file says so (False: ``images`` are
    cropped already, as :func:`~cxrviewer.core.io.frame.framed_input` makes them); maps and deletion then
    work on the same cropped images.

    Returns ``n``, ``steps``, ``target``, ``mean`` (AUC per map and fill), ``by_predicted_class``,
    ``margins`` and ``margins_gradcam`` (:func:`_margins` of the evidence map and of Grad-CAM): the section
    the model card and ``cxrviewer evaluate`` show.
    """
    if frame and model.frame_normalize:
        images = frame_normalized(images)
    maps = faithfulness_maps(model, images, labels, seed, frame=False)
    per_image = faithfulness_scores(model, images, maps, labels, steps=steps, frame=False)
    names, n = model.class_names, images.shape[0]
    by_class = {names[c]: {"n": int((labels == c).sum()),
                           **_summary({m: {k: [v[i] for i in range(n) if int(labels[i]) == c] for k, v in row.items()}
                                       for m, row in per_image.items()})}
                for c in sorted(set(labels.tolist()))}
    return {"n": n, "steps": steps, "target": "calibrated probability of the predicted class",
            "mean": _summary(per_image), "by_predicted_class": by_class,
            **{key: _margins(per_image, of=name) for name, key in AUDITED.items()}}


def floor_tally(margins: dict) -> tuple[int, int, int]:
    """``(better, worse, total)`` comparisons of a map with the floors in ``margins`` (as :func:`_margins`
    returns): better or worse when the paired 95% interval lies wholly above or below zero."""
    rows = [v for row in margins.values() for v in row.values()]
    return (sum(m - h > 0 for m, h in rows), sum(m + h < 0 for m, h in rows), len(rows))


def floor_tallies(faithfulness: dict) -> dict[str, tuple[int, int, int]]:
    """:func:`floor_tally` of each audited map (``evidence``, ``gradcam``) whose margins a faithfulness section holds."""
    return {name: floor_tally(faithfulness[key]) for name, key in AUDITED.items() if faithfulness.get(key)}


def method_notes(explanations: dict | None) -> dict[str, str]:
    """One plain sentence per audited method (``evidence``, ``gradcam``) from a model file's
    ``metrics.explanations``: how its map did against the floors on validation. Empty without an audit."""
    fa = (explanations or {}).get("faithfulness") or {}
    return {name: f"beats the no-knowledge maps (random, centred prior) beyond chance in {better} of {total} "
                  f"deletion/insertion comparisons" + (f" and loses {worse}" if worse else "") + f" ({fa.get('n')} validation images)"
            for name, (better, worse, total) in floor_tallies(fa).items()}


def audit(model: CamClassifier, images: torch.Tensor, n_faithfulness: int = 32, n_sanity: int = 16,
          steps: int = STEPS, seed: int = 0, log: Callable[[str], None] | None = None,
          scored: tuple[dict, dict] | None = None) -> dict:
    """Audit the model's explanations on ``images`` (``N x 1 x H x W`` grey in [0, 1], validation).

    Returns plain data for the model file's metrics: ``checks`` (threshold and
    rates), ``faithfulness`` (mean AUCs per map and fill, ``n``, per predicted class),
    ``sanity`` (per-step correlations and pass/fail). ``scored``: the ``(run_forward,
    batched_checks)`` outputs for ``images`` when the caller has them already. A frame-normalised
    model's images are cropped once here, before all of it (``scored`` must then be of the cropped images).
    """
    say = log or (lambda _msg: None)
    if model.frame_normalize:
        images = frame_normalized(images)
    if scored is None:
        say(f"verdict checks on {images.shape[0]} images")
        fwd = run_forward(model, images, frame=False)
        scored = fwd, batched_checks(model, images, fwd)
    fwd, vc = scored
    labels = fwd["labels"]
    threshold = checks.fit_outside_threshold(vc["outside_share"][~vc["no_positive_evidence"]].tolist())
    flag = ((torch.nan_to_num(vc["outside_share"], nan=0.0) > threshold) & ~vc["no_positive_evidence"]) | vc["frame_flipped"]
    result = {"checks": {
        "n": int(images.shape[0]),
        "evidence_outside_threshold": round(threshold, 4),
        "evidence_flag_rate": round(float(flag.float().mean()), 4),
        "framed_rate": round(float(torch.isfinite(vc["frame_shift"]).float().mean()), 4),
        "frame_flip_rate": round(float(vc["frame_flipped"].float().mean()), 4),
        "no_positive_evidence_rate": round(float(vc["no_positive_evidence"].float().mean()), 4),
        "unstable_rate": round(float(vc["unstable"].float().mean()), 4),
        "flip_rate": {p: round(float(vc["flipped"][:, i].float().mean()), 4) for i, p in enumerate(checks.PERTURBATIONS)},
    }}

    sub = stratified_subset(labels, n_faithfulness, seed)
    say(f"deletion and insertion on {len(sub)} images")
    result["faithfulness"] = faithfulness_section(model, images[sub], labels[sub], steps, seed, frame=False)
    ssub = stratified_subset(labels, n_sanity, seed)
    say(f"cascading randomization on {len(ssub)} images")
    result["sanity"] = cascading_randomization(model, model.normalize(images[ssub], frame=False), labels[ssub],
                                               {"evidence": EvidenceMap(), "gradcam": GradCAM()}, seed=seed)
    result["sanity"]["n"] = len(ssub)
    return result


def tally_words(faithfulness: dict) -> list[str]:
    """Per audited map of a faithfulness section: "CAM beats a random and a centred map in 6 of 8 comparisons (loses 1)"."""
    names = {"evidence": "CAM", "gradcam": "Grad-CAM"}
    return [f"{names[name]} beats a random and a centred map in {better} of {total} comparisons"
            + (f" (loses {worse})" if worse else "") for name, (better, worse, total) in floor_tallies(faithfulness).items()]


def audit_line(explanations: dict | None) -> str:
    """The audit in one line for a details panel: each audited map's comparisons with the floors won
    (and lost), and the sanity check. Empty without an audit."""
    fa = (explanations or {}).get("faithfulness") or {}
    parts = tally_words(fa)
    passed = (((explanations or {}).get("sanity") or {}).get("passed") or {}).get("evidence")
    if passed is not None:
        parts.append(f"sanity check {'passed' if passed else 'FAILED'}")
    return "; ".join(parts) + (f" ({fa.get('n')} validation images; see the model card)" if fa.get("n") else "")
