"""Data-parallel pretraining under ``torchrun``: process group set-up and the few collectives
the loop needs. Without torchrun's environment everything runs in one process."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..device import pick_device


@dataclass
class DistributedContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @classmethod
    def from_env(cls) -> "DistributedContext":
        """Join the process group torchrun describes (gloo on CPU, NCCL on GPUs), if any."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        owns = False
        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(local)
            dist.init_process_group(backend)
            owns = True
        return cls(rank, world, local, owns)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def device(self, preference: str | None) -> torch.device:
        device = pick_device(preference)
        if self.active and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def any(self, flag: bool, device: torch.device) -> bool:
        """Return True on every rank if ``flag`` is True on any (keeps the ranks in step)."""
        if not self.active:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def mean(self, value: float, device: torch.device) -> float:
        if not self.active:
            return value
        t = torch.tensor([value], device=device, dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item()) / self.world

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False
