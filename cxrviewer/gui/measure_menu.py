"""The Tools menu: choose a measuring tool (D, G, C), delete the selected measurement, clear them all."""

from __future__ import annotations

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QWidget

from .measure_tool import MeasureTool

TOOLS = (
    ("distance", "&Distance", "D", "Measure a distance: click two points (mm from the DICOM pixel spacing, else px)"),
    ("angle", "&Angle", "G", "Measure an angle: click three points, the vertex second"),
    ("ctr", "&Cardiothoracic Ratio", "C",
     "Cardiothoracic ratio: click the two ends of the widest heart span, then of the widest thoracic span"),
)


class MeasureActions:
    """The actions of ``tool``, added to ``window`` so that their keys work everywhere in it."""

    def __init__(self, tool: MeasureTool, window: QWidget):
        self.tool = tool
        self.group = QActionGroup(window)
        self.group.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)
        self.by_kind: dict[str, QAction] = {}
        for kind, text, key, tip in TOOLS:
            a = QAction(text, self.group, checkable=True, statusTip=tip + "; Esc cancels")
            a.setShortcut(QKeySequence(key))
            a.triggered.connect(lambda on, k=kind: tool.set_kind(k if on else None))
            self.by_kind[kind] = a
        self.delete_act = QAction("De&lete Measurement", window, statusTip="Delete the selected measurement "
                                  "(click one to select it)", shortcut=QKeySequence(QKeySequence.StandardKey.Delete))
        self.delete_act.triggered.connect(tool.delete_selected)
        self.clear_act = QAction("Clea&r Measurements", window, statusTip="Delete every measurement of this image")
        self.clear_act.triggered.connect(tool.clear)
        self.actions = [*self.by_kind.values(), self.delete_act, self.clear_act]
        window.addActions(self.actions)
        tool.toolChanged.connect(self._on_tool)
        tool.changed.connect(self.update)
        self.update()

    def _on_tool(self, kind: str | None) -> None:
        for k, a in self.by_kind.items():
            a.setChecked(k == kind)
        self.update()

    def update(self) -> None:
        shown = self.tool.image is not None
        for a in self.by_kind.values():
            a.setEnabled(shown or a.isChecked())
        self.delete_act.setEnabled(shown and self.tool.selected is not None)
        self.clear_act.setEnabled(bool(self.tool.measurements()))

    def fill(self, menu) -> None:
        menu.addActions(list(self.by_kind.values()))
        menu.addSeparator()
        menu.addActions([self.delete_act, self.clear_act])
