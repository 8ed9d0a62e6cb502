"""The strip of display controls above the image: overlay, CAM class, scale, opacity, window/level.

The window and level sliders run over the current image's value range (:meth:`ViewControls.set_scale`)
and edit the window in modality units."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QSlider, QToolButton, QWidget

from ..core.explain import METHODS
from ..core.io.window import ValueScale, Window
from .flow_layout import flow, group
from .view_state import SCALE_FIXED, SCALE_IMAGE, ViewState

PREDICTED = ""  # class combo entry meaning "the predicted class"
STEPS = 1000  # slider steps over the image's value range


def _slider(lo: int, hi: int, tip: str, width: int = 80) -> QSlider:
    s = QSlider(Qt.Orientation.Horizontal)
    s.setRange(lo, hi)
    s.setToolTip(tip)
    s.setFixedWidth(width)
    return s


class ViewControls(QWidget):
    """Shows a :class:`ViewState` (:meth:`set_view`) and emits ``viewEdited`` with the state the
    user's edit makes of it; holds no other state."""

    viewEdited = Signal(object)  # ViewState
    fitRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._view = ViewState()
        self._scale = ValueScale()
        self.overlay = QCheckBox("Overlay")
        self.overlay.setToolTip("Show the class activation map (O)")
        self.class_box = QComboBox()
        self.class_box.setToolTip("Which class's activation map to show")
        self.class_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.class_box.setMinimumContentsLength(11)
        self.method_box = QComboBox()
        for name, make in METHODS.items():
            self.method_box.addItem(make().short, name)
        self.set_method_notes({})
        self.method_box.setToolTip("Which explanation method: the CAM comes with every result; the others are "
                                   "computed for the image on screen when chosen")
        self.scale_box = QComboBox()
        self.scale_box.addItem("Per image", SCALE_IMAGE)
        self.scale_box.addItem("Fixed", SCALE_FIXED)
        self.scale_box.setToolTip("Colour scale: per-image min-max, or the model's fixed scale in logit units")
        self.opacity = _slider(0, 100, "Overlay opacity")
        self.window_slider = _slider(1, STEPS, "Window width (or right-drag on the image)")
        self.level_slider = _slider(0, STEPS, "Window level (or right-drag on the image)")
        self.invert = QCheckBox("Invert")
        self.invert.setToolTip("Invert the grey scale (I)")
        self.fit = QToolButton()
        self.fit.setText("Fit")
        self.fit.setToolTip("Fit the image to the view (F, or double-click)")
        self._lay_out()
        self.set_classes([])
        self.set_view(self._view, force=True)

        edit = self._edit
        self.overlay.toggled.connect(lambda on: edit(overlay=on))
        self.class_box.currentIndexChanged.connect(lambda _i: edit(class_name=self.class_box.currentData() or None))
        self.method_box.currentIndexChanged.connect(lambda _i: edit(method=self.method_box.currentData()))
        self.scale_box.currentIndexChanged.connect(lambda _i: edit(scale=self.scale_box.currentData()))
        self.opacity.valueChanged.connect(lambda v: edit(opacity=v / 100.0))
        self.window_slider.valueChanged.connect(lambda _v: edit(window=self._slider_window()))
        self.level_slider.valueChanged.connect(lambda _v: edit(window=self._slider_window()))
        self.invert.toggled.connect(lambda on: edit(invert=on))
        self.fit.clicked.connect(self.fitRequested)

    def _lay_out(self) -> None:
        """Label and control pairs that wrap onto a second row when the window is narrow."""
        flow(self, [self.overlay, group(QLabel("CAM"), self.class_box, self.method_box),
                    group(QLabel("Scale"), self.scale_box), group(QLabel("Opacity"), self.opacity),
                    group(QLabel("Window"), self.window_slider), group(QLabel("Level"), self.level_slider),
                    self.invert, self.fit])

    def set_classes(self, names: list[str]) -> None:
        """The classes offered for the map (plus "Predicted"); the current choice stays when it still exists."""
        with QSignalBlocker(self.class_box):
            self.class_box.clear()
            self.class_box.addItem("Predicted", PREDICTED)
            for n in names:
                self.class_box.addItem(n, n)
            self.class_box.setCurrentIndex(max(0, self.class_box.findData(self._view.class_name or PREDICTED)))

    def set_method_notes(self, notes: dict[str, str]) -> None:
        """Each map method's tooltip: what it is, its units, and ``notes[name]`` (the model's audit of it) if any."""
        for i in range(self.method_box.count()):
            name = self.method_box.itemData(i)
            method = METHODS[name]()
            note = notes.get(name)
            self.method_box.setItemData(i, f"{method.label}: {method.units}" + (f".\nOn this model: {note}." if note else ""),
                                        Qt.ItemDataRole.ToolTipRole)

    def set_view(self, view: ViewState, force: bool = False) -> None:
        """Show ``view`` (emits nothing)."""
        if view == self._view and not force:
            return
        self._view = view
        values = ((self.overlay, view.overlay), (self.invert, view.invert))
        for box, on in values:
            with QSignalBlocker(box):
                box.setChecked(on)
        with QSignalBlocker(self.opacity):
            self.opacity.setValue(round(100 * view.opacity))
        self._show_window(view.window)
        for combo, data in ((self.class_box, view.class_name or PREDICTED), (self.scale_box, view.scale),
                            (self.method_box, view.method)):
            with QSignalBlocker(combo):
                combo.setCurrentIndex(max(0, combo.findData(data)))

    def set_scale(self, scale: ValueScale) -> None:
        """The sliders now run over ``scale``'s value range (emits nothing)."""
        self._scale = scale
        self._show_window(self._view.window)

    def _show_window(self, window: Window | None) -> None:
        s = self._scale
        w = window or s.default_window
        for slider, fraction in ((self.window_slider, w.width / s.range_width),
                                 (self.level_slider, (w.center - s.low) / s.range_width)):
            with QSignalBlocker(slider):
                slider.setValue(round(STEPS * fraction))
        text = f"W {s.format(w.width)}  L {s.format(w.center)}"
        for slider in (self.window_slider, self.level_slider):
            slider.setToolTip(f"{text} (or right-drag on the image)")

    def _slider_window(self) -> Window:
        """The window the sliders show, in modality units."""
        s = self._scale
        return Window(s.low + self.level_slider.value() / STEPS * s.range_width,
                      self.window_slider.value() / STEPS * s.range_width)

    def _edit(self, **change) -> None:
        view = replace(self._view, **change)
        self._view = view
        self.viewEdited.emit(view)
