"""Cost of the finer-maps option (``train_model.py --dilate-last``): MACs and CPU forward time against the plain model.

    nice python benchmarks/bench_dilated.py [--arch resnet18] [--size 224] [--batch 8] [--repeats 5] [--threads 1]

Untrained weights (cost does not depend on them). Timings alternate the two models,
best of ``--repeats`` each, on ``--threads`` torch threads; the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from cxrviewer import CamClassifier
from cxrviewer.core.training.protocol import macs


def best_time(model: CamClassifier, x: torch.Tensor) -> float:
    with torch.inference_mode():
        t = time.perf_counter()
        model.logits_and_cams(x)
        return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    models = {d: CamClassifier(a.arch, 2, 1, meta={"input_size": [a.size, a.size]}, dilate_last=d).eval()
              for d in (False, True)}
    x = torch.rand(a.batch, 1, a.size, a.size)
    load = os.getloadavg()[0]
    cost = {d: macs(m) for d, m in models.items()}
    times = {d: [] for d in models}
    for d, m in models.items():
        best_time(m, x)  # warm-up
    for _ in range(a.repeats):
        for d, m in models.items():
            times[d].append(best_time(m, x))
    print(f"1-min load average before/after: {load:.2f} / {os.getloadavg()[0]:.2f}")
    grids = {d: tuple(m.logits_and_cams(x[:1])[1].shape[-2:]) for d, m in models.items()}
    for d in models:
        name = "dilated last stage" if d else "plain"
        print(f"{a.arch} {name}: map {grids[d][0]} x {grids[d][1]}, {cost[d] / 1e9:.2f} GMACs, "
              f"{1000 * min(times[d]) / a.batch:.1f} ms/image (batch {a.batch}, {a.threads} thread)")
    print(f"ratio dilated / plain: MACs {cost[True] / cost[False]:.2f}x, time {min(times[True]) / min(times[False]):.2f}x")


if __name__ == "__main__":
    main()
