"""Fit the learned scope score of a model and store it in the model file.

Protocol (fixed before any result was read): class means and the shared covariance (rank 64
plus an isotropic rest) of the pooled features of the *training* split; threshold = the 99%
quantile of the scores of the *validation* split as acquired and under the fixed acquisition
shifts of :mod:`.shift` (so a new acquisition batch is not pushed out of scope by exposure or
framing alone). The separation from an offline out-of-scope set (pydicom-data's CT, MR, US,
tibia and other DICOMs, synthetic patterns, scikit-image's photographs) is recorded when
those packages are installed (the ``test`` extra).

Refit an existing model file (weights copied byte for byte, the source never modified)::

    python -m cxrviewer.core.training.scope_fit MODEL.safetensors --data ../shared/data/chest_xray --out NEW.safetensors
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..errors import CxrError, RadiographError
from ..io.reading import load_radiograph
from ..model.classifier import CamClassifier
from ..model.scope import QUANTILE, ScopeStats, rule_reason
from . import metrics as M
from .data import DEFAULT_PATIENT_PATTERN, Sample, find_classes, list_samples, split_by_patient
from .features import extract_features
from .shift import SHIFTS

RANK = 64
# One file per distinct image (pydicom-data repeats images under several encodings).
PYDICOM_DATA = {
    "CT": ["CT_small.dcm", "693_UNCR.dcm", "explicit_VR-UN.dcm", "bad_sequence.dcm", "eCT_Supplemental.dcm"],
    "MR": ["MR_small.dcm", "MR2_UNCR.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm", "emri_small.dcm"],
    "US": ["US1_UNCR.dcm", "OBXXXX1A.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm", "gdcm-US-ALOKA-16.dcm", "color-px.dcm"],
    "tibia (CR)": ["RG3_UNCR.dcm"],
    "other DICOM (NM, OT, SEG)": ["JPEG2000_UNC.dcm", "SC_rgb.dcm", "OT-PAL-8-face.dcm", "mlut_18.dcm", "vlut_04.dcm",
                                  "liver.dcm"],
}
SKIMAGE = ["astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "chessboard_GRAY.png",
           "clock_motion.png", "coffee.png", "coins.png", "color.png", "grass.png", "gravel.png", "horse.png",
           "hubble_deep_field.jpg", "ihc.png", "logo.png", "microaneurysms.png", "moon.png", "motorcycle_left.png",
           "page.png", "phantom.png", "retina.jpg", "rocket.jpg", "text.png"]


def model_split(model: CamClassifier, data: Path) -> tuple[list[Sample], list[Sample]]:
    """The (train, validation) samples of ``data/train`` under the patient split recorded in the model file."""
    split = (model.meta.get("training") or {}).get("split") or {}
    samples = list_samples(data / "train", find_classes(data / "train"))
    train, val, _ = split_by_patient(samples, float(split.get("val_fraction", 0.15)), int(split.get("seed", 0)),
                                     split.get("patient_pattern", DEFAULT_PATIENT_PATTERN))
    return train, val


def fit_scope(model: CamClassifier, train: list[Sample], val: list[Sample], device="cpu",
              ood: dict[str, list[Path]] | None = None, log=print) -> dict:
    """The ``meta["scope"]`` entry for ``model``: statistics on ``train``, threshold on ``val`` and its shifts."""
    log(f"scope: features of {len(train)} training images")
    f_train, _, ok = extract_features(model, [s.path for s in train], device=device)
    log(f"scope: features of {len(val)} validation images and {len(SHIFTS)} shifted views")
    paths = [s.path for s in val]
    views = {"as acquired": extract_features(model, paths, device=device)[0]}
    views.update({name: extract_features(model, paths, device=device, transform=fn)[0] for name, fn in SHIFTS.items()})
    stats, scope = scope_from_features(f_train, np.array([s.label for s in train])[ok], views)
    if ood is None:
        ood = offline_out_of_scope_set()
    if ood:
        scope["separation"] = separation(model, stats, views["as acquired"], ood, device)
    return scope


def scope_from_features(f_train: np.ndarray, y_train: np.ndarray, views: dict[str, np.ndarray]) -> tuple[ScopeStats, dict]:
    """Statistics fitted on training features; threshold = the QUANTILE of all validation ``views`` pooled."""
    stats = ScopeStats.fit(f_train, y_train, rank=RANK)
    stats.threshold = float(np.quantile(np.concatenate([stats.distance(v) for v in views.values()]), QUANTILE))
    rates = {name: round(float((stats.distance(v) <= stats.threshold).mean()), 4) for name, v in views.items()}
    extra = {"fitted_on": f"{len(f_train)} training-split images", "quantile": QUANTILE,
             "threshold_on": f"{len(views['as acquired'])} validation images as acquired and under {len(views) - 1} "
                             "acquisition shifts",
             "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "validation_in_scope": rates}
    return stats, stats.to_meta(**extra)


def separation(model: CamClassifier, stats: ScopeStats, val_features: np.ndarray, ood: dict[str, list[Path]],
               device="cpu") -> dict:
    """AUROC of the score (validation vs ``ood``) and the share of ``ood`` caught, alone and with the rules."""
    paths = [p for ps in ood.values() for p in ps]
    f, _, ok = extract_features(model, paths, device=device)
    s_out, s_val = stats.distance(f), stats.distance(val_features)
    by_rule = np.array([_rule(p) is not None for p in paths])[ok]
    y = np.r_[np.zeros(len(s_val)), np.ones(len(s_out))]
    return {"auroc": round(float(M.auroc(y, np.r_[s_val, s_out])), 4), "n_out_of_scope": int(ok.sum()),
            "out_of_scope_set": ", ".join(f"{k} {len(v)}" for k, v in ood.items()),
            "validation_in_scope": round(float((s_val <= stats.threshold).mean()), 4),
            "out_of_scope_caught": round(float((s_out > stats.threshold).mean()), 4),
            "out_of_scope_caught_with_rules": round(float(((s_out > stats.threshold) | by_rule).mean()), 4)}


def _rule(path: Path) -> str | None:
    try:
        rad = load_radiograph(path, target_size=(224, 224))
    except RadiographError as e:
        return e.reason
    return rule_reason(rad.pixels, rad.meta)


def offline_out_of_scope_set(workdir: Path | None = None) -> dict[str, list[Path]]:
    """The offline out-of-scope set by group; empty when pydicom-data or scikit-image is not installed."""
    try:
        import skimage.data
        from pydicom.data import get_testdata_file
    except ImportError:
        return {}
    groups = {name: [Path(get_testdata_file(f, download=False)) for f in files] for name, files in PYDICOM_DATA.items()}
    groups["photographs (skimage.data)"] = [Path(skimage.data.data_dir) / f for f in SKIMAGE]
    workdir = workdir or Path(tempfile.mkdtemp(prefix="cxrviewer-scope-"))
    groups["synthetic patterns"] = synthetic_patterns(workdir)
    return groups


def synthetic_patterns(folder: Path, size: int = 512) -> list[Path]:
    """Grey test patterns as 8-bit PNGs: gradients, noise, checkerboards, stripes, rings, blobs, bars, frames."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    r = np.hypot(xx - 0.5, yy - 0.5)
    freq = np.fft.fftfreq(size)
    smooth = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(size, size))) * np.exp(-(freq[:, None] ** 2 + freq ** 2) * 2000)))
    patterns = {
        "gradient_h": xx, "gradient_v": yy, "gradient_radial": 1 - r * 1.4,
        "noise_uniform": rng.random((size, size)), "noise_gauss": 0.5 + 0.15 * rng.normal(size=(size, size)),
        "checker_8": ((xx * 8).astype(int) + (yy * 8).astype(int)) % 2,
        "checker_32": ((xx * 32).astype(int) + (yy * 32).astype(int)) % 2,
        "stripes_h": np.sin(yy * 60) > 0, "stripes_diag": 0.5 + 0.5 * np.sin((xx + yy) * 40),
        "rings": 0.5 + 0.5 * np.cos(r * 80), "disc": (r < 0.3) * 0.8 + 0.1,
        "blobs": (smooth - smooth.min()) / np.ptp(smooth),
        "bars": ((xx * 20).astype(int) % 3 == 0) * (yy > 0.2) * (yy < 0.8),
        "sine_grid": 0.5 + 0.25 * (np.sin(xx * 50) + np.sin(yy * 50)), "dark_noise": rng.random((size, size)) * 0.2,
        "bright_frame": np.pad(np.zeros((size - 80, size - 80)), 40, constant_values=1),
        "constant_grey": np.full((size, size), 0.5),
    }
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, a in patterns.items():
        p = folder / f"{name}.png"
        Image.fromarray(np.clip(np.asarray(a, dtype=np.float64) * 255, 0, 255).astype(np.uint8)).save(p)
        out.append(p)
    return out


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Fit the scope score of an existing model file into a new model file "
                                            "(weights copied byte for byte; the source is never modified).",
                                add_help=add_help)
    p.add_argument("model", type=Path, help="model file to refit (.safetensors)")
    p.add_argument("--data", required=True, type=Path, help="the training data folder (train/CLASS/*) the model was trained on")
    p.add_argument("--out", required=True, type=Path, help="new model file to write (its model card is written beside it)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file (default: refuse)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default: cpu)")
    return p


def main(argv=None) -> int:
    from ..model.checkpoint import load_model
    from ..batch.inference import pick_device
    from ..model.model_update import check_output, write_with_metadata
    from .model_card import write_model_card

    args = get_args_parser().parse_args(argv)
    try:
        check_output(args.model, args.out, args.overwrite)
        model = load_model(args.model)
        if sorted(model.class_names) != find_classes(args.data / "train"):
            raise CxrError(f"{args.data}: its classes are not the model's ({', '.join(model.class_names)})")
        train, val = model_split(model, args.data)
        with torch.inference_mode():
            scope = fit_scope(model, train, val, device=pick_device(args.device))
        out = write_with_metadata(args.model, args.out, {"scope": scope}, args.overwrite)
        write_model_card(out)
    except (CxrError, ValueError, OSError) as e:
        print(f"scope_fit: error: {e}", file=sys.stderr)
        return 1
    sep = scope.get("separation", {})
    print(f"wrote {out}: threshold {scope['threshold']:.3f}, validation in scope {scope['validation_in_scope']['as acquired']:.1%}"
          + (f", AUROC {sep['auroc']:.4f} against {sep['n_out_of_scope']} out-of-scope images" if sep else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
