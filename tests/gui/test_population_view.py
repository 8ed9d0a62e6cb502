"""The viewer says whom the model is for: the population flag, the verdict's meaning, and the setting that withholds."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from cxrviewer import save_model
from cxrviewer.core.model.population import KERMANY
from cxrviewer.core.results.file_result import OUT_OF_SCOPE
from cxrviewer.gui.about import about_html
from cxrviewer.gui.results_model import CLASS, STATUS
from cxrviewer.gui.settings import Settings
from tests.conftest import make_tiny_model
from tests.core.dicom_factory import make_dicom
from tests.gui.helpers import open_and_wait, write_image

ADULT = "age 64 y, model trained on 1-5 y"


@pytest.fixture
def people(tmp_path):
    """An adult chest CR (64 y from its dates), a child's (3 y) and a PNG (no header)."""
    folder, rng = tmp_path / "people", np.random.default_rng(0)
    folder.mkdir()
    for name, birth in (("adult.dcm", "19400305"), ("child.dcm", "20010826")):
        make_dicom(folder / name, rng.integers(0, 4096, (96, 80), dtype=np.uint16), Modality="CR",
                   BodyPartExamined="CHEST", StudyDate="20040826", PatientBirthDate=birth)
    write_image(folder / "photo.png")
    return folder


@pytest.fixture
def kermany_window(make_window, tmp_path):
    model = save_model(make_tiny_model(threshold=0.5, temperature=1.0, intended_use=KERMANY), tmp_path / "k.safetensors")
    return make_window(model)


def _tip(window, name: str, col: int) -> str:
    model = window.results_model
    return model.data(model.index(model.row_of(window.inputs[0] / name), col), Qt.ItemDataRole.ToolTipRole)


def test_flag_meaning_and_withholding_in_the_viewer(qtbot, kermany_window, people):
    w = kermany_window
    assert open_and_wait(qtbot, w, [people]) is True
    results = {r.path.name: r for r in w.results_model.results()}
    assert results["adult.dcm"].population == f"outside: {ADULT}" and results["adult.dcm"].label != OUT_OF_SCOPE
    assert results["child.dcm"].population == "in" and results["photo.png"].population == "unknown"

    # the table: the warning sign and its tooltip, and what the verdict means on the class cell
    model = w.results_model
    adult_row = model.row_of(people / "adult.dcm")
    assert model.data(model.index(adult_row, STATUS), Qt.ItemDataRole.DecorationRole) is not None
    assert f"Outside the intended population ({ADULT})" in _tip(w, "adult.dcm", STATUS)
    label = results["adult.dcm"].label
    assert f"{label} means " in _tip(w, "adult.dcm", CLASS) and "Model trained on: ages 1-5 y" in _tip(w, "adult.dcm", CLASS)
    assert f"This image's population: outside: {ADULT}" in _tip(w, "adult.dcm", CLASS)
    assert "This image's population" not in _tip(w, "child.dcm", CLASS)
    if results["child.dcm"].checks is not None and not results["child.dcm"].checks.warnings():
        assert model.data(model.index(model.row_of(people / "child.dcm"), STATUS), Qt.ItemDataRole.DecorationRole) is None

    # the details panel and the canvas
    w.results_view.select_source_row(adult_row)

    def shown():
        text = w.details.text()
        assert f"Outside the intended population: {ADULT}" in text
        assert f"{label} means " in text and "Trained on" in text and "ages 1-5 y, AP views" in text
        assert f"outside: {ADULT}" in text  # the Population row
        assert f"{label} means " in w.canvas.toolTip()

    qtbot.waitUntil(shown, timeout=10000)
    assert "Intended use" in about_html(w.model, w.model_path, "cpu", "test")
    assert "NORMAL means no pneumonia pattern" in about_html(w.model, w.model_path, "cpu", "test")

    # Model > Withhold Verdicts Outside the Intended Population: kept, and the batch is classified again
    assert w.population_act in w.menuBar().actions()[2].menu().actions() and not w.population_act.isChecked()
    with qtbot.waitSignal(w.batchFinished, timeout=20000):
        w.population_act.trigger()
    assert Settings().population_refuse is True
    results = {r.path.name: r for r in w.results_model.results()}
    assert results["adult.dcm"].label == OUT_OF_SCOPE and results["child.dcm"].label != OUT_OF_SCOPE
    w.results_view.select_source_row(w.results_model.row_of(people / "adult.dcm"))

    def withheld():
        assert "withheld (outside the intended population)" in w.details.text()
        caption = w.canvas._caption
        assert caption is not None and caption.get_text().startswith("OUT OF SCOPE (no verdict): outside the model's intended population")

    qtbot.waitUntil(withheld, timeout=10000)


def test_a_model_without_intended_use_says_so(qtbot, window, people):
    assert open_and_wait(qtbot, window, [people]) is True
    assert {r.population for r in window.results_model.results()} == {"unknown"}
    window.results_view.select_first()
    qtbot.waitUntil(lambda: "intended use not recorded" in window.details.text(), timeout=10000)
    assert "Intended use not recorded" in about_html(window.model, window.model_path, "cpu", "test")
