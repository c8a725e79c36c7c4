"""Particle statistics of one phase: count, number density, equivalent circle diameter, aspect
ratio and nearest-neighbour distance, per particle and per image.

Edge rule: a particle touching the image edge or the information band is cut off, so its size
is unknown. It is left out of the size statistics (diameters, aspect ratios) and counts as half
a particle in the number density, as E112 counts the grains a test area intercepts.
Particles under ``min_area`` pixels are specks and are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ParticleStatistics:
    """Per image: ``particles`` (one dict per particle, sizes in ``unit``), whole and edge counts,
    the number density (per mm², when the pixel size is known), and the means over whole
    particles."""

    unit: str
    particles: list[dict] = field(repr=False)
    whole: int
    at_edge: int
    area_mm2: float | None
    per_mm2: float | None
    mean_ecd: float | None
    median_ecd: float | None
    mean_aspect_ratio: float | None
    mean_nearest_neighbour: float | None


def particle_statistics(labels: np.ndarray, particle_class: int, pixel_size: float | None = None,
                        content_rows: int | None = None, min_area: int = 4) -> ParticleStatistics:
    """Return the :class:`ParticleStatistics` of class ``particle_class`` of a label map (1..K);
    ``pixel_size`` in µm (lengths in pixels without it)."""
    from scipy.spatial import cKDTree
    from skimage.measure import label as label_regions, regionprops_table

    labels = np.asarray(labels)
    if content_rows is not None:
        labels = labels[:content_rows]
    height, width = labels.shape
    regions = label_regions(labels == particle_class, connectivity=2)
    props = regionprops_table(regions, properties=("label", "area", "equivalent_diameter_area",
                                                   "axis_major_length", "axis_minor_length",
                                                   "centroid", "bbox"))
    keep = props["area"] >= min_area
    scale = pixel_size or 1.0
    unit = "µm" if pixel_size else "px"
    touches = ((props["bbox-0"] == 0) | (props["bbox-1"] == 0) | (props["bbox-2"] == height)
               | (props["bbox-3"] == width))[keep]
    centroids = np.stack([props["centroid-0"], props["centroid-1"]], axis=1)[keep] * scale
    nearest = np.full(len(centroids), np.nan)
    if len(centroids) > 1:
        nearest = cKDTree(centroids).query(centroids, k=2)[0][:, 1]
    major, minor = props["axis_major_length"][keep], props["axis_minor_length"][keep]
    with np.errstate(invalid="ignore", divide="ignore"):
        aspect = np.where(minor > 0, major / minor, np.nan)
    ecd = props["equivalent_diameter_area"][keep] * scale
    area = props["area"][keep] * scale ** 2
    particles = [{"particle": int(lab), f"area ({unit}²)": round(float(a), 4),
                  f"ecd ({unit})": round(float(d), 4), "aspect ratio": round(float(r), 4),
                  f"nearest neighbour ({unit})": round(float(n), 4),
                  f"centroid row ({unit})": round(float(c[0]), 2),
                  f"centroid column ({unit})": round(float(c[1]), 2), "at edge": bool(t)}
                 for lab, a, d, r, n, c, t in zip(props["label"][keep], area, ecd, aspect, nearest,
                                                   centroids, touches)]
    whole = ~touches
    area_mm2 = height * width * (pixel_size * 1e-3) ** 2 if pixel_size else None
    count = int(whole.sum()) + 0.5 * int(touches.sum())
    mean = (lambda v: float(np.nanmean(v)) if len(v) and np.isfinite(v).any() else None)
    return ParticleStatistics(unit, particles, int(whole.sum()), int(touches.sum()), area_mm2,
                              count / area_mm2 if area_mm2 else None, mean(ecd[whole]),
                              float(np.median(ecd[whole])) if whole.any() else None,
                              mean(aspect[whole]), mean(nearest[whole]))
