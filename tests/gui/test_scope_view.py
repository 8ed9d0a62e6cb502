"""Out-of-scope images in the viewer: their own filter, the reason in the details, a banner over the CAM."""

from __future__ import annotations

import numpy as np
from PIL import Image

from cxrviewer.core.results.file_result import OUT_OF_SCOPE
from cxrviewer.gui.results_model import ResultsFilter

from tests.gui.helpers import open_and_wait


def test_out_of_scope_rows_filter_details_and_banner(qtbot, window, image_folder):
    Image.fromarray(np.full((128, 128), 90, np.uint8)).save(image_folder / "blank.png")
    open_and_wait(qtbot, window, [str(image_folder)])
    results = {r.path.name: r for r in window.results_model.results() if r is not None}
    assert results["blank.png"].label == OUT_OF_SCOPE and results["blank.png"].in_scope is False
    assert sum(r.in_scope is False for r in results.values()) == 1

    view = window.results_view
    view.filter_box.setCurrentIndex(view.filter_box.findData(ResultsFilter.OUT_OF_SCOPE))
    assert view.proxy.rowCount() == 1
    view.select_source_row(window.results_model.row_of(image_folder / "blank.png"))

    def shown():
        caption = window.canvas.caption
        assert caption.startswith("OUT OF SCOPE (no verdict): image is blank")
        assert "would say" not in caption  # the model's call is the details' (for audit), not the banner's
        text = window.details.browser.toPlainText()
        assert "the model would say" in text
        assert "withheld (out of scope)" in text and "blank or nearly uniform" in text

    qtbot.waitUntil(shown, timeout=10000)
    assert window.canvas._overlay is not None  # the CAM can still be viewed under the banner

    view.filter_box.setCurrentIndex(view.filter_box.findData(ResultsFilter.ALL))
    assert view.proxy.rowCount() == 9


def test_disagreeing_with_no_ai_verdict_asks_for_the_readers_class(qtbot, window, image_folder, monkeypatch, tmp_path):
    """The issue: X on an out-of-scope image showed 'disagrees with the AI' and stored an empty reader label."""
    import csv

    from cxrviewer.core.results.columns import csv_columns
    from cxrviewer.core.results.export import write_csv
    from cxrviewer.gui import dialogs

    Image.fromarray(np.full((128, 128), 90, np.uint8)).save(image_folder / "blank.png")
    open_and_wait(qtbot, window, [str(image_folder)])
    row = window.results_model.row_of(image_folder / "blank.png")
    window.results_view.select_source_row(row)
    qtbot.waitUntil(lambda: window.current_path() == image_folder / "blank.png")
    asked = []
    monkeypatch.setattr(dialogs, "ask_item", lambda *a, **k: asked.append((a, k)) or None)
    window.reader.disagree_act.trigger()  # cancelled: nothing recorded
    entry = window.results_model.study.entries.get(image_folder / "blank.png")
    assert asked and asked[0][1]["editable"] is False and asked[0][0][3] == ["NORMAL", "PNEUMONIA"]
    assert entry is None or not entry.recorded
    assert "needs your class" in window.message.text()
    monkeypatch.setattr(dialogs, "ask_item", lambda *a, **k: "PNEUMONIA")
    window.reader.disagree_act.trigger()
    entry = window.results_model.study.entries[image_folder / "blank.png"]
    assert (entry.label, entry.agrees) == ("PNEUMONIA", False)
    out = tmp_path / "r.csv"
    write_csv(window.results_model.results(), out, window.batch, columns=csv_columns(window.batch, reader=True))
    rows = {r["path"]: r for r in csv.DictReader(out.open(newline=""))}
    blank = next(r for p, r in rows.items() if p.endswith("blank.png"))
    assert blank["reader_label"] == "PNEUMONIA" and blank["agreement"] == "disagree"
