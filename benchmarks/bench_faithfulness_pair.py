"""Deletion and insertion of two or more models' maps on the same truth-stratified validation images.

    python benchmarks/bench_faithfulness_pair.py --images 48 --out pair.json MODEL_A MODEL_B [...]

For models trained with the same ``--seed`` (so one validation split; checked), picks ``--images``
validation radiographs stratified by truth (seeded), and scores each model's evidence map, Grad-CAM and the
random and centred-prior floors with the trainer's audit code (``audit.faithfulness_maps``,
``faithfulness.faithfulness_scores``: 20 steps, mean and blur fill, for the predicted class). Prints the
means, each model's paired margins over the floors and, for two models, the paired difference of their
evidence maps (positive = the first model's map is more faithful). ``--out`` keeps per-image scores; a
rerun with the same file skips the models already scored. Used for the dilated pair of issue 13
(``docs/explanations.md``, "Finer maps").
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from cxrviewer.core.explain.audit import _margins, _summary, faithfulness_maps, run_forward, stratified_subset
from cxrviewer.core.explain.faithfulness import faithfulness_scores
from cxrviewer.core.model.checkpoint import load_model
from cxrviewer.core.training.protocol import load_images, protocol_split

ROOT = Path(__file__).resolve().parents[1]


def score(path: Path, data: Path, n: int) -> dict:
    t0 = time.time()
    model = load_model(path)
    val = protocol_split(model, data)[0]
    truth = torch.tensor([s.label for s in val])
    pick = stratified_subset(truth, n, seed=0)
    images = load_images([val[i] for i in pick.tolist()], model.input_size).float().div(255)
    labels = run_forward(model, images)["labels"]
    maps = faithfulness_maps(model, images, labels)
    per_image = faithfulness_scores(model, images, maps, labels)
    return {"files": [str(val[i].path) for i in pick.tolist()], "truth": truth[pick].tolist(),
            "predicted": labels.tolist(), "grid": list(maps["evidence"].shape[-2:]), "per_image": per_image,
            "mean": _summary(per_image), "margins": _margins(per_image), "seconds": round(time.time() - t0, 1)}


def paired(a: dict, b: dict) -> dict:
    """First minus second evidence map per score, signed so that > 0 = the first is better: [mean, 95% half-width]."""
    out = {}
    for k in a:
        d = np.asarray(a[k]) - np.asarray(b[k])
        d = -d if k.startswith("deletion") else d
        out[k] = [round(float(d.mean()), 4), round(float(1.96 * d.std(ddof=1) / np.sqrt(d.size)), 4)]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", type=Path)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "chest_xray")
    p.add_argument("--images", type=int, default=48)
    p.add_argument("--out", type=Path, default=None, help="JSON with per-image scores (rerun: scored models are kept)")
    args = p.parse_args()
    result = json.loads(args.out.read_text()) if args.out and args.out.is_file() else {}
    for path in args.models:
        key = str(path)
        if key not in result:
            result[key] = score(path, args.data, args.images)
            if args.out:
                args.out.write_text(json.dumps(result))
        r = result[key]
        print(f"{path} (maps {r['grid'][0]} x {r['grid'][1]}, {len(r['files'])} images, {r['seconds']} s)")
        print("  mean:", json.dumps(r["mean"]))
        print("  margins over the floors:", json.dumps(r["margins"]))
    if len(args.models) == 2:
        a, b = (result[str(m)] for m in args.models)
        if a["files"] != b["files"]:
            raise SystemExit("the two models have different validation images (train them with the same --seed)")
        print("first minus second evidence map:", json.dumps(paired(a["per_image"]["evidence"], b["per_image"]["evidence"])))


if __name__ == "__main__":
    main()
