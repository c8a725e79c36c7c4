"""Segmentation quality: confusion matrix, IoU, Dice, accuracy and phase fractions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, num_classes: int,
                     ignore: np.ndarray | None = None) -> np.ndarray:
    """Return the K x K matrix counting pixels of true class i predicted as j (values 0..K-1)."""
    truth, pred = np.asarray(truth).ravel(), np.asarray(pred).ravel()
    if truth.shape != pred.shape:
        raise ValueError(f"truth has {truth.size} pixels, prediction {pred.size}")
    keep = (truth >= 0) & (truth < num_classes) & (pred >= 0) & (pred < num_classes)
    if ignore is not None:
        keep &= ~np.asarray(ignore).ravel()
    idx = truth[keep].astype(np.int64) * num_classes + pred[keep].astype(np.int64)
    return np.bincount(idx, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """Return IoU per class (NaN where a class is neither present nor predicted)."""
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / denom, np.nan)


def dice_per_class(cm: np.ndarray) -> np.ndarray:
    """Return the Dice coefficient per class (NaN where undefined)."""
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / denom, np.nan)


def mean_iou(cm: np.ndarray, classes: list[int] | None = None) -> float:
    """Return the mean IoU over ``classes`` (all by default), skipping undefined ones."""
    iou = iou_per_class(cm)
    if classes is not None:
        iou = iou[list(classes)]
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def pixel_accuracy(cm: np.ndarray) -> float:
    """Return the fraction of pixels classified correctly."""
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def phase_fractions(labels: np.ndarray, num_classes: int, offset: int = 0,
                    mask: np.ndarray | None = None) -> np.ndarray:
    """Return the area fraction of each class among counted pixels.

    ``offset`` is the label value of the first class (1 for napari-style maps where 0 means
    "not classified", which is never counted); ``mask`` limits the pixels counted.
    """
    values = np.asarray(labels)
    if mask is not None:
        values = values[mask]
    values = values.ravel().astype(np.int64) - offset
    values = values[(values >= 0) & (values < num_classes)]
    counts = np.bincount(values, minlength=num_classes).astype(np.float64)
    return counts / counts.sum() if counts.sum() else counts


@dataclass
class SegmentationScores:
    """A summary of one comparison of a prediction with ground truth."""

    confusion: np.ndarray
    iou: np.ndarray
    dice: np.ndarray
    miou: float
    accuracy: float
    true_fractions: np.ndarray
    predicted_fractions: np.ndarray

    @property
    def fraction_error(self) -> np.ndarray:
        """Predicted minus true area fraction per class."""
        return self.predicted_fractions - self.true_fractions

    def to_dict(self) -> dict:
        return {"miou": self.miou, "accuracy": self.accuracy, "iou": self.iou.tolist(),
                "dice": self.dice.tolist(), "confusion": self.confusion.tolist(),
                "true_fractions": self.true_fractions.tolist(),
                "predicted_fractions": self.predicted_fractions.tolist()}


def score(cm: np.ndarray, miou_classes: list[int] | None = None) -> SegmentationScores:
    """Return every metric derived from a confusion matrix."""
    total = cm.sum()
    true_f = cm.sum(1) / total if total else np.zeros(len(cm))
    pred_f = cm.sum(0) / total if total else np.zeros(len(cm))
    return SegmentationScores(cm, iou_per_class(cm), dice_per_class(cm), mean_iou(cm, miou_classes),
                              pixel_accuracy(cm), true_f, pred_f)
