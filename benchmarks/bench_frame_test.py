"""How the 'check the framing' flag behaves on validation radiographs with and without an added black border.

    python benchmarks/bench_frame_test.py [--model FILE] [--data ../shared/data/chest_xray] [--borders 0.05 0.10]

For the model's own validation split (rebuilt from the data folder as its training made it), clean and with a
black border of each size added around every image (``perturb.add_border``): how many images have a black
frame, how often the location share and the frame test fire, and how many of the labels the border changed
each catches. The frame test is :func:`cxrviewer.core.explain.checks.frame_test`, as the batch engine runs it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from cxrviewer.core.explain import checks
from cxrviewer.core.explain.perturb import add_border
from cxrviewer.core.model.checkpoint import default_model_path, load_model
from cxrviewer.core.training.protocol import load_images, protocol_split


def run(model, images: torch.Tensor, batch: int = 64) -> dict[str, torch.Tensor]:
    parts = []
    for i in range(0, len(images), batch):
        x = images[i:i + batch]
        with torch.inference_mode():
            logits, cams = model.logits_and_cams(model.normalize(x))
        labels = model.decide(model.probabilities(logits))
        found = checks.verdict_checks(model, x, logits, cams, labels, with_stability=False)
        limit = checks.outside_threshold(model)
        share_flag = (torch.nan_to_num(found["outside_share"], nan=0.0) > limit) & ~found["no_positive_evidence"]
        parts.append({"labels": labels, "share_flag": share_flag, "framed": torch.isfinite(found["frame_shift"]),
                      "frame_flag": found["frame_flipped"], "flag": found["evidence_flag"]})
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=None, help="model file (default: the shipped default)")
    p.add_argument("--data", type=Path, default=Path("../shared/data/chest_xray"))
    p.add_argument("--borders", type=float, nargs="+", default=[0.05, 0.10], help="border sizes (fraction of the side)")
    args = p.parse_args()
    path = args.model or default_model_path()
    model = load_model(path)
    val = protocol_split(model, args.data)[0]
    images = load_images(val, model.input_size).float() / 255
    clean = run(model, images)
    n = len(images)
    print(f"{path.name}: {n} validation images")
    print(f"clean: framed {int(clean['framed'].sum())}; share flag {int(clean['share_flag'].sum())}; frame test "
          f"{int(clean['frame_flag'].sum())}; flag {int(clean['flag'].sum())} ({clean['flag'].float().mean():.2%})")
    for b in args.borders:
        r = run(model, add_border(images, b))
        changed = r["labels"] != clean["labels"]
        print(f"border {b:.2f}: labels changed {int(changed.sum())}; among them share flag {int((r['share_flag'] & changed).sum())}, "
              f"frame test {int((r['frame_flag'] & changed).sum())}, flag {int((r['flag'] & changed).sum())}; "
              f"flag on all bordered images {r['flag'].float().mean():.2%}")


if __name__ == "__main__":
    main()
