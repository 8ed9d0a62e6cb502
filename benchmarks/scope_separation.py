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

from cxrviewer.core.checkpoint import load_model  # noqa: E402
from cxrviewer.core.errors import RadiographError  # noqa: E402
from cxrviewer.core.imaging import load_radiograph  # noqa: E402
from cxrviewer.core.scope import ScopeStats, energy, rule_reason  # noqa: E402
from cxrviewer.core.training.data import find_classes, list_samples, split_by_patient  # noqa: E402
from cxrviewer.core.training.features import extract_features  # noqa: E402
from cxrviewer.core.training.metrics import auroc  # noqa: E402

# One file per distinct image (pydicom-data repeats images under several encodings).
PYDICOM_DATA = {
    "CT": ["CT_small.dcm", "693_UNCR.dcm", "explicit_VR-UN.dcm", "bad_sequence.dcm", "eCT_Supplemental.dcm"],
    "MR": ["MR_small.dcm", "MR2_UNCR.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm", "emri_small.dcm"],
    "US": ["US1_UNCR.dcm", "OBXXXX1A.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm", "gdcm-US-ALOKA-16.dcm", "color-px.dcm"],
    "tibia (CR)": ["RG3_UNCR.dcm"],
    "other DICOM (NM, OT, SEG)": ["JPEG2000_UNC.dcm", "SC_rgb.dcm", "OT-PAL-8-face.dcm", "mlut_18.dcm", "vlut_04.dcm", "liver.dcm"],
}
SKIMAGE = ["astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "chessboard_GRAY.png", "clock_motion.png",
           "coffee.png", "coins.png", "color.png", "grass.png", "gravel.png", "horse.png", "hubble_deep_field.jpg",
           "ihc.png", "logo.png", "microaneurysms.png", "moon.png", "motorcycle_left.png", "page.png", "phantom.png",
           "retina.jpg", "rocket.jpg", "text.png"]


def out_of_scope_files(workdir: Path) -> dict[str, list[Path]]:
    from pydicom.data import get_testdata_file
    import skimage.data

    groups = {name: [Path(get_testdata_file(f)) for f in files] for name, files in PYDICOM_DATA.items()}
    groups["photographs (skimage.data)"] = [Path(skimage.data.data_dir) / f for f in SKIMAGE]
    groups["synthetic patterns"] = synthetic_patterns(workdir)
    return groups


def synthetic_patterns(folder: Path, size: int = 512) -> list[Path]:
    """Grey test patterns as 8-bit PNGs: gradients, noise, checkerboards, stripes, rings, blobs, text-like bars."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    r = np.hypot(xx - 0.5, yy - 0.5)
    smooth = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(size, size))) * np.exp(-(np.fft.fftfreq(size)[:, None] ** 2 + np.fft.fftfreq(size)[None] ** 2) * 2000)))
    patterns = {
        "gradient_h": xx, "gradient_v": yy, "gradient_radial": 1 - r * 1.4,
        "noise_uniform": rng.random((size, size)), "noise_gauss": np.clip(0.5 + 0.15 * rng.normal(size=(size, size)), 0, 1),
        "checker_8": ((xx * 8).astype(int) + (yy * 8).astype(int)) % 2, "checker_32": ((xx * 32).astype(int) + (yy * 32).astype(int)) % 2,
        "stripes_h": (np.sin(yy * 60) > 0), "stripes_diag": 0.5 + 0.5 * np.sin((xx + yy) * 40),
        "rings": 0.5 + 0.5 * np.cos(r * 80), "disc": (r < 0.3) * 0.8 + 0.1, "blobs": (smooth - smooth.min()) / np.ptp(smooth),
        "bars": ((xx * 20).astype(int) % 3 == 0) * (yy > 0.2) * (yy < 0.8),
        "sine_grid": 0.5 + 0.25 * (np.sin(xx * 50) + np.sin(yy * 50)),
        "dark_noise": rng.random((size, size)) * 0.2, "bright_frame": np.pad(np.zeros((size - 80, size - 80)), 40, constant_values=1),
        "constant_grey": np.full((size, size), 0.5),
    }
    out = []
    for name, a in patterns.items():
        p = folder / f"{name}.png"
        Image.fromarray(np.clip(np.asarray(a, dtype=np.float64) * 255, 0, 255).astype(np.uint8)).save(p)
        out.append(p)
    return out


def rules(paths: list[Path]) -> list[str | None]:
    out = []
    for p in paths:
        try:
            rad = load_radiograph(p, target_size=(224, 224))
            out.append(rule_reason(rad.pixels, rad.meta))
        except RadiographError as e:
            out.append(f"unreadable: {e.reason}")
    return out


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
    lines += ["", f"Rules alone (header, size, blank, colour) put {caught_by_rule.mean():.1%} of the out-of-scope set out of scope.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
