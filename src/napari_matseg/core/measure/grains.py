"""ASTM E112 grain size from a segmentation with a grain-boundary class: the grains are the
regions that class separates.

- Planimetric (Jeffries) procedure (E112 §11): over the image (the information band left out)
  as the test rectangle, N = N_inside + N_intercepted / 2, where grains touching the rectangle's
  edge are the intercepted ones; N_A = N / A per mm² at 1x; G = 3.321928 log10(N_A) - 2.954.
- Mean lineal intercept procedure (E112 §13): evenly spaced horizontal and vertical test lines;
  P counts the grain boundaries each line crosses (a boundary touching a line's end is not a
  crossing); the mean intercept length is L / P; G = -6.643856 log10(l in mm) - 3.288.

Grains are 4-connected regions of at least ``min_grain_pixels`` (smaller ones are specks of a
broken boundary, not grains). Both procedures need the pixel size; without it the counts are
reported and G is not. With a :class:`~.boundary_network.BoundaryNetworkConfig`, both count on
the boundary class thinned to a closed network (see :mod:`.boundary_network`) instead of the
raw mask. The result also says how wide the boundary lines were (``line_width_px``: the mask's
area over the length of the centre line counted on), which :func:`wide_lines_doubt` compares
with how wide the class was painted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..linewidth import mean_line_width
from .boundary_network import BoundaryNetworkConfig, closed_network

RAW_MASK_RULE = "raw mask"
WIDER_THAN_PAINTED = 3.0

def astm_g_from_density(grains_per_mm2: float) -> float:
    """Return the ASTM E112 grain size number G for N_A grains per mm² at 1x."""
    return 3.321928 * math.log10(grains_per_mm2) - 2.954 if grains_per_mm2 > 0 else float("nan")


def astm_g_from_intercept(mean_intercept_mm: float) -> float:
    """Return the ASTM E112 grain size number G for a mean lineal intercept length in mm."""
    return -6.643856 * math.log10(mean_intercept_mm) - 3.288 if mean_intercept_mm > 0 else float("nan")


@dataclass(frozen=True)
class GrainSize:
    """The grain size of one image. Lengths in µm and densities per mm² need the pixel size
    (None without it); ``intercept_lengths`` are the whole intercepts along the test lines, in
    µm (or pixels without a pixel size)."""

    grains_inside: int
    grains_intercepted: int
    area_mm2: float | None
    grains_per_mm2: float | None
    astm_g_planimetric: float | None
    crossings: int
    line_length_px: float
    mean_intercept_um: float | None
    astm_g_intercept: float | None
    intercept_lengths: np.ndarray = field(repr=False)
    boundaries: np.ndarray | None = field(default=None, repr=False)
    rule: str = RAW_MASK_RULE
    line_width_px: float | None = None

    @property
    def grains(self) -> float:
        """Equivalent whole grains: inside plus half the intercepted."""
        return self.grains_inside + 0.5 * self.grains_intercepted


def wide_lines_doubt(grains: GrainSize, painted_width: float | None,
                     factor: float = WIDER_THAN_PAINTED) -> str:
    """Return why a grain size is doubtful when its boundary class came out ``factor`` times
    wider than it was painted (a model that marks bands instead of lines: grains inside the
    bands are lost, so G comes out too small), or '' when it did not or nothing says how wide
    it was painted."""
    width = grains.line_width_px
    if not painted_width or width is None or width < factor * painted_width:
        return ""
    return (f"the boundaries are predicted {width:.0f} px wide where they were painted "
            f"{painted_width:.0f} px wide: grains inside the bands are lost, so G may come out "
            "too small; predict with the class drawn as lines ('boundaries as lines', "
            "'matseg predict --boundary-lines')")


def _crossings(line: np.ndarray) -> tuple[int, list[int]]:
    """Return the boundary runs crossed along a 1-D boundary mask, and the lengths of the
    grain runs between two crossed boundaries."""
    padded = np.concatenate([[False], line, [False]]).astype(np.int8)
    edges = np.diff(padded)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    inner = [(s, e) for s, e in zip(starts, ends) if s > 0 and e < len(line)]
    lengths = [inner[i + 1][0] - inner[i][1] for i in range(len(inner) - 1)]
    return len(inner), lengths


def grain_size(labels: np.ndarray, boundary_class: int, pixel_size: float | None = None,
               content_rows: int | None = None, lines: int = 20, min_grain_pixels: int = 10,
               network: BoundaryNetworkConfig | None = None) -> GrainSize:
    """Return the :class:`GrainSize` of a label map (classes 1..K) whose class
    ``boundary_class`` marks the grain boundaries; ``pixel_size`` in µm. With ``network``, the
    grains are counted on that class thinned to a closed network, as a metallographer would
    draw it; the result keeps the boundaries it counted on (``boundaries``) and the rule."""
    labels = np.asarray(labels)
    if content_rows is not None:
        labels = labels[:content_rows]
    height, width = labels.shape
    mask = labels == boundary_class
    boundary = closed_network(mask, network) if network is not None else mask
    line_width = mean_line_width(mask, boundary if network is not None else None)
    grains, count = ndimage.label(~boundary & (labels > 0))
    inside = intercepted = 0
    if count:
        sizes = ndimage.sum_labels(np.ones_like(grains), grains, np.arange(1, count + 1))
        edge = np.zeros(count + 1, bool)
        edge[np.unique(np.concatenate([grains[0], grains[-1], grains[:, 0], grains[:, -1]]))] = True
        real = sizes >= min_grain_pixels
        intercepted = int((real & edge[1:]).sum())
        inside = int((real & ~edge[1:]).sum())
    crossings, lengths, line_length = 0, [], 0.0
    for r in np.linspace(0, height - 1, lines + 2)[1:-1].round().astype(int):
        p, l = _crossings(boundary[r])
        crossings, lengths, line_length = crossings + p, lengths + l, line_length + width
    for c in np.linspace(0, width - 1, lines + 2)[1:-1].round().astype(int):
        p, l = _crossings(boundary[:, c])
        crossings, lengths, line_length = crossings + p, lengths + l, line_length + height
    lengths = np.asarray(lengths, np.float64) * (pixel_size or 1.0)
    area_mm2 = density = g_plan = mean_um = g_int = None
    if pixel_size:
        area_mm2 = height * width * (pixel_size * 1e-3) ** 2
        density = (inside + 0.5 * intercepted) / area_mm2
        g_plan = astm_g_from_density(density)
        if crossings:
            mean_um = line_length * pixel_size / crossings
            g_int = astm_g_from_intercept(mean_um * 1e-3)
    return GrainSize(inside, intercepted, area_mm2, density, g_plan, crossings, line_length,
                     mean_um, g_int, lengths, boundary,
                     network.describe() if network is not None else RAW_MASK_RULE, line_width)
