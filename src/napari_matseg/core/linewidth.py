"""How wide a class is drawn: the mean width of its pixels taken as lines."""

from __future__ import annotations

import numpy as np


def mean_line_width(mask: np.ndarray, centre_line: np.ndarray | None = None) -> float | None:
    """Return the mean width in pixels of the lines a mask draws: its area over the length of
    its centre line (``centre_line`` when given, such as a thinned boundary network, else the
    mask's skeleton); None for an empty mask or an empty centre line. A 3-px brush stroke gives
    about 3; a filled blob gives far more than its diameter (its skeleton is short), so a class
    painted in dabs reads as very wide."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return None
    if centre_line is None:
        from skimage.morphology import skeletonize

        centre_line = skeletonize(mask)
    length = int(np.count_nonzero(centre_line))
    return float(mask.sum()) / length if length else None


def class_line_widths(labels: np.ndarray) -> dict[int, float]:
    """Return the mean line width of each class painted on ``labels`` (1..K, 0 unpainted)."""
    labels = np.asarray(labels)
    widths = {}
    for cls in np.unique(labels[labels > 0]):
        width = mean_line_width(labels == cls)
        if width is not None:
            widths[int(cls)] = round(width, 2)
    return widths
