"""Where to paint next: the unpainted regions where the current model is least sure.

A model learns most from strokes where it hesitates; painting where it is already sure repeats
what it knows. From a prediction's uncertainty map (normalised entropy), the regions below are
the largest connected areas of high uncertainty away from the strokes already painted, ranked by
their total uncertainty (area x mean), so one large doubtful area outranks scattered pixels
along every phase boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .checks import check_float, check_int


@dataclass(frozen=True)
class GuidanceConfig:
    """``quantile`` of the unpainted pixels' uncertainty above which a pixel counts as doubtful
    (and at least ``min_uncertainty``); maps are analysed at most ``max_side`` pixels a side,
    smoothed by ``smoothing`` pixels there; strokes keep ``margin`` pixels around them out;
    regions under ``min_area`` pixels (of the analysed map) are dropped."""

    quantile: float = 0.85
    min_uncertainty: float = 0.3
    max_side: int = 512
    smoothing: float = 2.0
    margin: int = 6
    min_area: int = 40

    def __post_init__(self):
        check_float("the uncertainty quantile", self.quantile, 0, 1)
        check_float("the minimum uncertainty", self.min_uncertainty, 0, 1)
        check_int("the analysis size", self.max_side, 32)
        check_float("the smoothing", self.smoothing, 0)
        check_int("the stroke margin", self.margin, 0)
        check_int("the minimum region area", self.min_area, 1)


@dataclass(frozen=True)
class PaintRegion:
    """A region worth painting, in pixels of the original image: its bounding box (top, left,
    bottom, right; bottom and right exclusive), its centre, its area and mean uncertainty, and
    the mask of the region inside its box."""

    box: tuple[int, int, int, int]
    centre: tuple[float, float]
    area: int
    mean_uncertainty: float
    mask: np.ndarray

    @property
    def score(self) -> float:
        return self.area * self.mean_uncertainty

    def full_mask(self, shape: tuple[int, int]) -> np.ndarray:
        """Return the region as a boolean mask of an image of ``shape``."""
        out = np.zeros(shape, bool)
        top, left, bottom, right = self.box
        out[top:bottom, left:right] = self.mask
        return out


def regions_to_paint(uncertainty: np.ndarray, painted: np.ndarray | None = None,
                     content_rows: int | None = None, top: int = 5,
                     config: GuidanceConfig | None = None) -> list[PaintRegion]:
    """Return up to ``top`` regions worth painting next, most worth first.

    ``uncertainty`` is a prediction's map (0 certain .. 1 all classes equally likely);
    ``painted`` marks strokes already painted; rows from ``content_rows`` on (the information
    band) are never suggested.
    """
    cfg = config or GuidanceConfig()
    u = np.asarray(uncertainty, np.float32)
    height, width = u.shape
    rows = height if content_rows is None else int(content_rows)
    factor = max(1, int(np.ceil(max(rows, width) / cfg.max_side)))
    small = u[:rows:factor, ::factor]
    if cfg.smoothing:
        small = ndimage.gaussian_filter(small, cfg.smoothing)
    allowed = np.ones(small.shape, bool)
    if painted is not None:
        near = np.asarray(painted, bool)[:rows:factor, ::factor]
        if cfg.margin:
            near = ndimage.binary_dilation(near, iterations=max(1, cfg.margin // factor))
        allowed &= ~near
    if not allowed.any():
        return []
    threshold = max(cfg.min_uncertainty, float(np.quantile(small[allowed], cfg.quantile)))
    doubtful = (small >= threshold) & allowed
    doubtful = ndimage.binary_opening(doubtful, iterations=1)
    components, count = ndimage.label(doubtful, structure=np.ones((3, 3)))
    if count == 0:
        return []
    index = np.arange(1, count + 1)
    areas = ndimage.sum_labels(np.ones_like(small), components, index)
    sums = ndimage.sum_labels(small, components, index)
    keep = [i for i in np.argsort(-sums) if areas[i] >= cfg.min_area][:top]
    regions = []
    slices = ndimage.find_objects(components)
    for i in keep:
        sl = slices[i]
        local = components[sl] == i + 1
        mask = np.repeat(np.repeat(local, factor, axis=0), factor, axis=1)
        r0, c0 = sl[0].start * factor, sl[1].start * factor
        r1, c1 = min(rows, r0 + mask.shape[0]), min(width, c0 + mask.shape[1])
        mask = mask[:r1 - r0, :c1 - c0]
        rr, cc = np.nonzero(mask)
        regions.append(PaintRegion((r0, c0, r1, c1), (float(rr.mean() + r0), float(cc.mean() + c0)),
                                   int(mask.sum()), float(sums[i] / areas[i]), mask))
    return regions
