"""Losses shared by the pretraining methods: NT-Xent, class-aware dense contrast, SSIM."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Return SimCLR's normalised-temperature cross-entropy for N positive pairs (z1[i], z2[i]).

    Each of the 2N embeddings must pick its partner among the other 2N - 1.
    """
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    n = z1.shape[0]
    sim = z @ z.t() / temperature
    sim.fill_diagonal_(float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, partner)


def class_contrast(embeddings: torch.Tensor, classes: torch.Tensor,
                   temperature: float = 0.5) -> torch.Tensor:
    """Return PSCL's dense contrastive loss over labelled cells.

    Cells of the same class are positives, cells of other classes the only negatives: for each
    anchor i and positive p, ``-log(e^{s_ip} / (e^{s_ip} + sum_n e^{s_in}))`` averaged over pairs.
    Returns 0 when no cell has both a positive and a negative.
    """
    z = F.normalize(embeddings.float(), dim=1)
    sim = z @ z.t() / temperature
    same = classes[:, None] == classes[None, :]
    eye = torch.eye(len(classes), dtype=torch.bool, device=z.device)
    positive = same & ~eye
    negative = ~same
    neg_sum = torch.where(negative, sim.exp(), torch.zeros_like(sim)).sum(dim=1, keepdim=True)
    valid = positive & (negative.any(dim=1, keepdim=True))
    if not valid.any():
        return sim.sum() * 0
    log_prob = sim - torch.log(sim.exp() + neg_sum)
    return -(log_prob[valid]).mean()


def _gaussian_window(size: int, sigma: float, device) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, size, size)


def ssim_map(x: torch.Tensor, y: torch.Tensor, window: int = 7, sigma: float = 1.5,
             data_range: float = 1.0) -> torch.Tensor:
    """Return the per-pixel SSIM of two B x 1 x H x W images (Gaussian window, 'same' size)."""
    k = _gaussian_window(window, sigma, x.device)
    pad = window // 2

    def blur(t):
        return F.conv2d(F.pad(t, (pad, pad, pad, pad), mode="reflect"), k)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx ** 2
    vy = blur(y * y) - my ** 2
    cxy = blur(x * y) - mx * my
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
