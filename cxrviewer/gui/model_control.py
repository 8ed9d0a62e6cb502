"""The model in the window: loading it (at start, from Model > Load Model..., or by other tools), and the
Model menu's choices (precision, stability check, population policy), each of which classifies again.

:class:`ModelControl` sets ``window.model`` and ``window.model_path`` and tells the widgets that show the model
(results columns, view controls, details panel, status bar). The device is picked, and torch imported, only
when a model first needs it: never before the window's first paint.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject

from ..core.explain.catalog import default_method
from ..core.model.population import NOT_RECORDED
from ..core.paths import default_model_path
from ..core.results.columns import Batch
from . import dialogs
from .details import ModelInfo
from .results_model import NO_MODEL


def audit_texts(audited: dict | None) -> tuple[dict[str, str], str]:
    """The per-method notes and the one-line audit of a model file's explanations ({} and "" without an audit)."""
    if not audited:
        return {}, ""
    from ..core.explain.audit import audit_line, method_notes

    return method_notes(audited), audit_line(audited)


class ModelControl(QObject):
    """Loads models into ``window`` (a :class:`~.main_window.MainWindow`) and keeps its Model menu's choices."""

    def __init__(self, window, device: str | None = None):
        super().__init__(window)
        self.w = window
        self.device_choice, self._device = device, None  # resolved (with torch) when first needed
        self._quiet_load = False
        loader = window.model_loader
        loader.loaded.connect(self._on_loaded)
        loader.failed.connect(self._on_failed)
        loader.cancelled.connect(self._on_cancelled)

    @property
    def device(self):
        """The device models run on (``torch.device``); picked on first use, which imports torch."""
        if self._device is None:
            from ..core.batch.inference import pick_device

            self._device = pick_device(self.device_choice)
        return self._device

    def load_initial(self, path: Path | None) -> None:
        """Load ``path``, else the saved model file, else the installed one; none: say how to choose one."""
        w = self.w
        if path is None:
            saved = w.settings.model_path
            path = saved if saved is not None and saved.is_file() else default_model_path()
        if path is None:
            self.set_model(None, None)
            w.message.show_message("No model installed: choose a model file with Model > Load Model... (Ctrl+M)")
            w.canvas.show_message("No model is installed yet.\nModel > Load Model... (Ctrl+M) to choose one;\n"
                                  "images can still be viewed.")
            w.modelChanged.emit()
            return
        self.load_file(path, quiet=True)

    def choose(self) -> None:
        """Model > Load Model...: ask for a model file and load it."""
        w = self.w
        start = w.model_path.parent if w.model_path else w.settings.last_folder
        path = dialogs.ask_model_file(w, start)
        if path:
            self.load_file(path)

    def load_file(self, path: Path, quiet: bool = False) -> None:
        """Load ``path`` in the background (replacing a load still running; Esc cancels it);
        on failure say why (``quiet``: on the message line, not in a dialog) and keep the current model."""
        self._quiet_load = quiet
        self.w.model_label.setText(f"Loading {Path(path).name}...")
        self.w.model_loader.load(path)
        self.w._update_actions()

    def _on_cancelled(self, _path: Path) -> None:
        self.set_model(self.w.model, self.w.model_path)
        self.w.message.show_message("Model loading cancelled", 5000)

    def _on_loaded(self, path: Path, model) -> None:
        w = self.w
        w.reader.study.threshold = None  # a live threshold belongs to the model it was set on
        self.set_model(model, path)
        w.settings.model_path = path
        w.message.show_message(f"Model loaded: {path.name}", 5000)
        if w.inputs:
            w.runs.reclassify()
        w.modelChanged.emit()

    def _on_failed(self, path: Path, message: str) -> None:
        w = self.w
        self.set_model(w.model, w.model_path)
        if w.model is None and w.results_model.paths:  # the rows that waited for it
            w.results_model.reset_status(NO_MODEL)
            w.batch_status.set_idle(f"{len(w.results_model.paths)} files - no model loaded (Model > Load Model...)")
        text = f"Could not load the model {path.name}:\n{message}"
        if w.model is not None:
            text += f"\n\nStill using {w.model_path.name}."
        if self._quiet_load:
            w.message.show_message(text.replace("\n", " "))
        else:
            dialogs.show_error(w, "Load Model", text)
        w.modelChanged.emit()

    def set_model(self, model, path: Path | None) -> None:
        """Make ``model`` (from ``path``; None: no model) the window's, and show it everywhere."""
        w = self.w
        w.model, w.model_path = model, path
        w.method_maps.clear()
        w.batch = w.reader.live_batch(Batch.of(model))
        names = list(w.batch.class_names)
        w.reader.set_classes(names)
        w.results_model.set_batch(w.batch)
        w.results_view.set_classes(names)
        w.controls.set_classes(names)
        audited = ((model.meta.get("metrics") or {}).get("explanations") if model is not None else None)
        notes, audit_text = audit_texts(audited)
        method, why = default_method(audited)
        if why:
            notes[method] = f"{notes[method]}.\n{why}" if notes.get(method) else why
        w.controls.set_method_notes(notes)
        if w.view.class_name not in names or w.view.method != method:
            w.set_view(replace(w.view, class_name=w.view.class_name if w.view.class_name in names else None,
                               method=method))
        device = str(self.device) if model is not None else ""
        precision = self.precision_text()
        w.model_label.setText(f"Model: {w.batch.model_name}  ·  {self.device.type.upper()}  ·  "
                              f"{precision.split(' ')[0]}" if model else "No model")
        w.model_label.setToolTip(f"Runs in {precision}\nTrained on: {w.batch.intended_for or NOT_RECORDED}" if model else "")
        w.details.set_model(ModelInfo(w.batch, device, precision, audit_text))
        w._update_actions()

    def precision_text(self) -> str:
        """The precision the model runs in here, and why ("" without a model)."""
        if self.w.model is None:
            return ""
        from ..core.model.precision import choose_precision

        choice = choose_precision(self.w.settings.precision, self.device, self.w.model)
        return f"{choice.name} ({choice.reason})"

    def set_precision(self, name: str) -> None:
        """Model > Precision: keep the choice and classify again with it."""
        w = self.w
        if name == w.settings.precision:
            return
        w.settings.precision = name
        for a in w.precision_group.actions():
            a.setChecked(a.text() == name)
        self.set_model(w.model, w.model_path)
        w.message.show_message(f"Precision: {self.precision_text() or name}", 8000)
        if w.model is not None and w.inputs:
            w.runs.reclassify()

    def set_population_refuse(self, on: bool) -> None:
        """Model > Withhold Verdicts Outside the Intended Population: keep the choice and classify again with it."""
        w = self.w
        if on == w.settings.population_refuse:
            return
        w.settings.population_refuse = on
        w.message.show_message("Verdicts outside the intended population are withheld" if on else
                               "Verdicts outside the intended population are shown, flagged", 8000)
        if w.model is not None and w.inputs:
            w.runs.reclassify()

    def set_stability(self, on: bool) -> None:
        """Model > Stability Check: keep the choice; switched on, classify again to fill in the badges."""
        w = self.w
        if on == w.settings.stability:
            return
        w.settings.stability = on
        w.results_view.set_stability_checked(on)
        w.message.show_message("Stability check on" if on else "Stability check off from the next batch", 8000)
        if on and w.model is not None and w.inputs:
            w.runs.reclassify()
