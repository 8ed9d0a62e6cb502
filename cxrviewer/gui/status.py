"""Status-bar widgets: batch progress with rate, time left and Cancel; a line for passing messages.

Messages never go through ``QStatusBar.showMessage``, which hides the bar's other
widgets while it shows: the batch's progress stays in view for the whole batch.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget


def format_eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressRate:
    """Images per second and time left from (done, total) updates.

    No estimate until :attr:`MIN_DONE` images are done after the first update and :attr:`MIN_SECONDS` have
    passed (the start-up - model warm-up, first batch - would make the first figure far too slow); then
    the rate over the last :attr:`WINDOW_S` seconds, itself the smoothing: a running average on top would
    lag behind a batch that speeds up (it said 0:16 left with 1.5 s to go).
    """

    MIN_DONE = 4
    MIN_SECONDS = 1.0
    WINDOW_S = 5.0

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        self._samples: list[tuple[float, int]] = []
        self._rate: float | None = None

    def update(self, done: int, total: int) -> tuple[float | None, float | None]:
        now = self._clock()
        self._samples.append((now, done))
        first = self._samples[0]  # where measuring began: the first update, after start-up
        recent = [s for s in self._samples[1:] if now - s[0] <= self.WINDOW_S]
        self._samples = [first, *recent]
        if done - first[1] < self.MIN_DONE or now - first[0] < self.MIN_SECONDS:
            return None, None
        t0, d0 = recent[0] if recent[0][1] < done and now - recent[0][0] >= self.MIN_SECONDS else first
        self._rate = (done - d0) / (now - t0)
        return self._rate, (total - done) / self._rate


class BatchStatus(QWidget):
    """'n of total · rate · time left' with a progress bar and a Cancel button (hidden when idle)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.label = QLabel("")
        self.bar = QProgressBar()
        self.bar.setFixedWidth(160)
        self.bar.setTextVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the batch (Esc)")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for w in (self.label, self.bar, self.cancel_button):
            layout.addWidget(w)
        for w in (self.bar, self.cancel_button):  # showing/hiding them must not resize the image view
            policy = w.sizePolicy()
            policy.setRetainSizeWhenHidden(True)
            w.setSizePolicy(policy)
        self.rate = ProgressRate()
        self._what = "Classifying"
        self.set_idle("")

    def start(self, total: int, what: str = "Classifying") -> None:
        self.rate.reset()
        self._what = what
        self.cancel_button.setEnabled(True)
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(0)
        self.label.setText(f"{what}: 0 of {total}")
        for w in (self.bar, self.cancel_button):
            w.setVisible(True)

    def update(self, done: int, total: int) -> None:
        rate, left = self.rate.update(done, total)
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(done)
        text = f"{self._what}: {done} of {total}"
        if rate:
            text += f"  ·  {rate:.1f} img/s  ·  {format_eta(left)} left"
        self.label.setText(text)

    def set_cancelling(self) -> None:
        self.label.setText(f"{self._what}: cancelling...")
        self.cancel_button.setEnabled(False)

    def set_idle(self, text: str) -> None:
        self.label.setText(text)
        for w in (self.bar, self.cancel_button):
            w.setVisible(False)
        self.cancel_button.setEnabled(True)

    @property
    def active(self) -> bool:
        """The progress bar and Cancel are on show (a batch is running; nothing hides this widget)."""
        return not self.isHidden() and self.bar.isVisibleTo(self) and self.cancel_button.isVisibleTo(self)


class MessageLabel(QLabel):
    """One line of passing news ("Model loaded", "Saved ...") that clears itself after a while."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._timer = QTimer(self, singleShot=True)
        self._timer.timeout.connect(self.clear)

    def show_message(self, text: str, timeout_ms: int = 0) -> None:
        """Show ``text`` (for ``timeout_ms``, or until the next message when 0)."""
        self.setText(text)
        self.setToolTip(text)
        self._timer.stop()
        if timeout_ms > 0:
            self._timer.start(timeout_ms)
