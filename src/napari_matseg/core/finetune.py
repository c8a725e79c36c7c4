"""Fine-tuning a segmentation model from painted strokes on one micrograph.

:class:`Finetuner` is a generator-style trainer: iterate over :meth:`Finetuner.run` to get
:class:`TrainingEvent` objects (progress, validation, previews); call :meth:`Finetuner.stop`
from any thread to end early. Whatever ends training, the model holds the best weights seen.
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
import typing
from dataclasses import asdict, dataclass, field
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .augment import AugmentConfig
from .device import fast_layout, pick_device, seed_everything
from .diagnosis import TrainingDiagnosis, diagnose_training
from .errors import InputError
from .imageio import to_grey
from .model import ModelConfig, SegmentationModel, build_model
from .predict import PredictConfig, predict_tiled
from .preprocess import (PreprocessConfig, check_pixel_size, labels_like, prepare_image, resize_to,
                         standardise)
from .scribbles import IGNORE, ScribbleCropSampler, check_scribbles, class_weights, split_strokes

if typing.TYPE_CHECKING:
    from .bundle import ModelBundle


@dataclass
class FinetuneConfig:
    """Training budget and recipe; the defaults are what the benchmark in the README measured."""

    max_steps: int = 180
    max_seconds: float | None = 120.0
    batch_size: int = 8
    crop_size: int = 192
    encoder_lr: float = 2e-4  # 0 freezes the encoder (faster steps, only the decoder learns)
    decoder_lr: float = 2e-3
    weight_decay: float = 1e-4
    balance_power: float = 0.5
    label_smoothing: float = 0.05
    entropy_weight: float = 0.0
    validation_fraction: float = 0.2
    eval_every: int = 10
    first_eval: int = 5
    patience: int = 12
    min_steps: int = 100
    preview_every: int | None = None
    freeze_encoder_bn: bool = True
    seed: int = 0
    device: str = "auto"
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainingEvent:
    """One report from the training loop.

    ``kind`` is ``"step"`` (after each optimiser step), ``"eval"`` (after a validation pass;
    ``preview`` then holds the class map 1..K of the image, when previews were requested) or
    ``"done"`` (``reason`` says why: budget, plateau, stopped; ``diagnosis`` holds the kept
    model's self-check, with warnings when it looks unreliable).
    """

    kind: str
    step: int
    max_steps: int
    loss: float
    elapsed: float
    val_loss: float | None = None
    val_accuracy: float | None = None
    best_step: int | None = None
    preview: np.ndarray | None = None
    reason: str | None = None
    diagnosis: TrainingDiagnosis | None = None


def array_digest(array: np.ndarray) -> str:
    """Return a short SHA-256 of an array's shape, dtype and bytes (for provenance)."""
    h = hashlib.sha256(f"{array.shape}{array.dtype}".encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:16]


def warmup_cosine(progress: float, warmup: float = 0.05, floor: float = 0.05) -> float:
    """Return the learning-rate factor at ``progress`` (0..1 of the step or time budget,
    whichever runs out first): linear warm-up, then cosine decay to ``floor``."""
    if progress < warmup:
        return max(progress / warmup, 0.05)
    t = min(1.0, (progress - warmup) / (1 - warmup))
    return floor + (1 - floor) * 0.5 * (1 + np.cos(np.pi * t))


def start_from_pretrained(bundle: "ModelBundle", num_classes: int,
                          keep_decoder: bool = False) -> SegmentationModel:
    """Return a network for ``num_classes`` that starts from a pretrained bundle's encoder, with a
    fresh decoder and head; ``keep_decoder`` hands over the pretrained decoder as well.

    Only the encoder transfers by default, as MatSSL's authors do it: handing over PSCL's and
    SMS's decoders cost about 5 mIoU points on the MetalDAM stroke benchmark against a fresh
    decoder (docs/pretraining.md).
    """
    if bundle.kind != "pretrained":
        raise InputError("this bundle is a trained segmentation model, not a pretrained start; "
                         "continue training it instead")
    if keep_decoder:
        model = copy.deepcopy(bundle.model)
        model.replace_head(num_classes)
        return model
    config = ModelConfig.from_dict({**bundle.model.config.to_dict(), "num_classes": num_classes})
    return SegmentationModel(config, copy.deepcopy(bundle.model.encoder))


def _set_encoder_bn_eval(model: SegmentationModel) -> None:
    for m in model.encoder.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


class Finetuner:
    """Fine-tunes ``model`` (or a new ImageNet-initialised one) on the strokes in ``labels``.

    ``labels`` follows napari's convention: 0 unpainted, 1..K classes. Pass the model of an
    earlier run to continue from it (warm start) after painting more strokes, with
    ``steps_before`` the steps it was trained for (its bundle's ``total_steps``), so the
    self-check counts them.
    """

    def __init__(self, image: np.ndarray, labels: np.ndarray, num_classes: int | None = None,
                 model: SegmentationModel | None = None, config: FinetuneConfig | None = None,
                 preprocess: PreprocessConfig | None = None, model_config: ModelConfig | None = None,
                 info_band: int | str | None = "auto", pretrained: "ModelBundle | None" = None,
                 pixel_size: float | None = None, steps_before: int = 0):
        self.config = config or FinetuneConfig()
        self.steps_before = int(steps_before) if model is not None else 0
        self.preprocess = copy.deepcopy(preprocess) if preprocess is not None else PreprocessConfig()
        if check_pixel_size(pixel_size) is not None:
            if self.preprocess.pixel_size is None:
                self.preprocess.pixel_size = pixel_size
            else:
                self.preprocess = self.preprocess.for_pixel_size(pixel_size)
        image = to_grey(image)
        labels = check_scribbles(image, labels)
        top = int(labels.max())
        self.num_classes = num_classes or (model.config.num_classes if model is not None else top)
        if top > self.num_classes:
            raise InputError(f"labels use class {top} but the model has {self.num_classes} classes")
        self.rng = seed_everything(self.config.seed)
        self.prepared = prepare_image(image, self.preprocess, info_band)
        self.preprocess.scale = self.prepared.scale
        rows = self.prepared.content_rows
        labels = labels_like(self.prepared, labels)
        if len(np.unique(labels[labels > 0])) < 2:
            raise InputError("fewer than two classes are painted above the information band")
        self.labels = labels
        self.train_labels, self.val_labels = split_strokes(labels, self.config.validation_fraction,
                                                           self.rng)
        self.provenance = {"image_sha256": array_digest(np.asarray(image)),
                           "labels_sha256": array_digest(np.asarray(labels)),
                           "painted_pixels": int((labels > 0).sum()),
                           "info_band_rows": int(self.prepared.original_shape[0] - rows)}
        if model is None and pretrained is not None:
            model = start_from_pretrained(pretrained, self.num_classes)
            method = pretrained.provenance.get("pretraining_method", "unknown")
            self.provenance["encoder_weights"] = f"pretrained ({method})"
            self.provenance["pretraining_method"] = method
            self.provenance["pretrained_transfer"] = "encoder"
            self.provenance["pretrained"] = {k: pretrained.provenance.get(k) for k in (
                "images", "images_sha256", "steps", "seconds", "seed", "package_version")}
        if model is None:
            mc = model_config or ModelConfig()
            mc = ModelConfig(**{**mc.to_dict(), "num_classes": self.num_classes,
                                "decoder_channels": tuple(mc.decoder_channels)})
            model, origin = build_model(mc)
            self.provenance["encoder_weights"] = origin
            self.provenance["pretraining_method"] = "imagenet" if origin.startswith("imagenet") else None
        elif model.config.num_classes != self.num_classes:
            raise InputError(f"the model predicts {model.config.num_classes} classes but "
                             f"{self.num_classes} are asked for; start a new model for other classes")
        self.model = model
        self.device = pick_device(self.config.device)
        self._stop = threading.Event()
        self.weights = torch.from_numpy(class_weights(self.train_labels, self.num_classes,
                                                      self.config.balance_power))
        self.best_state: dict | None = None
        self.class_prior: list[float] | None = None
        self.best_recall: dict[int, float] = {}
        self.best_step = 0
        self.steps_done = 0
        self.history: list[tuple[int, float, float, float]] = []

    def stop(self) -> None:
        """Ask the loop to end after the current step; the best model so far is kept."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy on painted pixels, plus (with ``entropy_weight``) the mean prediction
        entropy on unpainted ones, which pushes class boundaries away from uniform regions."""
        logits = logits.float()
        loss = F.cross_entropy(logits, targets, weight=self.weights.to(logits.device),
                               ignore_index=IGNORE, label_smoothing=self.config.label_smoothing)
        if self.config.entropy_weight > 0:
            unpainted = targets == IGNORE
            if unpainted.any():
                logp = logits.log_softmax(dim=1)
                entropy = -(logp.exp() * logp).sum(dim=1)
                loss = loss + self.config.entropy_weight * entropy[unpainted].mean()
        return loss

    def _evaluate(self, want_preview: bool
                  ) -> tuple[float, float, dict[int, float], np.ndarray | None]:
        """Return loss, balanced accuracy and recall per painted class (1..K) on held-out strokes
        (or all strokes), and a preview.

        Balanced accuracy (mean recall over painted classes) decides which weights are kept:
        the loss on thin held-out strokes rises with confidence long before accuracy falls.
        """
        _, probs, _ = predict_tiled(self.model, self.prepared.pixels,
                                    PredictConfig(keep_probabilities=True), self.device)
        self.model.train()
        if self.config.freeze_encoder_bn:
            _set_encoder_bn_eval(self.model)
        ref = self.val_labels if (self.val_labels > 0).any() else self.train_labels
        mask = ref > 0
        p = np.clip(probs[:, mask], 1e-6, 1.0)
        target = ref[mask] - 1
        w = self.weights.numpy()[target]
        nll = -np.log(p[target, np.arange(target.size)])
        loss = float((nll * w).sum() / max(w.sum(), 1e-9))
        hits = p.argmax(axis=0) == target
        recall = {int(c) + 1: float(hits[target == c].mean()) for c in np.unique(target)}
        accuracy = float(np.mean(list(recall.values())))
        preview = None
        if want_preview:
            preview = self._map_back(probs.argmax(axis=0) + 1)
        return loss, accuracy, recall, preview

    def _class_prior(self) -> list[float]:
        """Return the class fractions the trained model finds in the whole training image: the
        prior that :class:`PredictConfig` uses to undo the class balancing of training."""
        classes, _, _ = predict_tiled(self.model, self.prepared.pixels,
                                      PredictConfig(keep_probabilities=False), self.device)
        counts = np.bincount(classes.ravel(), minlength=self.num_classes)
        return [round(float(c), 6) for c in counts / counts.sum()]

    def _map_back(self, classes: np.ndarray) -> np.ndarray:
        rows, width = self.prepared.content_rows, self.prepared.original_shape[1]
        if classes.shape != (rows, width):
            classes = resize_to(classes.astype(np.int32), (rows, width), "nearest")
        out = np.zeros(self.prepared.original_shape, np.uint8)
        out[:rows] = classes
        return out

    def run(self, preview: bool = False) -> Iterator[TrainingEvent]:
        """Train, yielding events; ends with one ``"done"`` event.

        With ``preview`` each ``"eval"`` event carries the current class map of the image.
        """
        cfg = self.config
        model = fast_layout(self.model.to(self.device), self.device)
        model.train()
        if cfg.freeze_encoder_bn:
            _set_encoder_bn_eval(model)
        sampler = ScribbleCropSampler(self.prepared.pixels, self.train_labels, cfg.crop_size,
                                      cfg.augment, self.rng, standardise)
        frozen = cfg.encoder_lr == 0
        model.encoder.requires_grad_(not frozen)
        groups = [{"params": [*model.decoder.parameters(), *model.head.parameters()],
                   "lr": cfg.decoder_lr}]
        if not frozen:
            groups.append({"params": list(model.encoder.parameters()), "lr": cfg.encoder_lr})
        opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
        base_lrs = [group["lr"] for group in opt.param_groups]
        use_amp = self.device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        start = time.perf_counter()
        best, best_val, stale, loss_ema, reason = -np.inf, float("inf"), 0, None, "budget"
        step = 0
        try:
            for step in range(1, cfg.max_steps + 1):
                elapsed = time.perf_counter() - start
                progress = (step - 1) / cfg.max_steps
                if cfg.max_seconds:
                    progress = max(progress, elapsed / cfg.max_seconds)
                for group, base_lr in zip(opt.param_groups, base_lrs):
                    group["lr"] = base_lr * warmup_cosine(progress)
                batch = sampler.sample(cfg.batch_size)
                x = fast_layout(batch.images.to(self.device), self.device)
                y = batch.targets.to(self.device)
                with torch.autocast(self.device.type, enabled=use_amp):
                    logits = model(x)
                loss = self._loss(logits, y)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                value = float(loss.detach())
                loss_ema = value if loss_ema is None else 0.9 * loss_ema + 0.1 * value
                elapsed = time.perf_counter() - start
                self.steps_done = step
                yield TrainingEvent("step", step, cfg.max_steps, loss_ema, elapsed)
                out_of_time = cfg.max_seconds is not None and elapsed >= cfg.max_seconds
                last = step == cfg.max_steps or out_of_time or self.stopping
                if step % cfg.eval_every == 0 or step == cfg.first_eval or last:
                    want = preview and (cfg.preview_every is None or step % cfg.preview_every == 0
                                        or last)
                    val, acc, recall, prev = self._evaluate(want)
                    self.history.append((step, loss_ema, val, acc))
                    if acc - 1e-3 * val > best:
                        best, best_val, stale, self.best_step = acc - 1e-3 * val, val, 0, step
                        self.best_state = copy.deepcopy(model.state_dict())
                        self.best_recall = recall
                    else:
                        stale += 1
                    yield TrainingEvent("eval", step, cfg.max_steps, loss_ema,
                                        time.perf_counter() - start, val, acc, self.best_step, prev)
                    if stale >= cfg.patience and step >= cfg.min_steps:
                        reason = "plateau"
                        break
                if self.stopping:
                    reason = "stopped"
                    break
                if out_of_time:
                    reason = "time budget"
                    break
        finally:
            model.encoder.requires_grad_(True)
            if self.best_state is not None:
                model.load_state_dict(self.best_state)
            model.eval()
        self.class_prior = self._class_prior()
        self.provenance.update({"steps": step, "total_steps": self.steps_before + step,
                                "best_step": self.best_step,
                                "best_val_loss": best_val, "stop_reason": reason,
                                "seconds": round(time.perf_counter() - start, 2),
                                "device": self.device.type, "seed": cfg.seed})
        yield TrainingEvent("done", step, cfg.max_steps, loss_ema or 0.0,
                            time.perf_counter() - start, best_val, None, self.best_step,
                            reason=reason, diagnosis=self.diagnose())

    def diagnose(self, class_names: list[str] | None = None) -> TrainingDiagnosis:
        """Return the finished model's self-check (held-out recall per class, class shares in
        the training image) with a warning for each sign that it should not be trusted yet."""
        return diagnose_training(self.steps_before + self.steps_done, self.config.min_steps,
                                 self.provenance.get("stop_reason", "stopped"), self.best_recall,
                                 self.class_prior or [], bool((self.val_labels > 0).any()),
                                 class_names)

    def train(self) -> SegmentationModel:
        """Run to completion without reporting and return the trained model."""
        for _ in self.run():
            pass
        return self.model

    def to_bundle(self, class_names: list[str] | None = None,
                  class_colours: list[str] | None = None) -> "ModelBundle":
        """Return the trained model packed with its classes, preprocessing and provenance."""
        from .. import __version__
        from .bundle import ModelBundle

        provenance = {**self.provenance, "package_version": __version__,
                      "finetune": self.config.to_dict()}
        if self.class_prior is not None:
            provenance["diagnosis"] = self.diagnose(class_names).to_dict()
        return ModelBundle(self.model.cpu(), list(class_names or []), list(class_colours or []),
                           self.preprocess, provenance, class_prior=self.class_prior)
