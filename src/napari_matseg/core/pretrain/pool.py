"""The unlabeled micrographs a pretraining run draws its views from.

Every image is prepared the way fine-tuning prepares one (grey, information band removed,
percentile-normalised, brought to the working scale) and kept in memory as 0..1 floats.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..imageio import read_image
from ..preprocess import PreprocessConfig, prepare_image


def _as_tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))[None, None]


class MicrographPool:
    """Prepared micrographs (1 x 1 x H x W tensors, 0..1) and random crops of them."""

    def __init__(self, images: Sequence[np.ndarray], preprocess: PreprocessConfig | None = None,
                 names: Sequence[str] | None = None, min_side: int = 64):
        self.preprocess = preprocess or PreprocessConfig()
        self.images: list[torch.Tensor] = []
        self.names: list[str] = []
        self.scales: list[float] = []
        names = list(names) if names is not None else [f"image {i}" for i in range(len(images))]
        for name, image in zip(names, images):
            try:
                prepared = prepare_image(image, self.preprocess)
            except InputError as exc:
                raise InputError(f"{name}: {exc}") from exc
            if min(prepared.pixels.shape) < min_side:
                raise InputError(f"{name}: {prepared.pixels.shape} is too small to pretrain on "
                                 f"(at least {min_side} px per side at the working scale)")
            self.images.append(_as_tensor(prepared.pixels))
            self.names.append(name)
            self.scales.append(prepared.scale)
        if not self.images:
            raise InputError("no images to pretrain on")

    @classmethod
    def of_prepared(cls, pixels: Sequence[np.ndarray], preprocess: PreprocessConfig,
                    names: Sequence[str] | None = None) -> "MicrographPool":
        """Return a pool of images that are already prepared (0..1, working scale)."""
        pool = cls.__new__(cls)
        pool.preprocess = preprocess
        pool.images = [_as_tensor(p) for p in pixels]
        pool.names = list(names) if names is not None else [f"image {i}" for i in range(len(pixels))]
        pool.scales = [1.0] * len(pixels)
        return pool

    @classmethod
    def from_paths(cls, paths: Sequence[str | Path], preprocess: PreprocessConfig | None = None,
                   progress: Callable[[int, int], None] | None = None) -> "MicrographPool":
        """Return a pool of the images at ``paths`` (read one by one, reported to ``progress``)."""
        images = []
        for i, path in enumerate(paths):
            images.append(read_image(path))
            if progress:
                progress(i + 1, len(paths))
        return cls(images, preprocess, names=[str(p) for p in paths])

    def __len__(self) -> int:
        return len(self.images)

    def shape(self, index: int) -> tuple[int, int]:
        return tuple(self.images[index].shape[-2:])

    def crop(self, index: int, top: int, left: int, size: int) -> torch.Tensor:
        """Return the ``size`` x ``size`` window at (top, left), reflected where it leaves the image."""
        image = self.images[index]
        h, w = image.shape[-2:]
        pad_b, pad_r = max(0, top + size - h), max(0, left + size - w)
        if pad_b or pad_r:
            mode = "reflect" if pad_b < h and pad_r < w else "replicate"
            image = F.pad(image, (0, pad_r, 0, pad_b), mode=mode)
        return image[..., top:top + size, left:left + size]

    def random_window(self, size: int, rng: np.random.Generator, index: int | None = None,
                      align: int = 1) -> tuple[int, int, int]:
        """Return (image index, top, left) of a random ``size`` window, offsets multiple of ``align``."""
        if index is None:
            index = int(rng.integers(len(self.images)))
        h, w = self.shape(index)
        top = int(rng.integers(0, max(1, h - size + 1)))
        left = int(rng.integers(0, max(1, w - size + 1)))
        return index, top - top % align, left - left % align


def resized_crops(image: torch.Tensor, boxes: np.ndarray, out_size: int) -> torch.Tensor:
    """Return crops of ``image`` (1 x 1 x H x W) at ``boxes`` (rows of top, left, height, width,
    in pixels), each resampled to ``out_size`` x ``out_size`` (a random-resized-crop)."""
    h, w = image.shape[-2:]
    theta = np.zeros((len(boxes), 2, 3), np.float32)
    top, left, bh, bw = (boxes[:, i].astype(np.float64) for i in range(4))
    theta[:, 0, 0] = bw / w
    theta[:, 1, 1] = bh / h
    theta[:, 0, 2] = (left + bw / 2) / w * 2 - 1
    theta[:, 1, 2] = (top + bh / 2) / h * 2 - 1
    grids = F.affine_grid(torch.from_numpy(theta).to(image.device),
                          [len(boxes), 1, out_size, out_size], align_corners=False)
    return F.grid_sample(image.expand(len(boxes), -1, -1, -1), grids, mode="bilinear",
                         padding_mode="reflection", align_corners=False)


def flip_rot90(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """Return ``x`` (... x H x W) mirrored left-right (if ``flip``) and then turned ``k`` x 90°."""
    if flip:
        x = x.flip(-1)
    return torch.rot90(x, k, dims=(-2, -1))
