"""Table of phase (area) fractions per image, with copy and CSV export."""

from __future__ import annotations

import csv

import numpy as np
from psygnal import Signal
from qtpy.QtWidgets import QApplication, QTableWidget, QTableWidgetItem

from ..core.metrics import phase_fractions


def fraction_rows(name: str, labels: np.ndarray, class_names: list[str],
                  pixel_area: float | None = None, unit: str = "µm") -> list[dict]:
    """Return one row per class: area % (and area in unit² when the pixel area is known)."""
    fractions = phase_fractions(labels, len(class_names), offset=1)
    counts = np.bincount(np.asarray(labels).ravel().astype(np.int64),
                         minlength=len(class_names) + 1)[1:len(class_names) + 1]
    rows = []
    for k, (cname, f) in enumerate(zip(class_names, fractions)):
        row = {"image": name, "class": cname, "label": k + 1, "area %": round(100 * float(f), 3)}
        if pixel_area is not None:
            row[f"area {unit}²"] = round(float(counts[k]) * pixel_area, 4)
        rows.append(row)
    return rows


class PhaseTable(QTableWidget):
    """Shows fraction rows; ``class_selected(image, label)`` fires when a row is picked."""

    class_selected = Signal(str, int)

    def __init__(self, parent=None):
        super().__init__(0, 0, parent)
        self.rows: list[dict] = []
        self.setMinimumHeight(130)
        self.setSelectionBehavior(QTableWidget.SelectRows)
        self.setEditTriggers(QTableWidget.NoEditTriggers)
        self.itemSelectionChanged.connect(self._selected)

    def set_rows(self, rows: list[dict]) -> None:
        self.rows = list(rows)
        columns = list(dict.fromkeys(k for r in self.rows for k in r))
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
        columns = list(dict.fromkeys(k for r in self.rows for k in r))
        lines = ["\t".join(columns)] + ["\t".join(str(r.get(c, "")) for c in columns) for r in self.rows]
        return "\n".join(lines)

    def copy(self) -> None:
        QApplication.clipboard().setText(self.as_text())

    def write_csv(self, path: str) -> None:
        columns = list(dict.fromkeys(k for r in self.rows for k in r))
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)

    def _selected(self) -> None:
        picked = self.selectionModel().selectedRows()
        if picked:
            row = self.rows[picked[0].row()]
            self.class_selected.emit(row["image"], int(row["label"]))
