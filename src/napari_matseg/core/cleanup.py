"""Removing regions too small to be a phase: the speckles of a class that prediction leaves."""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
from scipy import ndimage as ndi

from .errors import InputError

EIGHT_NEIGHBOURS = np.ones((3, 3), bool)


def parse_min_area(spec: str | Iterable[str], class_names: list[str]) -> dict[int, int]:
    """Return {class (1..K): minimum area in pixels} from ``CLASS=PIXELS`` items.

    ``CLASS`` is a class number (1..K) or name (any case); a bare ``PIXELS`` sets every class.
    Items may be given as a list or in one string separated by spaces or commas. Raises
    :class:`InputError` naming the item that cannot be read.
    """
    items = spec.replace(",", " ").split() if isinstance(spec, str) else list(spec)
    names = {n.lower(): i + 1 for i, n in enumerate(class_names)}
    areas: dict[int, int] = {}
    for item in items:
        key, sep, value = item.rpartition("=")
        try:
            pixels = int(value)
        except ValueError:
            raise InputError(f"minimum area {item!r}: give CLASS=PIXELS or PIXELS, "
                             "with PIXELS a whole number") from None
        if pixels < 0:
            raise InputError(f"minimum area {item!r}: the area cannot be negative")
        if not sep:
            areas.update({k: pixels for k in range(1, len(class_names) + 1)})
            continue
        if key.lower() in names:
            areas[names[key.lower()]] = pixels
        elif key.isdigit() and 1 <= int(key) <= len(class_names):
            areas[int(key)] = pixels
        else:
            raise InputError(f"minimum area {item!r}: no class {key!r} in this model "
                             f"(classes: {', '.join(class_names)}, or 1..{len(class_names)})")
    return {k: v for k, v in areas.items() if v > 0}


def class_regions(labels: np.ndarray, cls: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the map of the 8-connected regions of class ``cls`` (ids 1..n, 0 elsewhere) and
    their sizes in pixels, indexed by id (index 0 counts the pixels of other classes)."""
    regions, count = ndi.label(labels == cls, structure=EIGHT_NEIGHBOURS)
    return regions, np.bincount(regions.ravel(), minlength=count + 1)


def remove_small_regions(labels: np.ndarray, min_area: Mapping[int, int]) -> np.ndarray:
    """Return a copy of ``labels`` (1..K, 0 = not classified) in which every connected region
    (8-neighbours) of class ``c`` smaller than ``min_area[c]`` pixels takes the class that most
    of its border touches (counted over the 8 neighbours of each of its pixels).

    Regions surrounded only by unclassified pixels or by their own class are kept. Region
    sizes are those of the input map: a speck does not grow by absorbing another. The work
    grows with the number of pixels in small regions, not with the number of regions.
    """
    out = labels.copy()
    classes = int(labels.max()) + 1
    padded = np.pad(labels, 1)
    for cls, area in sorted(min_area.items()):
        if area <= 1 or cls >= classes:
            continue
        regions, sizes = class_regions(labels, cls)
        count = sizes.size - 1
        small = sizes < area
        small[0] = False
        if not small.any():
            continue
        rows, cols = np.nonzero(small[regions])
        ids = regions[rows, cols]
        votes = np.zeros((count + 1) * classes, np.int64)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                around = padded[rows + 1 + dy, cols + 1 + dx].astype(np.int64)
                keep = (around != 0) & (around != cls)
                votes += np.bincount(ids[keep] * classes + around[keep], minlength=votes.size)
        votes = votes.reshape(count + 1, classes)
        surrounded = votes.sum(axis=1) > 0
        fill = votes.argmax(axis=1)
        change = surrounded[ids]
        out[rows[change], cols[change]] = fill[ids[change]]
    return out
