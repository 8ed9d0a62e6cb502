"""The details panel: everything known about the current file and the model that read it.

The result's fields are the core's :func:`~cxrviewer.core.results.columns.detail_columns`, as the CSV
and the table show them.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtWidgets import QTextBrowser, QVBoxLayout, QWidget

from ..core.results.columns import Batch, detail_columns, percent
from ..core.results.file_result import FileResult
from . import theme

_SKIP_META = {"format", "original_size", "decoded_size", "path"}
_SHOWN_ELSEWHERE = {"path", "label", "error", "threshold", "model"}  # title, prediction, error line, Model section


@dataclass
class ModelInfo:
    """What the details panel says about the active model: its batch facts and the device it runs on."""

    batch: Batch = field(default_factory=Batch)
    device: str = ""
    precision: str = ""  # what the forward pass runs in, and why: "bfloat16 (auto: ...)"
    heat_maps: str = ""  # what the model's heat-map audit found, in a line ("" without an audit)


def _label(key) -> str:
    """``body_part`` / ``BodyPartExamined`` -> ``Body part`` / ``Body part examined``."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", str(key)).replace("_", " ").lower()
    text = re.sub(r"\b(uid|lut|voi|dicom)\b", lambda m: m.group(1).upper(), text)
    return text[:1].upper() + text[1:]


def _esc(v) -> str:
    return html.escape(str(v))


def _breakable(name: str) -> str:
    """``name`` escaped, with break chances after ``_ - .`` so a long file name wraps between its parts, not mid-word."""
    return re.sub(r"([_\-.])", "\\1\u200b", _esc(name))


def _size(v) -> str:
    try:
        w, h = v
        return f"{int(w)} x {int(h)} px"
    except (TypeError, ValueError):
        return _esc(v)


class DetailsPanel(QWidget):
    """Read-only HTML summary of one file; call :meth:`show_file` or :meth:`clear`."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.browser = QTextBrowser(self)
        self.browser.setOpenLinks(False)
        self.browser.setObjectName("details")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.browser)
        self.model = ModelInfo()
        self.hidden_keys: frozenset[str] = frozenset()  # meta keys not shown (identifying ones, when anonymised)
        self._last: tuple | None = None  # the last show_file/clear call, redone when the model changes
        self._measurements: tuple[list[str], str] = ([], "")  # labels of the image's measurements, and their unit
        self.clear()

    def set_model(self, info: ModelInfo) -> None:
        """Show ``info`` as the active model (what is on show is redrawn with it)."""
        self.model = info
        if self._last is not None:
            self._last[0](*self._last[1])

    def set_measurements(self, labels: list[str], units: str) -> None:
        """List ``labels`` (the measurements of the file on show) with a line on where their ``units`` come from."""
        self._measurements = (list(labels), units)
        if self._last is not None and self._last[0] == self.show_file:
            self.show_file(*self._last[1])

    def text(self) -> str:
        """The panel as plain text (without the title's break chances)."""
        return self.browser.toPlainText().replace("\u200b", "")

    def clear(self, message: str = "No file selected.") -> None:
        self._last = (self.clear, (message,))
        self.browser.setHtml(f"<p style='color:{theme.MUTED}'>{_esc(message)}</p>{self._model_html()}")

    def show_file(self, path: Path, status: str, result: FileResult | None, image_meta: dict | None = None) -> None:
        self._last = (self.show_file, (path, status, result, image_meta))
        parts = [f"<h3 style='margin-bottom:2px'>{_breakable(Path(path).name)}</h3>",
                 f"<div style='color:{theme.MUTED}; font-size:small'>{_esc(Path(path).parent)}</div>"]
        if result is not None and result.error:
            parts.append(f"<p style='color:{theme.ERROR}'><b>Error:</b> {_esc(result.error)}</p>")
        elif result is not None and result.ok:
            parts.append(self._prediction_html(result))
        else:
            parts.append(f"<p style='color:{theme.MUTED}'>Status: {_esc(status)}</p>")
        if result is not None:
            parts.append(self._result_html(result))
        meta = dict(image_meta or {})  # the image's first (e.g. the window shown), then the result's
        for key, value in (result.meta if result is not None and result.meta else {}).items():
            meta.setdefault(key, value)
        meta = {k: v for k, v in meta.items() if k not in self.hidden_keys}
        parts.append(self._measurements_html())
        parts.append(self._image_html(result, meta))
        parts.append(self._model_html())
        self.browser.setHtml("".join(parts))

    def _prediction_html(self, r: FileResult) -> str:
        positive = self.model.batch.positive
        colour = theme.POSITIVE if positive and r.label == positive else theme.NEGATIVE
        rows = []
        for name, p in sorted(r.probs.items(), key=lambda kv: -kv[1]):
            bar = max(1, round(100 * p))
            bar_colour = theme.POSITIVE if name == positive else theme.PROBABILITY_BAR
            rows.append(
                f"<tr><td nowrap>{_esc(name)}</td><td nowrap align='right'>{percent(p)}</td></tr>"
                f"<tr><td colspan='2'><table cellspacing='0' cellpadding='0' width='100%'><tr>"
                f"<td width='{bar}%' bgcolor='{bar_colour}' height='6'></td><td width='{100 - bar}%'></td>"
                "</tr></table></td></tr>")  # Qt's rich text ignores a lone cell's percentage width
        if r.in_scope is False:
            head = [f"<p style='font-size:large'>Prediction: <b style='color:{theme.ERROR}'>withheld (out of scope)</b></p>",
                    f"<p style='color:{theme.ERROR}'><b>Why:</b> {_esc(r.scope_reason)}</p>",
                    f"<p style='color:{theme.MUTED}'>For audit, the model would say {_esc(r.predicted)}:</p>"]
        else:
            head = [f"<p style='font-size:large'>Prediction: <b style='color:{colour}'>{_esc(r.label)}</b></p>"]
        out = [*head, "<table width='100%' cellspacing='2'>", *rows, "</table>"]
        if r.scope_score is not None:
            out.append(f"<p style='color:{theme.MUTED}'>Scope score {r.scope_score:.2f} (in scope up to the model's "
                       "threshold; lower = closer to its training radiographs)</p>")
        threshold = self.model.batch.threshold
        if threshold is not None and positive:
            out.append(f"<p style='color:{theme.MUTED}'>Decision: {_esc(positive)} when its probability "
                       f"&ge; {threshold:.3f}</p>")
        return "".join(out)

    def _result_html(self, r: FileResult) -> str:
        """The result's columns (as in the CSV), those with a value."""
        batch = self.model.batch
        items = [(c.header, c.text(r, batch)) for c in detail_columns(batch) if c.key not in _SHOWN_ELSEWHERE]
        rows = "".join(f"<tr><td style='color:{theme.MUTED}'>{_esc(k)}</td><td>&nbsp;{_esc(v)}</td></tr>"
                       for k, v in items if v)
        return f"<h4 style='margin-bottom:2px'>Result</h4><table>{rows}</table>" if rows else ""

    def _measurements_html(self) -> str:
        labels, units = self._measurements
        if not labels:
            return ""
        rows = "".join(f"<li>{_esc(t)}</li>" for t in labels)
        return (f"<h4 style='margin-bottom:2px'>Measurements</h4><ol style='margin-top:0'>{rows}</ol>"
                f"<p style='color:{theme.MUTED}; font-size:small'>{_esc(units)}</p>")

    def _image_html(self, r: FileResult | None, meta: dict) -> str:
        items = []
        if r is None and meta.get("format"):  # (else the result's columns show them)
            items.append(("Format", _esc(meta["format"])))
        if meta.get("original_size") or (r is not None and r.image_size):
            items.append(("Size", _size(meta.get("original_size") or r.image_size)))
        for key, value in meta.items():
            if key in _SKIP_META or value is None or (isinstance(value, (str, list, tuple, dict)) and not value):
                continue
            if isinstance(value, dict):
                value = ", ".join(f"{k}: {v}" for k, v in value.items())
            elif isinstance(value, (list, tuple)):
                value = ", ".join(map(str, value))
            items.append((_esc(_label(key)), _esc(value)))
        if not items:
            return ""
        rows = "".join(f"<tr><td style='color:{theme.MUTED}'>{k}</td><td>&nbsp;{v}</td></tr>" for k, v in items)
        return f"<h4 style='margin-bottom:2px'>Image</h4><table>{rows}</table>"

    def _model_html(self) -> str:
        b = self.model.batch
        if not b.model_name:
            return f"<h4 style='margin-bottom:2px'>Model</h4><p style='color:{theme.ERROR}'>No model loaded.</p>"
        rows = [("Model", _esc(b.model_name)), ("Device", _esc(self.model.device)),
                ("Classes", _esc(", ".join(b.class_names)))]
        if b.threshold is not None:
            rows.append(("Threshold", f"{b.threshold:.3f} on P({_esc(b.positive)})"))
        if self.model.precision:
            rows.append(("Precision", _esc(self.model.precision)))
        if self.model.heat_maps:
            rows.append(("Heat maps", _esc(self.model.heat_maps)))
        body = "".join(f"<tr><td style='color:{theme.MUTED}'>{k}</td><td>&nbsp;{v}</td></tr>" for k, v in rows)
        return f"<h4 style='margin-bottom:2px'>Model</h4><table>{body}</table>"
