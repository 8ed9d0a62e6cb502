"""Score model files on the selection protocol (``docs/selection-protocol.md``).

``python -m cxrviewer.core.training.protocol --model M.safetensors [--cross-batch A.safetensors B.safetensors]
--data ../shared/data/chest_xray --out DIR`` rebuilds each model's validation split from the data folder,
scores the model on clean validation, on the 85 views of the corruption suite (:data:`.shift.SUITE`) and,
for a model trained with ``--holdout-normal-batch``, on the held-out NORMAL batch; it writes
``DIR/NAME.json`` and ``DIR/NAME.md`` (a row of the study table and per-family tables).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import logging
import math
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from .. import atomic
from ..errors import CxrError
from ..model.checkpoint import load_model
from ..model.classifier import CamClassifier
from . import metrics, robustness
from .data import DEFAULT_PATIENT_PATTERN, RadiographFolder, Sample, find_samples
from .shift import SUITE, Transform, suite_views

log = logging.getLogger("cxrviewer.protocol")

SENSITIVITY = 0.95
#: Multiply-accumulates of a ResNet-18 forward pass at 224 px, by input channels (the cost reference).
_REFERENCE = ("resnet18", 224)


# -- metrics -------------------------------------------------------------------------------------

def threshold_at_sensitivity(p_positive: np.ndarray, target: float = SENSITIVITY) -> float:
    """The highest threshold whose rule ``p >= t`` keeps ``target`` of the positives: the
    ``ceil((1 - target) n)``-th lowest positive score."""
    p = np.sort(np.asarray(p_positive, dtype=np.float64))
    if p.size == 0:
        return float("nan")
    k = max(1, math.ceil((1 - target) * p.size - 1e-9))
    return float(p[k - 1])


def view_metrics(y: np.ndarray, p: np.ndarray, threshold: float | None, t95: float) -> dict:
    """Metrics of one view: ``y`` 1 = positive, ``p`` calibrated positive-class probability."""
    y = np.asarray(y).astype(int)
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    m = metrics.classification_metrics(np.stack([1 - p, p], 1), y, ["negative", "positive"], threshold, 1)
    neg, pos = p[y == 0], p[y == 1]
    t_view = threshold_at_sensitivity(pos)
    spec95 = float((neg < t95).mean()) if neg.size else float("nan")
    sens95 = float((pos >= t95).mean()) if pos.size else float("nan")
    return {"n": int(y.size), "auroc": m["auroc"], "spec_at_sens95": float((neg < t_view).mean()) if neg.size else float("nan"),
            "nll": m["nll"], "ece": m["ece"], "sensitivity": m["sensitivity"], "specificity": m["specificity"],
            "spec95": spec95, "sens95": sens95, "bal95": (spec95 + sens95) / 2}


def protocol_threshold(groups: list[list[tuple[np.ndarray, np.ndarray]]]) -> float:
    """Rule ``protocol``: the threshold maximising the mean over ``groups`` of the mean Youden's J of
    each group's ``(labels, probabilities)`` views; the middle one among equally good thresholds."""
    groups = [[(np.asarray(y).astype(bool), np.asarray(p, dtype=np.float64)) for y, p in g] for g in groups]
    u = np.unique(np.concatenate([p for g in groups for _, p in g]))
    cand = np.clip(np.r_[u[0] / 2, (u[1:] + u[:-1]) / 2, (u[-1] + 1) / 2], 1e-6, 1 - 1e-6)
    score = np.zeros_like(cand)
    for g in groups:
        for y, p in g:
            pos, neg = np.sort(p[y]), np.sort(p[~y])
            sens = (pos.size - np.searchsorted(pos, cand, side="left")) / pos.size
            spec = np.searchsorted(neg, cand, side="left") / neg.size
            score += (sens + spec - 1) / len(g) / len(groups)
    best = np.flatnonzero(score >= score.max() - 1e-12)
    middle = (cand[best[0]] + cand[best[-1]]) / 2
    return float(cand[best[np.argmin(np.abs(cand[best] - middle))]])


def _at(y: np.ndarray, p: np.ndarray, t: float) -> dict:
    pred = p >= t
    return {"sensitivity": float(pred[y == 1].mean()), "specificity": float((~pred[y == 0]).mean())}


def summarize(views: list[dict]) -> dict:
    """Mean and worst view of each metric, per-family means, ``M`` (mean bal95) and ``W`` (worst family)."""
    higher_better = ("auroc", "spec_at_sens95", "sensitivity", "specificity", "spec95", "sens95", "bal95")
    out = {}
    for k in higher_better + ("nll", "ece"):
        v = np.array([r[k] for r in views], dtype=np.float64)
        out[k] = {"mean": float(np.nanmean(v)), "worst": float(np.nanmin(v) if k in higher_better else np.nanmax(v))}
    families: dict[str, dict] = {}
    for fam in dict.fromkeys(r["family"] for r in views):
        rows = [r for r in views if r["family"] == fam]
        families[fam] = {k: float(np.mean([r[k] for r in rows])) for k in ("bal95", "spec95", "sens95", "auroc",
                                                                           "specificity", "sensitivity")}
        families[fam]["worst_specificity"] = float(min(r["specificity"] for r in rows))
    worst = min(families, key=lambda f: families[f]["bal95"])
    out.update(M=out["bal95"]["mean"], W=families[worst]["bal95"], worst_family=worst, families=families)
    return out


def study_score(full: dict | None, cross_batch: list[dict]) -> dict:
    """``Score = (XB + M + W) / 3`` (protocol section 4); parts that were not scored are None."""
    xb = float(np.mean([c["held_out"]["spec95"] for c in cross_batch])) if len(cross_batch) == 2 else None
    s = full.get("summary") if full else None
    m, w = (s["M"], s["W"]) if s else (None, None)
    complete = bool(full and full.get("complete", True))
    return {"XB": xb, "M": m, "W": w, "score": (xb + m + w) / 3 if complete and None not in (xb, m, w) else None}


# -- model, data ------------------------------------------------------------------------------------

@torch.inference_mode()
def positive_probs(model: CamClassifier, images: torch.Tensor, transform: Transform | None = None,
                   batch_size: int = 64) -> np.ndarray:
    """Calibrated positive-class probabilities of ``images`` (N x 1 x H x W uint8), in float32 as the viewer runs."""
    dev = next(model.parameters()).device
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].to(dev).float().div_(255.0)
        x = model.normalize(transform(x) if transform is not None else x)
        out.append(model.probabilities(model(x.contiguous(memory_format=torch.channels_last)))[:, model.positive_index])
    return torch.cat(out).cpu().numpy().astype(np.float64)


def load_images(samples: list[Sample], size: tuple[int, int]) -> torch.Tensor:
    ds = RadiographFolder(samples, size, cache=False)
    return torch.stack([ds[i][0] for i in range(len(ds))])


def protocol_split(model: CamClassifier, data: Path) -> tuple[list[Sample], list[Sample] | None, str | None]:
    """The model's validation samples, found in ``data`` as its training found them (:func:`.data.find_samples`
    with the arguments recorded in the model file), and the held-out NORMAL batch with its name (``None``
    unless it was trained with ``--holdout-normal-batch``)."""
    recorded = (model.meta.get("training") or {}).get("args") or {}
    defaults = {"min_val_size": 100, "val_fraction": 0.15, "seed": 0, "patient_pattern": DEFAULT_PATIENT_PATTERN}
    args = argparse.Namespace(**{**defaults, **recorded, "data": Path(data)})
    class_names, samples, _ = find_samples(args, warn=False)
    if class_names != model.class_names:
        raise CxrError(f"{data}/train holds classes {class_names}, the model has {model.class_names}")
    batch = getattr(args, "holdout_normal_batch", None)
    return samples["val"], (samples["held_out"] if batch else None), batch


def suite_subset(labels: np.ndarray) -> np.ndarray:
    """Indices of every negative and of as many positives, evenly spaced (protocol section 1)."""
    neg, pos = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    pick = pos[np.round(np.linspace(0, pos.size - 1, min(neg.size, pos.size))).astype(int)] if pos.size else pos
    return np.sort(np.r_[neg, pick])


def macs(model: CamClassifier, size: tuple[int, int] | None = None) -> int:
    """Multiply-accumulates of the convolutions and linear layers of one forward pass at ``size``."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, torch.nn.Conv2d):
            total += out[0].numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]
        else:
            total += mod.in_features * mod.out_features
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    try:
        h, w = size or model.input_size
        with torch.inference_mode():
            model(torch.zeros(1, model.input_channels, h, w, device=next(model.parameters()).device))
    finally:
        for hd in handles:
            hd.remove()
    return total


@functools.cache
def _reference_macs(input_channels: int) -> int:
    return macs(CamClassifier(_REFERENCE[0], 2, input_channels).eval(), (_REFERENCE[1], _REFERENCE[1]))


def constraints(model: CamClassifier, path: Path) -> dict:
    """Protocol section 7: file size, inference cost against ResNet-18 at 224 px, recorded training time."""
    ratio = macs(model) / _reference_macs(model.input_channels)
    seconds = (model.meta.get("training") or {}).get("seconds")
    mb = os.path.getsize(path) / 1e6
    return {"file_mb": round(mb, 1), "macs_g": round(macs(model) / 1e9, 3), "cost_vs_resnet18_224": round(ratio, 2),
            "train_minutes": round(seconds / 60, 1) if seconds is not None else None,
            "ok": within_limits(mb, ratio, seconds / 60 if seconds is not None else None)}


def within_limits(mb: float, cost: float, minutes: float | None) -> bool:
    """Protocol section 7: at most 50 MB, 1.5x ResNet-18's MACs at 224 px, 75 min of training (when recorded)."""
    return mb <= 50 and cost <= 1.5 and (minutes is None or minutes <= 75)


# -- scoring ------------------------------------------------------------------------------------------

#: Order in which the suite's families are scored, so that an interrupted run has the framing first.
PRIORITY = ("border-black", "crop", "blur", "border-grey", "mask-black", "shift", "collimation", "marker-erase",
            "marker-move", "marker-add", "down-up", "rotate", "noise", "jpeg", "contrast", "gamma-bright", "gamma-dark")


class ViewCache:
    """Positive-class probabilities per view, in ``folder/<first 16 hex digits of the model file's SHA-256>/``:
    an interrupted scoring run continues where it stopped, and a changed model file starts afresh.
    ``also``: other cache folders whose views of the same file are reused (an ensemble reads its members')."""

    def __init__(self, folder: Path | None, model_path: Path, also: Sequence[Path] = ()):
        self.folder, self.also = None, []
        if folder is not None:
            digest = hashlib.sha256(Path(model_path).read_bytes()).hexdigest()[:16]
            self.folder = folder / digest
            self.folder.mkdir(parents=True, exist_ok=True)
            self.also = [Path(f) / digest for f in also if Path(f) != folder]

    def get(self, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        if self.folder is None:
            return compute()
        path = self.folder / f"{key}.npy"
        for found in [path] + [f / f"{key}.npy" for f in self.also]:
            if found.is_file():
                return np.load(found)
        p = compute()
        with atomic.replacing(path) as tmp, tmp.open("wb") as f:
            np.save(f, p)
        return p


class Members:
    """One model file, or several scored as their ensemble: the mean of their calibrated probabilities.

    Members must share classes, input size and validation split (the same ``--seed``); each keeps
    its own :class:`ViewCache`, so an ensemble of scored rows needs no new forward passes.
    """

    def __init__(self, paths: Sequence[Path], device: str = "cpu", cache: Path | None = None,
                 also: Sequence[Path] = ()):
        self.paths = [Path(p) for p in paths]
        self.models = [load_model(p, device).to(memory_format=torch.channels_last) for p in self.paths]
        self.caches = [ViewCache(cache, p, also) for p in self.paths]
        first = self.models[0]
        for path, m in zip(self.paths[1:], self.models[1:]):
            if (m.class_names, m.input_size, m.positive_index) != (first.class_names, first.input_size, first.positive_index):
                raise CxrError(f"{path.name}: classes or input size differ from {self.paths[0].name}")

    @property
    def model(self) -> CamClassifier:
        return self.models[0]

    @property
    def name(self) -> str:
        return " + ".join(str(p) for p in self.paths)

    @property
    def threshold(self) -> float | None:
        """The model's threshold; for an ensemble, the median of its members' (the protocol rule's is reported too)."""
        t = [m.threshold for m in self.models]
        return t[0] if len(t) == 1 else (float(np.median(t)) if None not in t else None)

    def split(self, data: Path) -> tuple[list[Sample], list[Sample] | None, str | None]:
        splits = [protocol_split(m, data) for m in self.models]
        for path, other in zip(self.paths[1:], splits[1:]):
            if [s.path for s in other[0]] != [s.path for s in splits[0][0]] or other[2] != splits[0][2]:
                raise CxrError(f"{path.name}: another validation split or held-out batch than {self.paths[0].name} "
                               "(ensemble members need the same --seed and --holdout-normal-batch)")
        return splits[0]

    def probs(self, key: str, images: torch.Tensor, transform: Transform | None = None, batch_size: int = 64) -> np.ndarray:
        return np.mean([c.get(key, lambda m=m: positive_probs(m, images, transform, batch_size))
                        for m, c in zip(self.models, self.caches)], axis=0)

    def constraints(self) -> dict:
        parts = [constraints(m, p) for m, p in zip(self.models, self.paths)]
        if len(parts) == 1:
            return parts[0]
        minutes = [c["train_minutes"] for c in parts]
        out = {"file_mb": round(sum(c["file_mb"] for c in parts), 1), "macs_g": round(sum(c["macs_g"] for c in parts), 3),
               "cost_vs_resnet18_224": round(sum(c["cost_vs_resnet18_224"] for c in parts), 2),
               "train_minutes": None if None in minutes else round(sum(minutes), 1), "members": len(parts)}
        out["ok"] = within_limits(out["file_mb"], out["cost_vs_resnet18_224"], out["train_minutes"])
        return out


def score_model(path: Path | Sequence[Path], data: Path, suite: bool = True, families: list[str] | None = None,
                device: str = "cpu", batch_size: int = 64, cache: Path | None = None,
                progress: Callable[[dict], None] | None = None, also: Sequence[Path] = ()) -> dict:
    """Score one model file, or several as their ensemble (:class:`Members`): clean validation, the
    held-out batch if any, and the corruption suite.

    ``cache``: folder for per-view probabilities (see :class:`ViewCache`; ``also``: folders to reuse);
    ``progress(result so far)`` is called after each suite family.
    """
    members = Members([path] if isinstance(path, (str, Path)) else path, device, cache, also)
    model = members.model
    if model.positive_index is None:
        raise CxrError(f"{members.paths[0].name}: the protocol scores two-class models only")
    training = model.meta.get("training") or {}
    val, held, batch = members.split(data)
    pos = model.positive_index
    y_val = np.array([int(s.label == pos) for s in val])
    images = load_images(val, model.input_size)
    p_val = members.probs("clean", images, batch_size=batch_size)
    t95, thr = threshold_at_sensitivity(p_val[y_val == 1]), members.threshold
    commands = [(m.meta.get("training") or {}).get("command") for m in members.models]
    out = {"model": members.name, "command": commands[0] if len(commands) == 1 else " ; ".join(map(str, commands)),
           "threshold": thr, "temperature": model.temperature if len(members.models) == 1 else None,
           "t95": t95, "constraints": members.constraints(), "clean": view_metrics(y_val, p_val, thr, t95)}
    log.info("%s: clean AUROC %.4f, t95 %.4f", members.name, out["clean"]["auroc"], t95)
    if held is not None:
        y_h = np.array([int(s.label == pos) for s in held])
        p_h = members.probs(f"held-out-{batch}", load_images(held, model.input_size), batch_size=batch_size)
        out["held_out"] = {"batch": batch, "normal_images": int((y_h == 0).sum()), **view_metrics(y_h, p_h, thr, t95)}
        log.info("%s: held-out %s NORMAL spec95 %.4f", members.name, batch, out["held_out"]["spec95"])
    if not suite:
        return out
    idx = suite_subset(y_val)
    y_s, sub = y_val[idx], images[torch.from_numpy(idx)]
    views, probs = [], {}
    for fam in [f for f in PRIORITY if f in (families or SUITE)]:
        for _, level, fn in suite_views([fam]):
            p = members.probs(f"{fam}-{level}", sub, fn, batch_size)
            probs.setdefault(fam, []).append((y_s, p))
            views.append({"family": fam, "level": level, **view_metrics(y_s, p, thr, t95)})
            log.info("%s: %s %d  spec@thr %.3f  bal95 %.3f", members.paths[0].name, fam, level, views[-1]["specificity"],
                     views[-1]["bal95"])
        t_p = protocol_threshold([[(y_val, p_val)]] + list(probs.values()))
        for v, (y, p) in zip(views, [yp for g in probs.values() for yp in g]):
            v["at_protocol_threshold"] = _at(y, p, t_p)
        out.update(views=views, summary=summarize(views), protocol_threshold=t_p,
                   clean_at_protocol_threshold=_at(y_val, p_val, t_p), families_scored=len(probs),
                   complete=len(probs) == len(SUITE))
        if progress is not None:
            progress(out)
    if out.get("complete"):
        badge = None
        if len(members.models) == 1:
            badge = float(members.caches[0].get(f"badge-{out['protocol_threshold']:.6f}", lambda: np.array(
                [robustness.badge_rate(model, images, out["protocol_threshold"], batch_size)]))[0])
        out["robustness"] = robustness.check(out, badge)
        log.info("%s: %s", members.name, robustness.words(out["robustness"]))
        if progress is not None:
            progress(out)
    return out


# -- writing ------------------------------------------------------------------------------------------

ROW_HEADER = ("| run | Score | XB (IM, NORMAL2) | M | W (family) | clean AUROC | clean spec@sens95 | NORMAL spec @thr: "
              "clean / suite mean / worst | NLL clean / suite | ECE clean / suite | cost x | MB | train min |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def _f(v, nd=3) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"


def table_row(name: str, result: dict) -> str:
    """One row of the study table (``ROW_HEADER``) from :func:`main`'s result."""
    full, sc = result.get("full") or {}, result["score"]
    xb = {c["held_out"]["batch"]: c["held_out"]["spec95"] for c in result.get("cross_batch", [])}
    s, c, k = full.get("summary"), full.get("clean", {}), full.get("constraints", {})
    if full.get("complete") is False:
        name = f"{name} (partial: {full['families_scored']} of {len(SUITE)} families)"
    cells = [name, _f(sc["score"]), f"{_f(sc['XB'])} ({_f(xb.get('IM'))}, {_f(xb.get('NORMAL2'))})", _f(sc["M"]),
             f"{_f(sc['W'])} ({s['worst_family']})" if s else "–", _f(c.get("auroc"), 4), _f(c.get("spec_at_sens95")),
             f"{_f(c.get('specificity'))} / {_f(s['specificity']['mean'])} / {_f(s['specificity']['worst'])}" if s else "–",
             f"{_f(c.get('nll'))} / {_f(s['nll']['mean'])}" if s else _f(c.get("nll")),
             f"{_f(c.get('ece'))} / {_f(s['ece']['mean'])}" if s else _f(c.get("ece")),
             _f(k.get("cost_vs_resnet18_224"), 2), _f(k.get("file_mb"), 1), _f(k.get("train_minutes"), 1)]
    return "| " + " | ".join(cells) + " |"


def markdown(name: str, result: dict) -> str:
    lines = [f"# Protocol scores: {name}", "", ROW_HEADER, table_row(name, result), ""]
    for part in [result.get("full")] + result.get("cross_batch", []):
        if part:
            lines += [f"- `{part['model']}`: `{part.get('command')}`"]
    full = result.get("full") or {}
    if full.get("summary"):
        t = full["protocol_threshold"]
        lines += ["", f"Per family (mean over levels 1-5); model threshold {_f(full['threshold'], 4)}, t95 {_f(full['t95'], 4)}, "
                  f"protocol-rule threshold {_f(t, 4)} (clean sens/spec at it: {_f(full['clean_at_protocol_threshold']['sensitivity'])}"
                  f" / {_f(full['clean_at_protocol_threshold']['specificity'])}).", "",
                  "| family | bal95 | spec95 | sens95 | AUROC | sens @thr | spec @thr (mean) | spec @thr (worst level) |",
                  "|---|---|---|---|---|---|---|---|"]
        for fam, f in full["summary"]["families"].items():
            lines.append(f"| {fam} | {_f(f['bal95'])} | {_f(f['spec95'])} | {_f(f['sens95'])} | {_f(f['auroc'])} | "
                         f"{_f(f['sensitivity'])} | {_f(f['specificity'])} | {_f(f['worst_specificity'])} |")
    if full.get("robustness"):
        lines += ["", "Robustness constraints (protocol amendment 2), at the protocol-rule threshold: "
                  + robustness.words(full["robustness"]) + ".", "", *robustness.specificity_table(full["robustness"])]
    for cb in result.get("cross_batch", []):
        h = cb["held_out"]
        lines.append(f"\nCross-batch, {h['batch']} NORMAL held out ({h['normal_images']} images): AUROC {_f(h['auroc'])}, "
                     f"spec95 {_f(h['spec95'])}, spec@sens95 {_f(h['spec_at_sens95'])}, specificity at its threshold "
                     f"{_f(h['specificity'])}, sensitivity {_f(h['sensitivity'])}.")
    return "\n".join(lines) + "\n"


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Score model files on the selection protocol (docs/selection-protocol.md).",
                                add_help=add_help, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", type=Path, nargs="+", default=None, metavar="MODEL",
                   help="model trained on all the data: clean + corruption suite (several: scored as their ensemble, "
                        "the mean of their calibrated probabilities)")
    p.add_argument("--cross-batch", type=Path, nargs="+", default=[], metavar="MODEL",
                   help="models of the same recipe trained with --holdout-normal-batch IM and NORMAL2 (for an ensemble, "
                        "every member's: models with the same held-out batch are scored as one ensemble)")
    p.add_argument("--data", type=Path, required=True, help="the data folder the models were trained on (train/CLASS/*)")
    p.add_argument("--out", type=Path, required=True, help="folder for NAME.json and NAME.md")
    p.add_argument("--name", default=None, help="row name (default: the --model file's stem)")
    p.add_argument("--families", nargs="+", default=None, choices=list(SUITE), help="score only these suite families (default: all)")
    p.add_argument("--device", default="cpu", help="torch device")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    p.add_argument("--write-threshold", type=Path, default=None, metavar="NEW.safetensors",
                   help="also write a copy of --model whose threshold is the protocol rule's, with the protocol summary "
                        "in its metadata and card (needs the whole suite)")
    p.add_argument("--no-cache", action="store_true",
                   help="do not keep per-view probabilities in OUT/NAME.cache/ (kept by default: a rerun continues)")
    return p


def cross_batch_groups(paths: Sequence[Path]) -> list[list[Path]]:
    """``--cross-batch`` files grouped by the NORMAL batch each held out (in first-seen order); a file that
    held none out forms its own group (and is refused when scored)."""
    from ..model.checkpoint import read_header

    groups: dict[str, list[Path]] = {}
    for path in paths:
        args = ((read_header(path).get("training") or {}).get("args") or {})
        groups.setdefault(args.get("holdout_normal_batch") or f"none:{path}", []).append(Path(path))
    return list(groups.values())


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this scoring run (the options that change its result or its files)."""
    parts = [*(["--model", *map(str, args.model)] if args.model else []),
             *(["--cross-batch", *map(str, args.cross_batch)] if args.cross_batch else []),
             "--data", str(args.data), "--out", str(args.out), *(["--name", args.name] if args.name else []),
             *(["--families", *args.families] if args.families else []),
             *(["--write-threshold", str(args.write_threshold)] if args.write_threshold else [])]
    return "python -m cxrviewer.core.training.protocol " + shlex.join(parts)


def main(args: argparse.Namespace) -> dict:
    """Score the models (cross-batch ones first: they are quick), writing NAME.json and NAME.md after
    every suite family, so that an interrupted run leaves its partial result and its cache behind."""
    from .report import write_json

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.model is None and not args.cross_batch:
        raise CxrError("nothing to score: give --model and/or --cross-batch")
    name = args.name or (args.model or args.cross_batch)[0].stem
    args.out.mkdir(parents=True, exist_ok=True)
    cache = None if args.no_cache else args.out / f"{name}.cache"
    also = sorted(args.out.glob("*.cache"))

    def score(path: Path | list[Path], **kw) -> dict:
        return score_model(path, args.data, device=args.device, batch_size=args.batch_size,
                           cache=cache, also=also, **kw)

    cross = [score(group, suite=False) for group in cross_batch_groups(args.cross_batch)]
    if any("held_out" not in c for c in cross):
        raise CxrError("a --cross-batch model was not trained with --holdout-normal-batch")

    def write(full: dict | None) -> dict:
        result = {"full": full, "cross_batch": cross, "score": study_score(full, cross)}
        write_json(result, args.out / f"{name}.json")
        (args.out / f"{name}.md").write_text(markdown(name, result), encoding="utf-8")
        return result

    full = score(args.model, families=args.families, progress=write) if args.model else None
    result = write(full)
    log.info("%s", table_row(name, result))
    if args.write_threshold:
        from .operating_point import write_protocol_threshold

        if full is None or len(args.model) != 1:
            raise CxrError("--write-threshold needs one --model file")
        model = load_model(args.model[0])
        val = protocol_split(model, args.data)[0]
        labels = np.array([int(s.label == model.positive_index) for s in val])
        probs = ViewCache(cache, args.model[0]).get("clean", lambda: positive_probs(model, load_images(val, model.input_size)))
        out = write_protocol_threshold(args.model[0], args.write_threshold, full, cross, result["score"],
                                       clean=(labels, probs), command=command_line(args))
        log.info("wrote %s", out)
    return result


if __name__ == "__main__":
    try:
        main(get_args_parser().parse_args())
    except CxrError as e:
        sys.exit(f"protocol: error: {e}")
