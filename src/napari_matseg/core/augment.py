"""Geometric and intensity augmentation of training crops, done in torch on whole batches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .checks import check_float, check_range


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random transforms applied to each training crop."""

    scale_range: tuple[float, float] = (0.5, 2.0)
    free_rotation: bool = True
    flips: bool = True
    centre_jitter: float = 0.35
    gamma_range: tuple[float, float] = (0.7, 1.5)
    contrast_range: tuple[float, float] = (0.7, 1.3)
    brightness: float = 0.1
    noise_std: float = 0.03
    blur_probability: float = 0.2

    def __post_init__(self):
        object.__setattr__(self, "scale_range", check_range("the augmentation scale range",
                                                            self.scale_range, 0.01))
        object.__setattr__(self, "gamma_range", check_range("the gamma range", self.gamma_range, 0.01))
        object.__setattr__(self, "contrast_range", check_range("the contrast range",
                                                               self.contrast_range, 0))
        check_float("the centre jitter", self.centre_jitter, 0, 2)
        check_float("the brightness jitter", self.brightness, 0, 1)
        check_float("the noise std", self.noise_std, 0, 1)
        check_float("the blur probability", self.blur_probability, 0, 1)


def random_affine_grids(centres: np.ndarray, crop: int, shape: tuple[int, int],
                        cfg: AugmentConfig, rng: np.random.Generator) -> torch.Tensor:
    """Return ``grid_sample`` grids (B x crop x crop x 2) for crops around ``centres`` (row, col).

    Each crop is scaled by a log-uniform factor in ``scale_range``, rotated by a multiple of 90°
    (or any angle), and mirrored at random.
    """
    height, width = shape
    batch = len(centres)
    lo, hi = np.log(cfg.scale_range[0]), np.log(cfg.scale_range[1])
    scales = np.exp(rng.uniform(lo, hi, batch))
    if cfg.free_rotation:
        angles = rng.uniform(0, 2 * np.pi, batch)
    else:
        angles = rng.integers(0, 4, batch) * (np.pi / 2)
    mirror = np.where(rng.random(batch) < 0.5, -1.0, 1.0) if cfg.flips else np.ones(batch)
    theta = np.zeros((batch, 2, 3), dtype=np.float32)
    half_w, half_h = crop * scales / width, crop * scales / height
    cos, sin = np.cos(angles), np.sin(angles)
    theta[:, 0, 0] = cos * half_w * mirror
    theta[:, 0, 1] = -sin * half_w
    theta[:, 1, 0] = sin * half_h * mirror
    theta[:, 1, 1] = cos * half_h
    theta[:, 0, 2] = centres[:, 1] / width * 2 - 1
    theta[:, 1, 2] = centres[:, 0] / height * 2 - 1
    return F.affine_grid(torch.from_numpy(theta), [batch, 1, crop, crop], align_corners=False)


class IntensityJitter:
    """Random gamma, contrast, brightness, blur and noise on crops scaled to about 0..1."""

    def __init__(self, cfg: AugmentConfig):
        self.cfg = cfg

    def __call__(self, images: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        cfg, batch = self.cfg, images.shape[0]

        def per_sample(lo, hi, log=False):
            v = np.exp(rng.uniform(np.log(lo), np.log(hi), batch)) if log else rng.uniform(lo, hi, batch)
            return torch.from_numpy(v.astype(np.float32)).view(batch, 1, 1, 1)

        gamma = per_sample(*cfg.gamma_range, log=True)
        images = images.clamp(0, None).pow(gamma)
        mean = images.mean(dim=(2, 3), keepdim=True)
        images = (images - mean) * per_sample(*cfg.contrast_range) + mean
        images = images + per_sample(-cfg.brightness, cfg.brightness)
        if cfg.blur_probability > 0:
            blur = torch.from_numpy(rng.random(batch) < cfg.blur_probability)
            if blur.any():
                kernel = torch.tensor([0.25, 0.5, 0.25])
                k2 = (kernel[:, None] * kernel[None, :]).view(1, 1, 3, 3)
                blurred = F.conv2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), k2)
                images = torch.where(blur.view(batch, 1, 1, 1), blurred, images)
        if cfg.noise_std > 0:
            noise = torch.from_numpy(rng.standard_normal(images.shape).astype(np.float32))
            images = images + noise * cfg.noise_std
        return images
