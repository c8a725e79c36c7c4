"""Synthetic micrographs with known phases, for tests and demonstrations.

Grains of a Voronoi tessellation each belong to one phase; phases differ in texture (smooth,
lamellar, speckled), not only in grey level, like real etched microstructures.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree


def voronoi_micrograph(size: tuple[int, int] = (192, 192), grains: int = 24, phases: int = 3,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return (uint8 image, truth with phase 0..phases-1) of a textured Voronoi microstructure."""
    rng = np.random.default_rng(seed)
    h, w = size
    points = rng.uniform(0, 1, (grains, 2)) * (h, w)
    rr, cc = np.mgrid[0:h, 0:w]
    _, owner = cKDTree(points).query(np.stack([rr.ravel(), cc.ravel()], 1))
    owner = owner.reshape(h, w)
    phase_of = np.arange(grains) % phases
    rng.shuffle(phase_of)
    truth = phase_of[owner]
    image = np.zeros((h, w), np.float64)
    noise = ndimage.gaussian_filter(rng.standard_normal((h, w)), 1.0)
    speckle = rng.standard_normal((h, w))
    for g in range(grains):
        mask = owner == g
        phase = phase_of[g]
        if phase == 0:
            image[mask] = 0.45 + 0.05 * noise[mask]
        elif phase == 1:
            angle = rng.uniform(0, np.pi)
            wave = np.sin((rr * np.cos(angle) + cc * np.sin(angle)) * 2 * np.pi / 7)
            image[mask] = 0.45 + 0.2 * wave[mask]
        else:
            image[mask] = 0.65 + 0.12 * speckle[mask]
    boundary = ndimage.morphological_gradient(owner, size=2) > 0
    image[boundary] = 0.2
    image = ndimage.gaussian_filter(image, 0.6) + 0.02 * rng.standard_normal((h, w))
    return (np.clip(image, 0, 1) * 255).astype(np.uint8), truth.astype(np.int64)


def voronoi_grains(size: tuple[int, int] = (1000, 1000), grains: int = 200, boundary: int = 1,
                   seed: int = 0) -> np.ndarray:
    """Return a label map of a grain structure of known density, ``grains`` per image area: a
    Voronoi tessellation of uniform random seeds, drawn over a frame twice the image's size
    around it so that grains continue past the image edge as in a micrograph. Grain interiors
    are 1 and boundaries 2, one pixel wide, grown by ``boundary - 1`` pixels on each side."""
    rng = np.random.default_rng(seed)
    h, w = size
    points = rng.uniform(-0.5, 1.5, (4 * grains, 2)) * (h, w)
    rr, cc = np.mgrid[0:h, 0:w]
    _, owner = cKDTree(points).query(np.stack([rr.ravel(), cc.ravel()], 1))
    owner = owner.reshape(h, w)
    edges = np.zeros(size, bool)
    edges[1:] |= owner[1:] != owner[:-1]
    edges[:, 1:] |= owner[:, 1:] != owner[:, :-1]
    if boundary > 1:
        edges = ndimage.binary_dilation(edges, iterations=boundary - 1)
    return np.where(edges, 2, 1).astype(np.uint8)


def discs(size: tuple[int, int], diameters: list[float], seed: int = 0,
          margin: int = 2) -> tuple[np.ndarray, list[tuple[float, float, float]]]:
    """Return (label map with discs 2 on a background 1, [(row, col, diameter)]) of
    non-overlapping discs of the given diameters, placed at random away from each other."""
    rng = np.random.default_rng(seed)
    h, w = size
    out = np.ones(size, np.uint8)
    placed: list[tuple[float, float, float]] = []
    rr, cc = np.mgrid[0:h, 0:w]
    for d in diameters:
        for _ in range(1000):
            r, c = rng.uniform(d / 2 + margin, h - d / 2 - margin), rng.uniform(d / 2 + margin, w - d / 2 - margin)
            if all((r - pr) ** 2 + (c - pc) ** 2 > ((d + pd) / 2 + margin) ** 2 for pr, pc, pd in placed):
                placed.append((r, c, d))
                out[(rr - r) ** 2 + (cc - c) ** 2 <= (d / 2) ** 2] = 2
                break
    return out, placed
