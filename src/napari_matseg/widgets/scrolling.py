"""Dock contents that scroll, instead of being clipped, when the dock is shorter than they are.

napari stacks dock widgets and may give one less height than its content needs (the Train dock
with Predict below it, say); without a scroll area the end of a long status line is cut off.
"""

from __future__ import annotations

from qtpy.QtCore import QSize, Qt, QTimer
from qtpy.QtWidgets import (QComboBox, QDockWidget, QFrame, QMainWindow, QScrollArea, QVBoxLayout,
                            QWidget)


MAX_WIDTH = 380


def shrinkable_combo(parent=None, characters: int = 12) -> QComboBox:
    """Return a combo box whose width does not follow its longest item (a long layer name would
    otherwise widen the dock or push its row out of view); the full name is its tooltip."""
    combo = QComboBox(parent)
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(characters)
    combo.currentTextChanged.connect(combo.setToolTip)
    return combo


class FittingScrollArea(QScrollArea):
    """A vertical scroll area for a dock's content: as wide as the content asks, so nothing
    scrolls sideways, and scrolling vertically only when the dock is shorter than the content
    (stacked docks then share their column: see :func:`share_column`)."""

    def __init__(self, content: QWidget):
        super().__init__()
        self.setWidget(content)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self._shared = False

    def sizeHint(self) -> QSize:
        """As tall as the content; as wide as it asks up to ``MAX_WIDTH``, so a long layer name
        does not squeeze napari's canvas (the user can still drag the dock wider)."""
        hint = self.widget().sizeHint()
        width = hint.width() + self.verticalScrollBar().sizeHint().width()
        return QSize(min(width, MAX_WIDTH), hint.height())

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._shared:
            self._shared = True
            QTimer.singleShot(0, self._share_column)

    def _share_column(self) -> None:
        dock = self.parentWidget()
        while dock is not None and not isinstance(dock, QDockWidget):
            dock = dock.parentWidget()
        if dock is not None:
            escape_tab_title(dock)
            share_column(dock)
        viewer = getattr(self.parentWidget(), "viewer", None)
        if viewer is not None:
            QTimer.singleShot(50, viewer.reset_view)  # the canvas shrank: fit the image again


def escape_tab_title(dock: QDockWidget) -> None:
    """Double the '&' of the dock's title: Qt's tab bar for tabbed docks, and the Window menu,
    read a single '&' as a keyboard mnemonic ("Predict & Inspect" showed as "Predict _Inspect")."""
    title = dock.windowTitle()
    if "&" in title and "&&" not in title:
        dock.setWindowTitle(title.replace("&", "&&"))


def stacked_docks(dock: QDockWidget) -> list[QDockWidget]:
    """Return the docks that share ``dock``'s column and scroll (this module's docks): docked,
    visible, in the same area of the main window and not tabbed."""
    window = dock.parentWidget()
    if not isinstance(window, QMainWindow) or dock.isFloating():
        return [dock]
    area = window.dockWidgetArea(dock)
    return [d for d in window.findChildren(QDockWidget)
            if d.parentWidget() is window and d.isVisible() and not d.isFloating()
            and window.dockWidgetArea(d) == area and not window.tabifiedDockWidgets(d)
            and d.findChild(FittingScrollArea) is not None]


def share_column(dock: QDockWidget) -> None:
    """Split the column that ``dock`` is stacked in between its scrolling docks in proportion
    to each widget's ``column_share`` (Annotate & Train 3, the others 2, so its Train button
    stays in view). Called once when a dock first shows, so a dock opened below another (from
    the Plugins menu, or by ``napari-matseg``) is not squeezed to a strip; heights the user
    drags later are left alone until another MatSeg dock opens in the column."""
    docks = stacked_docks(dock)
    if len(docks) > 1:
        owners = [d.findChild(FittingScrollArea).parentWidget() for d in docks]
        share_dock_height(docks, [getattr(owner, "column_share", 2) for owner in owners])


def share_dock_height(docks: list[QDockWidget], weights: list[float]) -> None:
    """Split the height of the docks' column between ``docks`` in the ratio ``weights`` (Qt
    otherwise gives the first dock all it asks for and squeezes the next to a strip)."""
    window = docks[0].parentWidget()
    total = sum(d.height() for d in docks)
    if not isinstance(window, QMainWindow) or total <= len(docks):
        return
    sizes = [max(1, int(total * w / sum(weights))) for w in weights]
    window.resizeDocks(docks, sizes, Qt.Orientation.Vertical)


def scrolling_layout(owner: QWidget) -> tuple[QVBoxLayout, QVBoxLayout]:
    """Fill ``owner`` with a :class:`FittingScrollArea` above a pinned footer; return the layouts
    of the scrolling content and of the footer (for the controls that must stay in view: the
    start button, the progress bar and the status line)."""
    content = QWidget()
    outer = QVBoxLayout(owner)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.setSpacing(2)
    outer.addWidget(FittingScrollArea(content), 1)
    footer = QWidget()
    footer_layout = QVBoxLayout(footer)
    footer_layout.setContentsMargins(6, 2, 6, 4)
    footer_layout.setSpacing(3)
    outer.addWidget(footer, 0)
    return QVBoxLayout(content), footer_layout
