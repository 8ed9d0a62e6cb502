"""The table's filters for the per-verdict checks: unstable verdicts, evidence outside the chest."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cxrviewer.core.results.columns import Batch
from cxrviewer.core.results.file_result import FileResult, VerdictChecks
from cxrviewer.gui.results_model import ResultsFilter, ResultsModel
from cxrviewer.gui.results_view import ResultsView


def _result(i: int, checks: VerdictChecks | None) -> FileResult:
    return FileResult(Path(f"/data/{i:02d}.png"), i, {"NORMAL": 0.3, "PNEUMONIA": 0.7}, "PNEUMONIA",
                      cams=np.zeros((2, 2, 2), np.float32), checks=checks)


def test_unstable_and_check_framing_filters_keep_only_flagged_rows(qtbot):
    model = ResultsModel()
    model.set_batch(Batch(("NORMAL", "PNEUMONIA"), "PNEUMONIA", 0.5, "tiny"))
    checks = [VerdictChecks(unstable=True, flipped=("border",)), VerdictChecks(evidence_outside=True, outside_share=0.6),
              VerdictChecks(), VerdictChecks(unstable=None), None,
              VerdictChecks(unstable=True, evidence_outside=True, shifts={"border": 1.4, "blur": 0.1})]
    model.set_paths([Path(f"/data/{i:02d}.png") for i in range(len(checks) + 1)])  # the last: not classified yet
    model.apply([_result(i, c) for i, c in enumerate(checks)])
    view = ResultsView(model)
    qtbot.addWidget(view)

    def shown(mode) -> list[str]:
        view.filter_box.setCurrentIndex(view.filter_box.findData(mode))
        assert view.proxy.mode == mode
        return [view.proxy.index(r, 0).data() for r in range(view.proxy.rowCount())]

    assert view.filter_box.itemText(view.filter_box.findData(ResultsFilter.UNSTABLE)) == "Unstable only"
    assert sorted(shown(ResultsFilter.UNSTABLE)) == ["00.png", "05.png"]
    assert sorted(shown(ResultsFilter.EVIDENCE_OUTSIDE)) == ["01.png", "05.png"]
    assert len(shown(ResultsFilter.ALL)) == 7
    view.set_classes(["NORMAL", "PNEUMONIA"])  # the choice survives a new model's classes
    assert view.proxy.mode == ResultsFilter.ALL
    assert sorted(shown(ResultsFilter.EVIDENCE_OUTSIDE)) == ["01.png", "05.png"]
    view.set_classes(["NORMAL", "PNEUMONIA"])
    assert view.proxy.mode == ResultsFilter.EVIDENCE_OUTSIDE


def test_a_verdict_whose_checks_found_something_is_marked_in_the_table(qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QIcon

    from cxrviewer.gui.results_model import STATUS

    model = ResultsModel()
    model.set_batch(Batch(("NORMAL", "PNEUMONIA"), "PNEUMONIA", 0.5, "tiny"))
    checks = [VerdictChecks(unstable=True, flipped=("border",)), VerdictChecks(evidence_outside=True, outside_share=0.6),
              VerdictChecks(), VerdictChecks(unstable=None), None]
    model.set_paths([Path(f"/data/{i:02d}.png") for i in range(len(checks))])
    model.apply([_result(i, c) for i, c in enumerate(checks)])
    icons = [model.index(r, STATUS).data(Qt.ItemDataRole.DecorationRole) for r in range(len(checks))]
    assert [isinstance(i, QIcon) for i in icons] == [True, True, False, False, False]  # 'not run' is no warning
    tips = [model.index(r, STATUS).data(Qt.ItemDataRole.ToolTipRole) for r in range(len(checks))]
    assert tips[0] == "/data/00.png\nUnstable: the label changes with a 10% black border"
    assert tips[1] == "/data/01.png\nEvidence outside the chest: check the framing" and tips[2] == "/data/02.png"
    assert model.index(0, 0).data(Qt.ItemDataRole.DecorationRole) is None  # only the status column carries it
    view = ResultsView(model)
    qtbot.addWidget(view)
    view.resize(500, 300)
    view.show()
    qtbot.waitExposed(view)
    icon_room = view.table.style().pixelMetric(view.table.style().PixelMetric.PM_SmallIconSize)
    assert view.table.columnWidth(STATUS) > view.table.fontMetrics().horizontalAdvance("done") + icon_room


def test_details_panel_lists_both_flags_with_their_numbers(qtbot):
    from cxrviewer.gui.details import DetailsPanel, ModelInfo

    panel = DetailsPanel()
    qtbot.addWidget(panel)
    panel.set_model(ModelInfo(Batch(("NORMAL", "PNEUMONIA"), "PNEUMONIA", 0.5, "tiny")))
    flagged = VerdictChecks(evidence_outside=True, outside_share=0.612, unstable=True, flipped=("border",),
                            shifts={"border": 2.5, "blur": -0.2})
    panel.show_file(Path("/data/00.png"), "done", _result(0, flagged))
    text = panel.browser.toPlainText()
    for line in ("evidence outside the chest: check the framing", "Check framing yes", "0.612", "Unstable yes",
                 "unstable: the label changes with a 10% black border", "+2.50", "-0.20"):
        assert line in " ".join(text.split()), line
    panel.show_file(Path("/data/01.png"), "done", _result(1, VerdictChecks(outside_share=0.05, shifts={"border": 0.1, "blur": 0.0})))
    text = " ".join(panel.browser.toPlainText().split())
    assert "Check framing no" in text and "Unstable no" in text and "check the framing" not in text
