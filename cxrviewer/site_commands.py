"""``cxrviewer evaluate`` and ``cxrviewer calibrate``: measure and fit a model on a site's labelled folder.

    cxrviewer evaluate FOLDER [--model M] --out DIR
    cxrviewer calibrate FOLDER [--model IN] --out NEW.safetensors [--rule youden | sensitivity=0.95 | specificity=0.90]

FOLDER holds one sub-folder per class, named as the model's classes. Nothing is written into
FOLDER; existing outputs are replaced only with ``--overwrite``; the source model is never
overwritten.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

PROG = "cxrviewer"
FAITHFULNESS_IMAGES = 16  # 4 maps x 2 fills x 42 passes each: ~5,400 forward passes, ~3 min of CPU time for ResNet-18 at 224 px


def _common(parser: argparse.ArgumentParser) -> None:
    from .cli import _positive_int

    parser.add_argument("folder", metavar="FOLDER", help="labelled folder: one sub-folder per class (e.g. NORMAL/, PNEUMONIA/)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: refuse)")
    parser.add_argument("--device", metavar="D", default=None, help="cpu, cuda, cuda:N or mps (default: CUDA, else MPS, else CPU)")
    parser.add_argument("--batch-size", type=_positive_int, default=16, metavar="N", help="images per forward pass (default: 16)")


def build_evaluate_parser() -> argparse.ArgumentParser:
    from .cli import _Parser

    p = _Parser(prog=f"{PROG} evaluate", description="Measure a model on a labelled folder: metrics.json plus ROC, "
                "confusion-matrix, reliability and threshold-sweep plots.")
    _common(p)
    p.add_argument("--model", metavar="M", help="model file (.safetensors; default: the shipped model)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for metrics.json and the plots (created if needed)")
    p.add_argument("--faithfulness-images", type=_non_negative_int, default=FAITHFULNESS_IMAGES, metavar="N",
                   help="score the heat maps' faithfulness (deletion and insertion, mean and blur fill, against a random "
                        f"and a centred-prior map, Grad-CAM as a peer) on at most N images; 0 skips it (default: {FAITHFULNESS_IMAGES})")
    return p


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def build_calibrate_parser() -> argparse.ArgumentParser:
    from .cli import _Parser
    from .core.site.calibration import RULE_HELP

    p = _Parser(prog=f"{PROG} calibrate", description="Fit a model's threshold, temperature and scope threshold to a "
                "site's labelled folder and write them into a NEW model file (weights byte-identical, model card "
                "regenerated, the source never overwritten).")
    _common(p)
    p.add_argument("--model", metavar="IN", help="model file to start from (default: the shipped model)")
    p.add_argument("--out", required=True, metavar="NEW", help="new model file (.safetensors); its report goes to NEW_calibration/")
    p.add_argument("--rule", default="youden", help=f"how the threshold is chosen: {RULE_HELP} (default: youden)")
    return p


def _check_out_dir(out: Path, folder: Path, overwrite: bool) -> None:
    from .core.site.evaluation import EvaluationError

    if out.resolve() == folder.resolve() or folder.resolve() in out.resolve().parents:
        raise EvaluationError(f"{out}: is inside the labelled folder; write the report elsewhere (the folder is never modified)")
    if (out / "metrics.json").exists() and not overwrite:
        raise EvaluationError(f"{out}: already holds an evaluation; choose another folder or pass --overwrite")


def _score(args: argparse.Namespace, min_per_class: int = 1):
    from .cli import _progress_bar
    from .core.model.checkpoint import load_model
    from .core.site.evaluation import read_labelled_folder, score_folder
    from .core.batch.inference import pick_device

    device = pick_device(args.device)
    model = load_model(args.model, device="cpu")
    samples = read_labelled_folder(args.folder, model.class_names, min_per_class)
    bar = _progress_bar(len(samples))
    cancel = threading.Event()
    try:
        scores = score_folder(model, samples, args.folder, device, args.batch_size, cancel,
                              progress=lambda done, total: bar.update(done - bar.n))
    finally:
        cancel.set()
        bar.close()
    return model, scores


def evaluate(args: argparse.Namespace) -> int:
    """``cxrviewer evaluate``: write metrics.json and plots; print the headline figures."""
    from .core.site.evaluation import evaluation_metrics, faithfulness_on_folder, write_evaluation
    from .core.batch.inference import pick_device

    out = Path(args.out)
    _check_out_dir(out, Path(args.folder), args.overwrite)
    model, scores = _score(args)
    m = evaluation_metrics(scores, model.threshold, model.positive_index)
    if args.faithfulness_images:
        print(f"heat-map faithfulness on up to {args.faithfulness_images} images...", file=sys.stderr)
        m["faithfulness"] = faithfulness_on_folder(model, scores, args.faithfulness_images, pick_device(args.device))
    write_evaluation(out, scores, m)
    print(_headline(m) + f" -> {out}")
    if m.get("faithfulness"):
        print(_faithfulness_line(m["faithfulness"]))
    return 0


def calibrate(args: argparse.Namespace) -> int:
    """``cxrviewer calibrate``: refit the operating point on FOLDER and write a new model file."""
    from .core.site.calibration import MIN_PER_CLASS, fit_calibration, parse_rule, write_calibrated
    from .core.model.checkpoint import default_model_path, read_header
    from .core.site.evaluation import EvaluationError, write_evaluation
    from .core.model.model_update import check_output

    try:
        parse_rule(args.rule)
    except ValueError as e:
        raise EvaluationError(str(e)) from None
    source = Path(args.model) if args.model else default_model_path()
    args.model = source
    check_output(source, args.out, args.overwrite)
    report = Path(args.out).with_name(Path(args.out).stem + "_calibration")
    _check_out_dir(report, Path(args.folder), args.overwrite)
    model, scores = _score(args, MIN_PER_CLASS)
    cal = fit_calibration(scores, read_header(source), args.rule)
    path = write_calibrated(cal, scores, source, args.out, args.overwrite)
    scores.probs = cal.probs
    write_evaluation(report, scores, cal.after, marks={"before": cal.before.get("threshold"), f"after ({args.rule})": cal.threshold})
    print(f"before: {_headline(cal.before)}")
    print(f"after:  {_headline(cal.after)}")
    print(f"wrote {path} (weights unchanged) and {report}/")
    return 0


def _headline(m: dict) -> str:
    parts = [f"{m['n']} images", f"AUROC {_f(m.get('auroc'))}"]
    if m.get("threshold") is not None:
        parts += [f"threshold {m['threshold']:.4f}", f"sensitivity {_f(m.get('sensitivity'))}",
                  f"specificity {_f(m.get('specificity'))}"]
    parts += [f"accuracy {_f(m.get('accuracy'))}", f"in scope {100 * m['in_scope_rate']:.1f}%"]
    return ", ".join(parts)


def _faithfulness_line(f: dict) -> str:
    """One line: deletion / insertion AUCs (mean fill) of the evidence map against its floors and Grad-CAM, and
    how many comparisons with the floors (both fills) each map wins and loses."""
    from .core.explain.audit import tally_words

    parts = [f"{name} {row['deletion_mean']:.3f}/{row['insertion_mean']:.3f}" for name, row in f["mean"].items()]
    tally = "; ".join(tally_words(f))
    return (f"faithfulness on {f['n']} images, deletion/insertion AUC with mean fill (lower/higher is better): "
            + ", ".join(parts) + (f"; with both fills, beyond chance: {tally}" if tally else ""))


def _f(v) -> str:
    return "n/a" if v is None or v != v else f"{v:.3f}"
