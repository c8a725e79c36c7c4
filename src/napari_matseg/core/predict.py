"""Tiled sliding-window inference with overlap blending, for micrographs of any size."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .boundary_lines import BoundaryLinesConfig, draw_boundary_lines
from .checks import check_float, check_int
from .cleanup import remove_small_regions
from .device import fast_layout
from .errors import InputError
from .preprocess import PreparedImage, PreprocessConfig, prepare_image, resize_to


FINALISE_ROWS = 256
PRIOR_FLOOR = 1e-3


@dataclass(frozen=True)
class PredictConfig:
    """Tile size and overlap (pixels of the prepared image), test-time flips, probabilities kept.

    ``class_prior`` (the class fractions of the training image, see
    :meth:`ModelBundle.predict_config`) re-weights the probabilities by ``prior ** prior_power``.
    Training balances the classes, as strokes of rare phases are as long as those of common ones,
    so without it rare phases are over-predicted on new images; 0 turns it off.

    ``min_region_area`` ({class 1..K: pixels of the original image}) gives regions of a class
    smaller than that the class around them (:func:`~napari_matseg.core.cleanup.remove_small_regions`);
    off by default.

    ``boundary_lines`` draws a grain-boundary class as a closed network of thin lines
    (:mod:`~napari_matseg.core.boundary_lines`) instead of its most likely pixels; off by default.
    """

    tile: int = 1024
    overlap: int = 64
    tta: bool = False
    keep_probabilities: bool = True
    batch_size: int = 1
    class_prior: tuple[float, ...] | None = None
    prior_power: float = 0.5
    min_region_area: dict[int, int] | None = field(default=None, hash=False)
    boundary_lines: BoundaryLinesConfig | None = None

    def __post_init__(self):
        check_int("the tile size", self.tile, 32, 16384)
        check_int("the tile overlap", self.overlap, 0, 4096)
        check_int("the prediction batch size", self.batch_size, 1, 1024)
        check_float("the prior power", self.prior_power, 0, 10)
        if self.class_prior is not None:
            prior = np.asarray(self.class_prior, dtype=np.float64)
            if prior.ndim != 1 or not np.isfinite(prior).all() or (prior < 0).any() or prior.sum() <= 0:
                raise InputError(f"the class prior must be non-negative fractions, got {self.class_prior!r}")
            object.__setattr__(self, "class_prior", tuple(float(p) for p in prior))
        if self.min_region_area:
            for cls, area in self.min_region_area.items():
                check_int("a class number", cls, 1)
                check_int("a minimum region area", area, 0)
        if self.boundary_lines is not None and not isinstance(self.boundary_lines, BoundaryLinesConfig):
            raise InputError("the boundary lines must be a BoundaryLinesConfig or None, "
                             f"got {self.boundary_lines!r}")

    def class_weights(self, num_classes: int) -> np.ndarray | None:
        """Return the per-class factors applied to the probabilities, or None (no re-weighting)."""
        if self.class_prior is None or self.prior_power == 0:
            return None
        prior = np.asarray(self.class_prior, np.float64)
        if prior.shape != (num_classes,):
            raise ValueError(f"class prior has {prior.size} values for {num_classes} classes")
        return (np.maximum(prior, PRIOR_FLOOR) ** self.prior_power).astype(np.float32)


@dataclass
class Prediction:
    """Per-pixel results at the original image's size.

    ``labels`` holds classes 1..K (0 where nothing was predicted, e.g. the information band);
    ``probabilities`` is K x H x W (or None when not kept); ``uncertainty`` is the normalised
    entropy of the class probabilities, 0 (certain) .. 1 (all classes equally likely).
    """

    labels: np.ndarray
    probabilities: np.ndarray | None
    uncertainty: np.ndarray
    content_rows: int


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def _blend_window(size: int, overlap: int) -> np.ndarray:
    if overlap <= 0:
        return np.ones(size, np.float32)
    i = np.arange(size, dtype=np.float32)
    ramp = np.minimum((i + 0.5) / overlap, (size - i - 0.5) / overlap)
    return np.clip(ramp, 1e-3, 1.0)


def _pad_to(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    ph, pw = height - x.shape[-2], width - x.shape[-1]
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def _forward_probs(model, batch: torch.Tensor, tta: bool) -> torch.Tensor:
    if not tta:
        return model(batch).float().softmax(dim=1)
    total = 0
    for dims in ((), (-1,), (-2,), (-2, -1)):
        x = batch.flip(dims) if dims else batch
        p = model(x).float().softmax(dim=1)
        total = total + (p.flip(dims) if dims else p)
    return total / 4


def entropy_uncertainty(probs: np.ndarray) -> np.ndarray:
    """Return normalised entropy (0..1) over axis 0 of a K x ... probability array."""
    k = probs.shape[0]
    p = np.clip(probs, 1e-8, 1.0)
    return (-(p * np.log(p)).sum(axis=0) / np.log(k)).astype(np.float32)


@torch.no_grad()
def predict_tiled(model, pixels: np.ndarray, config: PredictConfig | None = None,
                  device: torch.device | str = "cpu",
                  progress: Callable[[int, int], None] | None = None,
                  ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Return (class index 0..K-1, probabilities or None, uncertainty) for a prepared image.

    Tiles are blended with linear ramps over the overlap; rows are finalised strip by strip,
    so memory grows with the image's width times the tile, not with its area.
    ``progress(done, total)`` is called after each tile.
    """
    config = config or PredictConfig()
    device = torch.device(device)
    model = fast_layout(model, device).eval()
    stride = getattr(model, "stride", 32)
    height, width = pixels.shape
    tile = max(stride, config.tile - config.tile % stride)
    th = min(tile, -(-height // stride) * stride)
    tw = min(tile, -(-width // stride) * stride)
    overlap = min(config.overlap, th // 2, tw // 2)
    ys = _starts(height, th, th - overlap)
    xs = _starts(width, tw, tw - overlap)
    win = np.outer(_blend_window(th, overlap), _blend_window(tw, overlap))
    k = model.config.num_classes
    weights = config.class_weights(k)
    labels = np.zeros((height, width), np.uint8 if k < 256 else np.uint16)
    uncertainty = np.zeros((height, width), np.float32)
    probabilities = np.zeros((k, height, width), np.float32) if config.keep_probabilities else None
    image = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))
    acc = np.zeros((k, th, width), np.float32)
    wsum = np.zeros((th, width), np.float32)
    base, done, total = 0, 0, len(ys) * len(xs)
    for yi, y0 in enumerate(ys):
        for bstart in range(0, len(xs), config.batch_size):
            row_xs = xs[bstart:bstart + config.batch_size]
            crops = [_pad_to(image[y0:y0 + th, x0:x0 + tw][None, None], th, tw) for x0 in row_xs]
            batch = fast_layout(model.standardise(torch.cat(crops)).to(device), device)
            with torch.autocast(device.type, enabled=device.type == "cuda"):
                probs = _forward_probs(model, batch, config.tta).cpu().numpy()
            for p, x0 in zip(probs, row_xs):
                h, w = min(th, height - y0), min(tw, width - x0)
                wt = win[:h, :w]
                acc[:, y0 - base:y0 - base + h, x0:x0 + w] += p[:, :h, :w] * wt
                wsum[y0 - base:y0 - base + h, x0:x0 + w] += wt
                done += 1
                if progress is not None:
                    progress(done, total)
        final = ys[yi + 1] if yi + 1 < len(ys) else height
        for r0 in range(0, final - base, FINALISE_ROWS):
            r1 = min(r0 + FINALISE_ROWS, final - base)
            p = acc[:, r0:r1] / wsum[None, r0:r1]
            if weights is not None:
                p = p * weights[:, None, None]
                p /= p.sum(axis=0, keepdims=True)
            labels[base + r0:base + r1] = p.argmax(axis=0)
            uncertainty[base + r0:base + r1] = entropy_uncertainty(p)
            if probabilities is not None:
                probabilities[:, base + r0:base + r1] = p
        n = final - base
        acc[:, :th - n] = acc[:, n:].copy()
        acc[:, th - n:] = 0
        wsum[:th - n] = wsum[n:].copy()
        wsum[th - n:] = 0
        base = final
    return labels, probabilities, uncertainty


def predict_image(model, image: np.ndarray, preprocess: PreprocessConfig,
                  config: PredictConfig | None = None, device: torch.device | str = "cpu",
                  progress: Callable[[int, int], None] | None = None,
                  pixel_size: float | None = None) -> Prediction:
    """Return the :class:`Prediction` of ``model`` for a raw micrograph (any size; the
    information band as ``preprocess.info_band`` says).

    With ``pixel_size`` (µm per pixel) and a model that knows its training pixel size, the image
    is first brought to the training image's physical scale."""
    prepared = prepare_image(image, preprocess.for_pixel_size(pixel_size))
    return predict_prepared(model, prepared, config, device, progress)


def predict_prepared(model, prepared: PreparedImage, config: PredictConfig | None = None,
                     device: torch.device | str = "cpu",
                     progress: Callable[[int, int], None] | None = None) -> Prediction:
    """Return the :class:`Prediction` for an already prepared image, mapped to its original size."""
    config = config or PredictConfig()
    lines = config.boundary_lines
    tiled = replace(config, keep_probabilities=True) if lines is not None else config
    classes, probs, unc = predict_tiled(model, prepared.pixels, tiled, device, progress)
    rows, width = prepared.content_rows, prepared.original_shape[1]
    if classes.shape != (rows, width):
        if probs is not None:
            probs = resize_to(probs, (rows, width), "bilinear")
            classes = probs.argmax(axis=0).astype(classes.dtype)
        else:
            classes = resize_to(classes, (rows, width), "nearest")
        unc = resize_to(unc, (rows, width), "bilinear")
    if lines is not None:
        classes = (draw_boundary_lines(probs, lines) - 1).astype(classes.dtype)
        if not config.keep_probabilities:
            probs = None
    full_h = prepared.original_shape[0]
    labels = np.zeros((full_h, width), classes.dtype)
    labels[:rows] = classes + 1
    if config.min_region_area:
        labels = remove_small_regions(labels, config.min_region_area)
    uncertainty = np.zeros((full_h, width), np.float32)
    uncertainty[:rows] = unc
    probabilities = None
    if probs is not None:
        probabilities = np.zeros((probs.shape[0], full_h, width), np.float32)
        probabilities[:, :rows] = probs
    return Prediction(labels, probabilities, uncertainty, rows)
