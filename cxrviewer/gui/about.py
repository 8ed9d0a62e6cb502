"""Help > About: the model card (data, metrics, provenance) and the intended-use notice."""

from __future__ import annotations

import html
from pathlib import Path

from ..core.model.population import KEY as INTENDED_USE
from ..core.model.population import NOT_RECORDED, IntendedUse
from . import theme

NOTICE = ("For research and education only. cxrviewer is not a medical device and must not be used "
          "for diagnosis or treatment decisions.")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    return str(v)


def _short(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _rows(items) -> str:
    return "".join(f"<tr><td style='color:{theme.MUTED}'>{html.escape(str(k))}</td>"
                   f"<td>&nbsp;{html.escape(_short(_fmt(v)))}</td></tr>" for k, v in items)


_KEY_METRICS = (("auroc", "AUROC"), ("accuracy", "accuracy"), ("sensitivity", "sensitivity"),
                ("specificity", "specificity"), ("ece", "ECE"))


def _metric_rows(metrics: dict) -> list[tuple[str, str]]:
    """One line per evaluated split (AUROC, accuracy, sensitivity, specificity, ECE), then the
    worst case over the shifted validation views and the best epoch, when the file has them."""
    rows = []
    for split, m in metrics.items():
        if isinstance(m, dict) and "n" in m:
            values = [f"{label} {m[k]:.3f}" for k, label in _KEY_METRICS if isinstance(m.get(k), (int, float))]
            rows.append((f"{split} (n = {m['n']})", ", ".join(values)))
    shifted = metrics.get("validation_shifted")
    if isinstance(shifted, dict) and shifted:
        views = [v for v in shifted.values() if isinstance(v, dict)]
        worst = {k: min(v[k] for v in views if isinstance(v.get(k), (int, float))) for k in ("sensitivity", "specificity")
                 if any(isinstance(v.get(k), (int, float)) for v in views)}
        rows.append((f"validation, {len(views)} acquisition shifts",
                     ", ".join(f"{k} >= {x:.3f}" for k, x in worst.items())))
    if "best_epoch" in metrics:
        rows.append(("best epoch", metrics["best_epoch"]))
    return rows


def _training_rows(tr: dict) -> list[tuple[str, object]]:
    """Provenance from the model file: data, images per split and class, split rule, run, command."""
    rows = []
    if tr.get("data"):
        rows.append(("Data", tr["data"]))
    for split, counts in (tr.get("images") or {}).items():
        if isinstance(counts, dict):
            rows.append((f"Images, {split}", ", ".join(f"{k} {v}" for k, v in counts.items())))
    split = tr.get("split")
    if isinstance(split, dict) and split.get("rule"):
        text = f"{split['rule']}-level"
        if split.get("val_groups") and split.get("groups"):
            text += f", {split['val_groups']} of {split['groups']} patients held out"
        rows.append(("Validation split", text))
    run = [str(tr[k]) for k in ("date", "device") if tr.get(k)]
    if isinstance(tr.get("seconds"), (int, float)):
        run.append(f"{tr['seconds'] / 60:.0f} min")
    if run:
        rows.append(("Trained", ", ".join(run)))
    if tr.get("command"):
        rows.append(("Command", tr["command"]))
    if tr.get("calibration"):
        rows.append(("Calibration", tr["calibration"]))
    return rows


def _intended_use_html(model) -> str:
    """Whom the model is for and what each class means (or that the file does not say)."""
    use = IntendedUse.from_meta(model.meta)
    if use is None:
        return f"<h4>Intended use</h4><p style='color:{theme.ERROR}'>{html.escape(NOT_RECORDED.capitalize())}: " \
               "every image's population is unknown.</p>"
    rows = [("Trained on", use.population_words())]
    rows += [(c, use.meaning(c)) for c in model.class_names if use.meaning(c)]
    body = "".join(f"<tr><td style='color:{theme.MUTED}'>{html.escape(k)}</td><td>&nbsp;{html.escape(v)}</td></tr>"
                   for k, v in rows)
    note = (f"<p style='color:{theme.MUTED}'>Images whose DICOM age is outside {html.escape(use.age_words())} are "
            "flagged (Model &gt; Withhold Verdicts Outside the Intended Population withholds their verdicts).</p>"
            if use.age_years else "")
    return f"<h4>Intended use</h4><table>{body}</table>{note}"


def _scope_rows(scope) -> list[tuple[str, object]]:
    """The out-of-scope check in words (its fitted arrays are not shown)."""
    if not isinstance(scope, dict) or "threshold" not in scope:
        return []
    text = f"{scope.get('method', 'distance')} distance on {scope.get('features', '')} features".replace(" on  ", " on ")
    if isinstance(scope.get("threshold"), (int, float)):
        text += f", out of scope above {scope['threshold']:.3g}"
    if scope.get("fitted_on"):
        text += f"; fitted on {scope['fitted_on']}"
    return [("Scope check", text)]


def _protocol_rows(protocol) -> list[tuple[str, object]]:
    """The robustness protocol's summary: clean sensitivity and specificity, and the worst acquisition family."""
    if not isinstance(protocol, dict):
        return []
    rows = []
    clean = protocol.get("clean")
    if isinstance(clean, dict):
        rows.append(("Protocol, clean", ", ".join(f"{k} {v:.3f}" for k, v in clean.items() if isinstance(v, (int, float)))))
    families = {k: v for k, v in (protocol.get("families") or {}).items() if isinstance(v, dict)}
    scored = [(v.get("specificity"), k) for k, v in families.items() if isinstance(v.get("specificity"), (int, float))]
    if scored:
        spec, name = min(scored)
        rows.append((f"Protocol, {len(families)} shifts", f"lowest specificity {spec:.3f} ({name})"))
    return rows


def _parity_rows(parity) -> list[tuple[str, object]]:
    if not isinstance(parity, dict):
        return []
    parts = [f"{k} {100 * v['agreement']:.1f}%" for k, v in parity.items()
             if isinstance(v, dict) and isinstance(v.get("agreement"), (int, float))]
    return [("Label agreement with float32", ", ".join(parts))] if parts else []


def _readable(value) -> bool:
    """A value a person can read in a line: a number, or a short text (no arrays, no encoded blobs)."""
    if isinstance(value, (bool, int, float)):
        return True
    if not isinstance(value, str) or not value:
        return False
    return len(value) <= 40 or (len(value) <= 160 and " " in value)


_SHOWN = {"format_version", "mean", "std", "file", "class_names", "metrics", "cam_range", "arch", "input_size",
          "input_channels", "threshold", "temperature", "training", "scope", "protocol", "precision_parity",
          "positive_class", "evidence_outside_threshold", INTENDED_USE}


def about_html(model, path: Path | None, device, version: str) -> str:
    """Rich text for the About box: version, notice, and the active model's card in words (no raw metadata:
    fitted arrays, encoded tensors and nested records stay in the model file)."""
    parts = [f"<h2>cxrviewer {html.escape(version)}</h2>",
             "<p>Review chest radiographs with an AI second reader and its class activation maps. "
             "Help &gt; Keyboard Shortcuts lists the keys.</p>",
             f"<p style='color:{theme.POSITIVE}'><b>{html.escape(NOTICE)}</b></p>"]
    if model is None:
        parts.append("<p>No model is loaded.</p>")
        return "".join(parts)
    meta = model.meta
    size = "x".join(map(str, model.input_size))
    channels = meta.get("input_channels")
    basics = [("Model", getattr(model, "display_name", "")), ("File", Path(path).name if path else ""),
              ("Architecture", meta.get("arch")), ("Classes", ", ".join(model.class_names)),
              ("Input", f"{size} px" + (f", {channels} channel{'s' if channels != 1 else ''}" if channels else "")),
              ("Device", device)]
    if model.threshold is not None:
        positive = meta.get("positive_class") or model.class_names[-1]
        basics.append(("Threshold", f"{model.threshold:.3f} on P({positive})"))
    if isinstance(meta.get("temperature"), (int, float)):
        basics.append(("Temperature", meta["temperature"]))
    parts.append("<h3>Model card</h3><table>" + _rows([(k, v) for k, v in basics if v not in (None, "")]) + "</table>")
    parts.append(_intended_use_html(model))
    metrics = meta.get("metrics")
    if isinstance(metrics, dict) and metrics:
        parts.append("<h4>Metrics</h4><table>" + _rows(_metric_rows(metrics)) + "</table>")
    checks = _scope_rows(meta.get("scope")) + _protocol_rows(meta.get("protocol")) + _parity_rows(meta.get("precision_parity"))
    if isinstance(meta.get("evidence_outside_threshold"), (int, float)):
        checks.append(("Evidence outside the chest", f"flagged above a share of {meta['evidence_outside_threshold']:.3f}"))
    if checks:
        parts.append("<h4>Checks</h4><table>" + _rows(checks) + "</table>")
    extra = [(str(k).replace("_", " ").capitalize(), v) for k, v in meta.items() if k not in _SHOWN and _readable(v)]
    if isinstance(meta.get("training"), dict):
        extra = _training_rows(meta["training"]) + extra
    if extra:
        parts.append("<h4>Data and provenance</h4><table>" + _rows(extra[:20]) + "</table>")
    return "".join(parts)


ABOUT_MAX_HEIGHT = 600


def about_dialog(parent, title: str, text: str):
    """The About box: ``text`` (rich) in a scrolling view with an OK button, never taller than
    :data:`ABOUT_MAX_HEIGHT` px (nor the screen), so its button is always on screen."""
    from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout

    box = QDialog(parent)
    box.setWindowTitle(title)
    view = QTextBrowser(box)
    view.setOpenExternalLinks(False)
    view.setHtml(text)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok, parent=box)
    buttons.accepted.connect(box.accept)
    layout = QVBoxLayout(box)
    layout.addWidget(view, 1)
    layout.addWidget(buttons)
    screen = (parent.screen() if parent is not None else None) or box.screen()
    limit = ABOUT_MAX_HEIGHT if screen is None else min(ABOUT_MAX_HEIGHT, screen.availableGeometry().height() - 60)
    view.document().setTextWidth(520)
    wanted = int(view.document().size().height()) + buttons.sizeHint().height() + 60
    box.resize(560, max(240, min(limit, wanted)))
    box.setMaximumHeight(max(240, limit))
    return box
