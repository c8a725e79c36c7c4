"""Choosing where torch runs: CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

import random

import numpy as np
import torch

from .errors import InputError


def pick_device(preference: str | torch.device | None = None) -> torch.device:
    """Return ``preference`` if given (after checking this machine has it), else the fastest
    device available: CUDA, then Apple MPS, then the CPU. CUDA comes with its index
    (``cuda:0``), so the device's name says which GPU; a ``torch.device`` is returned as is."""
    if isinstance(preference, torch.device):
        return preference
    if preference and preference != "auto":
        try:
            device = torch.device(preference)
        except (RuntimeError, TypeError):
            raise InputError(f"unknown device {preference!r}: use auto, cpu, cuda, cuda:N or mps") from None
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise InputError("CUDA was asked for, but this machine has no usable NVIDIA GPU "
                                 "(or torch was built without CUDA): use --device auto or cpu")
            if device.index is not None and device.index >= torch.cuda.device_count():
                raise InputError(f"{preference} was asked for, but this machine has "
                                 f"{torch.cuda.device_count()} GPU(s)")
            if device.index is None:
                device = torch.device("cuda", torch.cuda.current_device())
        elif device.type == "mps":
            mps = getattr(torch.backends, "mps", None)
            if mps is None or not mps.is_available():
                raise InputError("MPS (Apple GPU) was asked for, but it is not available here")
        elif device.type != "cpu":
            raise InputError(f"unsupported device {preference!r}: use auto, cpu, cuda, cuda:N or mps")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def fast_layout(x, device: torch.device):
    """Return ``x`` (a module or a 4-D tensor) in channels-last memory layout on the CPU and on
    CUDA, where convolutions run faster in it (a training step of the default network: 0.95 s
    against 0.65 s on 2 CPU cores); as it is on other devices."""
    if torch.device(device).type in ("cpu", "cuda"):
        return x.to(memory_format=torch.channels_last)
    return x


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch; return a NumPy generator for the caller's own draws."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)
