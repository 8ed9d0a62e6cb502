"""A model's intended use (whom it is for, what its classes mean): the trainer's options and a command for existing files.

``train_model.py`` writes ``meta["intended_use"]`` only when told (``--intended-use kermany`` or a JSON
file, ``--intended-ages``, ``--intended-source``, ``--intended-views``, ``--class-meaning``): nothing is
guessed for arbitrary data. For a model file trained earlier::

    python -m cxrviewer.core.training.intended_use MODEL.safetensors --intended-use kermany

rewrites only its metadata (weight bytes verbatim, checked by digest) and the model card beside it.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..model.checkpoint import read_header
from ..model.population import KERMANY, KEY, check_classes, validate
from . import TrainingError, run_cli

PRESETS = {"kermany": KERMANY}


def add_intended_use_options(g) -> None:
    """Options that set the model's intended use (all off by default: not recorded)."""
    g.add_argument("--intended-use", default=None, metavar="PRESET_OR_JSON",
                   help="the model's intended use: 'kermany' (children 1-5 y, Guangzhou, AP views; NORMAL = no pneumonia "
                        "pattern, not 'no finding') or a JSON file {population: {age_years, source}, views, classes} "
                        "(the options below add to or override it; None: not recorded)")
    g.add_argument("--intended-ages", nargs=2, type=float, default=None, metavar=("YOUNGEST", "OLDEST"),
                   help="age range of the training patients in completed years, e.g. 1 5; None: not recorded")
    g.add_argument("--intended-source", default=None, help="where the training images come from; None: not recorded")
    g.add_argument("--intended-views", nargs="+", default=None, metavar="VIEW",
                   help="view positions trained on, e.g. AP PA; None: not recorded")
    g.add_argument("--class-meaning", nargs=3, action="append", default=None, metavar=("CLASS", "MEANS", "DOES_NOT_MEAN"),
                   help="what a verdict of CLASS means and does not mean; repeat per class; None: not recorded")


def intended_use_from_args(args: argparse.Namespace, class_names: Sequence[str]) -> dict[str, Any] | None:
    """The ``intended_use`` entry the options ask for (None when none is given); :class:`TrainingError` if invalid."""
    base = getattr(args, "intended_use", None)
    ages, source = getattr(args, "intended_ages", None), getattr(args, "intended_source", None)
    views, meanings = getattr(args, "intended_views", None), getattr(args, "class_meaning", None)
    if base is None and ages is None and source is None and views is None and not meanings:
        return None
    use = _base(base, class_names)
    pop = use.setdefault("population", {})
    if ages is not None:
        pop["age_years"] = [_whole(a) for a in ages]
    if source is not None:
        pop["source"] = source
    if views is not None:
        use["views"] = [v.strip().upper() for v in views]
    for name, means, not_means in meanings or ():
        use.setdefault("classes", {})[name] = {"means": means, "does_not_mean": not_means}
    why = validate(use) or check_classes(use, list(class_names))
    if why:
        raise TrainingError(why)
    return use


def _base(base: str | None, class_names: Sequence[str]) -> dict[str, Any]:
    if base is None:
        return {}
    if base.lower() in PRESETS:
        use = copy.deepcopy(PRESETS[base.lower()])
        use["classes"] = {k: v for k, v in use.get("classes", {}).items() if k in class_names}
        return use
    try:
        use = json.loads(Path(base).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise TrainingError(f"--intended-use {base}: not a preset ({', '.join(PRESETS)}) nor a readable JSON file ({e})") from None
    if not isinstance(use, dict):
        raise TrainingError(f"--intended-use {base}: the JSON must be an object")
    return use


def _whole(v: float) -> float | int:
    return int(v) if float(v).is_integer() else float(v)


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Record a model file's intended use (population, views, what each class "
                                "means) in its metadata; the weights stay byte-identical and the model card is rewritten.",
                                add_help=add_help)
    p.add_argument("model", type=Path, help="model file (.safetensors)")
    p.add_argument("--out", type=Path, default=None, help="write a new model file here (default: rewrite MODEL in place)")
    p.add_argument("--overwrite", action="store_true", help="with --out: replace an existing file")
    p.add_argument("--clear", action="store_true", help="remove the recorded intended use instead")
    add_intended_use_options(p)
    return p


def main(args: argparse.Namespace) -> dict | None:
    from ..model.model_update import rewrite_metadata, weights_digest, write_with_metadata
    from .model_card import write_model_card

    meta = read_header(args.model)
    use = None if args.clear else intended_use_from_args(args, meta["class_names"])
    if use is None and not args.clear:
        raise TrainingError("nothing to record: give --intended-use, --intended-ages, --intended-source, "
                            "--intended-views or --class-meaning (or --clear)")
    before = weights_digest(args.model)
    if args.out is not None:
        path = write_with_metadata(args.model, args.out, {KEY: use}, overwrite=args.overwrite)
    else:
        path = rewrite_metadata(args.model, {KEY: use})
    if weights_digest(path) != before:  # model_update checks this too; said here because it is the promise
        raise TrainingError(f"{path}: weights changed")
    card = write_model_card(path)
    print(json.dumps(use, indent=1))
    print(f"recorded in {path} (weights digest {before[:16]} unchanged); card {card}", file=sys.stderr)
    return use


def cli(argv: Sequence[str] | None = None) -> int:
    return run_cli("intended_use", get_args_parser(), main, argv)


if __name__ == "__main__":
    sys.exit(cli())
