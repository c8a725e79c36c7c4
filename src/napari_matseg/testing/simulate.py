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
    brush = disk(config.stroke_width // 2)
    for cls in classes:
        region = truth == cls
        eroded = ndimage.binary_erosion(region, disk(config.erosion)) if config.erosion else region
        if not eroded.any():
            eroded = region
        skel = skeletonize(eroded)
        coords = np.argwhere(skel)
        if len(coords) == 0:
            coords = np.argwhere(eroded)
        skel_set = set(map(tuple, coords))
        painted = np.zeros(truth.shape, bool)
        for _ in range(config.max_tries):
            if painted.sum() >= budget:
                break
            seed_px = tuple(coords[rng.integers(len(coords))])
            path = _stroke_pixels(skel_set, seed_px, config.stroke_length // 2)
            line = np.zeros(truth.shape, bool)
            rows, cols = zip(*path)
            line[list(rows), list(cols)] = True
            r0, r1 = max(min(rows) - brush.shape[0], 0), max(rows) + brush.shape[0] + 1
            c0, c1 = max(min(cols) - brush.shape[1], 0), max(cols) + brush.shape[1] + 1
            window = ndimage.binary_dilation(line[r0:r1, c0:c1], brush) & region[r0:r1, c0:c1]
            painted[r0:r1, c0:c1] |= window
        out[painted & (out == 0)] = cls + 1
    return out
