"""PSCL: image-level contrast plus patch-level contrast that spreads one image's labels.

In every batch, crops of the annotated image (the one with scribbles) and of unlabeled
micrographs each come as two views related by a flip and a quarter turn. At three decoder scales
(strides 16, 8, 4 by default) the purest painted cells of each class are taken from the annotated
crops (4, 8, 16 per class, coarse to fine); in every unlabeled crop each of them greedily claims
its most similar cell, without reuse, which then carries its class. Cells of one class attract
each other and their counterparts in the other view; the only negatives are cells of other
classes. Loss: 0.3 x image-level NT-Xent + 0.7 x the mean of the dense losses, temperature 0.5.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..imageio import to_grey
from ..preprocess import labels_like, prepare_image
from ..scribbles import check_scribbles
from .losses import class_contrast, nt_xent
from .method import PretrainMethod
from .registry import register_method
from .pool import MicrographPool, flip_rot90
from .views import GreyJitterConfig, grey_jitter


@dataclass(frozen=True)
class PSCLConfig:
    temperature: float = 0.5
    image_weight: float = 0.3
    strides: tuple[int, ...] = (16, 8, 4)
    cells_per_class: tuple[int, ...] = (4, 8, 16)
    labelled_crops: int = 2
    embedding_dim: int = 64
    jitter: GreyJitterConfig = field(default_factory=lambda: GreyJitterConfig(blur_probability=0.2))


def cell_classes(labels: torch.Tensor, stride: int, num_classes: int
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return per-cell (class 1..K, purity, painted pixel count) of N x H x W scribbles
    pooled into ``stride`` x ``stride`` cells; purity counts painted pixels only (class 0: none)."""
    onehot = F.one_hot(labels.long(), num_classes + 1).permute(0, 3, 1, 2).float()[:, 1:]
    counts = F.avg_pool2d(onehot, stride) * stride * stride
    painted = counts.sum(dim=1)
    top, cls = counts.max(dim=1)
    purity = torch.where(painted > 0, top / painted.clamp(min=1), torch.zeros_like(top))
    return torch.where(painted > 0, cls + 1, torch.zeros_like(cls)), purity, painted


def purest_cells(classes: torch.Tensor, purity: torch.Tensor, painted: torch.Tensor,
                 per_class: int) -> list[tuple[int, int, int]]:
    """Return (crop, flat cell index, class) of the ``per_class`` purest cells of each class
    (ties broken by painted pixel count)."""
    n, h, w = classes.shape
    score = purity + 1e-6 * painted
    chosen = []
    for c in classes.unique().tolist():
        if c == 0:
            continue
        idx = torch.nonzero((classes == c).flatten()).flatten()
        order = score.flatten()[idx].argsort(descending=True)[:per_class]
        for flat in idx[order].tolist():
            chosen.append((flat // (h * w), flat % (h * w), int(c)))
    return chosen


def greedy_match(similarity: torch.Tensor) -> torch.Tensor:
    """Return, for each row (anchor), the column (cell) it claims: repeatedly the most similar
    free pair, so no cell is claimed twice (needs at least as many columns as rows).

    ``similarity`` is anchors x cells, or a batch (crops x anchors x cells) matched crop by crop
    in one pass per anchor, on the similarity's device and without reading back to the host.
    """
    sim = similarity.detach().float().clone()
    single = sim.dim() == 2
    if single:
        sim = sim[None]
    crops, rows, cols = sim.shape
    if cols < rows:
        raise ValueError(f"{rows} anchors cannot claim distinct cells among {cols}")
    match = torch.empty(crops, rows, dtype=torch.long, device=sim.device)
    crop = torch.arange(crops, device=sim.device)
    for _ in range(rows):
        flat = sim.flatten(1).argmax(dim=1)
        r, c = flat // cols, flat % cols
        match[crop, r] = c
        sim[crop, r, :] = -float("inf")
        sim[crop, :, c] = -float("inf")
    return match[0] if single else match


@functools.lru_cache(maxsize=64)
def _correspondence(h: int, w: int, k: int, flip: bool) -> torch.Tensor:
    grid = torch.arange(h * w).view(1, h, w)
    turned = flip_rot90(grid, k, flip).flatten()
    inverse = torch.empty_like(turned)
    inverse[turned] = torch.arange(turned.numel())
    return inverse


def view_correspondence(h: int, w: int, k: int, flip: bool) -> torch.Tensor:
    """Return, for each flat cell of an h x w view, its flat index in the flipped/turned view."""
    return _correspondence(h, w, k, bool(flip)).clone()


@register_method("pscl", "PSCL", "contrast of images and of patches; spreads the classes painted "
                 "on one image to similar patches of the others (needs a scribble layer)",
                 PSCLConfig, needs_labels=True)
class PSCL(PretrainMethod):
    trains_decoder = True
    default_lr = 1e-4
    default_weight_decay = 0.0

    def __init__(self, model, pool: MicrographPool, config, rng, labelled=None):
        super().__init__(model, pool, config, rng)
        if labelled is None:
            raise InputError("PSCL needs one image with scribbles (--labels) besides the unlabeled ones")
        self.options: PSCLConfig = config.options
        if len(self.options.strides) != len(self.options.cells_per_class):
            raise InputError("PSCL needs one cells-per-class count per stride")
        image, labels = labelled
        image = to_grey(image)
        labels = check_scribbles(image, labels)
        prepared = prepare_image(image, pool.preprocess)
        self.labels = torch.from_numpy(labels_like(prepared, labels).astype(np.int64))
        self.num_classes = int(self.labels.max())
        if len(self.labels.unique()) < 3:
            raise InputError("PSCL needs at least two painted classes in the annotated image")
        self.annotated = MicrographPool.of_prepared([prepared.pixels], pool.preprocess)
        self.painted = torch.nonzero(self.labels > 0)
        enc_channels = model.encoder.feature_info.channels()
        self.image_head = nn.Sequential(nn.Linear(enc_channels[-1], enc_channels[-1]),
                                        nn.ReLU(inplace=True),
                                        nn.Linear(enc_channels[-1], 128))
        top = model.stride
        stage_strides = [top // 2 ** (i + 1) for i in range(len(model.decoder.blocks))]
        self.stages = []
        for s in self.options.strides:
            if s not in stage_strides:
                raise InputError(f"no decoder stage at stride {s} (have {stage_strides})")
            self.stages.append(stage_strides.index(s))
        channels = [model.decoder.blocks[i].convs[-1][0].out_channels for i in self.stages]
        dim = self.options.embedding_dim
        self.dense_heads = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, c, 1), nn.ReLU(inplace=True), nn.Conv2d(c, dim, 1))
            for c in channels)

    def make_optimizer(self, params, lr, weight_decay):
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)

    def _labelled_window(self, size: int) -> tuple[int, int]:
        r, c = self.painted[int(self.rng.integers(len(self.painted)))].tolist()
        h, w = self.labels.shape
        top = int(np.clip(r - size // 2 + self.rng.integers(-size // 4, size // 4 + 1), 0, max(0, h - size)))
        left = int(np.clip(c - size // 2 + self.rng.integers(-size // 4, size // 4 + 1), 0, max(0, w - size)))
        return top, left

    def _label_crop(self, top: int, left: int, size: int) -> torch.Tensor:
        crop = torch.zeros(size, size, dtype=torch.long)
        part = self.labels[top:top + size, left:left + size]
        crop[:part.shape[0], :part.shape[1]] = part
        return crop

    def sample(self):
        """Return (views 0..1 in the order A, B, U1, U2; label crops of A; turns of B and U2)."""
        size, opts = self.config.crop_size, self.options
        first, second, labels, turns = [], [], [], []
        for _ in range(opts.labelled_crops):
            top, left = self._labelled_window(size)
            crop = self.annotated.crop(0, top, left, size)
            k, flip = int(self.rng.integers(4)), bool(self.rng.random() < 0.5)
            first.append(crop)
            second.append(flip_rot90(crop, k, flip))
            labels.append(self._label_crop(top, left, size))
            turns.append((k, flip))
        for _ in range(self.config.batch_size):
            crop = self.pool.crop(*self.pool.random_window(size, self.rng), size)
            k, flip = int(self.rng.integers(4)), bool(self.rng.random() < 0.5)
            first.append(crop)
            second.append(flip_rot90(crop, k, flip))
            turns.append((k, flip))
        views = torch.cat([torch.cat(first), torch.cat(second)])
        views = grey_jitter(views, self.rng, opts.jitter)
        return views, torch.stack(labels), turns

    def forward(self, batch):
        views, labels, turns = batch
        opts = self.options
        n_lab, n_all = labels.shape[0], len(turns)
        features = self.model.encoder(self.model.standardise(views.to(self.device)))
        stages = self.model.decoder.forward_stages(features)
        pooled = self.image_head(features[-1].mean(dim=(2, 3)))
        image_loss = nt_xent(pooled[:n_all], pooled[n_all:], opts.temperature)
        dense_losses, logs = [], {"image": float(image_loss.detach())}
        for head, stage, stride, k in zip(self.dense_heads, self.stages, opts.strides,
                                          opts.cells_per_class):
            emb = head(stages[stage])
            d, h, w = emb.shape[1:]
            flat = emb.flatten(2).transpose(1, 2)  # views x cells x d
            first, second = flat[:n_all], flat[n_all:]
            classes, purity, painted = cell_classes(labels, stride, self.num_classes)
            anchors = purest_cells(classes, purity, painted, k)
            if not anchors:
                continue
            dev = emb.device
            a_crop = torch.tensor([a[0] for a in anchors], device=dev)
            a_cell = torch.tensor([a[1] for a in anchors], device=dev)
            a_cls = torch.tensor([a[2] for a in anchors], device=dev)
            corr = torch.stack([_correspondence(h, w, k_, bool(f)) for k_, f in turns]).to(dev)
            za = first[a_crop, a_cell]
            zb = second[a_crop, corr[a_crop, a_cell]]
            picked, picked_cls = [za, zb], [a_cls, a_cls]
            unlabelled = n_all - n_lab
            if unlabelled and h * w >= len(anchors):
                cells = F.normalize(first[n_lab:].detach(), dim=2)
                sim = torch.einsum("ad,ucd->uac", F.normalize(za.detach(), dim=1), cells)
                match = greedy_match(sim)
                crop = torch.arange(unlabelled, device=dev)[:, None]
                picked += [first[n_lab:][crop, match].flatten(0, 1),
                           second[n_lab:][crop, corr[n_lab:].gather(1, match)].flatten(0, 1)]
                picked_cls += [a_cls.repeat(unlabelled)] * 2
            loss = class_contrast(torch.cat(picked), torch.cat(picked_cls), opts.temperature)
            dense_losses.append(loss)
            logs[f"dense{stride}"] = float(loss.detach())
        dense = torch.stack(dense_losses).mean() if dense_losses else image_loss * 0
        return opts.image_weight * image_loss + (1 - opts.image_weight) * dense, logs
