"""Choosing where torch runs: CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

import random

import numpy as np
import torch


def pick_device(preference: str | None = None) -> torch.device:
    """Return ``preference`` if given, else the fastest device available."""
    if preference and preference != "auto":
        return torch.device(preference)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch; return a NumPy generator for the caller's own draws."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)
