"""Help > About: the model card (data, metrics, provenance) and the intended-use notice."""

from __future__ import annotations

import html
from pathlib import Path

NOTICE = ("For research and education only. cxrviewer is not a medical device and must not be used "
          "for diagnosis or treatment decisions.")
_HIDDEN = {"format_version", "mean", "std", "file", "class_names", "metrics", "cam_range"}


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    return str(v)


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _rows(items) -> str:
    return "".join(f"<tr><td style='color:#8a8f98'>{html.escape(str(k))}</td>"
                   f"<td>&nbsp;{html.escape(_short(_fmt(v)))}</td></tr>" for k, v in items)


def _flatten(metrics, prefix: str = ""):
    for k, v in metrics.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k} / ")
        elif isinstance(v, (int, float, str)) or (isinstance(v, list) and len(v) <= 4):
            yield f"{prefix}{k}", v


def about_html(model, path: Path | None, device, version: str) -> str:
    """Rich text for the About box: version, notice, and the active model's card."""
    parts = [f"<h2>cxrviewer {html.escape(version)}</h2>",
             "<p>Review chest radiographs with an AI second reader and its class activation maps.</p>",
             f"<p style='color:#e8833a'><b>{html.escape(NOTICE)}</b></p>"]
    if model is None:
        parts.append("<p>No model is loaded.</p>")
        return "".join(parts)
    meta = model.meta
    basics = [("File", Path(path).name if path else ""), ("Architecture", meta.get("arch")),
              ("Classes", ", ".join(model.class_names)), ("Input", "x".join(map(str, model.input_size))),
              ("Device", device)]
    if model.threshold is not None:
        basics.append(("Threshold", model.threshold))
    if "temperature" in meta:
        basics.append(("Temperature", meta["temperature"]))
    parts.append("<h3>Model card</h3><table>" + _rows([(k, v) for k, v in basics if v not in (None, "")]) + "</table>")
    metrics = meta.get("metrics")
    if isinstance(metrics, dict) and metrics:
        parts.append("<h4>Metrics</h4><table>" + _rows(list(_flatten(metrics))[:24]) + "</table>")
    extra = [(k, v) for k, v in meta.items() if k not in _HIDDEN and k not in {"arch", "input_size", "input_channels",
                                                                              "threshold", "temperature"}]
    if extra:
        parts.append("<h4>Data and provenance</h4><table>" + _rows(extra[:20]) + "</table>")
    return "".join(parts)
