"""Model card: a Markdown page beside a model file, written from its metadata and report.

``python -m cxrviewer.core.training.model_card MODEL.safetensors`` (re)writes ``MODEL.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..explain.audit import default_method, floor_tallies
from ..model import scope as S
from ..model.checkpoint import read_header
from . import robustness
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
                _data_and_command(tr), _metrics(meta.get("metrics", {}), tr, meta.get("protocol")), _protocol(meta.get("protocol")),
                _explanations((meta.get("metrics") or {}).get("explanations")),
                _plots(report_dir(model_path)), _scope(meta.get("scope")), _site_calibration(meta.get("site_calibration")),
                LIMITATIONS)
    return "\n".join(line for section in sections for line in section)


_FRAMED = "a constant frame (padding, borders, shutters) cropped before resizing, then "
_EQUALIZED = {True: "histogram-equalised per image, then ", "clahe": "equalised per image by CLAHE (8 x 8 regions, clip 2), then "}


def _what_it_is(meta: dict, tr: dict) -> list[str]:
    rule = (meta.get("protocol") or {}).get("rule") or tr.get("args", {}).get("threshold_rule", "?")
    h, w = meta["input_size"][:2]
    stride = 16 if meta.get("dilate_last") else 32
    return [
        "## What it is",
        f"- Architecture: torchvision `{meta['arch']}` trunk, global average pooling, one linear layer "
        f"(class activation maps exact: their mean plus the bias is the logit); trained from "
        f"{'ImageNet weights' if tr.get('args', {}).get('pretrained') else 'scratch'}.",
        f"- Input: {meta['input_channels']} channel(s), {h} x {w} px (CAM grid {h // stride} x {w // stride}"
        f"{', last stage dilated' if stride == 16 else ''}), "
        f"{_FRAMED if meta.get('frame_normalize') else ''}{_EQUALIZED.get(meta.get('equalize'), '')}"
        f"normalised with mean {meta['mean']} and std {meta['std']}.",
        f"- Classes: {', '.join(meta['class_names'])}" + (f"; positive class `{meta['positive_class']}`." if meta.get("positive_class") else "."),
        "- Decision rule: " + (f"`{meta.get('positive_class', meta['class_names'][-1])}` when its calibrated probability >= {meta['threshold']:.4f} "
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
        "```", _python(command), "```",
        f"Trained on `{tr.get('device', '?')}` (world size {tr.get('world_size', 1)}) in {tr.get('seconds', 0) / 60:.0f} min, "
        f"{tr.get('date', '?')}; versions `{tr.get('versions', {})}`.",
    ]
    return lines + ([f"Calibration note: {tr['calibration']}."] if tr.get("calibration") else [])


def _python(command: str) -> str:
    """A recorded command as one types it (the trainer records its script and arguments without ``python``)."""
    return command if command.startswith("python") else f"python {command}"


def _metrics(metrics: dict, tr: dict, protocol: dict | None = None) -> list[str]:
    fitted = ("Validation metrics are at the shipped threshold, which was fitted on that same validation split (so they are optimistic)."
              if not protocol else
              "The `validation` row is at the shipped threshold, which the protocol rule set on that same validation split "
              "and its corrupted views (so it is optimistic); a row named after the trainer's threshold is at the threshold "
              "the trainer had fitted before.")
    lines = [
        "", "## Metrics", fitted,
        "", "| split | n | AUROC | accuracy | sensitivity | specificity | precision | F1 | ECE |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in metrics.items():
        if isinstance(m, dict) and name not in ("validation_shifted", "explanations"):
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
    if isinstance(p.get("robustness"), dict):
        lines += ["", "Robustness constraints of the amended protocol (section 7, amendment 2): this model "
                  + robustness.words(p["robustness"]) + ".", "", *robustness.specificity_table(p["robustness"])]
    if not p.get("cross_batch"):
        lines.append("\nNo cross-batch model was scored with this file; the study table (docs/recipe-study.md) has its "
                     "recipe's cross-batch runs, if any.")
    for batch, v in (p.get("cross_batch") or {}).items():
        lines.append(f"\nCross-batch: a model of the same recipe trained without the {batch} NORMAL images keeps specificity "
                     f"{_f3(v.get('spec95'))} on them at its clean 95%-sensitivity threshold (AUROC {_f3(v.get('auroc'))}).")
        if v.get("command"):
            lines += ["That model's training command:", "```", _python(v["command"]), "```"]
    if p.get("command"):
        lines += ["", "This section and the threshold were written by (run from the repository root, next to the data):",
                  "```", p["command"], "```"]
    return lines


_SCORES = ("deletion_mean", "insertion_mean", "deletion_blur", "insertion_blur")
_MAP_NAMES = {"evidence": "evidence map (what the viewer draws)", "gradcam": "Grad-CAM on layer3 (peer)",
              "random": "random smooth map (floor)", "prior": "centred Gaussian prior (floor)"}


def _explanations(ex: dict | None) -> list[str]:
    """The heat-map audit: faithfulness against floors, the sanity check, the per-verdict checks."""
    if not isinstance(ex, dict) or "faithfulness" not in ex:
        return []
    fa, sanity, checks = ex["faithfulness"], ex.get("sanity", {}), ex.get("checks", {})
    lines = ["", "## Heat maps: can they be trusted?",
             f"Deletion and insertion (Petsiuk et al. 2018) on {fa.get('n')} validation images, half of each predicted class: "
             f"the pixels the map ranks highest are removed (or put back) first, in {fa.get('steps')} steps, replaced by "
             "the image's mean grey or by a blur of it; the score is the area under the curve of the calibrated "
             "probability of the predicted class. Deletion: lower is better. Insertion: higher is better.", "",
             "| map | deletion, mean fill | insertion, mean fill | deletion, blur fill | insertion, blur fill |",
             "|---|---:|---:|---:|---:|"]
    for name, row in fa.get("mean", {}).items():
        lines.append(f"| {_MAP_NAMES.get(name, name)} | " + " | ".join(_f3(row.get(k)) for k in _SCORES) + " |")
    by_class = fa.get("by_predicted_class") or {}
    if by_class:
        lines += ["", "The same by predicted class (the class whose probability is followed):", "",
                  "| predicted class (images) | map | deletion, mean fill | insertion, mean fill | deletion, blur fill | insertion, blur fill |",
                  "|---|---|---:|---:|---:|---:|"]
        lines += [f"| {cls} ({row.get('n')}) | {_MAP_NAMES.get(name, name).split(' (')[0]} | "
                  + " | ".join(_f3(scores.get(k)) for k in _SCORES) + " |"
                  for cls, row in by_class.items() for name, scores in row.items() if isinstance(scores, dict)]
    lines += ["", _margin_words(fa.get("margins", {}))]
    if fa.get("margins_gradcam"):
        lines += ["", _margin_words(fa["margins_gradcam"], "Grad-CAM on layer3 (the viewer's second map)")]
    lines += _tally_and_flat_classes(fa)
    method, why = default_method(ex)
    lines += ["", "Default map in the viewer (protocol amendment 2: judged on mean-fill deletion and insertion): "
              + (_MAP_NAMES.get(method, method) + (f". {why[0].upper()}{why[1:]}." if why else
                 ": it beats both floors beyond chance on mean-fill deletion and insertion."))]
    steps = sanity.get("steps", [])
    if steps:
        ok = (sanity.get("passed") or {}).get("evidence")
        lines += ["", f"Sanity check (cascading randomization, Adebayo et al. 2018) on {sanity.get('n')} images: the weights "
                  "are re-initialised from the classifier down to the first convolution, and the maps compared with the "
                  "trained model's by Spearman rank correlation (mean over images; the check passes when the mean "
                  f"absolute correlation stays below {sanity.get('limit')} at every step).", "",
                  "| randomised down to | evidence map | Grad-CAM |", "|---|---:|---:|"]
        lines += [f"| {r['step']} | {r['evidence']['mean']:+.2f} (abs {r['evidence']['mean_abs']:.2f}) | "
                  f"{r.get('gradcam', {}).get('mean', float('nan')):+.2f} |" for r in steps]
        lines += ["", f"**Sanity check: {'PASSED' if ok else 'FAILED'}.** " + (
            "The maps change once the learned weights are gone: they show what this model learned, not just the image's edges."
            if ok else "The maps barely change when the learned weights are destroyed: they show the image or the "
            "architecture, not this model's reasons. Do not read them as the model's evidence.")]
    if checks:
        lines += ["", f"Per-verdict checks on all {checks.get('n')} validation images: evidence outside the chest above "
                  f"{checks.get('evidence_outside_threshold')} of the positive mass is flagged "
                  + (f"({_pct(checks.get('evidence_flag_rate'))} of validation images); " if "frame_flip_rate" not in checks else
                     f"together with the frame test (the label changes when a black frame is cropped away: "
                     f"{_pct(checks.get('frame_flip_rate'))}; {_pct(checks.get('framed_rate'))} of the images have such a frame), "
                     f"{_pct(checks.get('evidence_flag_rate'))} of validation images are flagged; ")
                  + "the stability badge (label flips, or "
                  f"log-odds move by more than 1, under a 10% black border or a blur of sigma 2 px) fires on "
                  f"{_pct(checks.get('unstable_rate'))} (label flips: border {_pct((checks.get('flip_rate') or {}).get('border'))}, "
                  f"blur {_pct((checks.get('flip_rate') or {}).get('blur'))}); 'no positive evidence' on "
                  f"{_pct(checks.get('no_positive_evidence_rate'))}."]
    return lines


def _score_words(key: str) -> str:
    return key.replace("_", " with ") + " fill"


def _tally_and_flat_classes(fa: dict) -> list[str]:
    """The comparisons with the floors counted per audited map, and the predicted classes on whose images
    no map scores apart from the floors (there deletion and insertion cannot judge a map)."""
    names = {"evidence": "the evidence map", "gradcam": "Grad-CAM on layer3"}
    counts = [f"{names[name]} on {better} of {total}" + (f" (worse on {worse})" if worse else "")
              for name, (better, worse, total) in floor_tallies(fa).items()]
    lines = ["", f"**Against the two floors (2 floors x 4 scores = 8 comparisons), better beyond chance: "
                 f"{'; '.join(counts)}.**"] if counts else []
    spreads = {}
    for cls, row in (fa.get("by_predicted_class") or {}).items():
        maps = [m for m in row.values() if isinstance(m, dict)]
        if maps:
            spreads[cls] = max(max(m[k] for m in maps) - min(m[k] for m in maps) for k in maps[0])
    others = [c for c, v in spreads.items() if v >= FLAT_SPREAD]
    for cls, spread in spreads.items():
        if spread < FLAT_SPREAD:
            n = (fa["by_predicted_class"][cls] or {}).get("n")
            lines += ["", f"For {cls} calls ({n} images) every map, the floors included, scores within {spread:.3f} of "
                      "one another on every column: removing or restoring any region barely moves the probability, so "
                      "these scores cannot tell a faithful map from a guess on such images"
                      + (f"; the margins above come from the {', '.join(others)} calls." if others else ".")]
    return lines


#: Largest spread of scores across the maps (floors included) at which a class's calls cannot judge a map.
FLAT_SPREAD = 0.05


def _margin_words(margins: dict, who: str = "the evidence map") -> str:
    """One sentence per floor: by how much ``who`` beats it (paired mean, 95% interval)."""
    words = []
    for floor, label in (("random", "the random map"), ("prior", "the centred prior")):
        row = margins.get(floor)
        if not row:
            continue
        parts = [f"{k.replace('_', ', ')} fill {v[0]:+.3f} ± {v[1]:.3f}" for k, v in row.items()]
        words.append(f"Margin of {who} over {label} (positive = better; paired mean ± 95% interval): "
                     + "; ".join(parts) + ".")
    for floor, label in (("random", "the random map"), ("prior", "the centred prior")):
        row = margins.get(floor) or {}
        wins = [_score_words(k) for k, (m, h) in row.items() if m - h > 0]
        losses = [_score_words(k) for k, (m, h) in row.items() if m + h < 0]
        if row:
            words.append(f"In plain words, {who} against {label}: better beyond chance on {', '.join(wins) or 'no score'}"
                         + (f"; worse on {', '.join(losses)}" if losses else "")
                         + "; elsewhere no better than this guess that knows nothing of the image.")
    return " ".join(words)


def _plots(report: Path) -> list[str]:
    if not report.is_dir():
        return []
    return ["", "## Plots", ""] + [f"![{png.stem}]({report.name}/{png.name})" for png in sorted(report.glob("*.png"))]


def _scope(scope) -> list[str]:
    if not isinstance(scope, dict):
        return []
    sep = scope.get("separation") or {}
    lines = ["", "## Scope: when the model does not answer",
             "An image is out of scope (label `OUT_OF_SCOPE`, probabilities kept) when a DICOM's Modality is not CR or DX, "
             f"its Body Part Examined is not the chest, or it is multi-frame; when an image is smaller than {S.MIN_SIDE} px a side, "
             f"has an aspect ratio beyond {S.MAX_ASPECT}:1, is blank, or is a colour picture; or when its scope score exceeds "
             f"the threshold (for a DICOM whose header declares a chest radiograph: {S.HEADER_MARGIN} x the threshold).",
             f"- Scope score: Mahalanobis distance of the pooled features to the nearest class mean (shared covariance: "
             f"rank {scope.get('rank', '?')} plus an isotropic rest), fitted on {scope.get('fitted_on', '?')}; in scope when the "
             f"score is <= {_f3(scope.get('threshold'))}, the {_pct(scope.get('quantile'))} quantile over "
             f"{scope.get('threshold_on', 'validation')}."]
    rates = scope.get("validation_in_scope")
    if isinstance(rates, dict) and rates:
        lines.append("- Validation in scope: " + ", ".join(f"{k} {_pct(v)}" for k, v in rates.items()) + ".")
    if sep:
        lines.append(f"- Separation: AUROC {float(sep.get('auroc', 'nan')):.4f} of validation against {sep.get('n_out_of_scope', '?')} "
                     f"out-of-scope images ({sep.get('out_of_scope_set', '?')}); {_pct(sep.get('out_of_scope_caught'))} of "
                     f"them caught by the score, {_pct(sep.get('out_of_scope_caught_with_rules'))} with the rules "
                     "(the energy score separated far worse: `docs/scope_separation.md`).")
    return lines


def _site_calibration(site) -> list[str]:
    if not isinstance(site, dict):
        return []
    prev = site.get("previous", {})
    lines = ["", "## Site calibration",
             f"Calibrated on the labelled folder `{site.get('folder')}` ({site.get('images')}) on {site.get('date')} "
             f"with the rule `{site.get('rule')}`, from `{site.get('source_model')}` (weights unchanged, SHA-256 of the "
             f"tensor data `{str(site.get('weights_sha256', '?'))[:16]}...`). Previous threshold {_f3(prev.get('threshold'))}, "
             f"temperature {_f3(prev.get('temperature'))}, scope threshold {_f3(prev.get('scope_threshold'))}.", "",
             "| on the site's folder | threshold | AUROC | sensitivity | specificity | accuracy | ECE | in scope |",
             "|---|---|---|---|---|---|---|---|"]
    for name, key in (("before", "metrics_before"), ("after", "metrics")):
        m = site.get(key) or {}
        lines.append(f"| {name} | {_f3(m.get('threshold'))} | {_f3(m.get('auroc'))} | {_f3(m.get('sensitivity'))} | "
                     f"{_f3(m.get('specificity'))} | {_pct(m.get('accuracy'))} | {_f3(m.get('ece'))} | {_pct(m.get('in_scope_rate'))} |")
    return lines + ["These were measured on the folder the operating point was fitted on (optimistic)."]


def write_model_card(model_path: str | Path) -> Path:
    """Write ``<model>.md`` beside ``model_path`` and return its path."""
    model_path = Path(model_path)
    out = model_path.with_suffix(".md")
    out.write_text(render_model_card(model_path, read_header(model_path)), encoding="utf-8")
    return out


if __name__ == "__main__":
    for arg in sys.argv[1:] or sys.exit("usage: python -m cxrviewer.core.training.model_card MODEL.safetensors"):
        print(write_model_card(arg))
