"""Editable table of class names and colours, stored on the scribble layer."""

from __future__ import annotations

from psygnal import Signal
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (QColorDialog, QHBoxLayout, QPushButton, QTableWidget, QTableWidgetItem,
                            QVBoxLayout, QWidget)

from ..core.bundle import default_colours


class ClassTableWidget(QWidget):
    """Rows of (label value, name, colour); emits ``changed`` with the class list on edits and
    ``chosen`` with a row's label when the user picks it (to paint that class)."""

    changed = Signal(list)
    chosen = Signal(int)  # the label (1..K) of the row the user picked

    def __init__(self, parent=None):
        super().__init__(parent)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["class name", "colour"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setMinimumHeight(120)
        self.table.setMaximumHeight(170)
        self.table.itemChanged.connect(lambda *_: self._emit())
        self.table.currentCellChanged.connect(
            lambda row, *_: self.chosen.emit(row + 1) if row >= 0 and not self._loading else None)
        self.add_button = QPushButton("+ class")
        self.remove_button = QPushButton("− class")
        self.add_button.clicked.connect(self.add_class)
        self.remove_button.clicked.connect(self.remove_class)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        self._loading = False

    def classes(self) -> list[dict]:
        out = []
        for row in range(self.table.rowCount()):
            name = self.table.item(row, 0).text().strip() or f"class {row + 1}"
            out.append({"name": name, "colour": self.table.cellWidget(row, 1).property("colour")})
        return out

    def set_classes(self, classes: list[dict]) -> None:
        self._loading = True
        self.table.setRowCount(0)
        for c in classes:
            self._append(c["name"], c["colour"])
        self._loading = False

    def _append(self, name: str, colour: str) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        self.table.setItem(row, 0, QTableWidgetItem(name))
        self.table.setVerticalHeaderItem(row, QTableWidgetItem(str(row + 1)))
        button = QPushButton()
        self._paint(button, colour)
        button.clicked.connect(lambda _=False, b=button: self._pick_colour(b))
        self.table.setCellWidget(row, 1, button)

    @staticmethod
    def _paint(button: QPushButton, colour: str) -> None:
        button.setProperty("colour", colour)
        button.setStyleSheet(f"background-color: {colour}; border: none;")

    def _pick_colour(self, button: QPushButton) -> None:
        colour = QColorDialog.getColor(QColor(button.property("colour")), self, "Class colour")
        if colour.isValid():
            self._paint(button, colour.name())
            self._emit()

    def add_class(self) -> None:
        n = self.table.rowCount()
        self._append(f"class {n + 1}", default_colours(n + 1)[n])
        self._emit()

    def remove_class(self) -> None:
        if self.table.rowCount() > 2:
            self.table.removeRow(self.table.rowCount() - 1)
            self._emit()

    def _emit(self) -> None:
        if not self._loading and self.table.rowCount() and all(
                self.table.item(r, 0) is not None and self.table.cellWidget(r, 1) is not None
                for r in range(self.table.rowCount())):
            self.changed.emit(self.classes())
