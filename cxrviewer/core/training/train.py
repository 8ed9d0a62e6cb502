"""Train a CamClassifier on an ImageFolder of radiographs and write the model file the app loads.

Shaped like torchvision's classification reference: ``get_args_parser()`` and
``main(args)``; the same script runs under ``torchrun`` with DistributedDataParallel.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import math
import os
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler

from ..checkpoint import save_model
from ..errors import CxrError
from ..model import ARCHS, CamClassifier
from . import metrics
from .data import DEFAULT_PATIENT_PATTERN, Augment, RadiographFolder, find_classes, list_samples, split_by_patient
from .engine import autocast, evaluate, is_main_process, train_one_epoch
from .pretrained import load_backbone_weights
from .shift import SHIFTS

log = logging.getLogger("cxrviewer.train")


class TrainingError(CxrError):
    """A training run that cannot start (bad data folder, weights unavailable, ...)."""


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train a cxrviewer model (CAM classifier) on an ImageFolder of radiographs.",
                                add_help=add_help, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, type=Path, help="folder with train/CLASS/*, optional val/ and test/")
    p.add_argument("--out", default=Path("model.safetensors"), type=Path,
                   help="model file to write; the report goes to <out without suffix>_report/")
    p.add_argument("--arch", default="resnet18", choices=ARCHS, help="backbone")
    p.add_argument("--image-size", default=224, type=int, help="square model input size in pixels (CAM grid = size / 32)")
    p.add_argument("--input-channels", default=None, type=int, choices=(1, 3),
                   help="model input channels (grey replicated); default 3 with --pretrained, else 1")
    p.add_argument("--epochs", default=20, type=int, help="number of epochs")
    p.add_argument("--batch-size", default=32, type=int, help="images per batch per process")
    p.add_argument("--lr", default=1e-3, type=float, help="peak learning rate (AdamW)")
    p.add_argument("--weight-decay", default=0.05, type=float, help="AdamW weight decay")
    p.add_argument("--warmup-epochs", default=1.0, type=float, help="linear warm-up before cosine decay, in epochs")
    p.add_argument("--label-smoothing", default=0.0, type=float, help="cross-entropy label smoothing")
    p.add_argument("--no-class-weights", dest="class_weights", action="store_false",
                   help="disable inverse-frequency class weights in the loss (on by default)")
    p.add_argument("--rotate", default=10.0, type=float, help="augmentation: max rotation in degrees")
    p.add_argument("--translate", default=0.06, type=float, help="augmentation: max shift, fraction of the side")
    p.add_argument("--scale", default=(0.9, 1.15), type=float, nargs=2, metavar=("MIN", "MAX"), help="augmentation: zoom range")
    p.add_argument("--brightness", default=0.1, type=float, help="augmentation: max additive brightness change")
    p.add_argument("--contrast", default=0.2, type=float, help="augmentation: max relative contrast change")
    p.add_argument("--hflip", default=0.0, type=float, help="augmentation: probability of a horizontal flip (never vertical)")
    p.add_argument("--val-fraction", default=0.15, type=float, help="share of patients held out when there is no usable val/")
    p.add_argument("--min-val-size", default=100, type=int, help="a val/ folder with fewer images is ignored (split from train/)")
    p.add_argument("--patient-pattern", default=DEFAULT_PATIENT_PATTERN,
                   help="regex whose first group is the patient id in a file name")
    p.add_argument("--threshold-rule", default="robust", choices=metrics.THRESHOLD_RULES,
                   help="how the two-class decision threshold is fitted on validation: robust = Youden's J averaged "
                        "over the clean images and fixed exposure/contrast/blur/zoom shifts of them; youden; f1; 0.5")
    p.add_argument("--pretrained", action="store_true", help="start from torchvision's ImageNet weights (needs internet or --backbone-weights)")
    p.add_argument("--backbone-weights", default=None, type=Path, help="torchvision ImageNet weights file (.pth or .safetensors) for offline use")
    p.add_argument("--freeze-backbone", action="store_true", help="train only the linear head (the seed article's recipe)")
    p.add_argument("--device", default=None, help="cuda, cuda:N, mps or cpu (default: best available)")
    p.add_argument("--amp", default="auto", choices=("auto", "on", "off"),
                   help="mixed precision: fp16 on CUDA, bf16 on CPUs that support it (auto = on where supported)")
    p.add_argument("--workers", default=0, type=int, help="data loader worker processes (images are cached after the first epoch)")
    p.add_argument("--seed", default=0, type=int, help="random seed (split, initialisation, augmentation)")
    p.add_argument("--resume", default=None, type=Path, help="checkpoint to resume from (written each epoch to <report>/checkpoint.pt)")
    p.add_argument("--half", action=argparse.BooleanOptionalAction, default=True, help="store fp16 weights in the model file")
    return p


def command_line(args: argparse.Namespace) -> str:
    """The ``python train_model.py ...`` command that reproduces ``args`` (non-default options only)."""
    import shlex

    words = ["python", "train_model.py"]
    for action in get_args_parser(add_help=False)._actions:
        if not action.option_strings or not hasattr(args, action.dest):
            continue
        value, flag = getattr(args, action.dest), action.option_strings[0]
        if value == action.default and not action.required:
            continue
        if isinstance(action, argparse.BooleanOptionalAction):
            words.append(flag if value else f"--no-{flag[2:]}")
        elif action.nargs == 0:  # store_true / store_false
            words.append(flag)
        elif isinstance(value, (list, tuple)):
            words += [flag, *map(str, value)]
        else:
            words += [flag, str(value)]
    return " ".join(shlex.quote(w) for w in words)


def main(args: argparse.Namespace) -> Path | None:
    """Run a whole training; returns the model path on rank 0."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    distributed = _init_distributed(args)
    try:
        return _run(args, distributed)
    finally:
        if distributed:
            dist.destroy_process_group()


def _init_distributed(args) -> bool:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        args.rank, args.world_size = 0, 1
        return False
    want_cuda = torch.cuda.is_available() and (args.device is None or str(args.device).startswith("cuda"))
    backend = "nccl" if want_cuda else "gloo"
    if want_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        args.device = f"cuda:{local}"
    dist.init_process_group(backend=backend)
    args.rank, args.world_size = dist.get_rank(), dist.get_world_size()
    return True


def _pick_device(name: str | None) -> torch.device:
    from ..inference import pick_device

    return pick_device(name)


def _amp_enabled(mode: str, device: torch.device) -> bool:
    if mode == "off":
        return False
    if device.type == "cuda":
        return True
    if device.type == "cpu":
        supported = bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)())
        return supported or mode == "on"
    return mode == "on"


def _run(args, distributed: bool) -> Path | None:
    t_start = time.time()
    device = _pick_device(args.device)
    args.amp = _amp_enabled(args.amp if isinstance(args.amp, str) else ("on" if args.amp else "off"), device)
    args.channels_last = device.type != "mps"
    if args.input_channels is None:
        args.input_channels = 3 if args.pretrained else 1
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    main_proc = is_main_process()

    # -- data ---------------------------------------------------------------------
    train_dir = args.data / "train"
    if not train_dir.is_dir():
        raise TrainingError(f"{args.data}: no train/ folder (expected train/CLASS/*)")
    class_names = find_classes(train_dir)
    samples = list_samples(train_dir, class_names)
    val_samples = list_samples(args.data / "val", class_names) if (args.data / "val").is_dir() else []
    if len(val_samples) >= args.min_val_size:
        train_samples = samples
        split = {"rule": "val folder", "val_folder": str(args.data / "val")}
    else:
        if val_samples and main_proc:
            log.warning("val/ has only %d images (< --min-val-size %d): splitting train/ by patient instead",
                        len(val_samples), args.min_val_size)
        train_samples, val_samples, split = split_by_patient(samples, args.val_fraction, args.seed, args.patient_pattern)
    test_samples = list_samples(args.data / "test", class_names) if (args.data / "test").is_dir() else []
    if not train_samples or not val_samples:
        raise TrainingError(f"{args.data}: need images for training and validation (got {len(train_samples)} and {len(val_samples)})")
    size = (args.image_size, args.image_size)
    train_set = RadiographFolder(train_samples, size)
    val_set = RadiographFolder(val_samples, size)
    test_set = RadiographFolder(test_samples, size) if test_samples else None
    counts = {s: dict(zip(class_names, d.class_counts(len(class_names))))
              for s, d in (("train", train_set), ("val", val_set), ("test", test_set)) if d is not None}
    if main_proc:
        log.info("classes %s; images %s; split %s", class_names, counts, split)

    g = torch.Generator().manual_seed(args.seed + args.rank)
    if distributed:
        sampler = DistributedSampler(train_set, shuffle=True, seed=args.seed, drop_last=True)
    else:
        sampler = torch.utils.data.RandomSampler(train_set, generator=torch.Generator().manual_seed(args.seed))
    train_loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler, drop_last=True,
                              num_workers=args.workers, persistent_workers=args.workers > 0)

    def eval_loader(ds):
        shard = Subset(ds, list(range(args.rank, len(ds), args.world_size))) if distributed else ds
        return DataLoader(shard, batch_size=args.batch_size * 2, shuffle=False, num_workers=0)

    val_loader = eval_loader(val_set)
    if len(train_loader) == 0:
        raise TrainingError(f"only {len(train_set)} training images: fewer than one batch of {args.batch_size}")

    # -- model --------------------------------------------------------------------
    if args.pretrained:
        mean = [0.485, 0.456, 0.406] if args.input_channels == 3 else [0.449]
        std = [0.229, 0.224, 0.225] if args.input_channels == 3 else [0.226]
    else:
        mean, std = _grey_stats(train_set)
    meta = {"format_version": 1, "arch": args.arch, "class_names": class_names, "input_size": list(size),
            "input_channels": args.input_channels, "mean": mean, "std": std}
    if len(class_names) == 2:
        meta["positive_class"] = _positive_class(class_names)
    model = CamClassifier(args.arch, len(class_names), args.input_channels, meta=meta)
    if args.pretrained:
        try:
            load_backbone_weights(model, args.backbone_weights)
        except (OSError, ValueError, RuntimeError) as e:
            raise TrainingError(str(e)) from None
    if args.freeze_backbone:
        for p in model.features.parameters():
            p.requires_grad_(False)
    model.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    ddp_model = nn.parallel.DistributedDataParallel(model) if distributed else model
    normalize = model.normalize

    weights = None
    if args.class_weights:
        c = torch.tensor(train_set.class_counts(len(class_names)), dtype=torch.float32).clamp_min(1)
        weights = (c.sum() / (len(c) * c)).to(device)
    criterion = nn.CrossEntropyLoss(weight=weights, label_smoothing=args.label_smoothing)
    eval_criterion = nn.CrossEntropyLoss()
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    steps = args.epochs * len(train_loader)
    warm = max(1, int(args.warmup_epochs * len(train_loader)))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm))))
    scaler = torch.amp.GradScaler("cuda") if (args.amp and device.type == "cuda") else None
    augment = Augment(rotate=args.rotate, translate=args.translate, scale=tuple(args.scale),
                      brightness=args.brightness, contrast=args.contrast, hflip=args.hflip)

    report_dir = args.out.with_name(args.out.stem + "_report")
    ckpt_path = report_dir / "checkpoint.pt"
    history: list[dict] = []
    best = {"auroc": -1.0, "loss": math.inf, "epoch": -1, "state": None}
    start_epoch = 0
    if args.resume:
        ck = torch.load(args.resume, map_location="cpu", weights_only=True)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        if scaler is not None and ck.get("scaler"):
            scaler.load_state_dict(ck["scaler"])
        history = json.loads(ck["history"])
        start_epoch = int(ck["epoch"]) + 1
        best.update(auroc=float(ck["best_auroc"]), loss=float(ck["best_loss"]), epoch=int(ck["best_epoch"]),
                    state=ck["best_state"])
        g = torch.Generator().manual_seed(args.seed + args.rank + 1000 * start_epoch)
        if main_proc:
            log.info("resumed from %s at epoch %d", args.resume, start_epoch)

    # -- loop ---------------------------------------------------------------------
    for epoch in range(start_epoch, args.epochs):
        t0 = time.time()
        if distributed:
            sampler.set_epoch(epoch)
        train_loss = train_one_epoch(ddp_model, criterion, optimizer, train_loader, device, epoch, args,
                                     scheduler=scheduler, scaler=scaler, augment=augment, normalize=normalize, generator=g)
        ev = evaluate(model, val_loader, device, args, normalize=normalize, criterion=eval_criterion)
        probs = _softmax(ev["logits"])
        val_auroc = _auroc(probs, ev["labels"], meta.get("positive_class"), class_names)
        row = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": ev["loss"], "val_auroc": val_auroc,
               "val_accuracy": float((probs.argmax(1) == ev["labels"]).mean()),
               "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.time() - t0, 1)}
        history.append(row)
        improved = val_auroc > best["auroc"] + 1e-6 or (abs(val_auroc - best["auroc"]) <= 1e-6 and ev["loss"] < best["loss"])
        if improved:
            best.update(auroc=val_auroc, loss=ev["loss"], epoch=epoch,
                        state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
        if main_proc:
            log.info("epoch %d/%d  train loss %.4f  val loss %.4f  val AUROC %.4f  val acc@argmax %.3f  lr %.2e  %.0fs%s",
                     epoch + 1, args.epochs, train_loss, ev["loss"], val_auroc, row["val_accuracy"], row["lr"],
                     row["seconds"], "  *best*" if improved else "")
            report_dir.mkdir(parents=True, exist_ok=True)
            tmp = ckpt_path.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler else {},
                        "epoch": epoch, "history": json.dumps(history), "best_auroc": best["auroc"],
                        "best_loss": best["loss"], "best_epoch": best["epoch"], "best_state": best["state"],
                        "args": json.dumps(_plain(vars(args)))}, tmp)
            os.replace(tmp, ckpt_path)

    # -- calibrate, evaluate, write ------------------------------------------------
    model.load_state_dict(best["state"])
    splits = calibrate(model, val_loader, device, args, meta,
                       test_loader=eval_loader(test_set) if test_set is not None else None)
    temperature, threshold = meta["temperature"], meta.get("threshold")
    if not main_proc:
        return None

    from .report import _jsonable  # NaN (e.g. AUROC of a one-class split) -> null: strict JSON in the header

    meta["metrics"] = _jsonable({name: {k: v for k, v in s["metrics"].items() if k != "class_names"} for name, s in splits.items()})
    if "shifted" in splits["validation"]:
        meta["metrics"]["validation_shifted"] = splits["validation"]["shifted"]
    meta["metrics"]["best_epoch"] = best["epoch"] + 1
    meta["training"] = {
        "command": command_line(args),
        "args": _plain(vars(args)),
        "data": str(args.data),
        "images": counts,
        "split": split,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.time() - t_start),
        "device": str(device), "world_size": args.world_size,
        "versions": _versions(),
    }
    out = save_model(model.cpu().to(memory_format=torch.contiguous_format), args.out, meta=meta, half=args.half)
    from .model_card import write_model_card
    from .report import write_report

    write_report(report_dir, history, splits,
                 extra={"validation_shifted": meta["metrics"]["validation_shifted"]} if "validation_shifted" in meta["metrics"] else None)
    write_model_card(out)
    (report_dir / "metrics.json").exists() and _annotate_metrics(report_dir / "metrics.json", meta)
    log.info("wrote %s (best epoch %d, val AUROC %.4f, threshold %s, temperature %.3f) and %s/",
             out, best["epoch"] + 1, best["auroc"], f"{threshold:.4f}" if threshold is not None else "argmax",
             temperature, report_dir)
    return out


def calibrate(model, val_loader, device, args, meta: dict, test_loader=None) -> dict:
    """Fit the temperature, decision threshold and CAM display range on validation (into ``meta``);
    returns the per-split reports (``validation``, and ``test`` with ``test_loader``).

    With ``--threshold-rule robust`` the validation split is also scored under the
    acquisition shifts of :mod:`.shift`; their sensitivity and specificity at the chosen
    threshold are reported under ``splits["validation"]["shifted"]``. Runs in float32 (no autocast).
    """
    class_names = meta["class_names"]
    normalize = model.normalize
    args = argparse.Namespace(**{**vars(args), "amp": False})  # float32, as the viewer and `predict` run the model
    ev = evaluate(model, val_loader, device, args, normalize=normalize)
    temperature = metrics.fit_temperature(ev["logits"], ev["labels"])
    meta["temperature"] = float(temperature)
    pos = class_names.index(meta["positive_class"]) if "positive_class" in meta else None
    val_probs = _softmax(ev["logits"] / temperature)
    threshold, shifted = None, {}
    if pos is not None:
        y = (ev["labels"] == pos).astype(int)
        if args.threshold_rule == "robust":
            for name, fn in SHIFTS.items():
                es = evaluate(model, val_loader, device, args, normalize=normalize, transform=fn)
                shifted[name] = _softmax(es["logits"] / temperature)[:, pos]
        threshold = float(metrics.choose_threshold(y, val_probs[:, pos], args.threshold_rule, views=list(shifted.values())))
        meta["threshold"] = threshold
    meta["cam_range"] = _cam_range(model, val_loader, device, args, normalize)
    splits = {"validation": _split_report(val_probs, ev["labels"], class_names, pos, threshold)}
    if shifted:
        splits["validation"]["shifted"] = {name: _shift_summary(y, p, threshold) for name, p in shifted.items()}
    if test_loader is not None:
        et = evaluate(model, test_loader, device, args, normalize=normalize)
        splits["test"] = _split_report(_softmax(et["logits"] / temperature), et["labels"], class_names, pos, threshold)
    return splits


def _shift_summary(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    pred = p >= threshold
    return {"auroc": round(float(metrics.auroc(y, p)), 4),
            "sensitivity": round(float(pred[y == 1].mean()), 4), "specificity": round(float((~pred[y == 0]).mean()), 4)}


def _positive_class(class_names: list[str]) -> str:
    for name in class_names:
        if name.upper() in {"PNEUMONIA", "POSITIVE", "ABNORMAL", "DISEASE"}:
            return name
    normal = [n for n in class_names if n.upper() in {"NORMAL", "NEGATIVE", "HEALTHY"}]
    return next(n for n in class_names if n not in normal) if normal else class_names[1]


def _grey_stats(ds: RadiographFolder, n: int = 512) -> tuple[list[float], list[float]]:
    idx = np.linspace(0, len(ds) - 1, min(n, len(ds))).astype(int)
    x = torch.stack([ds[int(i)][0] for i in idx]).float() / 255.0
    return [round(float(x.mean()), 4)], [round(float(x.std()), 4)]


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _auroc(probs, labels, positive_class, class_names) -> float:
    if positive_class is not None:
        pos = class_names.index(positive_class)
        return float(metrics.auroc((labels == pos).astype(int), probs[:, pos]))
    vals = [metrics.auroc((labels == k).astype(int), probs[:, k]) for k in range(probs.shape[1])]
    return float(np.nanmean(vals))


@torch.inference_mode()
def _cam_range(model, loader, device, args, normalize) -> list[float]:
    """1st and 99th percentiles of the class-evidence maps on validation: the shared 'fixed' display scale.

    Uses :func:`cxrviewer.core.overlay.class_evidence`, the map the viewer and exports draw.
    """
    from ..overlay import class_evidence

    model.eval()
    values = []
    for x, _ in loader:
        x = normalize(x.to(device).float().div_(255.0))
        with autocast(device, args.amp):
            logits, cams = model.logits_and_cams(x)
        for lg, cm in zip(logits.float().cpu().numpy(), cams.float().cpu().numpy()):
            values += [class_evidence(cm, lg, k).ravel() for k in range(len(lg))]
    v = np.concatenate(values)
    if dist.is_available() and dist.is_initialized():
        gathered = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, v)
        v = np.concatenate(gathered)
    lo, hi = np.percentile(v, [1, 99])
    return [round(float(lo), 3), round(float(hi), 3)]


def _split_report(probs, labels, class_names, pos, threshold) -> dict:
    return {"probs": probs, "labels": labels, "class_names": class_names, "positive_index": pos, "threshold": threshold,
            "metrics": metrics.classification_metrics(probs, labels, class_names, threshold, pos)}


def _annotate_metrics(path: Path, meta: dict) -> None:
    """Add the model's calibration and provenance to ``metrics.json`` (strict JSON, written atomically)."""
    from .report import _write_json

    data = json.loads(path.read_text())
    data["model"] = {k: meta[k] for k in ("arch", "input_size", "threshold", "temperature", "cam_range") if k in meta}
    data["training"] = meta["training"]
    _write_json(data, path)


def _plain(d: dict) -> dict:
    return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def _versions() -> dict:
    import PIL
    import torchvision

    from ... import __version__

    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": np.__version__, "pillow": PIL.__version__, "cxrviewer": __version__}
