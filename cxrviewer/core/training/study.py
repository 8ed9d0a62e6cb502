"""One row of the recipe study: a recipe trained three times and scored on the protocol.

``python -m cxrviewer.core.training.study --name NAME --runs /work/runs --data ../shared/data/chest_xray
-- RECIPE...`` trains ``RECIPE`` (any ``train_model.py`` options but ``--data``, ``--out`` and
``--holdout-normal-batch``) on all the data and with each NORMAL batch held out, into
``RUNS/NAME``, ``RUNS/NAME-xIM`` and ``RUNS/NAME-xN2``, then scores them with :mod:`.protocol` into
``RUNS/scores/NAME.{json,md}`` (``docs/selection-protocol.md``, ``docs/recipe-study.md``). The cross-batch
runs skip the post-training heat-map audit and scope fit (``--audit-images 0 --no-scope``), which the score
does not read.
Rerunning the same command continues: finished models are kept, an interrupted training resumes from
its checkpoint, and the scorer's cache keeps every view it scored.

``{run}`` in the recipe becomes each run's suffix (``""``, ``-xIM``, ``-xN2``), so that a distilled
row learns from teachers that held out the same batch: ``--teacher RUNS/a{run}/model.safetensors``.
``--members A B C`` (no recipe) scores the ensemble of rows already trained: each run is the mean of
the members' runs with the same suffix, from their cached views.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..errors import CxrError
from . import protocol, train
from .report import report_dir

log = logging.getLogger("cxrviewer.study")

#: Run-folder suffix -> the NORMAL batch held out (protocol section 1).
RUNS = (("", None), ("-xIM", "IM"), ("-xN2", "NORMAL2"))
_RESERVED = ("--data", "--out", "--holdout-normal-batch", "--resume")
#: Added to the cross-batch runs: the heat-map audit and the scope fit run after training and change
#: neither the weights nor anything the cross-batch score reads.
CROSS_BATCH_EXTRA = ("--audit-images", "0", "--no-scope")


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train a recipe three times (all data, each NORMAL batch held out) and "
                                            "score it on the selection protocol.", add_help=add_help,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--name", required=True, help="row name; run folders RUNS/NAME, RUNS/NAME-xIM, RUNS/NAME-xN2")
    p.add_argument("--runs", type=Path, required=True, help="folder for the runs and RUNS/scores/")
    p.add_argument("--data", type=Path, required=True, help="data folder (train/CLASS/*)")
    p.add_argument("--families", nargs="+", default=None, choices=list(protocol.SUITE),
                   help="score only these suite families (a partial row, for checks; default: all)")
    p.add_argument("--members", nargs="+", default=None, metavar="ROW",
                   help="score the ensemble of these trained rows instead of training a recipe")
    p.add_argument("recipe", nargs=argparse.REMAINDER,
                   help="-- then the train_model.py options of the recipe ({run} = the run's suffix)")
    return p


def recipe_args(recipe: list[str]) -> list[str]:
    """The recipe's options without a leading ``--``; refuses the options this tool sets itself."""
    recipe = recipe[1:] if recipe[:1] == ["--"] else recipe
    taken = [w for w in recipe if w.split("=")[0] in _RESERVED]
    if taken:
        raise CxrError(f"the recipe may not set {', '.join(taken)}: the study sets them for each run")
    return recipe


def model_path(runs: Path, name: str, suffix: str) -> Path:
    return runs / f"{name}{suffix}" / "model.safetensors"


def train_runs(args: argparse.Namespace) -> list[Path]:
    """Train what is missing of the three runs (resuming an interrupted one); returns the three model paths."""
    recipe, paths = recipe_args(args.recipe), []
    for suffix, batch in RUNS:
        out = model_path(args.runs, args.name, suffix)
        paths.append(out)
        if out.is_file():
            log.info("%s exists: kept", out)
            continue
        words = ["--data", str(args.data), "--out", str(out), *(w.replace("{run}", suffix) for w in recipe)]
        words += ["--holdout-normal-batch", batch, *CROSS_BATCH_EXTRA] if batch else []
        checkpoint = report_dir(out) / "checkpoint.pt"
        if checkpoint.is_file():
            words += ["--resume", str(checkpoint)]
        log.info("training %s: train_model.py %s", out, " ".join(words))
        train.main(train.get_args_parser().parse_args(words))
    return paths


def member_runs(args: argparse.Namespace) -> list[list[Path]]:
    """For ``--members``: per run suffix, the members' model files (all must exist)."""
    if recipe_args(args.recipe):
        raise CxrError("--members scores trained rows: give no recipe")
    groups = [[model_path(args.runs, row, suffix) for row in args.members] for suffix, _ in RUNS]
    missing = [str(p) for g in groups for p in g if not p.is_file()]
    if missing:
        raise CxrError(f"not trained yet: {', '.join(missing)}")
    return groups


def main(args: argparse.Namespace) -> dict:
    full, *cross = member_runs(args) if args.members else [[p] for p in train_runs(args)]
    words = ["--model", *map(str, full), "--cross-batch", *map(str, [p for g in cross for p in g]), "--data", str(args.data),
             "--out", str(args.runs / "scores"), "--name", args.name]
    return protocol.main(protocol.get_args_parser().parse_args(words + (["--families", *args.families] if args.families else [])))


if __name__ == "__main__":
    try:
        main(get_args_parser().parse_args())
    except CxrError as e:
        sys.exit(f"study: error: {e}")
