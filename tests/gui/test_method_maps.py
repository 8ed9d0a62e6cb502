"""The second explanation methods in the viewer: on demand, off the GUI thread, never drawn on the wrong image."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from cxrviewer.core.explain import GradCAM
from cxrviewer.core.explain.on_demand import explain_image
from cxrviewer.gui import method_maps as method_maps_module
from cxrviewer.gui.display import method_overlay

from tests.gui.helpers import open_and_wait


@pytest.fixture
def reviewed(qtbot, window, image_folder):
    """The window after a finished batch, showing row 2 (whose maps have positive evidence for both classes)."""
    open_and_wait(qtbot, window, [image_folder])
    with qtbot.waitSignal(window.imageShown, timeout=5000):
        window.results_view.select_source_row(2)
    return window


def choose(window, method):
    window.controls.method_box.setCurrentIndex(window.controls.method_box.findData(method))


@pytest.fixture
def calls(monkeypatch):
    """Every on-demand computation, as (file name, method), in the order they started."""
    seen = []
    original = method_maps_module.explain_image

    def counted(model, pixels, class_name, method, progress=None):
        seen.append((threading.current_thread() is threading.main_thread(), method.name))
        return original(model, pixels, class_name, method, progress)

    monkeypatch.setattr(method_maps_module, "explain_image", counted)
    return seen


def test_gradcam_is_computed_off_the_gui_thread_cached_and_labelled_with_its_units(qtbot, reviewed, calls):
    w = reviewed
    evidence_bar = w.canvas.cax.get_ylabel()
    assert "logit units" in evidence_bar
    with qtbot.waitSignal(w.method_maps.ready, timeout=10000):
        choose(w, "gradcam")
        assert w.canvas.note.startswith("computing Grad-CAM")  # no stale colours while it runs
        assert w.map_progress.isVisible()
    assert calls == [(False, "gradcam")]
    assert not w.map_progress.isVisible() and w.canvas.note == ""
    bar = w.canvas.cax.get_ylabel()
    assert "Grad-CAM" in bar and GradCAM.units in bar and w.current_result().label in bar
    assert w.canvas._overlay.name == "Grad-CAM"  # the hover readout names the map it reads
    r, image = w.current_result(), w.loader.cached(w.current_path())
    want = explain_image(w.model, image.pixels, r.label, GradCAM())
    assert np.allclose(w.canvas._overlay.cam, want.grid, atol=1e-5)
    assert w.canvas._overlay.cam.shape == want.grid.shape != r.cams.shape[-2:]  # layer3: twice the CAM's grid
    choose(w, "evidence")
    assert w.canvas.cax.get_ylabel() == evidence_bar
    choose(w, "gradcam")  # cached: drawn at once, not computed again
    assert calls == [(False, "gradcam")] and "Grad-CAM" in w.canvas.cax.get_ylabel()


def test_occlusion_shows_its_units_in_log_odds_drop(qtbot, reviewed):
    w = reviewed
    with qtbot.waitSignal(w.method_maps.ready, timeout=20000):
        choose(w, "occlusion")
    assert "log-odds drop" in w.canvas.cax.get_ylabel() and "Occlusion" in w.canvas.cax.get_ylabel()
    lo, hi = w.canvas._overlay.vmin, w.canvas._overlay.vmax
    assert lo == -hi  # signed: centred on zero


def test_moving_to_another_image_cancels_the_map_and_never_draws_it_there(qtbot, reviewed, monkeypatch):
    w = reviewed
    release, started = threading.Event(), threading.Event()
    original = method_maps_module.explain_image
    made = []

    def slow_first(model, pixels, class_name, method, progress=None):
        if not made:
            made.append("first")
            started.set()
            release.wait(10)
            progress(1, 2)  # the cancelled computation stops here
        made.append("computed")
        return original(model, pixels, class_name, method, progress)

    monkeypatch.setattr(method_maps_module, "explain_image", slow_first)
    first_path = w.current_path()
    choose(w, "gradcam")
    assert started.wait(5)
    arrived = []
    w.method_maps.ready.connect(lambda key, _m: arrived.append(key.path))
    with qtbot.waitSignal(w.method_maps.ready, timeout=10000):
        with qtbot.waitSignal(w.imageShown, timeout=5000):
            w.step(1)
    second = w.current_path()
    assert second != first_path and arrived == [second]
    release.set()
    qtbot.waitUntil(lambda: not w.tasks.running(), timeout=10000)
    qtbot.wait(50)
    assert arrived == [second] and made == ["first", "computed"]  # the first never finished nor arrived
    image = w.loader.cached(second)
    want = explain_image(w.model, image.pixels, w.current_result().label, GradCAM())
    shown = method_overlay(want)  # the map, or "no positive evidence"
    assert w.canvas.note == shown.note
    assert (w.canvas._overlay.cam is None) if shown.cam is None else np.allclose(w.canvas._overlay.cam, want.grid, atol=1e-5)


def test_a_failing_method_says_why_once(qtbot, reviewed, monkeypatch):
    w = reviewed

    def broken(*_args, **_kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(method_maps_module, "explain_image", broken)
    with qtbot.waitSignal(w.method_maps.failed, timeout=10000):
        choose(w, "gradcam")
    assert "failed" in w.canvas.note and "out of memory" in w.canvas.note
    w._refresh_overlay()  # not retried in a loop
    assert w.method_maps.pending is None


def show_the_class_without_evidence(qtbot, window, image_folder):
    """Show row 1 with the class its map has no positive evidence for; returns (result, that class)."""
    open_and_wait(qtbot, window, [image_folder])
    with qtbot.waitSignal(window.imageShown, timeout=5000):
        window.results_view.select_source_row(1)  # its NORMAL map is negative almost everywhere
    result = window.current_result()
    other = "NORMAL" if result.label == "PNEUMONIA" else "PNEUMONIA"
    window.controls.class_box.setCurrentIndex(window.controls.class_box.findData(other))
    return result, other


def test_no_positive_evidence_is_said_instead_of_a_stretched_map(qtbot, window, image_folder):
    _result, other = show_the_class_without_evidence(qtbot, window, image_folder)
    assert window.canvas.note.startswith(f"no positive evidence for {other} (CAM: mean positive part 0.0")
    assert not window.canvas.cax.get_visible()
    window.controls.class_box.setCurrentIndex(0)  # the predicted class: a map again
    assert window.canvas.note == "" and window.canvas.cax.get_visible()


def test_exports_draw_the_method_on_screen_and_compute_the_maps_not_yet_made(qtbot, reviewed, calls, monkeypatch, tmp_path):
    from PIL import Image

    from cxrviewer.core.io.reading import load_radiograph
    from cxrviewer.gui import dialogs
    from cxrviewer.gui.exporting import map_layer

    w = reviewed
    errors = []
    monkeypatch.setattr(dialogs, "show_error", lambda _parent, title, text: errors.append(f"{title}: {text}"))
    offered = []
    monkeypatch.setattr(dialogs, "ask_save_file", lambda _p, _t, suggested, _f: offered.append(suggested.name) or tmp_path / "evidence.png")
    with qtbot.waitSignal(w.exportFinished, timeout=10000):
        w.export_overlay_act.trigger()
    with qtbot.waitSignal(w.method_maps.ready, timeout=10000):
        choose(w, "gradcam")
    monkeypatch.setattr(dialogs, "ask_save_file", lambda _p, _t, suggested, _f: offered.append(suggested.name) or tmp_path / "gradcam.png")
    with qtbot.waitSignal(w.exportFinished, timeout=10000):
        w.export_overlay_act.trigger()
    assert calls == [(False, "gradcam")]  # the map on screen is reused, not computed again
    stem = w.current_result().path.stem
    assert offered == [f"{stem}_cam.png", f"{stem}_gradcam.png"]  # the suggested name says which map it is
    evidence, gradcam = (np.asarray(Image.open(tmp_path / n)).astype(int) for n in ("evidence.png", "gradcam.png"))
    h, wd = (w.current_result().image_size or (80, 96))[::-1]
    assert evidence.shape[1] == gradcam.shape[1] == max(wd, 224)  # (a small image's caption: in a band below it)
    assert np.abs(evidence[:h, :wd] - gradcam[:h, :wd]).mean() > 2  # another map drawn
    options = w._render_options()
    assert options.model is not w.model and options.maps  # a private copy: hooks never meet the viewer's
    others = [r for r in w.results_model.results() if r.ok and (r.path, r.label) not in options.maps]
    assert others
    layer = map_layer(others[0], others[0].label, options, load_radiograph(others[0].path))  # computed on the copy
    assert layer.caption.startswith(("Grad-CAM", "no positive evidence"))
    assert errors == []


def test_an_export_of_a_map_with_no_positive_evidence_says_so_and_draws_no_colours(qtbot, window, image_folder, tmp_path):
    from cxrviewer.core.io.reading import load_radiograph
    from cxrviewer.gui.exporting import map_layer, render

    result, other = show_the_class_without_evidence(qtbot, window, image_folder)
    options = window._render_options()
    radiograph = load_radiograph(result.path)
    layer = map_layer(result, other, options, radiograph)
    assert layer.grid is None and layer.caption.startswith(f"no positive evidence for {other}")
    grey = np.asarray(render(result, options, radiograph)).astype(int)
    h = grey.shape[0]
    body = grey[: h // 2]  # above the caption: grey only, no jet colours
    assert np.abs(body[..., 0] - body[..., 2]).max() <= 2


def test_the_models_heat_map_audit_is_in_the_map_tooltips_and_the_details_panel(qtbot, make_window, tmp_path):
    from PySide6.QtCore import Qt

    from cxrviewer import save_model
    from tests.conftest import make_tiny_model

    margins = {f: {"deletion_mean": [0.1, 0.02], "insertion_mean": [0.0, 0.02]} for f in ("random", "prior")}
    audited = {"faithfulness": {"n": 40, "margins": margins, "margins_gradcam": {"random": margins["random"]}},
               "sanity": {"passed": {"evidence": True}}}
    path = save_model(make_tiny_model(threshold=0.5, metrics={"explanations": audited}), tmp_path / "audited.safetensors")
    window = make_window(path)
    box = window.controls.method_box

    def tip(name):
        return box.itemData(box.findData(name), Qt.ItemDataRole.ToolTipRole)

    assert ("On this model: beats the no-knowledge maps (random, centred prior) beyond chance "
            "in 2 of 4 deletion/insertion comparisons (40 validation images)." in tip("evidence"))
    # neither map beats both floors on mean-fill deletion and insertion: the CAM stays the default, with a warning
    assert "neither the CAM nor Grad-CAM beats" in tip("evidence") and window.view.method == "evidence"
    assert "in 1 of 2" in tip("gradcam") and "On this model" not in tip("occlusion")
    assert ("Heat maps CAM beats a random and a centred map in 2 of 4 comparisons; Grad-CAM beats a random and a "
            "centred map in 1 of 2 comparisons; sanity check passed") in " ".join(window.details.text().split())
    plain = save_model(make_tiny_model(threshold=0.5), tmp_path / "plain.safetensors")
    window.load_model_file(plain, quiet=True)  # a model without an audit: no notes left from the previous one
    qtbot.waitUntil(lambda: window.model_path == plain, timeout=10000)
    assert "On this model" not in tip("evidence") and "Heat maps" not in window.details.text()
