"""Model > Stability Check: on by default in the viewer, can be switched off, and the choice is kept."""

from cxrviewer.gui.settings import Settings
from tests.gui.helpers import open_and_wait


def _checked(window) -> set[bool]:
    return {r.checks.stability_checked for r in window.results_model.results() if r.ok}


def test_stability_check_is_on_by_default_can_be_switched_off_and_persists(qtbot, window, image_folder):
    assert window.stability_act.isChecked() and Settings().stability is True
    assert window.stability_act in window.menuBar().actions()[2].menu().actions()  # in the Model menu
    assert open_and_wait(qtbot, window, [image_folder]) is True
    assert _checked(window) == {True}
    window.stability_act.trigger()  # off: kept, and used from the next batch on
    assert Settings().stability is False and not window.stability_act.isChecked()
    assert open_and_wait(qtbot, window, [image_folder]) is True
    assert _checked(window) == {False}
    assert "not run" in window.details.text()  # the details panel says so, never a pass
    with qtbot.waitSignal(window.batchFinished, timeout=20000):
        window.stability_act.trigger()  # on again: the open batch is checked again
    assert _checked(window) == {True} and Settings().stability is True


def test_unstable_filter_is_offered_only_while_the_check_runs(qtbot, window):
    from cxrviewer.gui.results_model import ResultsFilter
    box = window.results_view.filter_box
    item = box.model().item(box.findData(ResultsFilter.UNSTABLE))
    assert item.isEnabled()
    box.setCurrentIndex(box.findData(ResultsFilter.UNSTABLE))
    window.stability_act.trigger()  # off: an empty "Unstable only" list would read as "all stable"
    assert not item.isEnabled() and "off" in item.toolTip()
    assert box.currentData() == ResultsFilter.ALL
    window.results_view.set_classes(["NORMAL", "PNEUMONIA"])  # rebuilt for a new model: still off
    assert not box.model().item(box.findData(ResultsFilter.UNSTABLE)).isEnabled()
    window.stability_act.trigger()
    assert box.model().item(box.findData(ResultsFilter.UNSTABLE)).isEnabled()


def test_probability_bars_are_as_long_as_the_probabilities(qtbot, window, image_folder):
    """Each class's bar in the details panel spans its probability (a lone cell's width is ignored by Qt)."""
    import re
    assert open_and_wait(qtbot, window, [image_folder]) is True
    window.results_view.select_first()
    result = window.current_result()
    html = window.details.browser.toHtml()
    widths = [int(w) for w in re.findall(r'<td width="(\d+)%" bgcolor', html)]
    expected = sorted(max(1, round(100 * p)) for p in result.probs.values())
    assert sorted(widths) == expected
