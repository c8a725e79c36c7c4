"""Dock contents that scroll, instead of being clipped, when the dock is shorter than they are.

napari stacks dock widgets and may give one less height than its content needs (the Train dock
with Predict below it, say); without a scroll area the end of a long status line is cut off.
"""

from __future__ import annotations

from qtpy.QtCore import QSize, Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QVBoxLayout, QWidget


class FittingScrollArea(QScrollArea):
    """A vertical scroll area for a dock's content: as wide as the content asks, so nothing
    scrolls sideways, and scrolling vertically only when the dock is shorter than the content
    (stacked docks then share their column: see :func:`napari_matseg.launch.share_dock_height`)."""

    def __init__(self, content: QWidget):
        super().__init__()
        self.setWidget(content)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QFrame.Shape.NoFrame)

    def sizeHint(self) -> QSize:
        hint = self.widget().sizeHint()
        return QSize(hint.width() + self.verticalScrollBar().sizeHint().width(), hint.height())


def scrolling_layout(owner: QWidget) -> QVBoxLayout:
    """Fill ``owner`` with a :class:`FittingScrollArea` and return the layout of its content."""
    content = QWidget()
    outer = QVBoxLayout(owner)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(FittingScrollArea(content))
    return QVBoxLayout(content)
