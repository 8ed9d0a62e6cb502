"""The trainer's explanation step: audit the chosen model's heat maps on validation, keep the result in its file.

:func:`explanation_record` runs :func:`cxrviewer.core.explain.audit.audit` (deletion and
insertion against random and centred-prior floors and Grad-CAM, cascading randomization,
the evidence-location threshold and the stability rates) and returns the metadata it sets:
``evidence_outside_threshold`` (read by the batch engine's flag) and ``metrics.explanations``
(read by the model card).

For a model file trained earlier, ``python -m cxrviewer.core.training.explanations MODEL``
rebuilds its validation split, audits it and rewrites only the metadata (weight bytes
verbatim) and the model card beside it; ``--from-json`` records an audit already run (``benchmarks/bench_explain.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import CxrError
from ..explain.audit import audit
from ..model.checkpoint import load_model, read_header
from ..model.classifier import CamClassifier
from . import run_cli

THRESHOLD_KEY = "evidence_outside_threshold"


def explanation_record(model: CamClassifier, batches: Iterable[torch.Tensor], images: int = 32,
                       device: torch.device | str = "cpu") -> dict[str, Any]:
    """The metadata an audit of ``model`` on ``batches`` (validation; uint8 or [0, 1]) sets.

    ``images``: how many go through deletion/insertion (half as many through the
    sanity check); every image goes through the per-verdict checks.
    """
    grey = torch.cat([b.float().div(255) if b.dtype == torch.uint8 else b.float() for b in batches])
    result = audit(model, grey.to(device), n_faithfulness=images, n_sanity=max(1, images // 2))
    return {THRESHOLD_KEY: result["checks"][THRESHOLD_KEY], "explanations": result}


def apply_record(meta: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """``meta`` with ``record`` in place: the threshold at the top, the audit under ``metrics.explanations``."""
    metrics = {**(meta.get("metrics") or {}), "explanations": record["explanations"]}
    return {**meta, THRESHOLD_KEY: record[THRESHOLD_KEY], "metrics": metrics}


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Audit a model file's heat maps on its validation split and record the "
                                "result in its metadata (weights unchanged).", add_help=add_help)
    p.add_argument("model", type=Path, help="model file (.safetensors), rewritten in place (metadata only)")
    p.add_argument("--data", type=Path, help="the data folder it was trained on (default: the one its metadata records)")
    p.add_argument("--images", type=int, default=32, help="images for deletion/insertion (default: 32)")
    p.add_argument("--from-json", type=Path, help="record the 'audit' of this bench_explain.py result instead of running it")
    p.add_argument("--dry-run", action="store_true", help="print the record, do not write it")
    return p


def main(args: argparse.Namespace) -> dict:
    from .model_card import write_model_card
    from .parity import rewrite_metadata, validation_batches

    meta = read_header(args.model)
    if args.from_json:
        found = json.loads(args.from_json.read_text())
        if found.get("model") != args.model.name:
            raise CxrError(f"{args.from_json} audits {found.get('model')!r}, not {args.model.name!r}")
        record = {THRESHOLD_KEY: found["audit"]["checks"][THRESHOLD_KEY], "explanations": found["audit"]}
    else:
        model = load_model(args.model)
        record = explanation_record(model, validation_batches(meta, args.data, model), args.images)
    if not args.dry_run:
        updated = apply_record(meta, record)
        rewrite_metadata(args.model, {k: updated[k] for k in (THRESHOLD_KEY, "metrics")})
        card = write_model_card(args.model)  # the card beside the file shows the new audit, never a stale one
        print(f"recorded in {args.model} (metadata only); card {card}", file=sys.stderr)
    return record


def cli(argv: Sequence[str] | None = None) -> int:
    return run_cli("explanations", get_args_parser(), main, argv)


if __name__ == "__main__":
    sys.exit(cli())
