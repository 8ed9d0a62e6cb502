"""Model > Precision: the viewer runs the model in the chosen precision, says so, and keeps the choice."""

from cxrviewer.core.model.precision import PARITY_KEY
from cxrviewer.gui.settings import Settings
from tests.gui.helpers import open_and_wait


def _action(window, name):
    return next(a for a in window.precision_group.actions() if a.text() == name)


def test_precision_choice_reclassifies_shows_and_persists(qtbot, window, image_folder):
    assert _action(window, "auto").isChecked() and Settings().precision == "auto"
    assert open_and_wait(qtbot, window, [image_folder]) is True
    # the tiny model records no parity: auto stays float32, and the details panel says why
    assert {r.precision for r in window.results_model.results()} == {"float32"}
    assert "Precision" in window.details.text() and "float32 (auto: " in window.details.text()
    assert "img/s" in window.batch_status.label.text()  # the batch rate stays in the status bar
    with qtbot.waitSignal(window.batchFinished, timeout=20000):
        _action(window, "bfloat16").trigger()
    assert {r.precision for r in window.results_model.results()} == {"bfloat16"}
    assert _action(window, "bfloat16").isChecked() and not _action(window, "auto").isChecked()
    assert "bfloat16 (chosen)" in window.details.text() and "bfloat16" in window.model_label.text()
    assert Settings().precision == "bfloat16"  # kept for the next session


def test_auto_follows_the_recorded_parity(qtbot, window, monkeypatch):
    from cxrviewer.core.model import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    window.model.meta[PARITY_KEY] = {"bfloat16": {"agreement": 1.0, "max_prob_diff": 0.01, "n": 100}}
    assert window.precision_text().startswith("bfloat16 (auto: native on cpu")
    window.model.meta[PARITY_KEY] = {"bfloat16": {"agreement": 0.99, "max_prob_diff": 0.2, "n": 100}}
    assert window.precision_text().startswith("float32 (auto: ")
