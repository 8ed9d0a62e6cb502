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
        caption = window.canvas._caption
        assert caption is not None and caption.get_text().startswith("OUT OF SCOPE: image is blank")
        assert "the model would say" in caption.get_text()
        text = window.details.browser.toPlainText()
        assert "withheld (out of scope)" in text and "blank or nearly uniform" in text

    qtbot.waitUntil(shown, timeout=10000)
    assert window.canvas._overlay is not None  # the CAM can still be viewed under the banner

    view.filter_box.setCurrentIndex(view.filter_box.findData(ResultsFilter.ALL))
    assert view.proxy.rowCount() == 9
