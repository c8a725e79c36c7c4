"""SMS: masked-image reconstruction with selective masking.

The image is cut into tiles; half of them are filled with the mean grey level and a U-Net (the
segmentation model's encoder and decoder, with a one-channel reconstruction head) restores the
whole image under L1 + (1 - SSIM). The *partitioned* schedule follows the authors: the images are
split into partitions trained one after the other; the first is masked at random, and before
each later one the current model scores every tile of the partition's images (mean loss over a
few random masks) and the tiles it reconstructs worst are the ones masked. The *online* variant
ranks the tiles of each batch with a no-grad pass instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .losses import ssim_map
from .method import PretrainMethod
from .registry import register_method
from .pool import MicrographPool, flip_rot90


@dataclass(frozen=True)
class SMSConfig:
    tile: int = 16
    mask_ratio: float = 0.5
    schedule: str = "partitioned"  # or "online"
    partitions: int = 10
    score_repeats: int = 5
    online_repeats: int = 2
    ssim_window: int = 7


def tile_edges(length: int, tile: int) -> list[int]:
    """Return tile boundaries along one axis; a last piece under half a tile joins its neighbour."""
    edges = list(range(0, length, tile))
    if len(edges) > 1 and length - edges[-1] < tile / 2:
        edges.pop()
    return edges + [length]


def tile_index_map(height: int, width: int, tile: int) -> tuple[torch.Tensor, int]:
    """Return (H x W map of each pixel's tile number, number of tiles); tiles cover the image once."""
    rows, cols = tile_edges(height, tile), tile_edges(width, tile)
    r = torch.bucketize(torch.arange(height), torch.tensor(rows[1:]), right=True)
    c = torch.bucketize(torch.arange(width), torch.tensor(cols[1:]), right=True)
    return r[:, None] * (len(cols) - 1) + c[None, :], (len(rows) - 1) * (len(cols) - 1)


def random_tile_masks(batch: int, tiles: int, ratio: float, rng: np.random.Generator) -> torch.Tensor:
    """Return B x T booleans with exactly ``round(ratio * T)`` masked tiles per row."""
    count = int(round(ratio * tiles))
    mask = np.zeros((batch, tiles), bool)
    for row in mask:
        row[rng.choice(tiles, count, replace=False)] = True
    return torch.from_numpy(mask)


def select_hardest(tile_loss: torch.Tensor, ratio: float) -> torch.Tensor:
    """Return B x T booleans marking each row's ``round(ratio * T)`` highest-loss tiles."""
    count = int(round(ratio * tile_loss.shape[1]))
    mask = torch.zeros_like(tile_loss, dtype=torch.bool)
    mask.scatter_(1, tile_loss.topk(count, dim=1).indices, True)
    return mask


def tile_means(pixel_values: torch.Tensor, index_map: torch.Tensor, tiles: int) -> torch.Tensor:
    """Return B x T means of B x H x W values over each tile."""
    b = pixel_values.shape[0]
    flat = index_map.flatten().to(pixel_values.device).expand(b, -1)
    sums = torch.zeros(b, tiles, device=pixel_values.device).scatter_add_(
        1, flat, pixel_values.flatten(1).float())
    counts = torch.bincount(index_map.flatten(), minlength=tiles).clamp(min=1).to(sums)
    return sums / counts


def masked(images: torch.Tensor, pixel_mask: torch.Tensor) -> torch.Tensor:
    """Return B x 1 x H x W images (0..1) with masked pixels set to each image's mean grey."""
    fill = images.mean(dim=(1, 2, 3), keepdim=True).expand_as(images)
    return torch.where(pixel_mask[:, None], fill, images)


@register_method("sms", "SMS", "masked reconstruction; masks the tiles the model restores worst",
                 SMSConfig)
class SMS(PretrainMethod):
    trains_decoder = True
    default_lr = 1e-3
    default_weight_decay = 1e-5

    def __init__(self, model, pool: MicrographPool, config, rng, labelled=None):
        super().__init__(model, pool, config, rng)
        self.options: SMSConfig = config.options
        if self.options.schedule not in ("partitioned", "online"):
            raise InputError(f"SMS schedule must be 'partitioned' or 'online', not {self.options.schedule!r}")
        if config.crop_size % self.options.tile:
            raise InputError(f"the crop size ({config.crop_size}) must be a multiple of the tile "
                             f"size ({self.options.tile})")
        self.reconstruction = nn.Conv2d(model.decoder.out_channels, 1, 1)
        self.partition = -1
        self.fixed_masks: dict[int, torch.Tensor] = {}
        self._shares: list[list[int]] | None = None

    def reconstruct(self, images01: torch.Tensor) -> torch.Tensor:
        """Return the model's 0..1 reconstruction of B x 1 x H x W inputs."""
        out = self.reconstruction(self.model.decoder(self.model.encoder(self.model.standardise(images01))))
        if out.shape[-2:] != images01.shape[-2:]:
            out = F.interpolate(out, size=images01.shape[-2:], mode="bilinear", align_corners=False)
        return out * self.model.config.std + self.model.config.mean

    def pixel_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return B x H x W of |error| + (1 - SSIM): its mean is the training loss."""
        ssim = ssim_map(prediction.float(), target.float(), self.options.ssim_window)
        return ((prediction - target).abs() + (1 - ssim))[:, 0]

    @torch.no_grad()
    def score_tiles(self, images01: torch.Tensor, index_map: torch.Tensor, tiles: int,
                    repeats: int) -> torch.Tensor:
        """Return B x T reconstruction losses per tile, averaged over ``repeats`` random masks."""
        was_training = self.training
        self.eval()
        images01 = images01.to(self.device)
        h, w = images01.shape[-2:]
        stride = self.model.stride
        pad_h, pad_w = -h % stride, -w % stride
        total = torch.zeros(images01.shape[0], tiles, device=self.device)
        for _ in range(repeats):
            tile_mask = random_tile_masks(images01.shape[0], tiles, self.options.mask_ratio, self.rng)
            pixel_mask = tile_mask.to(self.device)[:, index_map.to(self.device)]
            x = masked(images01, pixel_mask)
            if pad_h or pad_w:
                x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
            pred = self.reconstruct(x)[..., :h, :w]
            total += tile_means(self.pixel_loss(pred, images01), index_map, tiles)
        self.train(was_training)
        return total / repeats

    def _partition_shares(self) -> list[list[int]]:
        if self._shares is None:
            order = np.random.default_rng(self.config.seed).permutation(len(self.pool))
            parts = np.array_split(order, min(self.options.partitions, len(self.pool)))
            self._shares = [list(p[self.rank::self.world]) or list(p) for p in parts]
        return self._shares

    def before_step(self, step: int, progress: float) -> str | None:
        if self.options.schedule != "partitioned":
            return None
        shares = self._partition_shares()
        p = min(len(shares) - 1, int(progress * len(shares)))
        if p == self.partition:
            return None
        self.partition = p
        self.fixed_masks = {}
        if p == 0:
            return f"partition 1/{len(shares)}: random masks"
        for index in shares[p]:
            image = self.pool.images[index]
            index_map, tiles = tile_index_map(*image.shape[-2:], self.options.tile)
            loss = self.score_tiles(image, index_map, tiles, self.options.score_repeats)
            hardest = select_hardest(loss, self.options.mask_ratio)[0].cpu()
            self.fixed_masks[index] = hardest[index_map]
        return f"partition {p + 1}/{len(shares)}: masks the worst-reconstructed tiles"

    def extra_state(self) -> dict:
        return {"partition": self.partition}

    def sample(self):
        """Return (masked inputs, targets), both B x 1 x S x S in 0..1."""
        size, opts = self.config.crop_size, self.options
        index_map, tiles = tile_index_map(size, size, opts.tile)
        images, masks = [], []
        share = self._partition_shares()[max(self.partition, 0)] \
            if opts.schedule == "partitioned" else None
        for _ in range(self.config.batch_size):
            index = int(self.rng.choice(share)) if share is not None else None
            index, top, left = self.pool.random_window(size, self.rng, index, align=opts.tile)
            images.append(self.pool.crop(index, top, left, size))
            if index in self.fixed_masks:
                full = self.fixed_masks[index]
                crop = torch.zeros(size, size, dtype=torch.bool)
                part = full[top:top + size, left:left + size]
                crop[:part.shape[0], :part.shape[1]] = part
                masks.append(crop)
            else:
                masks.append(None)
        images = torch.cat(images)
        if opts.schedule == "online":
            loss = self.score_tiles(images, index_map, tiles, opts.online_repeats)
            tile_mask = select_hardest(loss, opts.mask_ratio).cpu()
            pixel_masks = tile_mask[:, index_map]
        else:
            randoms = random_tile_masks(len(masks), tiles, opts.mask_ratio, self.rng)[:, index_map]
            pixel_masks = torch.stack([m if m is not None else r for m, r in zip(masks, randoms)])
        turned_images, turned_masks = [], []
        for image, mask in zip(images, pixel_masks):
            k, flip = int(self.rng.integers(4)), bool(self.rng.random() < 0.5)
            turned_images.append(flip_rot90(image, k, flip))
            turned_masks.append(flip_rot90(mask, k, flip))
        images, pixel_masks = torch.stack(turned_images), torch.stack(turned_masks)
        return masked(images, pixel_masks), images

    def forward(self, batch):
        inputs, targets = (t.to(self.device) for t in batch)
        prediction = self.reconstruct(inputs)
        return self.pixel_loss(prediction, targets).mean(), {}
