"""A small live plot of the training loss (painted with QPainter; no plotting library)."""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, Qt
from qtpy.QtGui import QColor, QPainter, QPen
from qtpy.QtWidgets import QWidget


TRAIN_COLOUR = QColor(90, 170, 255)
HELD_OUT_COLOUR = QColor(255, 160, 60)


class LossPlot(QWidget):
    """Shows training loss (line) and held-out loss (dots) against the step."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumHeight(80)
        self.train: list[tuple[int, float]] = []
        self.val: list[tuple[int, float]] = []

    def clear(self) -> None:
        self.train, self.val = [], []
        self.update()

    def add(self, step: int, loss: float | None, val_loss: float | None = None) -> None:
        """Add a point of the training loss and, when given, of the held-out loss (values that
        are not finite numbers, as before the first step, are left out)."""
        if loss is not None and math.isfinite(loss):
            self.train.append((step, loss))
        if val_loss is not None and math.isfinite(val_loss):
            self.val.append((step, val_loss))
        self.update()

    def paintEvent(self, event):  # noqa: N802 (Qt name)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        painter.fillRect(self.rect(), QColor(38, 41, 48))
        points = self.train + self.val
        if len(points) < 2:
            painter.setPen(QColor(160, 160, 160))
            painter.drawText(self.rect(), Qt.AlignCenter, "loss appears here during training")
            return
        w, h, m, legend = self.width(), self.height(), 6, 16
        xmax = max(s for s, _ in points) or 1
        ymax = max(v for _, v in points) or 1

        def to_xy(step, value):
            top, bottom = legend + m, h - m
            return QPointF(m + (w - 2 * m) * step / xmax, bottom - (bottom - top) * value / ymax)

        painter.setPen(QPen(TRAIN_COLOUR, 1.5))
        pts = [to_xy(s, v) for s, v in self.train]
        for a, b in zip(pts, pts[1:]):
            painter.drawLine(a, b)
        painter.setPen(QPen(HELD_OUT_COLOUR, 4))
        for s, v in self.val:
            painter.drawPoint(to_xy(s, v))
        # the legend sits in its own band above the curves, in the curves' colours
        y = m + 9
        painter.setPen(QPen(TRAIN_COLOUR, 1.5))
        painter.drawLine(QPointF(m, y - 3), QPointF(m + 14, y - 3))
        painter.setPen(QColor(200, 200, 200))
        painter.drawText(m + 18, y, f"training loss (max {ymax:.2f})")
        x = m + 18 + painter.fontMetrics().horizontalAdvance(f"training loss (max {ymax:.2f})") + 14
        painter.setPen(QPen(HELD_OUT_COLOUR, 5))
        painter.drawPoint(QPointF(x, y - 3))
        painter.setPen(QColor(200, 200, 200))
        painter.drawText(int(x + 8), y, "held-out strokes")
