"""Reduced-precision parity of a trained model, measured on its validation split and kept in its file.

The trainer calls :func:`parity_record` on the validation loader it already has. For a
model file trained earlier, ``python -m cxrviewer.core.training.parity MODEL --data DIR``
rebuilds the validation split its metadata records (the same patient split, or the
``val/`` folder), measures parity and rewrites only the metadata: the weight bytes are
copied verbatim (checked). ``auto`` precision reads the record (:mod:`..precision`).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import CxrError
from ..model.checkpoint import load_model, read_header
from ..model.classifier import CamClassifier
from ..model.model_update import rewrite_metadata, weights_digest  # noqa: F401 - re-exported for callers
from ..model.precision import PARITY_KEY, REDUCED, measure_parity
from . import run_cli


def parity_record(model: CamClassifier, batches: Iterable[Any], device: torch.device | str = "cpu",
                  half_weights: bool = False, split: str = "validation") -> dict[str, dict[str, Any]]:
    """:data:`PARITY_KEY` metadata: float32 vs each reduced precision on ``batches``.

    ``batches``: ``N x 1 x H x W`` images (uint8 or [0, 1]) or ``(images, labels)`` pairs, as
    a training loader gives. ``half_weights``: measure the model as a file saved with
    float16 weights loads (weights rounded through float16). Under ``torch.distributed``
    each rank measures its shard and the records are combined. ``model`` is not changed.
    """
    if half_weights:
        model = copy.deepcopy(model)
        with torch.no_grad():
            for t in model.state_dict().values():
                if t.is_floating_point():
                    t.copy_(t.half().float())
    images = (b[0] if isinstance(b, (tuple, list)) else b for b in batches)
    record = measure_parity(model, images, precisions=REDUCED, device=device, split=split, allow_empty=True)
    return _combine_ranks(record)


def _combine_ranks(record: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return record
    for name, r in record.items():
        totals = torch.tensor([r["agreement"] * r["n"], float(r["n"])], dtype=torch.float64)
        worst = torch.tensor([r["max_prob_diff"]], dtype=torch.float64)
        dist.all_reduce(totals)
        dist.all_reduce(worst, op=dist.ReduceOp.MAX)
        n = int(totals[1])
        r.update(agreement=float(totals[0] / max(n, 1)), max_prob_diff=float(worst[0]), n=n)
    return record


def validation_samples(meta: dict[str, Any], data: Path) -> list:
    """The validation samples of a model trained on ``data``, rebuilt from its recorded split."""
    from .data import find_classes, list_samples, split_by_patient

    training = meta.get("training") or {}
    split = training.get("split") or {}
    train_dir = data / "train"
    if not train_dir.is_dir():
        raise CxrError(f"{data}: no train/ folder (expected the data the model was trained on)")
    class_names = find_classes(train_dir)
    if class_names != list(meta["class_names"]):
        raise CxrError(f"{data}: classes {class_names} are not the model's {meta['class_names']}")
    if split.get("rule") == "val folder":
        return list_samples(data / "val", class_names)
    if split.get("rule") != "patient":
        raise CxrError("the model file does not record how its validation split was made")
    samples = list_samples(train_dir, class_names)
    _, val, _ = split_by_patient(samples, float(split["val_fraction"]), int(split["seed"]), split.get("patient_pattern"))
    expected = sum((training.get("images") or {}).get("val", {}).values())
    if expected and len(val) != expected:
        raise CxrError(f"{data}: the rebuilt validation split has {len(val)} images, the model file records {expected}")
    return val


def validation_batches(meta: dict[str, Any], data: Path | None, model: CamClassifier,
                       batch_size: int = 64) -> Iterable[torch.Tensor]:
    """Batches of a model's validation images at its input size (``data``: default, the folder its metadata records)."""
    from .data import RadiographFolder

    data = data or Path((meta.get("training") or {}).get("data", ""))
    folder = RadiographFolder(validation_samples(meta, data), model.input_size, cache=False)
    for start in range(0, len(folder), batch_size):
        yield torch.stack([folder[i][0] for i in range(start, min(start + batch_size, len(folder)))])


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Measure a model file's reduced-precision parity on its validation "
                                "split and record it in the file's metadata (weights unchanged).", add_help=add_help)
    p.add_argument("model", type=Path, help="model file (.safetensors), rewritten in place (metadata only)")
    p.add_argument("--data", type=Path, help="the data folder it was trained on (default: the one its metadata records)")
    p.add_argument("--device", default="cpu", help="device to measure on (default: cpu)")
    p.add_argument("--dry-run", action="store_true", help="print the record, do not write it")
    return p


def main(args: argparse.Namespace) -> dict:
    meta = read_header(args.model)
    model = load_model(args.model)
    record = parity_record(model, validation_batches(meta, args.data, model), device=args.device)
    print(json.dumps(record, indent=1))
    if not args.dry_run:
        rewrite_metadata(args.model, {PARITY_KEY: record})
        print(f"recorded in {args.model} (weights digest {weights_digest(args.model)[:16]} unchanged)", file=sys.stderr)
    return record


def cli(argv: Sequence[str] | None = None) -> int:
    return run_cli("parity", get_args_parser(), main, argv)


if __name__ == "__main__":
    sys.exit(cli())
