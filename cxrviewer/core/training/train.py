"""Train a CamClassifier on an ImageFolder of radiographs and write the model file the app loads.

Shaped like torchvision's classification reference: ``get_args_parser()`` and ``main(args)``, which
reads top to bottom; each stage is a named step (:func:`.data.load_data`, the ``build_*`` functions here,
:func:`.engine.train_one_epoch`, :func:`.engine.evaluate`, :func:`.resume.save_checkpoint`,
:func:`.calibration.calibrate`, :func:`write_outputs`). ``args`` stay as parsed; what is derived from
them and the environment lives in a :class:`.runtime.Runtime`. The same script runs under ``torchrun``
with DistributedDataParallel.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..io.equalize import FILE_VALUES
from ..model.checkpoint import FORMAT_VERSION, save_model
from ..model.classifier import ARCHS, CamClassifier
from ..model.precision import PARITY_KEY
from . import TrainingError, metrics
from .augment import build_ema, build_mix
from .calibration import calibrate, score_splits
from .data import DEFAULT_PATIENT_PATTERN, TrainingData, grey_stats, load_data
from .distill import build_teachers, teacher_digests
from .engine import evaluate, train_one_epoch
from .explanations import apply_record, explanation_record
from .model_card import write_model_card
from .parity import parity_record
from .pretrained import load_backbone_weights
from .report import jsonable, report_dir, write_report
from .resume import Progress, checkpoint_state, load_checkpoint, save_checkpoint
from .runtime import Runtime, close_runtime, init_runtime, seed_everything
from .scope_fit import fit_scope

__all__ = ["TrainingError", "get_args_parser", "command_line", "main"]

log = logging.getLogger("cxrviewer.train")

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    """The command-line options, in groups (``--help`` shows each default)."""
    p = argparse.ArgumentParser(description="Train a cxrviewer model (CAM classifier) on an ImageFolder of radiographs.",
                                add_help=add_help, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _data_options(p.add_argument_group("data"))
    _model_options(p.add_argument_group("model"))
    _optimisation_options(p.add_argument_group("optimisation"))
    _augmentation_options(p.add_argument_group("augmentation"))
    _calibration_options(p.add_argument_group("calibration"))
    _run_options(p.add_argument_group("run"))
    return p


def _data_options(g) -> None:
    """Options: where the images come from and how validation is chosen."""
    g.add_argument("--data", required=True, type=Path, help="folder with train/CLASS/*, optional val/ and test/")
    g.add_argument("--out", default=Path("model.safetensors"), type=Path,
                   help="model file to write; the report goes to <out without suffix>_report/")
    g.add_argument("--val-fraction", default=0.15, type=float, help="share of patients held out when there is no usable val/")
    g.add_argument("--min-val-size", default=100, type=int, help="a val/ folder with fewer images is ignored (split from train/)")
    g.add_argument("--patient-pattern", default=DEFAULT_PATIENT_PATTERN,
                   help="regex whose first group is the patient id in a file name")
    g.add_argument("--holdout-normal-batch", default=None, choices=("IM", "NORMAL2"),
                   help="cross-batch hold-out: leave this acquisition batch's NORMAL images (IM-* or NORMAL2-IM-*) out "
                        "of training and validation, to score them afterwards (docs/selection-protocol.md)")


def _model_options(g) -> None:
    """Options: the network and the file it is written to."""
    g.add_argument("--arch", default="resnet18", choices=ARCHS, help="backbone")
    g.add_argument("--image-size", default=224, type=int, help="square model input size in pixels (CAM grid = size / 32)")
    g.add_argument("--dilate-last", action="store_true",
                   help="ResNets: last stage at stride 1 with dilation 2, for 2x finer maps (size / 16: 14 x 14 at 224 px) "
                        "at 4x the last stage's cost (1.7x the MACs of a whole ResNet-18); stored in the model file (default: off)")
    g.add_argument("--equalize", nargs="?", const="global", default=None, choices=tuple(FILE_VALUES),
                   help="histogram-equalise each image before normalisation, in training and wherever the model runs: "
                        "'global' (the default with no value; invariant to gamma and contrast) or 'clahe' (8 x 8 regions, "
                        "clip limit 2); stored in the model file (default: off)")
    g.add_argument("--frame-normalize", action="store_true",
                   help="crop a constant frame (padding, black/white/grey borders, shutters) from every image before it is "
                        "resized, in training (after augmentation) and wherever the model runs; stored in the model file")
    g.add_argument("--input-channels", default=None, type=int, choices=(1, 3),
                   help="model input channels (grey replicated); default 3 with --pretrained, else 1")
    g.add_argument("--pretrained", action="store_true", help="start from torchvision's ImageNet weights (needs internet or --backbone-weights)")
    g.add_argument("--backbone-weights", default=None, type=Path, help="torchvision ImageNet weights file (.pth or .safetensors) for offline use")
    g.add_argument("--freeze-backbone", action="store_true", help="train only the linear head (the seed article's recipe)")
    g.add_argument("--half", action=argparse.BooleanOptionalAction, default=True, help="store fp16 weights in the model file")


def _optimisation_options(g) -> None:
    """Options: loss, optimiser and schedule."""
    g.add_argument("--epochs", default=20, type=int, help="number of epochs")
    g.add_argument("--batch-size", default=32, type=int, help="images per batch per process")
    g.add_argument("--lr", default=1e-3, type=float, help="peak learning rate (AdamW)")
    g.add_argument("--weight-decay", default=0.05, type=float, help="AdamW weight decay")
    g.add_argument("--warmup-epochs", default=1.0, type=float, help="linear warm-up before cosine decay, in epochs")
    g.add_argument("--label-smoothing", default=0.0, type=float, help="cross-entropy label smoothing")
    g.add_argument("--no-class-weights", dest="class_weights", action="store_false",
                   help="disable inverse-frequency class weights in the loss (on by default)")
    g.add_argument("--mixup", default=0.0, type=float, help="mixup alpha (0 = off)")
    g.add_argument("--cutmix", default=0.0, type=float, help="cutmix alpha (0 = off; with --mixup each batch uses one)")
    g.add_argument("--ema", default=0.0, type=float,
                   help="decay of an exponential moving average of the weights, updated every step; validation, the "
                        "best epoch and the model file use the averaged weights (0 = off; e.g. 0.998)")
    g.add_argument("--teacher", nargs="+", type=Path, default=None, metavar="MODEL",
                   help="distil from these model files (their mean soft prediction on each augmented batch; any size "
                        "or family with the same classes)")
    g.add_argument("--distill-weight", default=0.5, type=float,
                   help="with --teacher: weight of the distillation term (1 - weight goes to the label loss)")
    g.add_argument("--distill-temperature", default=2.0, type=float, help="with --teacher: softmax temperature")


def _augmentation_options(g) -> None:
    """Options: random changes to each training batch."""
    g.add_argument("--rotate", default=10.0, type=float, help="augmentation: max rotation in degrees")
    g.add_argument("--translate", default=0.06, type=float, help="augmentation: max shift, fraction of the side")
    g.add_argument("--scale", default=(0.9, 1.15), type=float, nargs=2, metavar=("MIN", "MAX"), help="augmentation: zoom range")
    g.add_argument("--brightness", default=0.1, type=float, help="augmentation: max additive brightness change")
    g.add_argument("--contrast", default=0.2, type=float, help="augmentation: max relative contrast change")
    g.add_argument("--hflip", default=0.0, type=float, help="augmentation: probability of a horizontal flip (never vertical)")
    g.add_argument("--framing", default=0.0, type=float,
                   help="augmentation: probability of a random framing change per image (black/grey borders, crop, "
                        "edge masks, collimation, off-centre shift; see docs/selection-protocol.md)")
    g.add_argument("--framing-max", default=0.15, type=float, help="augmentation: largest framing change, fraction of the side")
    g.add_argument("--markers", default=0.0, type=float,
                   help="augmentation: probability of a burned-in marker added or an edge patch erased, per image")
    g.add_argument("--detail", default=0.0, type=float,
                   help="augmentation: probability of detail loss per image (Gaussian blur or down-then-up resampling)")
    g.add_argument("--detail-max-sigma", default=3.0, type=float, help="augmentation: largest blur sigma, px at 224 px")
    g.add_argument("--noise", default=0.02, type=float, help="augmentation: std of Gaussian noise added to half of the images")


def _calibration_options(g) -> None:
    """Options: fitted on validation after training."""
    g.add_argument("--threshold-rule", default="robust", choices=metrics.THRESHOLD_RULES,
                   help="how the two-class decision threshold is fitted on validation: robust = Youden's J averaged "
                        "over the clean images and fixed exposure/contrast/blur/zoom shifts of them; youden; f1; 0.5")
    g.add_argument("--audit-images", default=32, type=int,
                   help="validation images for the heat-map audit (deletion/insertion; half as many for the sanity "
                        "check; all of them for the evidence-location threshold); 0 skips the audit")
    g.add_argument("--scope", action=argparse.BooleanOptionalAction, default=True,
                   help="fit the scope score (Mahalanobis on pooled features: training split; threshold keeping 99%% "
                        "of validation, as acquired and shifted, in scope) into the model file")
    g.add_argument("--scope-separation", action="store_true",
                   help="also measure the scope score against the offline out-of-scope set (needs the test extra: "
                        "pydicom-data and scikit-image) and report it in the model card")


def _run_options(g) -> None:
    """Options: where and how the run executes."""
    g.add_argument("--device", default=None, help="cuda, cuda:N, mps or cpu (default: best available)")
    g.add_argument("--amp", default="auto", choices=("auto", "on", "off"),
                   help="mixed precision: fp16 on CUDA, bf16 on CPUs that support it (auto = on where supported)")
    g.add_argument("--workers", default=0, type=int, help="data loader worker processes (images are cached after the first epoch)")
    g.add_argument("--seed", default=0, type=int, help="random seed (split, initialisation, augmentation)")
    g.add_argument("--resume", default=None, type=Path, help="checkpoint to resume from (written each epoch to <report>/checkpoint.pt)")


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
    """Train, calibrate, and write the model file with its report and card; returns the model path on rank 0."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    started = time.time()
    rt = init_runtime(args)
    try:
        seed_everything(args.seed)
        data = load_data(args, rt)
        model = build_model(args, data, rt)
        criterion = build_criterion(args, data, rt)
        optimizer = build_optimizer(model, args)
        scheduler = build_scheduler(optimizer, args, steps_per_epoch=len(data.train_loader))
        scaler = torch.amp.GradScaler("cuda") if rt.amp and rt.device.type == "cuda" else None
        ema = build_ema(model, args)
        learners = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler, "ema": ema}
        progress = load_checkpoint(args.resume, learners, data, rt) if args.resume else Progress()
        train_model = nn.parallel.DistributedDataParallel(model) if rt.distributed else model
        scored = ema.module if ema is not None else model   # the weights validated, chosen and written
        mix = build_mix(args, len(data.class_names))
        teachers = build_teachers(args, data.class_names, rt.device, rt.channels_last)

        for epoch in range(progress.next_epoch, args.epochs):
            t0 = time.time()
            data.set_epoch(epoch)
            train_loss = train_one_epoch(train_model, criterion, optimizer, data.train_loader, epoch, rt,
                                         scheduler=scheduler, scaler=scaler, augment=data.augment, generator=data.generator,
                                         mix=mix, ema=ema, distill=teachers)
            val = evaluate(scored, data.val_loader, rt, criterion=nn.CrossEntropyLoss())
            row = epoch_row(epoch, train_loss, val, scored, optimizer, t0)
            log_epoch(row, args.epochs, progress.add(row, scored), rt)
            state = checkpoint_state(learners, progress, data, rt, plain_args(args))
            save_checkpoint(state, report_dir(args.out) / "checkpoint.pt", rt)

        progress.restore_best(model)
        cal = calibrate(model, data.val_loader, rt, args.threshold_rule)
        model.meta.update(cal.meta)
        model.meta[PARITY_KEY] = parity_record(model, data.val_loader, rt.device, half_weights=args.half)
        splits = score_splits(model, cal, data.test_loader, rt)
        if not rt.is_main:
            return None
        if args.scope:
            model.meta["scope"] = fit_scope(model, data.train_set.samples, data.val_set.samples, rt.device,
                                            ood=None if args.scope_separation else {}, log=log.info)
        explained = (explanation_record(model, (x for x, _ in data.val_loader), args.audit_images, rt.device)
                     if args.audit_images > 0 else None)
        return write_outputs(args, rt, model, data, progress, splits, started, explained)
    finally:
        close_runtime(rt)


def build_model(args: argparse.Namespace, data: TrainingData, rt: Runtime) -> CamClassifier:
    """The CAM classifier for ``data``'s classes with its metadata (input, normalisation, positive class),
    optionally from ImageNet weights with a frozen trunk, on ``rt.device``."""
    channels = args.input_channels or (3 if args.pretrained else 1)
    equalize = FILE_VALUES.get(getattr(args, "equalize", None), False)
    if args.pretrained:
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ([0.449], [0.226])
    else:
        mean, std = grey_stats(data.train_set, equalize=equalize, frame=getattr(args, "frame_normalize", False))
    meta = {"format_version": FORMAT_VERSION, "arch": args.arch, "class_names": data.class_names,
            "input_size": [args.image_size, args.image_size], "input_channels": channels, "mean": mean, "std": std}
    if equalize:
        meta["equalize"] = equalize
    if getattr(args, "frame_normalize", False):
        meta["frame_normalize"] = True
    if len(data.class_names) == 2:
        meta["positive_class"] = positive_class(data.class_names)
    try:
        model = CamClassifier(args.arch, len(data.class_names), channels, meta=meta,
                              dilate_last=getattr(args, "dilate_last", False))
    except ValueError as e:
        raise TrainingError(str(e)) from None
    if args.pretrained:
        try:
            load_backbone_weights(model, args.backbone_weights)
        except (OSError, ValueError, RuntimeError) as e:
            raise TrainingError(str(e)) from None
    if args.freeze_backbone:
        model.features.requires_grad_(False)
    model.to(rt.device)
    return model.to(memory_format=torch.channels_last) if rt.channels_last else model


def positive_class(class_names: list[str]) -> str:
    """The class a two-class model's threshold applies to: the finding (PNEUMONIA, ...), not the normal class."""
    for name in class_names:
        if name.upper() in {"PNEUMONIA", "POSITIVE", "ABNORMAL", "DISEASE"}:
            return name
    normal = [n for n in class_names if n.upper() in {"NORMAL", "NEGATIVE", "HEALTHY"}]
    return next(n for n in class_names if n not in normal) if normal else class_names[1]


def build_criterion(args: argparse.Namespace, data: TrainingData, rt: Runtime) -> nn.Module:
    """Cross-entropy with inverse-frequency class weights (unless ``--no-class-weights``) and label smoothing."""
    weights = None
    if args.class_weights:
        c = torch.tensor(data.train_set.class_counts(len(data.class_names)), dtype=torch.float32).clamp_min(1)
        weights = (c.sum() / (len(c) * c)).to(rt.device)
    return nn.CrossEntropyLoss(weight=weights, label_smoothing=args.label_smoothing)


def build_optimizer(model: nn.Module, args: argparse.Namespace) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; no weight decay on biases and normalisation weights."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)


def build_scheduler(optimizer, args: argparse.Namespace, steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-step schedule: linear warm-up over ``--warmup-epochs``, then cosine decay to zero."""
    steps = args.epochs * steps_per_epoch
    warm = max(1, int(args.warmup_epochs * steps_per_epoch))

    def factor(s: int) -> float:
        return (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def epoch_row(epoch: int, train_loss: float, val: dict, model: CamClassifier, optimizer, t0: float) -> dict:
    """The history row of an epoch (1-based ``epoch``): losses, validation AUROC and accuracy, lr, seconds."""
    probs = metrics.softmax(val["logits"])
    return {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val["loss"],
            "val_auroc": metrics.selection_auroc(probs, val["labels"], model.positive_index),
            "val_accuracy": float((probs.argmax(1) == val["labels"]).mean()),
            "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.time() - t0, 1)}


def log_epoch(row: dict, epochs: int, improved: bool, rt: Runtime) -> None:
    if rt.is_main:
        log.info("epoch %d/%d  train loss %.4f  val loss %.4f  val AUROC %.4f  val acc@argmax %.3f  lr %.2e  %.0fs%s",
                 row["epoch"], epochs, row["train_loss"], row["val_loss"], row["val_auroc"], row["val_accuracy"],
                 row["lr"], row["seconds"], "  *best*" if improved else "")


def write_outputs(args: argparse.Namespace, rt: Runtime, model: CamClassifier, data: TrainingData,
                  progress: Progress, splits: dict, started: float, explained: dict | None = None) -> Path:
    """Rank 0's files: the model file (metrics, provenance and the heat-map audit ``explained`` in its header),
    ``<out>_report/`` and the card."""
    model.meta["metrics"] = jsonable({name: {k: v for k, v in s["metrics"].items() if k != "class_names"}
                                      for name, s in splits.items()})
    shifted = {"validation_shifted": splits["validation"]["shifted"]} if "shifted" in splits["validation"] else {}
    model.meta["metrics"].update(shifted, best_epoch=progress.chosen_epoch + 1)
    model.meta["training"] = describe_training(args, rt, data, started)
    if explained:
        model.meta.update(apply_record(model.meta, jsonable(explained)))
    out = save_model(model.cpu().to(memory_format=torch.contiguous_format), args.out, half=args.half)
    fitted = {k: model.meta[k] for k in ("arch", "input_size", "threshold", "temperature", "cam_range") if k in model.meta}
    write_report(report_dir(out), progress.history, splits,
                 extra={**shifted, "model": fitted, "training": model.meta["training"]})
    write_model_card(out)
    best = progress.history[progress.chosen_epoch]
    log.info("wrote %s (best epoch %d, val AUROC %.4f, threshold %s, temperature %.3f) and %s/", out, best["epoch"],
             best["val_auroc"], "argmax" if model.threshold is None else f"{model.threshold:.4f}",
             model.temperature, report_dir(out))
    return out


def describe_training(args: argparse.Namespace, rt: Runtime, data: TrainingData, started: float) -> dict:
    """Provenance for the model file: command, arguments, data and split, date, duration, device, versions."""
    import PIL
    import torchvision

    from ... import __version__

    return {
        "command": command_line(args), "args": plain_args(args), "data": str(args.data),
        "images": data.counts, "split": data.split,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **({"teachers": teacher_digests(args.teacher)} if getattr(args, "teacher", None) else {}),
        "seconds": round(time.time() - started), "device": str(rt.device), "world_size": rt.world_size, "amp": rt.amp,
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
                     "numpy": np.__version__, "pillow": PIL.__version__, "cxrviewer": __version__},
    }


def plain_args(args: argparse.Namespace) -> dict:
    """``vars(args)`` as plain JSON data (paths as strings, tuples as lists)."""
    def plain(v):
        return str(v) if isinstance(v, Path) else [plain(x) for x in v] if isinstance(v, (list, tuple)) else v

    return {k: plain(v) for k, v in vars(args).items()}
