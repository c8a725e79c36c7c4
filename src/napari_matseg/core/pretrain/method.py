"""What every pretraining method provides to the shared loop (:mod:`.loop`).

A method is an ``nn.Module`` holding the segmentation model and its own heads, so one
``DistributedDataParallel`` wrapper covers everything that trains: ``forward(batch)`` returns the
loss. The loop owns budgets, schedule, checkpoints, events and distribution.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..device import fast_layout
from ..model import SegmentationModel
from .pool import MicrographPool


class PretrainMethod(nn.Module):
    """Base class: a head, a loss, a view sampler; subclasses set the class attributes."""

    name = "base"
    trains_decoder = True
    default_lr = 1e-4
    default_weight_decay = 1e-5

    def __init__(self, model: SegmentationModel, pool: MicrographPool, config,
                 rng: np.random.Generator):
        super().__init__()
        self.model = model
        self.pool = pool
        self.config = config
        self.rng = rng
        self.device = torch.device("cpu")
        self.rank, self.world = 0, 1
        model.head.requires_grad_(False)
        model.decoder.requires_grad_(self.trains_decoder)

    def to_device(self, device: torch.device) -> "PretrainMethod":
        self.device = device
        return fast_layout(self.to(device), device)

    def make_optimizer(self, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)

    def sample(self):
        """Return the next batch (on the CPU; ``forward`` moves it)."""
        raise NotImplementedError

    def forward(self, batch) -> tuple[torch.Tensor, dict]:
        """Return the loss of ``batch`` and a dict of named parts for the log."""
        raise NotImplementedError

    def before_step(self, step: int, progress: float) -> str | None:
        """Hook run before each step with the budget's progress (0..1); may return a message."""
        return None

    def extra_state(self) -> dict:
        """JSON-able state beyond the weights that a resumed run needs."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass
