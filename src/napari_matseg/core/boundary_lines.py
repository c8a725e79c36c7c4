"""A grain-boundary class predicted as a metallographer draws it: a closed network of thin lines.

A network fine-tuned on a few strokes marks grain boundaries as bands 10-30 px wide where they
were painted 3 px wide. Its boundary probability is high over whole small or bright grains too,
so the most likely class swallows them, and grains counted on it come out too few (ASTM E112 G
too small by about 2). Those grains are still there, as shallow dips in the boundary
probability. :func:`draw_boundary_lines` finds them by a seeded watershed:

1. smooth the boundary class's probability with a Gaussian of ``smoothing`` px;
2. every local minimum deeper than ``depth`` (an h-minimum: the probability must rise by more
   than ``depth`` on every path out of it) seeds one grain;
3. the watershed of the smoothed probability from those seeds splits the image into grains; the
   one-pixel lines between them are the boundaries, closed by construction;
4. the lines are drawn ``width`` px wide (how wide the class was painted); every other pixel
   takes its most likely class other than the boundary class.

The depth was chosen on three source images of the TBM development subset and checked on its
eight others (docs/benchmarks.md). It suits a network's smooth probabilities; a pixel
classifier's noisy ones (a random forest) have many shallow minima and come out over-split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .checks import check_float, check_int

DEFAULT_DEPTH = 0.02
DEFAULT_WIDTH = 3.0
MAX_PAINTED_WIDTH = 25.0  # wider "lines" are blobs or a bad self-check, not a painted boundary


@dataclass(frozen=True)
class BoundaryLinesConfig:
    """Which class (1..K) marks grain boundaries, and how its lines are found: minima of its
    smoothed probability deeper than ``depth`` seed the grains (``smoothing``: Gaussian sigma in
    px); the lines are drawn ``width`` px wide."""

    boundary_class: int
    width: float = DEFAULT_WIDTH
    depth: float = DEFAULT_DEPTH
    smoothing: float = 1.0

    def __post_init__(self):
        check_int("the boundary class", self.boundary_class, 1)
        check_float("the boundary line width", self.width, 1, 1000)
        check_float("the boundary depth", self.depth, 0, 1, strict_minimum=True)
        check_float("the boundary smoothing", self.smoothing, 0, 100)

    def describe(self) -> str:
        """Return the rule in words, with its values (for reports and the user guide)."""
        return (f"watershed lines of the boundary probability (smoothed {self.smoothing:g} px, "
                f"grains seeded by minima deeper than {self.depth:g}), drawn "
                f"{self.width:.0f} px wide")


def watershed_lines(probability: np.ndarray, depth: float = DEFAULT_DEPTH,
                    smoothing: float = 1.0) -> np.ndarray:
    """Return the one-pixel watershed lines (bool) between the grains that the minima of
    ``probability`` (a boundary class's probability, H x W) deeper than ``depth`` seed; no line
    where the whole image is one basin."""
    from skimage.morphology import h_minima
    from skimage.segmentation import watershed

    p = np.nan_to_num(np.asarray(probability, np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    if smoothing > 0:
        p = ndimage.gaussian_filter(p, smoothing)
    seeds, count = ndimage.label(h_minima(p, depth))
    if count < 2:
        return np.zeros(p.shape, bool)
    return watershed(p, seeds, watershed_line=True) == 0


def widen(lines: np.ndarray, width: float) -> np.ndarray:
    """Return ``lines`` drawn ``width`` px wide, rounded to the nearest odd width (ties to the
    thinner): the pixels within a whole-pixel radius of a line; 2.9-px strokes give 3-px lines,
    2- and 4-px strokes 1- and 3-px lines."""
    radius = math.ceil((width - 1) / 2 - 0.5)
    if radius < 1 or not lines.any():
        return lines
    return ndimage.distance_transform_edt(~lines) <= radius


def draw_boundary_lines(probabilities: np.ndarray, config: BoundaryLinesConfig) -> np.ndarray:
    """Return the label map (classes 1..K) of K x H x W class ``probabilities`` with the
    boundary class drawn as the closed network of lines of this module's rule: grains a wide
    predicted band swallows come back, and the class covers about as much as its painted lines
    would."""
    probabilities = np.asarray(probabilities)
    k = probabilities.shape[0]
    b = config.boundary_class - 1
    if not 0 <= b < k:
        raise ValueError(f"boundary class {config.boundary_class} of a {k}-class prediction")
    labels = np.zeros(probabilities.shape[1:], np.uint8 if k < 256 else np.uint16)
    best = np.full(probabilities.shape[1:], -np.inf, np.float32)
    for c in range(k):
        if c == b:
            continue
        p = np.nan_to_num(probabilities[c], nan=-1.0)
        better = p > best
        labels[better] = c + 1
        best = np.maximum(best, p, out=best)
    lines = widen(watershed_lines(probabilities[b], config.depth, config.smoothing), config.width)
    labels[lines] = config.boundary_class
    return labels
