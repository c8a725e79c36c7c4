"""The training loop every pretraining method shares: budgets, schedule, checkpoints, events.

:class:`Pretrainer` is a generator-style trainer like :class:`~napari_matseg.core.Finetuner`:
iterate over :meth:`Pretrainer.run` for :class:`PretrainEvent` objects; :meth:`Pretrainer.stop`
ends it early from any thread. Under ``torchrun`` it trains data-parallel (PyTorch DDP).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..budget import Budget
from ..checks import check_float, check_int, check_training_batch
from ..device import seed_everything
from ..encoders import DEFAULT_ENCODER
from ..errors import InputError
from ..finetune import warmup_cosine
from ..model import ModelConfig, build_model
from .distributed import DistributedContext
from .checkpoint import flatten_optimizer, read_checkpoint, unflatten_optimizer, write_checkpoint
from .pool import MicrographPool
from .registry import method_spec

DEFAULT_PRETRAIN_BUDGET = Budget(steps=None, max_seconds=600.0)
# PSCL and SMS train the decoder; docs/pretraining.md measured them with ReLU decoders, so a
# pretraining from ImageNet or random weights builds one (from a bundle, it keeps the bundle's).
# A fine-tune starts a fresh decoder (with the default activation) unless asked to keep this one.
PRETRAIN_DECODER_ACTIVATION = "relu"


@dataclass(frozen=True)
class PretrainConfig:
    """Budget and recipe of a pretraining run.

    ``options`` are the method's own settings (its registered options dataclass; None: its
    defaults). ``lr`` and ``weight_decay`` default (None) to each method's published values.
    ``init`` is ``"imagenet"``, ``"random"`` or the path of a bundle to continue from. The budget
    defaults to ten minutes, with no step limit.
    """

    method: str = "matssl"
    budget: Budget = DEFAULT_PRETRAIN_BUDGET
    batch_size: int = 16
    crop_size: int = 160
    lr: float | None = None
    weight_decay: float | None = None
    warmup: float = 0.02
    encoder: str = DEFAULT_ENCODER
    init: str = "imagenet"
    seed: int = 0
    device: str = "auto"
    checkpoint_seconds: float = 120.0
    options: object = None

    def __post_init__(self):
        spec = method_spec(self.method)
        if self.options is None:
            object.__setattr__(self, "options", spec.options())
        elif not isinstance(self.options, spec.options):
            raise InputError(f"{self.method} takes {spec.options.__name__} options, "
                             f"not {type(self.options).__name__}")
        check_training_batch(self.budget, self.batch_size, self.crop_size, min_batch=2)
        if self.lr is not None:
            check_float("the learning rate", self.lr, 0, 10, strict_minimum=True)
        if self.weight_decay is not None:
            check_float("the weight decay", self.weight_decay, 0, 10)
        check_float("the warm-up fraction", self.warmup, 0, 1)
        check_int("the seed", self.seed, 0)
        check_float("the checkpoint interval", self.checkpoint_seconds, 0, strict_minimum=True)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["budget"] = self.budget.to_dict()
        return d


@dataclass
class PretrainEvent:
    """``kind``: ``"step"``, ``"message"`` (schedule news), ``"checkpoint"`` or ``"done"``;
    ``progress`` is the fraction (0..1) of the budget used."""

    kind: str
    step: int
    max_steps: int
    loss: float
    elapsed: float
    progress: float = 0.0
    parts: dict = field(default_factory=dict)
    message: str | None = None
    reason: str | None = None


def pool_digest(pool: MicrographPool) -> str:
    """Return a short SHA-256 over the pool's prepared images (for provenance)."""
    h = hashlib.sha256()
    for image in pool.images:
        h.update(str(tuple(image.shape)).encode())
        h.update(image.cpu().numpy().tobytes())
    return h.hexdigest()[:16]


class Pretrainer:
    """Pretrains a segmentation model's encoder (and decoder, for PSCL and SMS) without labels.

    ``labelled`` is ``(image, scribbles)`` for PSCL. With ``checkpoint`` the state is saved there
    every ``checkpoint_seconds`` and at the end; ``resume=True`` continues from it.
    """

    def __init__(self, pool: MicrographPool, config: PretrainConfig | None = None,
                 labelled: tuple[np.ndarray, np.ndarray] | None = None,
                 checkpoint: str | Path | None = None, resume: bool = False):
        self.config = config = config or PretrainConfig()
        self.pool = pool
        self.dist = DistributedContext.from_env()
        seed_everything(config.seed)
        model, self.origin = self._initial_model()
        self.rng = seed_everything(config.seed + 1000 * self.dist.rank)
        self.method = method_spec(config.method).method(model, pool, config, self.rng, labelled)
        self.method.rank, self.method.world = self.dist.rank, self.dist.world
        self.device = self.dist.device(config.device)
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.resume = resume
        self._stop = threading.Event()
        self.steps_done = 0
        self.elapsed = 0.0
        self.loss_ema: float | None = None
        self.history: list[tuple[int, float, float]] = []

    def _initial_model(self):
        init = self.config.init
        if init in ("imagenet", "random"):
            mc = ModelConfig(num_classes=2, encoder=self.config.encoder,
                             decoder_activation=PRETRAIN_DECODER_ACTIVATION)
            return build_model(mc, encoder_weights="imagenet" if init == "imagenet" else None)
        from ..bundle import load_bundle

        bundle = load_bundle(init)
        return bundle.model.train(), f"bundle {Path(init).name}"

    @property
    def model(self):
        return self.method.model

    def stop(self) -> None:
        """End after the current step; the weights so far are kept and checkpointed."""
        self._stop.set()

    def _load_checkpoint(self, optimizer) -> None:
        """Restore weights, optimiser and counters from the checkpoint; raise
        :class:`InputError` naming the file when it is not a checkpoint of this run."""
        path = self.checkpoint
        try:
            tensors, meta = read_checkpoint(path)
        except Exception as exc:  # truncated, empty, foreign or hostile files alike
            raise InputError(f"{path}: not a usable pretraining checkpoint ({exc}); delete it or "
                             "start without --resume") from exc
        method = meta.get("config", {}).get("method")
        if method != self.config.method:
            raise InputError(f"{path} is a {method} checkpoint, not {self.config.method}")
        try:
            net = {k[len("net."):]: v.to(self.device) for k, v in tensors.items() if k.startswith("net.")}
            self.method.load_state_dict(net)
            optimizer.load_state_dict(unflatten_optimizer(tensors, meta["optimizer"], self.device))
            self.steps_done, self.elapsed = int(meta["step"]), float(meta["elapsed"])
            self.loss_ema = None if meta["loss_ema"] is None else float(meta["loss_ema"])
            self.method.load_extra_state(meta["extra"])
        except Exception as exc:
            raise InputError(f"{path}: the checkpoint does not fit this run ({exc}); delete it or "
                             "start without --resume") from exc

    def _save_checkpoint(self, optimizer) -> None:
        tensors = {f"net.{k}": v for k, v in self.method.state_dict().items()}
        opt_tensors, opt_meta = flatten_optimizer(optimizer.state_dict())
        tensors.update(opt_tensors)
        meta = {"step": self.steps_done, "elapsed": self.elapsed, "loss_ema": self.loss_ema,
                "config": self.config.to_dict(), "extra": self.method.extra_state(),
                "optimizer": opt_meta}
        write_checkpoint(self.checkpoint, tensors, meta)

    def run(self) -> Iterator[PretrainEvent]:
        """Train, yielding events; ends with one ``"done"`` event."""
        cfg, method = self.config, self.method
        method.to_device(self.device).train()
        params = [p for p in method.parameters() if p.requires_grad]
        lr = cfg.lr if cfg.lr is not None else method.default_lr
        wd = cfg.weight_decay if cfg.weight_decay is not None else method.default_weight_decay
        optimizer = method.make_optimizer(params, lr, wd)
        if self.resume and self.checkpoint and self.checkpoint.is_file():
            self._load_checkpoint(optimizer)
            yield self._event("message", f"resumed from {self.checkpoint.name} at step "
                                         f"{self.steps_done} ({self.elapsed:.0f} s)")
        net = method
        if self.dist.active:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            net = DistributedDataParallel(method, device_ids=ids, find_unused_parameters=True)
        use_amp = self.device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        start, offset = time.perf_counter(), self.elapsed
        last_save, reason = start, "budget"
        try:
            for step in range(self.steps_done + 1, cfg.budget.step_limit + 1):
                self.elapsed = offset + time.perf_counter() - start
                progress = cfg.budget.progress(step - 1, self.elapsed)
                message = method.before_step(step, progress)
                if message:
                    yield self._event("message", message)
                for group in optimizer.param_groups:
                    group["lr"] = float(lr * warmup_cosine(progress, cfg.warmup, floor=0.0))
                batch = method.sample()
                with torch.autocast(self.device.type, enabled=use_amp):
                    loss, parts = net(batch)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"the {cfg.method} loss became {float(loss)} at step "
                                             f"{step}; lower the learning rate (--lr)")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                value = self.dist.mean(float(loss.detach()), self.device)
                self.loss_ema = value if self.loss_ema is None else 0.95 * self.loss_ema + 0.05 * value
                self.steps_done = step
                self.elapsed = offset + time.perf_counter() - start
                self.history.append((step, value, self.elapsed))
                yield self._event("step", parts=parts)
                out_of_time = cfg.budget.out_of_time(self.elapsed)
                halt = self.dist.any(self._stop.is_set() or out_of_time, self.device)
                if (self.checkpoint and self.dist.is_main and not halt
                        and time.perf_counter() - last_save >= cfg.checkpoint_seconds):
                    self._save_checkpoint(optimizer)
                    last_save = time.perf_counter()
                    yield self._event("checkpoint", f"saved {self.checkpoint.name}")
                if halt:
                    reason = "stopped" if self._stop.is_set() else "time budget"
                    break
            if self.checkpoint and self.dist.is_main:
                self._save_checkpoint(optimizer)
        finally:
            self.dist.barrier()
            method.eval()
        self.reason = reason
        yield self._event("done", reason=reason)

    def _event(self, kind: str, message: str | None = None, parts: dict | None = None,
               reason: str | None = None) -> PretrainEvent:
        budget = self.config.budget
        return PretrainEvent(kind, self.steps_done, budget.step_limit,
                             self.loss_ema if self.loss_ema is not None else math.nan,
                             self.elapsed, budget.progress(self.steps_done, self.elapsed),
                             parts or {}, message, reason)

    def train(self):
        """Run to the end without reporting; return the model."""
        for _ in self.run():
            pass
        return self.model

    def provenance(self) -> dict:
        from ... import __version__

        return {"pretraining_method": self.config.method, "encoder_weights": self.origin,
                "pretrain": self.config.to_dict(), "images": len(self.pool),
                "images_sha256": pool_digest(self.pool), "steps": self.steps_done,
                "seconds": round(self.elapsed, 1), "final_loss": self.loss_ema,
                "stop_reason": getattr(self, "reason", None), "device": self.device.type,
                "processes": self.dist.world, "threads": torch.get_num_threads(),
                "seed": self.config.seed, "package_version": __version__}

    def to_bundle(self):
        """Return the pretrained model as a ``kind="pretrained"`` bundle (method heads dropped)."""
        import copy

        from ..bundle import ModelBundle
        from ..preprocess import PreprocessConfig

        model = copy.deepcopy(self.model).cpu().eval()
        model.requires_grad_(True)
        preprocess = PreprocessConfig(normalizer=copy.deepcopy(self.pool.preprocess.normalizer),
                                      scale=None)
        return ModelBundle(model, preprocess=preprocess, provenance=self.provenance(),
                           kind="pretrained")

    def close(self) -> None:
        self.dist.close()
