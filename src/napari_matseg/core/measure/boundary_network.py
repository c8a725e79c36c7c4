"""A grain-boundary class as a metallographer draws it: a thin, closed network of lines.

A predicted boundary class comes out thick and broken: thick lines swallow small grains and
gaps merge neighbours, so grains counted on the raw mask come out too few. :func:`closed_network`
turns the mask into one-pixel lines before the grains are counted:

1. skeletonise the mask (Zhang thinning); the mask is first extended past the image by
   repeating its edge, so a boundary that leaves the image still reaches the edge, and its
   pixels on the image edge are kept, so a boundary along the edge still closes the grains
   behind it;
2. drop specks: pieces of the skeleton of fewer than ``min_speck`` pixels (8-connected), here
   and again at the end;
3. bridge gaps: from each line end, a straight line to the nearest skeleton pixel ahead of it
   (within 60° of the line's direction) that is not on its own line nearby, when the gap in the
   mask is at most ``max_gap`` pixels (a skeleton stops about half the line's width short of the
   mask's end, so the reach from a line end is ``max_gap`` plus the line's local width);
4. prune spurs: branches from a line end to a junction shorter than ``min_spur`` pixels.

Line ends on the image edge are neither bridged nor pruned: their line goes on outside.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..checks import check_int

EIGHT = np.ones((3, 3), bool)
_OFFSETS = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc]
MIN_COS_AHEAD = 0.5


@dataclass(frozen=True)
class BoundaryNetworkConfig:
    """How a boundary mask is thinned to a closed network (pixels): gaps in the mask up to
    ``max_gap`` are bridged, dangling branches shorter than ``min_spur`` and pieces smaller than
    ``min_speck`` are dropped."""

    max_gap: int = 4
    min_spur: int = 8
    min_speck: int = 20

    def __post_init__(self):
        check_int("the largest gap bridged", self.max_gap, 0, 1000)
        check_int("the shortest spur kept", self.min_spur, 0, 10000)
        check_int("the smallest network piece kept", self.min_speck, 0, 10 ** 8)

    def describe(self) -> str:
        """Return the rule in words, with its values (for the CSV and the user guide)."""
        return (f"thinned network: skeleton, gaps up to {self.max_gap} px bridged, spurs under "
                f"{self.min_spur} px and specks under {self.min_speck} px dropped")


def neighbour_counts(skeleton: np.ndarray) -> np.ndarray:
    """Return, for every pixel, how many of its 8 neighbours are on ``skeleton``."""
    s = skeleton.astype(np.uint8)
    return ndimage.convolve(s, EIGHT.astype(np.uint8), mode="constant") - s


def _on_edge(shape, r: int, c: int) -> bool:
    return r == 0 or c == 0 or r == shape[0] - 1 or c == shape[1] - 1


def _line_ends(skeleton: np.ndarray) -> list[tuple[int, int]]:
    """Return the skeleton pixels with one neighbour, leaving out those on the image edge."""
    counts = neighbour_counts(skeleton)
    ends = np.argwhere(skeleton & (counts == 1))
    return [(int(r), int(c)) for r, c in ends if not _on_edge(skeleton.shape, r, c)]


def _neighbours(skeleton: np.ndarray, r: int, c: int) -> list[tuple[int, int]]:
    h, w = skeleton.shape
    return [(r + dr, c + dc) for dr, dc in _OFFSETS
            if 0 <= r + dr < h and 0 <= c + dc < w and skeleton[r + dr, c + dc]]


def _trace(skeleton: np.ndarray, start: tuple[int, int], limit: int) -> tuple[list, bool]:
    """Return the pixels from line end ``start`` along its line (at most ``limit``), and whether
    the walk stopped at a junction (a pixel with three or more skeleton neighbours)."""
    path, seen = [start], {start}
    current = start
    while len(path) < limit:
        ahead = [p for p in _neighbours(skeleton, *current) if p not in seen]
        if len(ahead) != 1:
            return path, len(ahead) > 1
        nxt = ahead[0]
        if len(_neighbours(skeleton, *nxt)) >= 3:
            return path, True
        path.append(nxt)
        seen.add(nxt)
        current = nxt
    return path, False


def _bridge_target(skeleton: np.ndarray, end: tuple[int, int], reach: float,
                   direction: np.ndarray) -> tuple[int, int] | None:
    """Return the nearest skeleton pixel within ``reach`` of ``end``, ahead of it and not on
    its own line within that radius, or None."""
    r, c = end
    R = int(np.ceil(reach))
    r0, c0 = max(r - R, 0), max(c - R, 0)
    window = skeleton[r0:r + R + 1, c0:c + R + 1]
    parts, _ = ndimage.label(window, EIGHT)
    own = parts[r - r0, c - c0]
    rr, cc = np.nonzero(window & (parts != own))
    if rr.size == 0:
        return None
    dr, dc = rr + r0 - r, cc + c0 - c
    dist = np.hypot(dr, dc)
    ahead = (dr * direction[0] + dc * direction[1]) >= MIN_COS_AHEAD * dist
    ok = (dist <= reach) & ahead
    if not ok.any():
        return None
    i = np.flatnonzero(ok)[np.argmin(dist[ok])]
    return int(rr[i] + r0), int(cc[i] + c0)


def _draw_line(skeleton: np.ndarray, a: tuple[int, int], b: tuple[int, int]) -> None:
    from skimage.draw import line

    rr, cc = line(a[0], a[1], b[0], b[1])
    skeleton[rr, cc] = True


def bridge_gaps(skeleton: np.ndarray, width: np.ndarray, max_gap: int) -> int:
    """Join line ends to the network in place (see the module's rule 3); ``width`` is the
    mask's distance transform. Returns the number of bridges drawn (none with ``max_gap`` 0)."""
    bridges = 0
    for end in _line_ends(skeleton) if max_gap > 0 else ():
        if not skeleton[end] or len(_neighbours(skeleton, *end)) != 1:
            continue
        path, _ = _trace(skeleton, end, max(3, max_gap))
        if len(path) < 2:
            continue
        direction = np.subtract(end, path[-1]).astype(float)
        direction /= np.hypot(*direction)
        target = _bridge_target(skeleton, end, max_gap + 2 * float(width[end]), direction)
        if target is not None:
            _draw_line(skeleton, end, target)
            bridges += 1
    return bridges


def prune_spurs(skeleton: np.ndarray, min_spur: int) -> int:
    """Remove, in place, branches from a line end to a junction shorter than ``min_spur``
    pixels, until none is left; returns the pixels removed."""
    removed = 0
    while min_spur > 0:
        spurs = []
        for end in _line_ends(skeleton):
            path, at_junction = _trace(skeleton, end, min_spur)
            if at_junction and len(path) < min_spur:
                spurs.append(path)
        if not spurs:
            break
        for path in spurs:
            for p in path:
                skeleton[p] = False
            removed += len(path)
    return removed


def drop_specks(skeleton: np.ndarray, min_speck: int) -> np.ndarray:
    """Return ``skeleton`` without its 8-connected pieces of fewer than ``min_speck`` pixels."""
    if min_speck <= 1 or not skeleton.any():
        return skeleton
    parts, count = ndimage.label(skeleton, EIGHT)
    sizes = np.bincount(parts.ravel(), minlength=count + 1)
    keep = sizes >= min_speck
    keep[0] = False
    return keep[parts]


def closed_network(mask: np.ndarray, config: BoundaryNetworkConfig | None = None) -> np.ndarray:
    """Return the thin, closed network (a bool map of one-pixel 8-connected lines) that a boundary
    mask stands for, by the rule in this module's docstring; grains counted on it are the regions
    a metallographer's drawn lines would separate."""
    from skimage.morphology import skeletonize

    config = config or BoundaryNetworkConfig()
    mask = np.asarray(mask, bool)
    if not mask.any():
        return np.zeros(mask.shape, bool)
    width = ndimage.distance_transform_edt(mask)
    pad = int(np.ceil(width.max())) + 2
    padded = np.pad(mask, pad, mode="edge")
    skeleton = skeletonize(padded)[pad:-pad, pad:-pad]
    edge = np.zeros(mask.shape, bool)
    edge[[0, -1], :] = edge[:, [0, -1]] = True
    skeleton = drop_specks(skeleton | (mask & edge), config.min_speck).copy()
    bridge_gaps(skeleton, width, config.max_gap)
    prune_spurs(skeleton, config.min_spur)
    return drop_specks(skeleton, config.min_speck)
