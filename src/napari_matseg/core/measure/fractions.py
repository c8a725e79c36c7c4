"""Phase area fractions per image and, over a batch of images, their mean with a 95 % confidence
interval (Student t over the fields, as ASTM E562 does for point counts)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def area_fractions(labels: np.ndarray, num_classes: int, content_rows: int | None = None) -> np.ndarray:
    """Return the area fraction of each class 1..K among the classified pixels (0 is not
    counted), above ``content_rows`` when given (the information band left out)."""
    labels = np.asarray(labels)
    if content_rows is not None:
        labels = labels[:content_rows]
    counts = np.bincount(labels.ravel().astype(np.int64), minlength=num_classes + 1)[1:num_classes + 1]
    total = counts.sum()
    return counts / total if total else np.zeros(num_classes)


@dataclass(frozen=True)
class FractionSummary:
    """Per class over ``n`` images: mean fraction, standard deviation, the half-width of the 95 %
    confidence interval of the mean (t with n - 1 degrees of freedom), and the relative accuracy
    (half-width / mean, as E562 reports it). With one image the interval is unknown (NaN)."""

    n: int
    mean: np.ndarray
    std: np.ndarray
    ci95: np.ndarray
    relative_accuracy: np.ndarray


def summarise_fractions(per_image: list[np.ndarray]) -> FractionSummary:
    """Return the batch summary of per-image fraction arrays."""
    from scipy import stats

    values = np.asarray(per_image, np.float64)
    n = len(values)
    mean = values.mean(axis=0)
    if n < 2:
        nan = np.full(mean.shape, np.nan)
        return FractionSummary(n, mean, nan, nan, nan)
    std = values.std(axis=0, ddof=1)
    ci = stats.t.ppf(0.975, n - 1) * std / np.sqrt(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = np.where(mean > 0, ci / mean, np.nan)
    return FractionSummary(n, mean, std, ci, relative)
