"""Model card: a Markdown page beside a model file, written from its metadata and report.

``python -m cxrviewer.core.training.model_card MODEL.safetensors`` (re)writes ``MODEL.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..checkpoint import read_header
from .report import report_dir

NOTICE = "For research and education only. Not a medical device; not for diagnosis or treatment decisions."

LIMITATIONS = [
    "", "## Limitations",
    "- Trained on one pediatric dataset (Kermany et al., Cell 2018; Guangzhou Women and Children's Medical Center, "
    "children aged 1-5); adult radiographs, other hospitals and other findings are out of distribution.",
    "- Inputs are resized to a square without keeping the aspect ratio, as the training images were.",
    "- A CAM shows where the evidence for a class lies in this model, not a segmentation of disease.", "",
]


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * float(v):.1f}%"


def _f3(v) -> str:
    return "n/a" if v is None else f"{float(v):.3f}"


def render_model_card(model_path: Path, meta: dict) -> str:
    """Markdown text of the card for ``model_path`` with metadata ``meta``."""
    tr = meta.get("training", {})
    sections = ([f"# Model card: `{model_path.name}`", "", f"> {NOTICE}", ""], _what_it_is(meta, tr),
                _data_and_command(tr), _metrics(meta.get("metrics", {}), tr), _protocol(meta.get("protocol")),
                _plots(report_dir(model_path)), LIMITATIONS)
    return "\n".join(line for section in sections for line in section)


def _what_it_is(meta: dict, tr: dict) -> list[str]:
    rule = (meta.get("protocol") or {}).get("rule") or tr.get("args", {}).get("threshold_rule", "?")
    h, w = meta["input_size"][:2]
    return [
        "## What it is",
        f"- Architecture: torchvision `{meta['arch']}` trunk, global average pooling, one linear layer "
        f"(class activation maps exact: their mean plus the bias is the logit); trained from "
        f"{'ImageNet weights' if tr.get('args', {}).get('pretrained') else 'scratch'}.",
        f"- Input: {meta['input_channels']} channel(s), {h} x {w} px (CAM grid {h // 32} x {w // 32}), "
        f"normalised with mean {meta['mean']} and std {meta['std']}.",
        f"- Classes: {', '.join(meta['class_names'])}" + (f"; positive class `{meta['positive_class']}`." if meta.get("positive_class") else "."),
        "- Decision rule: " + (f"`{meta['positive_class']}` when its calibrated probability >= {meta['threshold']:.4f} "
                                f"(threshold fitted on validation by the `{rule}` rule)"
                                if meta.get("threshold") is not None else "argmax") + ".",
        f"- Calibration: temperature {meta.get('temperature', 1.0):.3f} (fitted on validation by NLL).",
        f"- Fixed CAM display scale (1st-99th percentile of the class-evidence map values on validation, logit units): {meta.get('cam_range')}.",
    ]


def _data_and_command(tr: dict) -> list[str]:
    split = tr.get("split", {})
    patients = (f" ({split.get('val_groups')} of {split.get('groups')} patients, fraction {split.get('val_fraction')}, seed {split.get('seed')},"
                f" patient id = regex `{split.get('patient_pattern')}`; byte-identical files kept on one side)") if split.get("rule") == "patient" else ""
    command = str(tr.get("command", "train_model.py"))
    lines = [
        "", "## Data and split",
        f"- Data folder: `{tr.get('data', '?')}`; images per split and class: `{tr.get('images', {})}`.",
        f"- Validation: {split.get('rule', '?')}-level split{patients}. The checkpoint is chosen by validation AUROC, never by a test set.",
        "", "## Exact command",
        "```", command if command.startswith("python") else f"python {command}", "```",
        f"Trained on `{tr.get('device', '?')}` (world size {tr.get('world_size', 1)}) in {tr.get('seconds', 0) / 60:.0f} min, "
        f"{tr.get('date', '?')}; versions `{tr.get('versions', {})}`.",
    ]
    return lines + ([f"Calibration note: {tr['calibration']}."] if tr.get("calibration") else [])


def _metrics(metrics: dict, tr: dict) -> list[str]:
    lines = [
        "", "## Metrics",
        "Validation metrics are at the shipped threshold, which was fitted on that same validation split (so they are optimistic).",
        "", "| split | n | AUROC | accuracy | sensitivity | specificity | precision | F1 | ECE |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in metrics.items():
        if isinstance(m, dict) and name != "validation_shifted":
            lines.append(f"| {name} | {m.get('n')} | {_f3(m.get('auroc'))} | {_pct(m.get('accuracy'))} | {_f3(m.get('sensitivity'))} | "
                         f"{_f3(m.get('specificity'))} | {_f3(m.get('precision'))} | {_f3(m.get('f1'))} | {_f3(m.get('ece'))} |")
    shifted = metrics.get("validation_shifted")
    if isinstance(shifted, dict) and shifted:
        lines += ["", "Validation images under fixed acquisition shifts, at the same threshold (the `robust` rule "
                  "maximises Youden's J averaged over the clean images and these):", "",
                  "| shift | AUROC | sensitivity | specificity |", "|---|---|---|---|"]
        lines += [f"| {k} | {_f3(v.get('auroc'))} | {_f3(v.get('sensitivity'))} | {_f3(v.get('specificity'))} |"
                  for k, v in shifted.items() if isinstance(v, dict)]
    if "best_epoch" in metrics:
        lines.append(f"\nBest epoch: {metrics['best_epoch']} of {tr.get('args', {}).get('epochs', '?')}.")
    return lines


def _protocol(p: dict | None) -> list[str]:
    """The selection protocol's view of the shipped threshold (``meta["protocol"]``, see :mod:`.operating_point`)."""
    if not isinstance(p, dict) or not isinstance(p.get("families"), dict):
        return []
    clean, score = p.get("clean", {}), p.get("score", {})
    lines = ["", "## Under the selection protocol (docs/selection-protocol.md)",
             f"Threshold {_f3(p.get('threshold'))} by the `{p.get('rule')}` rule. Score {_f3(score.get('score'))} "
             f"(XB {_f3(score.get('XB'))}, M {_f3(score.get('M'))}, W {_f3(score.get('W'))}). Sensitivity and specificity at "
             "the shipped threshold on the validation images under each suite family (mean over its five levels; the "
             "worst level's specificity beside it):", "",
             "| view | sensitivity | specificity | worst-level specificity |", "|---|---|---|---|",
             f"| clean | {_f3(clean.get('sensitivity'))} | {_f3(clean.get('specificity'))} | |"]
    lines += [f"| {fam} | {_f3(v.get('sensitivity'))} | {_f3(v.get('specificity'))} | {_f3(v.get('worst_specificity'))} |"
              for fam, v in p["families"].items()]
    for batch, v in (p.get("cross_batch") or {}).items():
        lines.append(f"\nCross-batch: a model of the same recipe trained without the {batch} NORMAL images keeps specificity "
                     f"{_f3(v.get('spec95'))} on them at its clean 95%-sensitivity threshold (AUROC {_f3(v.get('auroc'))}).")
    return lines


def _plots(report: Path) -> list[str]:
    if not report.is_dir():
        return []
    return ["", "## Plots", ""] + [f"![{png.stem}]({report.name}/{png.name})" for png in sorted(report.glob("*.png"))]


def write_model_card(model_path: str | Path) -> Path:
    """Write ``<model>.md`` beside ``model_path`` and return its path."""
    model_path = Path(model_path)
    out = model_path.with_suffix(".md")
    out.write_text(render_model_card(model_path, read_header(model_path)), encoding="utf-8")
    return out


if __name__ == "__main__":
    for arg in sys.argv[1:] or sys.exit("usage: python -m cxrviewer.core.training.model_card MODEL.safetensors"):
        print(write_model_card(arg))
