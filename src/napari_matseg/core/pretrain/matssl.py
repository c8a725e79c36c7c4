"""MatSSL: SimCLR-style contrast with Gated Feature Fusion over the encoder's stages.

Each stage's feature map is global-average-pooled and scaled by ``sigmoid(gate)`` (one learned
gate per channel, initialised at 1); the gated vectors are concatenated and projected
(Linear-BN-ReLU-Linear-BN, 128-d) into an NT-Xent loss (temperature 0.07). Only the encoder is
kept for fine-tuning; gates and projection head are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .losses import nt_xent
from .method import PretrainMethod
from .registry import register_method
from .pool import MicrographPool, resized_crops
from .views import GreyJitterConfig, grey_jitter


@dataclass(frozen=True)
class MatSSLConfig:
    """View recipe and loss settings (defaults: the authors' code, see docs/pretraining.md)."""

    temperature: float = 0.07
    projection_dim: int = 128
    region: int = 384
    min_area: float = 0.2
    aspect: tuple[float, float] = (3 / 4, 4 / 3)
    horizontal_flip: float = 0.5
    jitter: GreyJitterConfig = field(default_factory=GreyJitterConfig)
    views_on_device: bool = True


class GatedFeatureFusion(nn.Module):
    """Pool each encoder stage, gate it per channel, concatenate and project."""

    def __init__(self, channels: list[int], out_dim: int = 128, hidden: int | None = None):
        super().__init__()
        total = sum(channels)
        hidden = hidden or total
        self.gates = nn.ParameterList([nn.Parameter(torch.ones(c)) for c in channels])
        self.projection = nn.Sequential(nn.Linear(total, hidden), nn.BatchNorm1d(hidden),
                                        nn.ReLU(inplace=True), nn.Linear(hidden, out_dim),
                                        nn.BatchNorm1d(out_dim))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        pooled = [f.mean(dim=(2, 3)) * torch.sigmoid(g) for f, g in zip(features, self.gates)]
        return self.projection(torch.cat(pooled, dim=1))


def random_resized_boxes(region: tuple[int, int, int], count: int, rng: np.random.Generator,
                         min_area: float, aspect: tuple[float, float]) -> np.ndarray:
    """Return ``count`` boxes (top, left, height, width) inside the square ``region``
    (top, left, side), each covering ``min_area``..1 of it with a log-uniform aspect ratio."""
    top0, left0, side = region
    boxes = np.empty((count, 4))
    for i in range(count):
        area = rng.uniform(min_area, 1.0) * side * side
        ratio = np.exp(rng.uniform(np.log(aspect[0]), np.log(aspect[1])))
        w = min(side, np.sqrt(area * ratio))
        h = min(side, np.sqrt(area / ratio))
        boxes[i] = (top0 + rng.uniform(0, side - h), left0 + rng.uniform(0, side - w), h, w)
    return boxes


@register_method("matssl", "MatSSL", "contrastive views of each micrograph, gated fusion of all "
                 "encoder stages", MatSSLConfig)
class MatSSL(PretrainMethod):
    trains_decoder = False
    default_lr = 0.01  # the authors use 0.1; see docs/pretraining.md for why we do not
    default_weight_decay = 1e-6

    def __init__(self, model, pool: MicrographPool, config, rng, labelled=None):
        super().__init__(model, pool, config, rng)
        self.options: MatSSLConfig = config.options
        self.fusion = GatedFeatureFusion(model.encoder.feature_info.channels(),
                                         self.options.projection_dim)
        self._view_images: list[torch.Tensor] | None = None

    def to_device(self, device: torch.device) -> "MatSSL":
        """Move the method to ``device``; with ``views_on_device`` also a copy of the pool's
        images, so views are cut and jittered there (on a GPU, drawing 256 pairs on the CPU
        takes longer than the step)."""
        super().to_device(device)
        if self.options.views_on_device:
            self._view_images = [image.to(device) for image in self.pool.images]
        return self

    def make_optimizer(self, params, lr, weight_decay):
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)

    def two_views(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return two batches of views (0..1); row i of each comes from the same region."""
        opts, size = self.options, self.config.crop_size
        images = self._view_images or self.pool.images
        firsts, seconds = [], []
        for _ in range(count):
            index, top, left = self.pool.random_window(opts.region, self.rng)
            h, w = self.pool.shape(index)
            side = min(opts.region, h, w)
            boxes = random_resized_boxes((top, left, side), 2, self.rng, opts.min_area, opts.aspect)
            views = resized_crops(images[index], boxes, size)
            for j in range(2):
                if self.rng.random() < opts.horizontal_flip:
                    views[j] = views[j].flip(-1)
            firsts.append(views[:1])
            seconds.append(views[1:])
        jitter = self.options.jitter
        return (grey_jitter(torch.cat(firsts), self.rng, jitter),
                grey_jitter(torch.cat(seconds), self.rng, jitter))

    def sample(self):
        return self.two_views(self.config.batch_size)

    def forward(self, batch):
        v1, v2 = (self.model.standardise(v).to(self.device) for v in batch)
        z = self.fusion(self.model.encoder(torch.cat([v1, v2])))
        z1, z2 = z.chunk(2)
        loss = nt_xent(z1, z2, self.options.temperature)
        return loss, {}
