"""A list of names with check boxes whose ticks the user sets are remembered by name."""

from __future__ import annotations

from typing import Callable

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QListWidget, QListWidgetItem


class CheckList(QListWidget):
    """Named, checkable items: a tick the user sets is kept across refreshes (a layer list that
    changes, say); an item never touched is ticked as ``default(name)`` says."""

    def __init__(self, max_height: int, default: Callable[[str], bool] = lambda name: True):
        super().__init__()
        self.setMaximumHeight(max_height)
        self.default = default
        self.ticks: dict[str, bool] = {}
        self.itemChanged.connect(self._ticked)

    def set_items(self, names: list[str], texts: list[str] | None = None,
                  tooltips: list[str] | None = None) -> None:
        """Show ``names`` (as ``texts`` when given), ticked as the user left them or by default."""
        self.blockSignals(True)
        self.clear()
        for i, name in enumerate(names):
            item = QListWidgetItem(texts[i] if texts else name)
            item.setData(Qt.UserRole, name)
            if tooltips:
                item.setToolTip(tooltips[i])
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Checked if self.ticks.get(name, self.default(name)) else Qt.Unchecked)
            self.addItem(item)
        self.blockSignals(False)

    def names(self) -> list[str]:
        return [self.item(i).data(Qt.UserRole) for i in range(self.count())]

    def checked(self) -> list[str]:
        """Return the names that are ticked, in order."""
        return [self.item(i).data(Qt.UserRole) for i in range(self.count())
                if self.item(i).checkState() == Qt.Checked]

    def set_checked(self, name: str, checked: bool) -> None:
        """Tick or untick ``name`` as the user would."""
        for i in range(self.count()):
            if self.item(i).data(Qt.UserRole) == name:
                self.item(i).setCheckState(Qt.Checked if checked else Qt.Unchecked)

    def _ticked(self, item: QListWidgetItem) -> None:
        self.ticks[item.data(Qt.UserRole)] = item.checkState() == Qt.Checked
