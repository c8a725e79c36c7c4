"""Table of phase (area) fractions per image, with copy; rows in the API's one CSV schema."""

from __future__ import annotations

from psygnal import Signal
from qtpy.QtWidgets import QApplication, QTableWidget, QTableWidgetItem

from ..api.tables import PHASE_COLUMNS, rows_as_text

SHOWN = ["image", "class", "area %", "area µm²", "pixels"]


class PhaseTable(QTableWidget):
    """Shows phase-fraction rows (:func:`napari_matseg.api.phase_rows`); ``class_selected(image,
    label)`` fires when a row is picked. The area in µm² is shown when some image has a scale."""

    class_selected = Signal(str, int)

    def __init__(self, parent=None):
        super().__init__(0, 0, parent)
        self.rows: list[dict] = []
        self.setMinimumHeight(90)
        self.setSelectionBehavior(QTableWidget.SelectRows)
        self.setEditTriggers(QTableWidget.NoEditTriggers)
        self.itemSelectionChanged.connect(self._selected)

    def columns(self) -> list[str]:
        return [c for c in SHOWN if c != "area µm²" or any(r.get(c) not in ("", None) for r in self.rows)]

    def set_rows(self, rows: list[dict]) -> None:
        self.rows = list(rows)
        columns = self.columns()
        self.setColumnCount(len(columns))
        self.setHorizontalHeaderLabels(columns)
        self.setRowCount(len(self.rows))
        for i, row in enumerate(self.rows):
            for j, col in enumerate(columns):
                self.setItem(i, j, QTableWidgetItem(str(row.get(col, ""))))
        self.resizeColumnsToContents()

    def replace_image(self, name: str, rows: list[dict]) -> None:
        self.set_rows([r for r in self.rows if r["image"] != name] + rows)

    def as_text(self) -> str:
        """Return the rows as tab-separated text (every column of the CSV schema)."""
        return rows_as_text(self.rows, PHASE_COLUMNS, delimiter="\t")

    def copy(self) -> None:
        QApplication.clipboard().setText(self.as_text())

    def _selected(self) -> None:
        picked = self.selectionModel().selectedRows()
        if picked:
            row = self.rows[picked[0].row()]
            self.class_selected.emit(row["image"], int(row["label"]))
