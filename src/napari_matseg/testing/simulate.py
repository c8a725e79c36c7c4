"""Simulated user strokes, drawn from a dense ground-truth label image.

Used by the benchmark and the tests to stand in for a person painting: short strokes along
the skeleton of each class region, away from its borders, until a budget of pixels is painted.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.morphology import disk, skeletonize


@dataclass
class ScribbleSimulation:
    """Stroke length and width in pixels, margin kept from class borders, share of pixels painted."""

    stroke_length: int = 48
    stroke_width: int = 5
    erosion: int = 3
    painted_fraction: float = 0.015
    max_tries: int = 2000


def _stroke_pixels(skel_set: set, seed: tuple[int, int], radius: int) -> list[tuple[int, int]]:
    seen, out, queue = {seed}, [], deque([(seed, 0)])
    while queue:
        (r, c), d = queue.popleft()
        out.append((r, c))
        if d >= radius:
            continue
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                nb = (r + dr, c + dc)
                if nb not in seen and nb in skel_set:
                    seen.add(nb)
                    queue.append((nb, d + 1))
    return out


class StrokePainter:
    """Paints strokes of one class: along the skeleton of its region (eroded away from class
    borders), each ``stroke_length`` pixels long, ``stroke_width`` wide, kept inside the region."""

    def __init__(self, region: np.ndarray, config: ScribbleSimulation, rng: np.random.Generator):
        self.region = region
        self.config = config
        self.rng = rng
        self.brush = disk(config.stroke_width // 2)
        eroded = ndimage.binary_erosion(region, disk(config.erosion)) if config.erosion else region
        if not eroded.any():
            eroded = region
        coords = np.argwhere(skeletonize(eroded))
        self.coords = coords if len(coords) else np.argwhere(eroded)
        self.skeleton = set(map(tuple, self.coords))

    def stroke(self) -> tuple[tuple[slice, slice], np.ndarray]:
        """Return (window, mask in that window) of one stroke from a random skeleton pixel."""
        seed_px = tuple(self.coords[self.rng.integers(len(self.coords))])
        rows, cols = zip(*_stroke_pixels(self.skeleton, seed_px, self.config.stroke_length // 2))
        b = self.brush.shape[0]
        height, width = self.region.shape
        r0, r1 = max(min(rows) - b, 0), min(max(rows) + b + 1, height)
        c0, c1 = max(min(cols) - b, 0), min(max(cols) + b + 1, width)
        line = np.zeros((r1 - r0, c1 - c0), bool)
        line[np.asarray(rows) - r0, np.asarray(cols) - c0] = True
        window = (slice(r0, r1), slice(c0, c1))
        return window, ndimage.binary_dilation(line, self.brush) & self.region[window]


def simulate_scribbles(truth: np.ndarray, classes: list[int] | None = None,
                       config: ScribbleSimulation | None = None, seed: int = 0) -> np.ndarray:
    """Return napari-style scribbles (0 unpainted, class value + 1 painted) drawn from ``truth``.

    ``classes`` are the truth values to paint (default: all present); the pixel budget is
    split evenly between them.
    """
    config = config or ScribbleSimulation()
    rng = np.random.default_rng(seed)
    truth = np.asarray(truth)
    classes = sorted(int(c) for c in np.unique(truth)) if classes is None else list(classes)
    classes = [c for c in classes if (truth == c).any()]
    out = np.zeros(truth.shape, np.int32)
    if not classes:
        return out
    budget = config.painted_fraction * truth.size / len(classes)
    for cls in classes:
        painter = StrokePainter(truth == cls, config, rng)
        painted = np.zeros(truth.shape, bool)
        for _ in range(config.max_tries):
            if painted.sum() >= budget:
                break
            window, mask = painter.stroke()
            painted[window] |= mask
        out[painted & (out == 0)] = cls + 1
    return out


def simulate_corrections(truth: np.ndarray, where: np.ndarray, painted_fraction: float,
                         existing: np.ndarray | None = None, config: ScribbleSimulation | None = None,
                         seed: int = 0, min_region: int = 50) -> np.ndarray:
    """Return corrective strokes (0 unpainted, class value + 1) inside ``where``: the regions a
    user would correct (where the model errs, or where it is unsure), largest region first.

    In each region, one stroke of each true class present is painted per pass, until
    ``painted_fraction`` of the image's pixels are painted; pixels already in ``existing``
    strokes are not painted again. Regions under ``min_region`` pixels are skipped.
    """
    config = config or ScribbleSimulation()
    rng = np.random.default_rng(seed)
    truth = np.asarray(truth)
    taken = np.zeros(truth.shape, bool) if existing is None else np.asarray(existing) > 0
    components, count = ndimage.label(np.asarray(where, bool), structure=np.ones((3, 3)))
    out = np.zeros(truth.shape, np.int32)
    if count == 0:
        return out
    sizes = ndimage.sum_labels(np.ones(truth.shape), components, np.arange(1, count + 1))
    order = [i + 1 for i in np.argsort(-sizes) if sizes[i] >= min_region]
    slices = ndimage.find_objects(components)
    painters = []
    for label in order:
        sl = slices[label - 1]
        local = components[sl] == label
        for cls in np.unique(truth[sl][local]):
            region = np.zeros(truth.shape, bool)
            region[sl] = local & (truth[sl] == cls) & ~taken[sl]
            if region.sum() >= min_region // 2:
                painters.append((int(cls), StrokePainter(region, config, rng)))
    budget, painted = painted_fraction * truth.size, 0
    for _ in range(config.max_tries):
        if not painters or painted >= budget:
            break
        for cls, painter in painters:
            window, mask = painter.stroke()
            new = mask & (out[window] == 0) & ~taken[window]
            out[window][new] = cls + 1
            painted += int(new.sum())
            if painted >= budget:
                break
    return out
