"""Turning a napari Labels array of painted strokes into training targets and crops."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .augment import AugmentConfig, IntensityJitter, random_affine_grids
from .errors import InputError

IGNORE = -1


def check_scribbles(image: np.ndarray, labels: np.ndarray, require_two: bool = True,
                    num_classes: int | None = None) -> np.ndarray:
    """Return ``labels`` as int64 after checking they can train a model on ``image``.

    Raises :class:`InputError` when the shapes differ, values are negative or not class numbers
    (above ``num_classes``, or, when that is unknown, above the most classes a model may have),
    nothing is painted, or (with ``require_two``) fewer than two classes are painted.
    """
    from .model import MAX_CLASSES

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
    limit = num_classes if num_classes is not None else MAX_CLASSES
    if present.size and present[-1] > limit:
        raise InputError(f"label values {describe_values(present)} are not class numbers 1..{limit}"
                         + ("" if num_classes is not None else
                            " (grey levels of an image, or colours saved by an image editor?)")
                         + ": strokes are 0 where unpainted and 1, 2, ... for the classes")
    if present.size == 0:
        raise InputError("nothing is painted: paint a few strokes of each class first")
    if require_two and present.size < 2:
        raise InputError(f"only class {int(present[0])} is painted: paint at least two classes")
    return labels.astype(np.int64)


def describe_values(values: np.ndarray, shown: int = 8) -> str:
    """Return the sorted values as text, shortened to ``shown`` of them and a count."""
    values = [int(v) for v in np.unique(values)]
    text = ", ".join(map(str, values[:shown]))
    return text + (f" … ({len(values)} values)" if len(values) > shown else "")


def _unit_hash(keys: np.ndarray, salt: int) -> np.ndarray:
    """Return a deterministic pseudo-random number in [0, 1) per integer key (splitmix64)."""
    with np.errstate(over="ignore"):
        z = keys.astype(np.uint64) + np.uint64(salt % 2**64) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)


def split_strokes(labels: np.ndarray, fraction: float, salt: int, block: int = 64,
                  max_share: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
    """Return (train, validation) label arrays; validation gets whole pieces of strokes, close to
    ``fraction`` of *each* class's painted pixels.

    The strokes of each class are cut at a grid of ``block`` pixels into pieces (a class in a
    grid cell). The pieces of a class are taken in the order of a hash of (``salt``, class,
    cell) and held out while the class's held-out share stays within ``max_share`` of its
    pixels, until it reaches ``fraction``. The order depends only on the piece, so strokes
    painted in a later round leave earlier held-out pieces held out (a class with more strokes
    may hold out a few more of its pieces), and a continued run is checked on much the same
    strokes as the run before.
    A class painted in a single piece stays entirely in training: it has nothing to spare.
    """
    train = labels.copy()
    val = np.zeros_like(labels)
    if fraction <= 0:
        return train, val
    painted = np.flatnonzero(labels > 0)
    if painted.size == 0:
        return train, val
    width = labels.shape[1]
    rows, cols = np.divmod(painted, width)
    cell = (rows // block) * (width // block + 1) + cols // block
    cells = int(cell.max()) + 1
    classes = labels.ravel()[painted].astype(np.int64)
    units, inverse, sizes = np.unique(classes * cells + cell, return_inverse=True, return_counts=True)
    unit_class = units // cells
    draw = _unit_hash(unit_class * np.int64(1 << 40) + units % cells, salt)
    held = np.zeros(len(units), bool)
    limit = max(fraction, min(max_share, 1.5 * fraction))
    for cls in np.unique(unit_class):
        mine = np.flatnonzero(unit_class == cls)
        if len(mine) < 2:
            continue
        total, taken = sizes[mine].sum(), 0
        for unit in mine[np.argsort(draw[mine], kind="stable")]:
            if taken >= fraction * total:
                break
            if taken + sizes[unit] <= limit * total:
                held[unit] = True
                taken += sizes[unit]
        if not held[mine].any():
            smallest = mine[np.argmin(sizes[mine])]
            held[smallest] = sizes[smallest] <= 0.5 * total
    moved = painted[held[inverse.ravel()]]
    val.ravel()[moved] = labels.ravel()[moved]
    train.ravel()[moved] = 0
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
    """Draw augmented training crops centred near painted pixels of one or several images.

    ``images`` holds (image01, labels) pairs of any sizes. For each crop a painted class is
    drawn evenly (rare phases are painted as much as common ones), then one of the images where
    it is painted, in proportion to its painted pixels of that class with a floor
    (``image_floor`` of the draws are shared evenly), so an image with short strokes still
    takes part; then a painted pixel of that class.
    """

    def __init__(self, images: list[tuple[np.ndarray, np.ndarray]], crop_size: int,
                 augment: AugmentConfig, rng: np.random.Generator, standardise,
                 image_floor: float = 0.25):
        self.shapes = [image01.shape for image01, _ in images]
        self.images = [torch.from_numpy(np.ascontiguousarray(image01, dtype=np.float32))[None, None]
                       for image01, _ in images]
        self.targets = [torch.from_numpy(labels.astype(np.float32) - 1.0)[None, None]
                        for _, labels in images]
        self.crop_size = crop_size
        self.augment = augment
        self.rng = rng
        self.standardise = standardise
        self.jitter = IntensityJitter(augment)
        present = sorted({int(c) for _, labels in images for c in np.unique(labels[labels > 0])})
        if not present:
            raise InputError("no painted pixels to train on")
        self.classes = present
        self.coords: dict[int, list[tuple[int, np.ndarray]]] = {}
        self.image_odds: dict[int, np.ndarray] = {}
        for c in present:
            where = [(i, np.argwhere(labels == c)) for i, (_, labels) in enumerate(images)]
            where = [(i, pts) for i, pts in where if len(pts)]
            counts = np.array([len(pts) for _, pts in where], np.float64)
            odds = (1 - image_floor) * counts / counts.sum() + image_floor / len(where)
            self.coords[c] = where
            self.image_odds[c] = odds / odds.sum()

    def _centres(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        picks = self.rng.choice(len(self.classes), size=batch)
        centres = np.empty((batch, 2))
        owners = np.empty(batch, np.int64)
        shift = self.crop_size * self.augment.centre_jitter
        for i, k in enumerate(picks):
            where = self.coords[self.classes[k]]
            j = 0 if len(where) == 1 else int(self.rng.choice(len(where), p=self.image_odds[self.classes[k]]))
            owners[i], pts = where[j]
            centres[i] = pts[self.rng.integers(len(pts))] + self.rng.uniform(-shift, shift, 2)
        return centres, owners

    def sample(self, batch: int) -> CropBatch:
        """Return ``batch`` augmented crops and their targets (unpainted pixels are IGNORE)."""
        centres, owners = self._centres(batch)
        images = torch.empty(batch, 1, self.crop_size, self.crop_size)
        targets = torch.empty(batch, self.crop_size, self.crop_size, dtype=torch.long)
        for owner in np.unique(owners):
            rows = np.flatnonzero(owners == owner)
            n = len(rows)
            grids = random_affine_grids(centres[rows], self.crop_size, self.shapes[owner],
                                        self.augment, self.rng)
            crops = F.grid_sample(self.images[owner].expand(n, -1, -1, -1), grids, mode="bilinear",
                                  padding_mode="reflection", align_corners=False)
            target = F.grid_sample(self.targets[owner].expand(n, -1, -1, -1), grids, mode="nearest",
                                   padding_mode="zeros", align_corners=False)
            outside = (grids.abs() > 1).any(dim=-1)
            target = target[:, 0].round().long()
            target[outside] = IGNORE
            target[target < 0] = IGNORE
            index = torch.from_numpy(rows)
            images[index] = crops
            targets[index] = target
        images = self.jitter(images, self.rng)
        return CropBatch(self.standardise(images), targets)
