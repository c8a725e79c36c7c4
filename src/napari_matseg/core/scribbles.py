"""Turning a napari Labels array of painted strokes into training targets and crops."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from .augment import AugmentConfig, IntensityJitter, random_affine_grids
from .errors import InputError

IGNORE = -1


def check_scribbles(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Return ``labels`` as int64 after checking they can train a model on ``image``.

    Raises :class:`InputError` when the shapes differ, nothing is painted, values are negative,
    or fewer than two classes are painted.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise InputError(f"labels must be 2-D, got shape {labels.shape}")
    if labels.shape != np.asarray(image).shape[:2]:
        raise InputError(f"labels of shape {labels.shape} do not match the image of shape "
                         f"{np.asarray(image).shape[:2]}: paint on a layer the size of the image")
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"labels must hold integers (class numbers), got {labels.dtype}")
    if labels.min(initial=0) < 0:
        raise InputError("labels hold negative values; use 0 for unpainted and 1..K for classes")
    present = np.unique(labels[labels > 0])
    if present.size == 0:
        raise InputError("nothing is painted: paint a few strokes of each class first")
    if present.size < 2:
        raise InputError(f"only class {int(present[0])} is painted: paint at least two classes")
    return labels.astype(np.int64)


def split_strokes(labels: np.ndarray, fraction: float, rng: np.random.Generator,
                  block: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Return (train, validation) label arrays; validation gets whole pieces of strokes.

    Per class, about ``fraction`` of the painted pixels are held out so early stopping measures
    the model on pixels it never trained on. The units held out are strokes cut at a grid of
    ``block`` pixels, so one long stroke cannot take the whole share. A class painted as a
    single unit stays entirely in training.
    """
    train = labels.copy()
    val = np.zeros_like(labels)
    if fraction <= 0:
        return train, val
    rows, cols = np.indices(labels.shape)
    cell = (rows // block) * (labels.shape[1] // block + 1) + cols // block
    for cls in np.unique(labels[labels > 0]):
        comps, n = ndimage.label(labels == cls, structure=np.ones((3, 3)))
        if n == 0:
            continue
        painted = comps > 0
        unit_ids, units = np.unique(comps[painted].astype(np.int64) * (cell.max() + 1)
                                    + cell[painted], return_inverse=True)
        if len(unit_ids) < 2:
            continue
        sizes = np.bincount(units)
        target, held, chosen = fraction * sizes.sum(), 0, []
        for idx in rng.permutation(len(unit_ids)):
            if held >= target or len(chosen) == len(unit_ids) - 1:
                break
            if held + sizes[idx] <= 1.5 * target:
                chosen.append(idx)
                held += sizes[idx]
        mask = np.zeros(labels.shape, bool)
        mask[painted] = np.isin(units, chosen)
        val[mask] = cls
        train[mask] = 0
    return train, val


def class_weights(labels: np.ndarray, num_classes: int, power: float = 0.5) -> np.ndarray:
    """Return per-class loss weights inversely related to painted area (mean 1 over painted classes).

    ``power`` 1 balances fully, 0 not at all; classes are never painted equally.
    """
    counts = np.bincount(labels[labels > 0].ravel() - 1, minlength=num_classes).astype(np.float64)
    weights = np.zeros(num_classes)
    painted = counts > 0
    weights[painted] = (counts[painted].sum() / counts[painted]) ** power
    weights[painted] /= weights[painted].mean()
    return weights.astype(np.float32)


@dataclass
class CropBatch:
    images: torch.Tensor  # B x 1 x S x S, standardised network input
    targets: torch.Tensor  # B x S x S, class index 0..K-1 or IGNORE


class ScribbleCropSampler:
    """Draw augmented training crops centred near painted pixels, classes drawn evenly."""

    def __init__(self, image01: np.ndarray, labels: np.ndarray, crop_size: int,
                 augment: AugmentConfig, rng: np.random.Generator, standardise):
        self.height, self.width = image01.shape
        self.image = torch.from_numpy(np.ascontiguousarray(image01, dtype=np.float32))[None, None]
        target = labels.astype(np.float32) - 1.0
        self.target = torch.from_numpy(target)[None, None]
        self.crop_size = crop_size
        self.augment = augment
        self.rng = rng
        self.standardise = standardise
        self.jitter = IntensityJitter(augment)
        self.coords = {int(c): np.argwhere(labels == c) for c in np.unique(labels[labels > 0])}
        if not self.coords:
            raise InputError("no painted pixels to train on")

    def _centres(self, batch: int) -> np.ndarray:
        classes = list(self.coords)
        picks = self.rng.choice(len(classes), size=batch)
        centres = np.empty((batch, 2))
        shift = self.crop_size * self.augment.centre_jitter
        for i, k in enumerate(picks):
            pts = self.coords[classes[k]]
            centres[i] = pts[self.rng.integers(len(pts))] + self.rng.uniform(-shift, shift, 2)
        return centres

    def sample(self, batch: int) -> CropBatch:
        """Return ``batch`` augmented crops and their targets (unpainted pixels are IGNORE)."""
        grids = random_affine_grids(self._centres(batch), self.crop_size, (self.height, self.width),
                                    self.augment, self.rng)
        images = F.grid_sample(self.image.expand(batch, -1, -1, -1), grids, mode="bilinear",
                               padding_mode="reflection", align_corners=False)
        targets = F.grid_sample(self.target.expand(batch, -1, -1, -1), grids, mode="nearest",
                                padding_mode="zeros", align_corners=False)
        outside = (grids.abs() > 1).any(dim=-1)
        targets = targets[:, 0].round().long()
        targets[outside] = IGNORE
        targets[targets < 0] = IGNORE
        images = self.jitter(images, self.rng)
        return CropBatch(self.standardise(images), targets)
