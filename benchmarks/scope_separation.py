"""How well does a learned scope score separate chest radiographs from everything else?

Builds an offline out-of-scope set (pydicom-data's CT, MR, US, NM, tibia and other DICOMs;
synthetic patterns; scikit-image's sample photographs) and compares, on the model's pooled
features from the same forward pass as the verdict:

- Mahalanobis distance to the nearest class mean, shared covariance (Lee et al. 2018),
  fitted on the training split's features (several ranks of the covariance);
- the energy score -logsumexp(logits) (Liu et al. 2020).

In-scope images: the validation split of the model's own patient split (from the model file's
``training.split``). The thresholds keep 99% of validation in scope. Writes a Markdown table::

    nice python benchmarks/scope_separation.py --data ../shared/data/chest_xray \\
        --out docs/scope_separation.md --cache /tmp/scope_features.npz

Needs scikit-image and pydicom-data (the ``test`` extra).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cxrviewer.core.errors import RadiographError  # noqa: E402
from cxrviewer.core.io.reading import load_radiograph  # noqa: E402
from cxrviewer.core.model.checkpoint import load_model  # noqa: E402
from cxrviewer.core.model.scope import HEADER_MARGIN, QUANTILE, ScopeStats, energy, rule_reason  # noqa: E402
from cxrviewer.core.training.data import find_classes, list_samples, split_by_patient  # noqa: E402
from cxrviewer.core.training.features import extract_features  # noqa: E402
from cxrviewer.core.training.metrics import auroc  # noqa: E402
from cxrviewer.core.training.scope_fit import RANK, offline_out_of_scope_set  # noqa: E402
from cxrviewer.core.training.shift import SHIFTS  # noqa: E402

def out_of_scope_files(workdir: Path) -> dict[str, list[Path]]:
    groups = offline_out_of_scope_set(workdir)
    if not groups:
        sys.exit("needs scikit-image and pydicom-data: pip install -e '.[test]'")
    return groups


def rules(paths: list[Path]) -> list[str | None]:
    out = []
    for p in paths:
        try:
            rad = load_radiograph(p, target_size=(224, 224))
            out.append(rule_reason(rad.pixels, rad.meta))
        except RadiographError as e:
            out.append(f"unreadable: {e.reason}")
    return out


def NAMED() -> list[Path]:
    """Chest radiographs outside the validation split: pydicom-data's adult chest CR and the shipped samples."""
    from pydicom.data import get_testdata_file

    from cxrviewer.core.paths import resources_dir

    return [Path(get_testdata_file("RG1_UNCR.dcm", download=False)),
            *sorted((resources_dir() / "samples").glob("*.jpeg"))]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/chest_xray"), help="training data folder (default: %(default)s)")
    ap.add_argument("--model", type=Path, default=None, help="model file (default: the shipped model)")
    ap.add_argument("--out", type=Path, default=Path("docs/scope_separation.md"), help="Markdown table to write (default: %(default)s)")
    ap.add_argument("--cache", type=Path, default=None, help="npz of extracted features to reuse (default: none)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    split = model.meta["training"]["split"]
    classes = find_classes(args.data / "train")
    train, val, _ = split_by_patient(list_samples(args.data / "train", classes), split["val_fraction"], split["seed"],
                                     split["patient_pattern"])
    with tempfile.TemporaryDirectory() as tmp:
        groups = out_of_scope_files(Path(tmp))
        ood = [p for ps in groups.values() for p in ps]
        cached = np.load(args.cache) if args.cache and args.cache.exists() else None
        if cached is not None:
            feats = {k: cached[k] for k in cached.files}
        else:
            feats = {}
            for name, paths in (("train", [s.path for s in train]), ("val", [s.path for s in val]), ("ood", ood)):
                f, lg, ok = extract_features(model, paths)
                feats[f"{name}_f"], feats[f"{name}_logits"], feats[f"{name}_ok"] = f, lg, ok
        if "shift_f" not in feats:  # validation under the acquisition shifts, and a few named radiographs
            paths = [s.path for s in val]
            feats["shift_f"] = np.stack([extract_features(model, paths, transform=fn)[0] for fn in SHIFTS.values()])
            feats["named_f"] = extract_features(model, NAMED())[0]
        if args.cache:
            np.savez(args.cache, **feats)
        ood_rules = rules(ood)
    text = report(model, train, val, groups, feats, ood_rules)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)


def report(model, train, val, groups, feats, ood_rules) -> str:
    y_train = np.array([s.label for s in train])[feats["train_ok"]]
    ok_o = feats["ood_ok"]
    names = np.array([g for g, ps in groups.items() for _ in ps])[ok_o]
    caught_by_rule = np.array([r is not None for r in ood_rules])[ok_o]
    scores = {}
    for rank in (16, 64, 256):
        stats = ScopeStats.fit(feats["train_f"], y_train, rank=rank)
        scores[f"Mahalanobis, rank {rank}"] = (stats.distance(feats["val_f"]), stats.distance(feats["ood_f"]))
    t = float(model.meta.get("temperature") or 1.0)
    scores["energy (T = 1)"] = (energy(feats["val_logits"]), energy(feats["ood_logits"]))
    scores[f"energy (T = {t:.2f})"] = (energy(feats["val_logits"], t), energy(feats["ood_logits"], t))
    n_val, n_ood = len(feats["val_f"]), len(feats["ood_f"])
    lines = ["# Scope score: separation of chest radiographs from out-of-scope images", "",
             f"Model `{Path(model.meta['file']).name}`; fitted on the {len(feats['train_f'])} training-split images, "
             f"in-scope set = the {n_val} validation-split radiographs, out-of-scope set = {n_ood} images "
             f"({', '.join(f'{g}: {int((names == g).sum())}' for g in groups)}). "
             "Threshold: the 99th percentile of the validation scores. Produced by `benchmarks/scope_separation.py`.", "",
             "| score | AUROC (all) | " + " | ".join(f"AUROC {g}" for g in groups) + " | out of scope at threshold | same, after the rules |",
             "|---" * (len(groups) + 4) + "|"]
    for name, (sv, so) in scores.items():
        y = np.r_[np.zeros(n_val), np.ones(n_ood)]
        row = [name, f"{auroc(y, np.r_[sv, so]):.4f}"]
        for g in groups:
            m = names == g
            row.append(f"{auroc(np.r_[np.zeros(n_val), np.ones(m.sum())], np.r_[sv, so[m]]):.4f}" if m.any() else "n/a")
        thr = np.quantile(sv, 0.99)
        row += [f"{(so > thr).mean():.1%}", f"{((so > thr) | caught_by_rule).mean():.1%}"]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"Rules alone (header, size, blank, colour) put {caught_by_rule.mean():.1%} of the out-of-scope set out of scope.",
              "", protocol(feats, y_train, caught_by_rule), ""]
    return "\n".join(lines)


def protocol(feats, y_train, caught_by_rule) -> str:
    """The shipped protocol: rank 64, threshold = 99% quantile of validation as acquired and under the shifts."""
    stats = ScopeStats.fit(feats["train_f"], y_train, rank=RANK)
    views = [feats["val_f"], *feats["shift_f"]]
    stats.threshold = float(np.quantile(np.concatenate([stats.distance(v) for v in views]), QUANTILE))
    rates = [float((stats.distance(v) <= stats.threshold).mean()) for v in views]
    so = stats.distance(feats["ood_f"])
    named = [f"{p.name} {s:.2f}" for p, s in zip(NAMED(), stats.distance(feats["named_f"]))]
    return "\n".join([
        f"## Shipped protocol (Mahalanobis, rank {RANK})", "",
        f"Threshold {stats.threshold:.3f} = the {QUANTILE:.0%} quantile over the validation images as acquired and under "
        f"the {len(SHIFTS)} acquisition shifts of `core/training/shift.py`.", "",
        "| view of the validation split | in scope |", "|---|---|",
        *[f"| {name} | {r:.1%} |" for name, r in zip(["as acquired", *SHIFTS], rates)], "",
        f"Out-of-scope set: {(so > stats.threshold).mean():.1%} caught by the score alone, "
        f"{((so > stats.threshold) | caught_by_rule).mean():.1%} with the rules; lowest out-of-scope score "
        f"{so.min():.2f}, lowest one the rules miss {so[~caught_by_rule].min():.2f}.", "",
        f"Chest radiographs outside the split (score): {', '.join(named)}. `RG1_UNCR.dcm` is an adult chest CR whose "
        f"header declares CR + CHEST: it is refused only beyond {HEADER_MARGIN} x the threshold "
        f"({HEADER_MARGIN * stats.threshold:.2f}).",
    ])


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
