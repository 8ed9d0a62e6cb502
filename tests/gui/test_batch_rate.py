"""The status bar shows the batch rate (images/s) while a batch runs and once it has ended."""

from cxrviewer.gui.status import BatchStatus, ProgressRate
from tests.gui.helpers import open_and_wait


def test_batch_status_shows_the_rate_and_time_left_while_running(qtbot):
    status = BatchStatus()
    qtbot.addWidget(status)
    status.show()
    now = [0.0]
    status.start(100)
    status.rate = ProgressRate(clock=lambda: now[0])
    assert status.active and status.label.text() == "Classifying: 0 of 100"
    now[0] = 1.0
    status.update(20, 100)
    now[0] = 2.0
    status.update(40, 100)
    assert status.label.text() == "Classifying: 40 of 100  ·  20.0 img/s  ·  0:03 left"
    assert status.bar.value() == 40


def test_the_window_keeps_the_batch_rate_when_the_batch_ends(qtbot, window, image_folder):
    rates = []
    window.runner.progress.connect(lambda done, total: rates.append(window.batch_status.label.text()))
    assert open_and_wait(qtbot, window, [image_folder]) is True
    assert rates and all(t.startswith("Classifying: ") for t in rates)  # progress while running
    text = window.batch_status.label.text()
    assert text.startswith("Done: 8 of 8 files in ") and text.endswith(" img/s)") and not window.batch_status.active
    assert float(text.split("(")[1].split(" img/s")[0]) > 0
