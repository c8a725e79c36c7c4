"""A grain-boundary map as a segmentation network predicts it, simulated from a true one: lines
grown thick, with a few short gaps cut across them (benchmarks, tests)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.morphology import disk, skeletonize

from ..core.measure.boundary_network import neighbour_counts


def _direction(skeleton: np.ndarray, r: int, c: int, radius: int = 4) -> np.ndarray:
    rr, cc = np.nonzero(skeleton[max(r - radius, 0):r + radius + 1, max(c - radius, 0):c + radius + 1])
    points = np.stack([rr, cc], 1).astype(float)
    points -= points.mean(axis=0)
    return np.linalg.svd(points, full_matrices=False)[2][0]


def thick_broken_boundaries(boundary: np.ndarray, widen: int = 4, gaps: int = 4,
                            gap_range: tuple[int, int] = (2, 4), seed: int = 0) -> np.ndarray:
    """Return the boundary mask ``boundary`` grown by a disk of radius ``widen`` px, with up to
    ``gaps`` cuts of ``gap_range`` px (drawn uniformly) straight across its lines: the thick,
    broken boundaries a network predicts where the truth is thin and closed. Cuts sit on the
    truth's lines away from junctions, the image edge and each other."""
    rng = np.random.default_rng(seed)
    boundary = np.asarray(boundary, bool)
    thick = ndimage.binary_dilation(boundary, disk(widen)) if widen else boundary.copy()
    skeleton = skeletonize(boundary)
    counts = neighbour_counts(skeleton)
    margin = widen + gap_range[1] + 8
    clear = ndimage.distance_transform_edt(~(skeleton & (counts >= 3))) > margin
    clear[:margin] = clear[-margin:] = False
    clear[:, :margin] = clear[:, -margin:] = False
    rr, cc = np.nonzero(skeleton & (counts == 2) & clear)
    reach = widen + 6
    yy, xx = np.mgrid[-reach:reach + 1, -reach:reach + 1]
    sites: list[tuple[int, int]] = []
    for i in rng.permutation(len(rr)):
        if len(sites) == gaps:
            break
        r, c = int(rr[i]), int(cc[i])
        if any(abs(r - a) + abs(c - b) < 2 * margin for a, b in sites):
            continue
        sites.append((r, c))
        d = _direction(skeleton, r, c)
        along = yy * d[0] + xx * d[1]
        width = rng.integers(gap_range[0], gap_range[1] + 1)
        cut = (along >= -width / 2) & (along < width / 2)
        thick[yy[cut] + r, xx[cut] + c] = False
    return thick
