"""Training data: ImageFolder scanning, patient-level validation split, cached tensors, augmentation,
and :func:`load_data`, which puts them together into the loaders of a run."""

from __future__ import annotations

import hashlib
import logging
import math
import random
import re
import argparse
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Subset

from ..io.equalize import equalized
from ..io.frame import frame_normalized
from ..io.radiograph import IMAGE_SUFFIXES, to_model_input
from ..io.reading import load_radiograph
from . import TrainingError
from .augment import build_pipeline
from .crossbatch import hold_out_normal_batch, negative_label
from .runtime import Runtime

log = logging.getLogger(__name__)

#: Patient id at the start of Kermany file names: personNNN_..., IM-NNNN-..., NORMAL2-IM-NNNN-...
DEFAULT_PATIENT_PATTERN = r"^(person\d+|NORMAL2-IM-\d+|IM-\d+)"


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int


def find_classes(folder: Path) -> list[str]:
    """Class names = the sorted names of the non-hidden sub-folders of ``folder``."""
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(names) < 2:
        raise ValueError(f"{folder} must hold one sub-folder per class (found {len(names)})")
    return names


def list_samples(folder: Path, class_names: list[str]) -> list[Sample]:
    """Every image under ``folder/CLASS/`` (recursive, hidden files skipped), sorted by path."""
    samples = []
    for label, name in enumerate(class_names):
        root = folder / name
        if not root.is_dir():
            continue
        for p in sorted(root.rglob("*")):
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES:
                samples.append(Sample(p, label))
    return samples


def patient_groups(samples: list[Sample], pattern: str | None) -> tuple[list[str], bool]:
    """Group key per sample: the patient id from the file name, merged over byte-identical files.

    Returns ``(keys, by_patient)``; ``by_patient`` is False when the pattern matched
    too few names and the split falls back to one group per image.
    """
    rx = re.compile(pattern) if pattern else None
    keys, matched = [], 0
    for s in samples:
        m = rx.search(s.path.name) if rx else None
        if m:
            matched += 1
            keys.append(f"{s.label}:{m.group(1) if m.groups() else m.group(0)}")
        else:
            keys.append(f"file:{s.path.name}:{len(keys)}")
    by_patient = bool(samples) and matched >= 0.9 * len(samples)
    if not by_patient:
        keys = [f"file:{i}" for i in range(len(samples))]
    # Byte-identical duplicates must land on the same side: union their groups.
    parent = {k: k for k in keys}

    def find(k):
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    first_by_hash: dict[str, str] = {}
    for s, k in zip(samples, keys):
        digest = hashlib.blake2b(s.path.read_bytes(), digest_size=16).hexdigest()
        if digest in first_by_hash:
            parent[find(k)] = find(first_by_hash[digest])
        else:
            first_by_hash[digest] = k
    return [find(k) for k in keys], by_patient


def split_by_patient(samples: list[Sample], val_fraction: float, seed: int,
                     pattern: str | None = DEFAULT_PATIENT_PATTERN) -> tuple[list[Sample], list[Sample], dict]:
    """Stratified, seeded split of ``samples`` into (train, val) with no group on both sides.

    Each group (patient) is assigned the majority label of its images; within each
    label, ``val_fraction`` of the groups (at least one) go to validation.
    """
    keys, by_patient = patient_groups(samples, pattern)
    if not by_patient:
        log.warning("patient pattern %r matched too few file names: splitting by image instead", pattern)
    members: dict[str, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        members[k].append(i)
    by_label: dict[int, list[str]] = defaultdict(list)
    for k, idx in members.items():
        label = Counter(samples[i].label for i in idx).most_common(1)[0][0]
        by_label[label].append(k)
    rng = random.Random(seed)
    val_keys: set[str] = set()
    for label in sorted(by_label):
        groups = sorted(by_label[label])
        rng.shuffle(groups)
        n_val = max(1, round(val_fraction * len(groups))) if len(groups) > 1 else 0
        val_keys.update(groups[:n_val])
    train = [s for s, k in zip(samples, keys) if k not in val_keys]
    val = [s for s, k in zip(samples, keys) if k in val_keys]
    info = {
        "rule": "patient" if by_patient else "image",
        "patient_pattern": pattern if by_patient else None,
        "val_fraction": val_fraction,
        "seed": seed,
        "groups": len(members),
        "val_groups": len(val_keys),
    }
    return train, val, info


class RadiographFolder(Dataset):
    """Samples decoded once to ``size`` grey uint8 tensors (1 x H x W) and kept in memory."""

    def __init__(self, samples: list[Sample], size: tuple[int, int], cache: bool = True):
        self.samples = samples
        self.size = size
        self.cache = cache
        self._cache: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = self._cache.get(i)
        if x is None:
            s = self.samples[i]
            pixels = to_model_input(load_radiograph(s.path, target_size=self.size).pixels, self.size)
            x = torch.from_numpy(np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8))[None]
            if self.cache:
                self._cache[i] = x
        return x, self.samples[i].label

    def class_counts(self, num_classes: int) -> list[int]:
        counts = Counter(s.label for s in self.samples)
        return [counts.get(c, 0) for c in range(num_classes)]


@dataclass
class Augment:
    """Radiograph-safe batch augmentation on N x 1 x H x W tensors in [0, 1] (no vertical flips)."""

    rotate: float = 10.0        # degrees, +-
    translate: float = 0.06     # fraction of the side, +-
    scale: tuple[float, float] = (0.9, 1.15)
    brightness: float = 0.1     # additive, +-
    contrast: float = 0.2       # multiplicative around the image mean, +-
    gamma: float = 0.25         # log-uniform in [1/(1+g), 1+g]
    noise: float = 0.02         # std of Gaussian noise, applied to half of the images
    hflip: float = 0.0          # probability of a horizontal flip

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n = x.shape[0]
        dev = x.device

        def u(lo, hi):
            return torch.rand(n, generator=generator).mul(hi - lo).add(lo).to(dev)

        angle = u(-self.rotate, self.rotate) * math.pi / 180
        s = u(*self.scale)
        flip = torch.where(torch.rand(n, generator=generator).to(dev) < self.hflip, -1.0, 1.0)
        cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
        theta = torch.stack([
            torch.stack([cos * flip, -sin, u(-self.translate, self.translate) * 2], 1),
            torch.stack([sin * flip, cos, u(-self.translate, self.translate) * 2], 1),
        ], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        g = torch.exp(u(-math.log1p(self.gamma), math.log1p(self.gamma))).view(n, 1, 1, 1)
        x = x.clamp(0, 1).pow(g)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * u(1 - self.contrast, 1 + self.contrast).view(n, 1, 1, 1) + mean
        x = x + u(-self.brightness, self.brightness).view(n, 1, 1, 1)
        if self.noise > 0:
            on = (torch.rand(n, generator=generator) < 0.5).to(dev).view(n, 1, 1, 1)
            x = x + on * self.noise * torch.randn(x.shape, generator=generator).to(dev)
        return x.clamp(0, 1)


def build_augment(args: argparse.Namespace) -> Augment:
    """The :class:`Augment` of the run: each field set from the option of the same name, when there is one."""
    given = {f.name: getattr(args, f.name) for f in fields(Augment) if getattr(args, f.name, None) is not None}
    if "scale" in given:
        given["scale"] = tuple(given["scale"])
    return Augment(**given)


def grey_stats(ds: RadiographFolder, n: int = 512, equalize: bool | str = False,
               frame: bool = False) -> tuple[list[float], list[float]]:
    """Mean and standard deviation of the grey values of up to ``n`` evenly spaced images, in [0, 1]
    (frame-normalised and equalised as the model file says, as the model will see them)."""
    idx = np.linspace(0, len(ds) - 1, min(n, len(ds))).astype(int)
    x = torch.stack([ds[int(i)][0] for i in idx]).float() / 255.0
    x = equalized(frame_normalized(x) if frame else x, equalize)
    return [round(float(x.mean()), 4)], [round(float(x.std()), 4)]


@dataclass
class TrainingData:
    """The datasets and loaders of a run, with the randomness the training loader draws from."""

    class_names: list[str]
    train_set: RadiographFolder
    val_set: RadiographFolder
    test_set: RadiographFolder | None
    train_loader: DataLoader
    val_loader: DataLoader            # this rank's share; :func:`.engine.evaluate` gathers the rest
    test_loader: DataLoader | None
    augment: Callable                 # Augment, or a Pipeline ending in one (see :mod:`.augment`)
    generator: torch.Generator        # augmentation draws of this rank
    split: dict                       # how validation was chosen (rule, seed, groups, ...)

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        """Images per split and class."""
        sets = (("train", self.train_set), ("val", self.val_set), ("test", self.test_set))
        return {s: dict(zip(self.class_names, d.class_counts(len(self.class_names)))) for s, d in sets if d is not None}

    def set_epoch(self, epoch: int) -> None:
        """Give a distributed sampler its epoch (its shuffle is seeded by seed + epoch)."""
        if isinstance(self.train_loader.sampler, DistributedSampler):
            self.train_loader.sampler.set_epoch(epoch)


def find_samples(args: argparse.Namespace, warn: bool = True) -> tuple[list[str], dict[str, list[Sample]], dict]:
    """Class names, the train / val / test / held_out samples, and how validation was chosen.

    A ``val/`` folder with at least ``--min-val-size`` images is the validation split;
    otherwise ``train/`` is split by patient. ``test/`` is optional. With ``--holdout-normal-batch``
    that NORMAL batch leaves train and val for ``held_out`` (see :mod:`.crossbatch`).
    """
    train_dir = args.data / "train"
    if not train_dir.is_dir():
        raise TrainingError(f"{args.data}: no train/ folder (expected train/CLASS/*)")
    class_names = find_classes(train_dir)
    train = list_samples(train_dir, class_names)
    val = list_samples(args.data / "val", class_names) if (args.data / "val").is_dir() else []
    if len(val) >= args.min_val_size:
        split = {"rule": "val folder", "val_folder": str(args.data / "val")}
    else:
        if val and warn:
            log.warning("val/ has only %d images (< --min-val-size %d): splitting train/ by patient instead",
                        len(val), args.min_val_size)
        train, val, split = split_by_patient(train, args.val_fraction, args.seed, args.patient_pattern)
    held = []
    if getattr(args, "holdout_normal_batch", None):
        try:
            train, val, held = hold_out_normal_batch(train, val, args.holdout_normal_batch, class_names)
        except ValueError as e:
            raise TrainingError(f"--holdout-normal-batch: {e}") from None
        split = {**split, "holdout_normal_batch": args.holdout_normal_batch,
                 "held_out_normal_images": sum(s.label == negative_label(class_names) for s in held)}
    test = list_samples(args.data / "test", class_names) if (args.data / "test").is_dir() else []
    if not train or not val:
        raise TrainingError(f"{args.data}: need images for training and validation (got {len(train)} and {len(val)})")
    return class_names, {"train": train, "val": val, "test": test, "held_out": held}, split


def load_data(args: argparse.Namespace, rt: Runtime) -> TrainingData:
    """Datasets and loaders: shuffled training batches (sharded by rank), this rank's share of val and test."""
    class_names, samples, split = find_samples(args, warn=rt.is_main)
    size = (args.image_size, args.image_size)
    train_set, val_set = RadiographFolder(samples["train"], size), RadiographFolder(samples["val"], size)
    test_set = RadiographFolder(samples["test"], size) if samples["test"] else None
    if rt.distributed:
        sampler = DistributedSampler(train_set, shuffle=True, seed=args.seed, drop_last=True)
    else:
        sampler = RandomSampler(train_set, generator=torch.Generator().manual_seed(args.seed))
    train_loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler, drop_last=True,
                              num_workers=args.workers, persistent_workers=args.workers > 0)
    if len(train_loader) == 0:
        raise TrainingError(f"only {len(train_set)} training images: fewer than one batch of {args.batch_size}")
    val_loader = _eval_loader(val_set, args.batch_size * 2, rt)
    test_loader = _eval_loader(test_set, args.batch_size * 2, rt) if test_set is not None else None
    data = TrainingData(class_names, train_set, val_set, test_set, train_loader, val_loader, test_loader,
                        build_pipeline(args, build_augment(args)), torch.Generator().manual_seed(args.seed + rt.rank), split)
    if rt.is_main:
        log.info("classes %s; images %s; split %s", class_names, data.counts, split)
    return data


def _eval_loader(ds: RadiographFolder, batch_size: int, rt: Runtime) -> DataLoader:
    shard = Subset(ds, list(range(rt.rank, len(ds), rt.world_size))) if rt.distributed else ds
    return DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=0)
