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


def remove_small_regions(labels: np.ndarray, min_area: Mapping[int, int]) -> np.ndarray:
    """Return a copy of ``labels`` (1..K, 0 = not classified) in which every connected region
    (8-neighbours) of class ``c`` smaller than ``min_area[c]`` pixels takes the class that most
    of its surrounding pixels have.

    Regions surrounded only by unclassified pixels or by their own class are kept. Region
    sizes are those of the input map: a speckle does not grow by absorbing another.
    """
    out = labels.copy()
    for cls, area in sorted(min_area.items()):
        if area <= 1:
            continue
        regions, count = ndi.label(labels == cls, structure=EIGHT_NEIGHBOURS)
        if count == 0:
            continue
        sizes = np.bincount(regions.ravel(), minlength=count + 1)
        for index, box in enumerate(ndi.find_objects(regions), start=1):
            if box is None or sizes[index] >= area:
                continue
            box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
            region = regions[box] == index
            ring = ndi.binary_dilation(region, EIGHT_NEIGHBOURS) & ~region
            around = labels[box][ring]
            around = around[(around != 0) & (around != cls)]
            if around.size:
                out[box][region] = np.bincount(around).argmax()
    return out
