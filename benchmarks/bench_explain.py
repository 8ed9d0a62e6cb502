"""Audit of the shipped model's heat maps on validation radiographs (issue 13).

Takes the validation split the model was trained with (the trainer's patient
split, with the seed and fraction stored in the model file), and measures:

1. :func:`cxrviewer.core.explain.audit.audit`: per-verdict checks on every image
   (evidence outside the chest, no positive evidence, stability), deletion and
   insertion AUCs on a subset stratified by predicted class (evidence map,
   Grad-CAM on layer3, random and centred-prior floors), cascading randomization;
2. a 10% black border (5% of the side on every edge) on every validation image:
   how many verdicts it changes and on how many of those the evidence flag fires;
3. how image-specific the maps are: mean Spearman correlation between the
   evidence maps of two different images, and with a centred Gaussian.

Writes JSON (``--json``); docs/explanations.md reports a full run.

    nice python benchmarks/bench_explain.py --threads 2            # full run (~30-60 min on 2 busy cores)
    python benchmarks/bench_explain.py --limit 40 --faithfulness 8 --sanity 4   # quick check
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cxrviewer.core.explain import audit as audit_mod  # noqa: E402
from cxrviewer.core.explain import checks  # noqa: E402
from cxrviewer.core.explain.faithfulness import centred_prior_maps  # noqa: E402
from cxrviewer.core.explain.perturb import add_border  # noqa: E402
from cxrviewer.core.explain.sanity import spearman  # noqa: E402
from cxrviewer.core.io.radiograph import to_model_input
from cxrviewer.core.io.reading import load_radiograph  # noqa: E402
from cxrviewer.core.model.checkpoint import default_model_path, load_model  # noqa: E402
from cxrviewer.core.training.data import DEFAULT_PATIENT_PATTERN, list_samples, split_by_patient  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "chest_xray"


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA, help=f"dataset folder with train/CLASS/ (default: {DATA})")
    p.add_argument("--model", type=Path, help="model file (default: the shipped model)")
    p.add_argument("--limit", type=int, default=0, help="use only this many validation images, seeded (default: 0 = all)")
    p.add_argument("--faithfulness", type=int, default=64, help="images for deletion/insertion (default: 64)")
    p.add_argument("--sanity", type=int, default=32, help="images for cascading randomization (default: 32)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    p.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results_explain.json",
                   help="raw results (default: benchmarks/results_explain.json)")
    return p


def validation_images(model, data: Path, limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's own validation split (as its training recorded it), decoded at its input size."""
    split = (model.meta.get("training") or {}).get("split") or {}
    names = model.class_names
    samples = list_samples(data / "train", names)
    _, val, _ = split_by_patient(samples, float(split.get("val_fraction", 0.15)), int(split.get("seed", 0)),
                                 split.get("patient_pattern") or DEFAULT_PATIENT_PATTERN)
    if limit and limit < len(val):
        keep = np.random.default_rng(0).choice(len(val), limit, replace=False)
        val = [val[i] for i in sorted(keep)]
    size = model.input_size
    grey = [to_model_input(load_radiograph(s.path, target_size=size).pixels, size) for s in val]
    return torch.from_numpy(np.stack(grey))[:, None], torch.tensor([s.label for s in val])


def border_study(model, images: torch.Tensor, clean: dict, threshold: float) -> dict:
    """Verdicts changed by a 10% black border, and how often the evidence flag fires on them."""
    framed_images = add_border(images, checks.BORDER_FRACTION)
    framed = audit_mod.run_forward(model, framed_images)
    vc = audit_mod.batched_checks(model, framed_images, framed, threshold)
    changed = framed["labels"] != clean["labels"]
    names = model.class_names
    out = {"n": int(images.shape[0]), "changed": int(changed.sum()),
           "flag_rate_all_framed": round(float(vc["evidence_flag"].float().mean()), 4),
           "by_change": {}}
    for a in range(len(names)):
        for b in range(len(names)):
            sel = (clean["labels"] == a) & (framed["labels"] == b)
            if a != b and sel.any():
                out["by_change"][f"{names[a]} -> {names[b]}"] = {
                    "n": int(sel.sum()), "flagged": int(vc["evidence_flag"][sel].sum()),
                    "median_outside_share": round(float(np.nanmedian(vc["outside_share"][sel].numpy())), 4)}
    if changed.any():
        out["flag_rate_changed"] = round(float(vc["evidence_flag"][changed].float().mean()), 4)
    return out


def specificity_study(evidence: torch.Tensor, labels: torch.Tensor, pairs: int = 2000, seed: int = 0) -> dict:
    """Mean Spearman correlation of evidence maps of two different images (any / same predicted class), and with a prior."""
    rng = np.random.default_rng(seed)
    n = evidence.shape[0]
    a = rng.integers(0, n, pairs)
    b = (a + rng.integers(1, n, pairs)) % n
    r = spearman(evidence[a], evidence[b])
    same = (labels[a] == labels[b])
    prior = centred_prior_maps(n, tuple(evidence.shape[-2:]))
    return {"between_images": round(float(r.mean()), 3), "same_predicted_class": round(float(r[same].mean()), 3),
            "with_centred_prior": round(float(spearman(evidence, prior).mean()), 3)}


def main(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    t0 = time.time()
    model = load_model(args.model or default_model_path())
    images, truth = validation_images(model, args.data, args.limit)
    print(f"{images.shape[0]} validation images loaded in {time.time() - t0:.0f}s", flush=True)
    result: dict = {"model": Path(model.meta["file"]).name, "images": int(images.shape[0]),
                    "truth": {n: int((truth == i).sum()) for i, n in enumerate(model.class_names)}}

    def log(msg: str) -> None:
        print(f"[{time.time() - t0:6.0f}s] {msg}", flush=True)

    log("forward pass and verdict checks")
    fwd = audit_mod.run_forward(model, images)
    vc = audit_mod.batched_checks(model, images, fwd)
    threshold = checks.fit_outside_threshold(vc["outside_share"][~vc["no_positive_evidence"]].tolist())
    result["specificity"] = specificity_study(fwd["evidence"], fwd["labels"])
    names = model.class_names
    result["by_predicted_class"] = {
        names[c]: {"n": int(sel.sum()),
                   "median_positive_mass": round(float(vc["positive_mass"][sel].median()), 3),
                   "no_positive_evidence": int(vc["no_positive_evidence"][sel].sum()),
                   "median_outside_share": round(float(np.nanmedian(vc["outside_share"][sel].numpy())), 3),
                   "unstable": int(vc["unstable"][sel].sum()),
                   "flipped": {p: int(vc["flipped"][sel, i].sum()) for i, p in enumerate(checks.PERTURBATIONS)},
                   "moved_over_1": {p: int((vc["shift"][sel, i].abs() > 1).sum()) for i, p in enumerate(checks.PERTURBATIONS)},
                   "median_abs_shift": [round(float(v), 3) for v in vc["shift"][sel].abs().median(dim=0).values]}
        for c in range(len(names)) for sel in [fwd["labels"] == c] if sel.any()}
    _save(result, args.json)
    log("black border study")
    result["border"] = border_study(model, images, fwd, threshold)
    _save(result, args.json)
    result["audit"] = audit_mod.audit(model, images, n_faithfulness=args.faithfulness, n_sanity=args.sanity, log=log,
                                      scored=(fwd, vc))
    result["seconds"] = round(time.time() - t0)
    _save(result, args.json)
    log(f"done; {args.json}")
    return result


def _save(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main(get_args_parser().parse_args())
