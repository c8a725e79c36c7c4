"""A small live plot of the training loss (painted with QPainter; no plotting library)."""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, Qt
from qtpy.QtGui import QColor, QPainter, QPen
from qtpy.QtWidgets import QWidget


class LossPlot(QWidget):
    """Shows training loss (line) and held-out loss (dots) against the step."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumHeight(70)
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
        w, h, m = self.width(), self.height(), 6
        xmax = max(s for s, _ in points) or 1
        ymax = max(v for _, v in points) or 1

        def to_xy(step, value):
            return QPointF(m + (w - 2 * m) * step / xmax, h - m - (h - 2 * m) * value / ymax)

        painter.setPen(QPen(QColor(90, 170, 255), 1.5))
        pts = [to_xy(s, v) for s, v in self.train]
        for a, b in zip(pts, pts[1:]):
            painter.drawLine(a, b)
        painter.setPen(QPen(QColor(255, 160, 60), 4))
        for s, v in self.val:
            painter.drawPoint(to_xy(s, v))
        painter.setPen(QColor(200, 200, 200))
        painter.drawText(m, m + 10, f"loss (max {ymax:.2f}) · held-out strokes ●")
