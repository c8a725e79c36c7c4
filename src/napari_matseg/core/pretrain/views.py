"""Grey-level view augmentations for contrastive pretraining (the SimCLR recipe, for one channel)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class GreyJitterConfig:
    """torchvision-style brightness / contrast jitter (applied with ``probability``) and blur."""

    brightness: float = 0.4
    contrast: float = 0.4
    probability: float = 0.8
    blur_probability: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel_fraction: float = 0.1


def _blur(image: torch.Tensor, sigma: float, kernel: int) -> torch.Tensor:
    x = torch.arange(kernel, dtype=torch.float32) - (kernel - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = (g / g.sum()).to(image.device)
    pad = kernel // 2
    image = F.pad(image, (pad, pad, 0, 0), mode="reflect")
    image = F.conv2d(image, g.view(1, 1, 1, -1))
    image = F.pad(image, (0, 0, pad, pad), mode="reflect")
    return F.conv2d(image, g.view(1, 1, -1, 1))


def grey_jitter(views: torch.Tensor, rng: np.random.Generator,
                cfg: GreyJitterConfig | None = None) -> torch.Tensor:
    """Return B x 1 x S x S views (0..1) with random brightness, contrast and Gaussian blur."""
    cfg = cfg or GreyJitterConfig()
    out = []
    size = views.shape[-1]
    kernel = max(3, int(cfg.blur_kernel_fraction * size) | 1)
    for view in views:
        view = view[None]
        if rng.random() < cfg.probability:
            steps = [("b", rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)),
                     ("c", rng.uniform(1 - cfg.contrast, 1 + cfg.contrast))]
            for i in rng.permutation(2):
                kind, factor = steps[i]
                if kind == "b":
                    view = (view * factor).clamp(0, 1)
                else:
                    view = ((view - view.mean()) * factor + view.mean()).clamp(0, 1)
        if rng.random() < cfg.blur_probability:
            view = _blur(view, rng.uniform(*cfg.blur_sigma), kernel)
        out.append(view)
    return torch.cat(out)
