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
