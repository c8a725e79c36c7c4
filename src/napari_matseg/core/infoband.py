"""Finding the microscope's information band (scale bar, text) at the bottom of SEM micrographs."""

from __future__ import annotations

import numpy as np


def _saturated_fraction(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    lo, hi = float(image.min()), float(image.max())
    if hi <= lo:
        return np.zeros(image.shape[0])
    span = hi - lo
    dark = image <= lo + 0.06 * span
    bright = image >= hi - 0.06 * span
    return (dark | bright).mean(axis=1)


def detect_info_band(image: np.ndarray, max_fraction: float = 0.3, min_rows: int = 4,
                     saturated: float = 0.75, edge_rows: int = 3) -> int:
    """Return the first row of the information band at the image's bottom, or ``image.shape[0]``.

    SEM data bars are rows of near-black or near-white pixels (background and text) that run
    to the bottom edge; micrograph rows rarely are. The band is the bottom run of rows in which
    at least ``saturated`` of the pixels sit at an extreme of the grey range, no taller than
    ``max_fraction`` of the image and at least ``min_rows`` rows. Up to ``edge_rows`` rows at the
    very bottom may break the pattern (some microscopes write a stray last row).
    """
    image = np.asarray(image)
    height = image.shape[0]
    frac = _saturated_fraction(image)
    limit = max(0, int(height * (1 - max_fraction)))
    bottom = height
    while bottom > height - edge_rows and frac[bottom - 1] < saturated:
        bottom -= 1
    row = bottom
    while row > limit and frac[row - 1] >= saturated:
        row -= 1
    if bottom - row < min_rows or row <= limit:
        return height
    return row


def content_rows(image: np.ndarray, info_band: int | str | None = "auto") -> int:
    """Return how many rows from the top hold the micrograph itself.

    ``info_band`` is ``"auto"`` (detect), ``None`` or ``0`` (no band), or a band height in rows.
    """
    height = np.asarray(image).shape[0]
    if info_band == "auto":
        return detect_info_band(image)
    if not info_band:
        return height
    band = int(info_band)
    if band < 0 or band >= height:
        from .errors import InputError

        raise InputError(f"information band of {band} rows does not fit an image {height} rows tall")
    return height - band
