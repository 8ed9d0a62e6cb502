"""The strip of display controls above the image: overlay, CAM class, scale, opacity, window/level."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QSlider, QToolButton, QWidget

from .display import SCALE_FIXED, SCALE_IMAGE

PREDICTED = ""  # class combo entry meaning "the predicted class"


def _slider(lo: int, hi: int, value: int, tip: str, width: int = 80) -> QSlider:
    s = QSlider(Qt.Orientation.Horizontal)
    s.setRange(lo, hi)
    s.setValue(value)
    s.setToolTip(tip)
    s.setFixedWidth(width)
    return s


class ViewControls(QWidget):
    """Emits what the user picks; holds no image state of its own."""

    overlayToggled = Signal(bool)
    classChanged = Signal(str)       # a class name, or PREDICTED
    scaleChanged = Signal(str)       # SCALE_IMAGE or SCALE_FIXED
    opacityChanged = Signal(float)   # 0..1
    windowChanged = Signal(float, float)  # low, high in [0, 1]
    invertToggled = Signal(bool)
    fitRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.overlay = QCheckBox("Overlay")
        self.overlay.setChecked(True)
        self.overlay.setToolTip("Show the class activation map (O)")
        self.class_box = QComboBox()
        self.class_box.setToolTip("Which class's activation map to show")
        self.class_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.class_box.setMinimumContentsLength(11)
        self.scale_box = QComboBox()
        self.scale_box.addItem("Per image", SCALE_IMAGE)
        self.scale_box.addItem("Fixed", SCALE_FIXED)
        self.scale_box.setToolTip("Colour scale: per-image min-max, or the model's fixed scale in logit units")
        self.opacity = _slider(0, 100, 40, "Overlay opacity")
        self.window_slider = _slider(2, 100, 100, "Window width (or right-drag on the image)")
        self.level_slider = _slider(0, 100, 50, "Window level (or right-drag on the image)")
        self.invert = QCheckBox("Invert")
        self.invert.setToolTip("Invert the grey scale (I)")
        self.fit = QToolButton()
        self.fit.setText("Fit")
        self.fit.setToolTip("Fit the image to the view (F, or double-click)")

        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 3, 6, 3)
        layout.setSpacing(6)
        for w in (self.overlay, QLabel("CAM"), self.class_box, QLabel("Scale"), self.scale_box,
                  QLabel("Opacity"), self.opacity):
            layout.addWidget(w)
        layout.addSpacing(12)
        for w in (QLabel("Window"), self.window_slider, QLabel("Level"), self.level_slider, self.invert):
            layout.addWidget(w)
        layout.addStretch(1)
        layout.addWidget(self.fit)

        self.overlay.toggled.connect(self.overlayToggled)
        self.class_box.currentIndexChanged.connect(lambda _i: self.classChanged.emit(self.class_name()))
        self.scale_box.currentIndexChanged.connect(lambda _i: self.scaleChanged.emit(self.scale()))
        self.opacity.valueChanged.connect(lambda v: self.opacityChanged.emit(v / 100.0))
        self.window_slider.valueChanged.connect(self._emit_window)
        self.level_slider.valueChanged.connect(self._emit_window)
        self.invert.toggled.connect(self.invertToggled)
        self.fit.clicked.connect(self.fitRequested)

    # -- state in ------------------------------------------------------------------
    def set_classes(self, names: list[str]) -> None:
        self.class_box.blockSignals(True)
        self.class_box.clear()
        self.class_box.addItem("Predicted", PREDICTED)
        for n in names:
            self.class_box.addItem(n, n)
        self.class_box.blockSignals(False)

    def set_opacity(self, opacity: float) -> None:
        self.opacity.setValue(round(100 * opacity))

    def show_window(self, low: float, high: float) -> None:
        """Reflect a window set elsewhere (e.g. right-drag) without emitting."""
        for s, v in ((self.window_slider, (high - low) * 100), (self.level_slider, (high + low) * 50)):
            s.blockSignals(True)
            s.setValue(round(v))
            s.blockSignals(False)

    # -- state out -----------------------------------------------------------------
    def class_name(self) -> str:
        return self.class_box.currentData() or PREDICTED

    def set_class_name(self, name: str) -> None:
        i = self.class_box.findData(name)
        if i >= 0:
            self.class_box.setCurrentIndex(i)

    def scale(self) -> str:
        return self.scale_box.currentData() or SCALE_IMAGE

    def window_limits(self) -> tuple[float, float]:
        width, level = self.window_slider.value() / 100.0, self.level_slider.value() / 100.0
        return level - width / 2, level + width / 2

    def _emit_window(self, _value: int) -> None:
        self.windowChanged.emit(*self.window_limits())
