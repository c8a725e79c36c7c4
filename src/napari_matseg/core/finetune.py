"""Fine-tuning a segmentation model from strokes painted on one or several micrographs.

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
from dataclasses import asdict, dataclass, field, replace
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .augment import AugmentConfig
from .budget import Budget
from .checks import check_float, check_int, check_training_batch
from .device import fast_layout, pick_device, seed_everything
from .diagnosis import TrainingDiagnosis, diagnose_training, find_collapse
from .errors import InputError
from .imageio import to_grey
from .infoband import content_rows
from .linewidth import class_line_widths
from .model import DEFAULT_DECODER_ACTIVATION, ModelConfig, SegmentationModel, build_model
from .predict import PredictConfig, predict_tiled
from .preprocess import (PreparedImage, PreprocessConfig, auto_scale, check_pixel_size, labels_like,
                         prepare_image, resize_to)
from .scribbles import IGNORE, ScribbleCropSampler, check_scribbles, class_weights, split_strokes
from .selection import CheckpointSelector, SelectionRule
from .stroke_inbox import StrokeInbox
from .unlabeled import ConsistencyLearner, UnlabeledConfig, UnlabeledCropSampler

if typing.TYPE_CHECKING:
    from .bundle import ModelBundle
    from .live_schedule import LiveSchedule


@dataclass(frozen=True)
class FinetuneConfig:
    """Training budget and recipe; the defaults are what the benchmarks in the README measured.

    ``budget`` counts optimiser steps (180 by default); its optional time cap ends a run early
    and says so (:class:`~napari_matseg.core.budget.Budget`).

    ``validation_fraction`` of each class's strokes is held out to check the model; for the first
    ``holdout_until`` of the budget they do not train, then they join training so the final
    model learns from every stroke (1.0 keeps them out to the end). ``keep``, ``patience`` and
    ``min_steps`` make the :class:`~napari_matseg.core.selection.SelectionRule`.

    ``unlabeled`` sets how much the network learns from pixels nobody painted (the painted
    images' unpainted pixels and any unlabeled micrographs given to :class:`Finetuner`);
    see :mod:`napari_matseg.core.unlabeled`.
    """

    budget: Budget = field(default_factory=Budget)
    batch_size: int = 8
    crop_size: int = 192
    encoder_lr: float = 2e-4  # 0 freezes the encoder (faster steps, only the decoder learns)
    decoder_lr: float = 2e-3
    weight_decay: float = 1e-4
    balance_power: float = 0.5
    label_smoothing: float = 0.05
    entropy_weight: float = 0.0
    validation_fraction: float = 0.2
    holdout_until: float = 0.7
    keep: str = "last"
    eval_every: int = 10
    first_eval: int = 5
    patience: int = 12
    min_steps: int = 100
    preview_every: int | None = None
    freeze_encoder_bn: bool = True
    seed: int = 0
    device: str = "auto"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    unlabeled: UnlabeledConfig = field(default_factory=UnlabeledConfig)

    def __post_init__(self):
        check_training_batch(self.budget, self.batch_size, self.crop_size)
        for name in ("encoder_lr", "decoder_lr", "weight_decay", "balance_power", "entropy_weight"):
            check_float(name.replace("_", " "), getattr(self, name), 0, 10)
        check_float("the label smoothing", self.label_smoothing, 0, 1)
        check_float("the validation fraction", self.validation_fraction, 0, 0.9)
        check_float("the held-out phase", self.holdout_until, 0, 1)
        _ = self.selection  # SelectionRule checks keep, patience and min_steps
        for name in ("eval_every", "first_eval"):
            check_int(name.replace("_", " "), getattr(self, name), 1)
        if self.preview_every is not None:
            check_int("the preview interval", self.preview_every, 1)
        check_int("the seed", self.seed, 0)
        if not isinstance(self.augment, AugmentConfig):
            raise InputError("augment must be an AugmentConfig")
        if not isinstance(self.unlabeled, UnlabeledConfig):
            raise InputError("unlabeled must be an UnlabeledConfig")

    @property
    def selection(self) -> SelectionRule:
        """The rule that picks the kept weights and the plateau stop."""
        return SelectionRule(self.keep, self.patience, self.min_steps)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["budget"] = self.budget.to_dict()
        return d


@dataclass(eq=False)
class AnnotatedImage:
    """A micrograph and the strokes painted on it: ``labels`` is 0 where unpainted, 1..K where a
    class is painted (napari's convention), the size of ``image``.

    ``info_band`` (``"auto"``, 0 or a row count) overrides the preprocessing's setting for this
    image; ``pixel_size`` (µm per pixel), when every image of a run has one, brings them all to
    the first image's physical scale.
    """

    image: np.ndarray
    labels: np.ndarray
    name: str = "image"
    info_band: int | str | None = None
    pixel_size: float | None = None


@dataclass(eq=False)
class UnlabeledImage:
    """A micrograph nobody painted that training may learn from (see
    :mod:`napari_matseg.core.unlabeled`); ``info_band`` and ``pixel_size`` as for
    :class:`AnnotatedImage`."""

    image: np.ndarray
    name: str = "unlabeled"
    info_band: int | str | None = None
    pixel_size: float | None = None


@dataclass
class TrainingEvent:
    """One report from the training loop.

    ``kind`` is ``"step"`` (after each optimiser step), ``"eval"`` (after a validation pass;
    ``previews`` then maps each training image's name to its class map 1..K, when previews
    were requested) or ``"done"`` (``reason`` says why: budget, plateau, stopped, time cap;
    ``diagnosis`` holds the kept model's self-check, with warnings when it looks unreliable).
    """

    kind: str
    step: int
    max_steps: int
    loss: float
    elapsed: float
    progress: float = 0.0
    val_loss: float | None = None
    val_accuracy: float | None = None
    best_step: int | None = None
    previews: dict[str, np.ndarray] | None = None
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
    decoder (docs/pretraining.md; measured with ReLU decoders on both sides). A fresh decoder has
    today's default activation (leaky), whatever the pretraining's decoder used.
    """
    if bundle.kind != "pretrained":
        raise InputError("this bundle is a trained segmentation model, not a pretrained start; "
                         "continue training it instead")
    if keep_decoder:
        model = copy.deepcopy(bundle.model)
        model.replace_head(num_classes)
        return model
    config = replace(bundle.model.config, num_classes=num_classes,
                     decoder_activation=DEFAULT_DECODER_ACTIVATION)
    return SegmentationModel(config, copy.deepcopy(bundle.model.encoder))


def _set_encoder_bn_eval(model: SegmentationModel) -> None:
    for m in model.encoder.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


@dataclass
class TrainingImage:
    """One training image as the loop sees it: prepared pixels, strokes cut into training and
    held-out parts, and what provenance records of it."""

    name: str
    prepared: PreparedImage
    labels: np.ndarray
    train_labels: np.ndarray
    val_labels: np.ndarray
    record: dict


@dataclass
class Evaluation:
    """One check of the network on the strokes: the loss and balanced accuracy over every
    painted class, the recall per class (1..K), the classes that had no held-out strokes and
    were scored on their training strokes, :func:`~napari_matseg.core.diagnosis.find_collapse`'s
    findings, and previews (class maps 1..K at each image's size) when asked for."""

    step: int
    loss: float
    accuracy: float
    recall: dict[int, float]
    scored_on_training: list[int]
    collapse: list[str]
    previews: dict[str, np.ndarray] | None = None

    @property
    def score(self) -> float:
        """What the selection ranks by: balanced accuracy, the loss breaking ties."""
        return self.accuracy - 1e-3 * self.loss


def _source_key(item: AnnotatedImage, image_sha256: str) -> tuple:
    """Return what an image's prepared pixels depend on: its pixels and its settings."""
    return image_sha256, item.info_band, item.pixel_size


def painted_classes(label_maps) -> set[int]:
    """Return the classes (1..K) painted on any of ``label_maps`` (0 unpainted)."""
    return {int(c) for labels in label_maps for c in np.unique(labels[labels > 0])}


def _check_names(images: Sequence[AnnotatedImage]) -> None:
    names = [item.name for item in images]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"two training images are called {duplicates[0]!r}: give each a name of its own")


class Finetuner:
    """Fine-tunes ``model`` (or a new ImageNet-initialised one) on the strokes painted on one or
    several micrographs (:class:`AnnotatedImage`), of any sizes.

    Pass the model of an earlier run to continue from it (warm start) after painting more
    strokes, or strokes on more images, with ``steps_before`` the steps it was trained for (its
    bundle's ``trained_steps``), so the self-check counts them. A new model's encoder starts from
    ``encoder_weights`` (``"imagenet"``, or None for random weights). The model is trained in place:
    callers that must keep the original (a registered model) pass a copy, as
    :mod:`napari_matseg.api` does.
    """

    def __init__(self, images: Sequence[AnnotatedImage], num_classes: int | None = None,
                 model: SegmentationModel | None = None, config: FinetuneConfig | None = None,
                 preprocess: PreprocessConfig | None = None, model_config: ModelConfig | None = None,
                 pretrained: "ModelBundle | None" = None, steps_before: int = 0,
                 encoder_weights: str | None = "imagenet",
                 unlabeled: Sequence[UnlabeledImage] = ()):
        if isinstance(images, AnnotatedImage):
            images = [images]
        images = list(images)
        if not images:
            raise InputError("no training images: give at least one image with painted strokes")
        _check_names(images)
        self.config = config or FinetuneConfig()
        self.steps_before = int(steps_before) if model is not None else 0
        preprocess = preprocess or PreprocessConfig()
        known_classes = num_classes or (model.config.num_classes if model is not None else None)
        checked = []
        for item in images:
            try:
                grey = to_grey(item.image)
                checked.append((item, grey, check_scribbles(grey, item.labels, require_two=False,
                                                            num_classes=known_classes)))
            except InputError as exc:
                raise InputError(f"{item.name}: {exc}") from exc
        painted = sorted(painted_classes(labels for _, _, labels in checked))
        if not painted:
            raise InputError("nothing is painted: paint a few strokes of each class first")
        if len(painted) < 2:
            raise InputError(f"only class {painted[0]} is painted: paint at least two classes")
        top = painted[-1]
        self.num_classes = num_classes or (model.config.num_classes if model is not None else top)
        if top > self.num_classes:
            raise InputError(f"labels use class {top} but the model has {self.num_classes} classes")
        self.rng = seed_everything(self.config.seed)
        self.preprocess = self._reference_preprocess(preprocess, images, checked[0][1])
        self.images: list[TrainingImage] = []
        for item, grey, labels in checked:
            self.images.append(self._prepare(item, grey, labels))
        painted_here = sorted(painted_classes(t.labels for t in self.images))
        if len(painted_here) < 2:
            raise InputError("fewer than two classes are painted above the information band")
        self.provenance = {"images": [t.record for t in self.images],
                           "painted_pixels": sum(t.record["painted_pixels"] for t in self.images)}
        self.unlabeled: list[tuple[str, PreparedImage]] = []
        if self.config.unlabeled.enabled:
            self.unlabeled = [self._prepare_unlabeled(item) for item in unlabeled]
            self.provenance["unlabeled"] = {
                "images": [{"name": item.name, "image_sha256": array_digest(np.asarray(item.image)),
                            "info_band_rows": prepared.band_rows}
                           for item, (_, prepared) in zip(unlabeled, self.unlabeled)],
                "painted_images_unpainted_pixels": True}
        self.unlabeled_log: list[dict] = []
        if model is not None and model.config.num_classes != self.num_classes:
            raise InputError(f"the model predicts {model.config.num_classes} classes but "
                             f"{self.num_classes} are asked for; start a new model for other classes")
        self._model = model
        self._new_model = (pretrained, replace(model_config or ModelConfig(), num_classes=self.num_classes),
                           encoder_weights)
        self.device = pick_device(self.config.device)
        self._stop = threading.Event()
        self._sources = {item.name: _source_key(item, t.record["image_sha256"])
                         for item, t in zip(images, self.images)}
        self.inbox = StrokeInbox(tuple((t.name, self._sources[t.name], t.record["labels_sha256"])
                                       for t in self.images))
        self.stroke_updates = 0
        self.weights = self._class_weights()
        self.best_state: dict | None = None
        self.class_prior: list[float] | None = None
        self.best_step = 0
        self.steps_done = 0
        self.stop_reason: str | None = None
        self.history: list[tuple[int, float, float, float]] = []
        self.kept: Evaluation | None = None
        self.check: Evaluation | None = None
        self.start_check: Evaluation | None = None  # a continued run's start model, same strokes
        self.image_fractions: list[float] | None = None
        self.forest_accuracy: float | None = None

    @property
    def model(self) -> SegmentationModel:
        """The network being trained; a new one is built on first use (not when the Finetuner
        is made, so the images can be checked and a quick preview shown first)."""
        if self._model is None:
            self._model = self._build_model()
        return self._model

    def _build_model(self) -> SegmentationModel:
        pretrained, model_config, encoder_weights = self._new_model
        seed_everything(self.config.seed)  # new layers start the same way for a given seed
        if pretrained is not None:
            method = pretrained.provenance.get("pretraining_method", "unknown")
            self.provenance["encoder_weights"] = f"pretrained ({method})"
            self.provenance["pretraining_method"] = method
            self.provenance["pretrained_transfer"] = "encoder"
            self.provenance["pretrained"] = {k: pretrained.provenance.get(k) for k in (
                "images", "images_sha256", "steps", "seconds", "seed", "package_version")}
            return start_from_pretrained(pretrained, self.num_classes)
        model, origin = build_model(model_config, encoder_weights)
        self.provenance["encoder_weights"] = origin
        self.provenance["pretraining_method"] = "imagenet" if origin.startswith("imagenet") else None
        return model

    @staticmethod
    def _reference_preprocess(preprocess: PreprocessConfig, images: list[AnnotatedImage],
                              first_grey: np.ndarray) -> PreprocessConfig:
        """Return the preprocessing the model keeps: the working scale chosen on the first image
        (every image is trained at that scale, or at its physical equivalent), and the first
        image's pixel size as the reference when pixel sizes are given."""
        pixel_size = check_pixel_size(images[0].pixel_size)
        if pixel_size is not None:
            preprocess = (replace(preprocess, pixel_size=pixel_size) if preprocess.pixel_size is None
                          else preprocess.for_pixel_size(pixel_size))
        if preprocess.scale is None:
            band = images[0].info_band if images[0].info_band is not None else preprocess.info_band
            rows = content_rows(first_grey, band)
            preprocess = replace(preprocess, scale=auto_scale((rows, first_grey.shape[1])))
        return preprocess

    def _class_weights(self) -> torch.Tensor:
        """Return the loss's class weights from the training strokes of every image."""
        all_train = np.concatenate([t.train_labels[t.train_labels > 0].ravel() for t in self.images])
        return torch.from_numpy(class_weights(all_train, self.num_classes, self.config.balance_power))

    def _prepare(self, item: AnnotatedImage, grey: np.ndarray, labels: np.ndarray,
                 prepared: PreparedImage | None = None) -> TrainingImage:
        """Return the training image of ``item``: prepared pixels (``prepared`` when they are
        already known), strokes at the working scale, split into training and held-out parts."""
        prepared = prepared or self._prepare_pixels(item, grey)
        scaled = labels_like(prepared, labels)
        grey_sha256 = array_digest(grey)
        salt = int(hashlib.sha256(f"{self.config.seed}:{grey_sha256}".encode()).hexdigest()[:15], 16)
        train, val = split_strokes(scaled, self.config.validation_fraction, salt)
        image_sha256 = grey_sha256 if grey is item.image else array_digest(np.asarray(item.image))
        record = {"name": item.name, "image_sha256": image_sha256,
                  "labels_sha256": array_digest(np.asarray(labels)), "shape": list(grey.shape),
                  "painted_pixels": int((labels > 0).sum()),
                  "info_band_rows": prepared.band_rows,
                  "stroke_width_px": {str(c): w for c, w in class_line_widths(labels).items()},
                  "pixel_size": check_pixel_size(item.pixel_size)}
        return TrainingImage(item.name, prepared, scaled, train, val, record)

    def _prepare_pixels(self, item: AnnotatedImage | UnlabeledImage, grey: np.ndarray) -> PreparedImage:
        """Return an image's pixels prepared with the model's preprocessing, at its own pixel
        size and information band; errors name the image."""
        config = self.preprocess.for_pixel_size(check_pixel_size(item.pixel_size))
        if item.info_band is not None:
            config = config.with_info_band(item.info_band)
        try:
            return prepare_image(grey, config)
        except InputError as exc:
            raise InputError(f"{item.name}: {exc}") from exc

    def _prepare_unlabeled(self, item: UnlabeledImage) -> tuple[str, PreparedImage]:
        if not isinstance(item, UnlabeledImage):
            raise InputError("unlabeled images must be UnlabeledImage objects")
        return item.name, self._prepare_pixels(item, item.image)

    def stop(self) -> None:
        """Ask the loop to end after the current step; the best model so far is kept."""
        self._stop.set()
        self.inbox.wake.set()

    def update_images(self, images: Sequence[AnnotatedImage]) -> bool:
        """Hand the loop a new set of training images, from any thread: it takes them at its
        next evaluation (or as it wakes from idling), prepares the changed ones again, splits
        their strokes (the held-out pieces stay put as strokes are added) and carries on with
        the same weights and optimiser. Images left out of the set stop training; an image with
        nothing painted is left out. Checked here, on the caller's thread: raises InputError
        for strokes that cannot train (a class the model does not have, fewer than two classes
        painted). Return True when the set differs from the last one."""
        images = [images] if isinstance(images, AnnotatedImage) else list(images)
        _check_names(images)
        staged = []
        for item in images:
            try:
                grey = to_grey(item.image)
                labels = np.asarray(item.labels)
                if labels.shape == grey.shape and np.issubdtype(labels.dtype, np.integer) \
                        and not labels.any():
                    continue
                labels = check_scribbles(grey, labels, require_two=False,
                                         num_classes=self.num_classes)
            except InputError as exc:
                raise InputError(f"{item.name}: {exc}") from exc
            staged.append((item, grey, labels, _source_key(item, array_digest(np.asarray(item.image)))))
        painted = painted_classes(labels for *_, labels, _ in staged)
        if len(painted) < 2:
            raise InputError("paint at least two classes: training carries on with the strokes "
                             "it has")
        key = tuple((item.name, source, array_digest(labels)) for item, _, labels, source in staged)
        return self.inbox.put(key, staged)

    def _take_images(self) -> bool:
        """Apply the images :meth:`update_images` staged, if any (on the training thread);
        return True when the training images changed. An image whose pixels and settings are
        unchanged keeps its prepared pixels; only its strokes are scaled and split again."""
        staged = self.inbox.take()
        if staged is None:
            return False
        known = {t.name: t for t in self.images}
        images = []
        for item, grey, labels, source in staged:
            old = known.get(item.name)
            reuse = old.prepared if old is not None and self._sources.get(item.name) == source else None
            images.append(self._prepare(item, grey, labels, reuse))
        if len(painted_classes(t.labels for t in images)) < 2:
            return False  # two classes are not painted above the information band: keep the last
        self.images = images
        self._sources = {item.name: source for item, _, _, source in staged}
        self.weights = self._class_weights()
        self.stroke_updates += 1
        self.provenance.update({"images": [t.record for t in self.images],
                                "painted_pixels": sum(t.record["painted_pixels"] for t in self.images),
                                "stroke_updates": self.stroke_updates})
        return True

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

    @property
    def has_held_out(self) -> bool:
        return any((t.val_labels > 0).any() for t in self.images)

    def scoring_labels(self) -> tuple[list[np.ndarray], list[int]]:
        """Return, per image, the strokes the network is scored on, and the classes scored on
        their training strokes: every painted class counts, on its held-out strokes where it
        has any, else on the strokes it trains on (a class painted in one piece)."""
        held = painted_classes(t.val_labels for t in self.images)
        painted = painted_classes(t.labels for t in self.images)
        on_training = sorted(painted - held) if held else []
        refs = []
        for t in self.images:
            ref = t.val_labels.copy() if held else t.train_labels.copy()
            if on_training:
                extra = np.isin(t.train_labels, on_training)
                ref[extra] = t.train_labels[extra]
            refs.append(ref)
        return refs, on_training

    def _evaluate(self, step: int, want_preview: bool) -> Evaluation:
        """Return the :class:`Evaluation` of the network now: every painted class scored
        (balanced accuracy decides which weights are kept: the loss on thin held-out strokes
        rises with confidence long before accuracy falls), and the collapse check of its class
        maps against all the strokes of each image."""
        refs, on_training = self.scoring_labels()
        probs_at, targets, previews, maps = [], [], {}, []
        for t, ref in zip(self.images, refs):
            _, probs, _ = predict_tiled(self.model, t.prepared.pixels,
                                        PredictConfig(keep_probabilities=True), self.device)
            mask = ref > 0
            probs_at.append(probs[:, mask])
            targets.append(ref[mask] - 1)
            classes = probs.argmax(axis=0) + 1
            maps.append(classes)
            if want_preview:
                previews[t.name] = self.map_back(classes, t.prepared)
        self.model.train()
        if self.config.freeze_encoder_bn:
            _set_encoder_bn_eval(self.model)
        p = np.clip(np.concatenate(probs_at, axis=1), 1e-6, 1.0)
        target = np.concatenate(targets)
        w = self.weights.numpy()[target]
        nll = -np.log(p[target, np.arange(target.size)])
        loss = float((nll * w).sum() / max(w.sum(), 1e-9))
        hits = p.argmax(axis=0) == target
        recall = {int(c) + 1: float(hits[target == c].mean()) for c in np.unique(target)}
        accuracy = float(np.mean(list(recall.values())))
        collapse = find_collapse(maps, [t.labels for t in self.images])
        return Evaluation(step, loss, accuracy, recall, on_training, collapse,
                          previews if want_preview else None)

    def _class_prior(self) -> list[float]:
        """Return the class fractions the trained model finds in all its training images: the
        prior that :class:`PredictConfig` uses to undo the class balancing of training."""
        counts = np.zeros(self.num_classes)
        for t in self.images:
            classes, _, _ = predict_tiled(self.model, t.prepared.pixels,
                                          PredictConfig(keep_probabilities=False), self.device)
            counts += np.bincount(classes.ravel(), minlength=self.num_classes)[:self.num_classes]
        return [round(float(c), 6) for c in counts / counts.sum()]

    @staticmethod
    def map_back(classes: np.ndarray, prepared: PreparedImage) -> np.ndarray:
        """Return a class map of the prepared image at the original image's size (0 in the
        information band)."""
        rows, width = prepared.content_rows, prepared.original_shape[1]
        if classes.shape != (rows, width):
            classes = resize_to(classes.astype(np.int32), (rows, width), "nearest")
        out = np.zeros(prepared.original_shape, np.uint8)
        out[:rows] = classes
        return out

    def _keep(self, result: Evaluation, model: SegmentationModel,
              selector: CheckpointSelector) -> None:
        """Offer an evaluation to the selection rule and copy the weights it keeps."""
        if result.step == 0:
            self._start_state = copy.deepcopy(model.state_dict())
        if selector.consider(result.step, result.score, passed=not result.collapse):
            self.best_state = self._start_state if result.step == 0 else copy.deepcopy(model.state_dict())
            self.best_step, self.kept = result.step, result

    def _unlabeled_learning(self, model: SegmentationModel
                            ) -> tuple[ConsistencyLearner | None, UnlabeledCropSampler | None]:
        """Return the pseudo-labeller and the sampler of unpainted pixels (the painted images,
        their training strokes kept as targets, then the unlabeled images), or Nones when the
        config switches learning from unpainted pixels off."""
        cfg = self.config
        if not cfg.unlabeled.enabled:
            return None, None
        painted = sorted(painted_classes(t.labels for t in self.images))
        learner = ConsistencyLearner(cfg.unlabeled, self.num_classes, painted, self.rng)
        pool = ([(t.prepared.pixels, t.train_labels) for t in self.images]
                + [(prepared.pixels, None) for _, prepared in self.unlabeled])
        return learner, UnlabeledCropSampler(pool, cfg.crop_size, cfg.augment, self.rng)

    def _log_unlabeled(self, step: int, learner: ConsistencyLearner) -> None:
        shares, confident = learner.take_shares()
        if shares:
            self.unlabeled_log.append({"step": step, "class_shares": shares,
                                       "pseudo_labelled": confident})

    def run(self, preview: bool = False, live: "LiveSchedule | None" = None
            ) -> Iterator[TrainingEvent]:
        """Train, yielding events; ends with one ``"done"`` event.

        With ``preview`` each ``"eval"`` event carries the current class map of every image.
        With a ``live`` schedule the run has no end but :meth:`stop`: it takes the strokes of
        :meth:`update_images` at each evaluation (a ``"strokes"`` event, then the selection
        starts again, since scores on other strokes do not compare), and when the schedule
        says so it yields an ``"idle"`` event and waits for new strokes or a stop.
        """
        cfg = self.config
        budget = cfg.budget if live is None else live
        max_steps = budget.step_limit
        model = fast_layout(self.model.to(self.device), self.device)
        model.train()
        if cfg.freeze_encoder_bn:
            _set_encoder_bn_eval(model)
        def crops_from(labels_of) -> ScribbleCropSampler:
            return ScribbleCropSampler([(t.prepared.pixels, labels_of(t)) for t in self.images],
                                       cfg.crop_size, cfg.augment, self.rng, model.standardise)

        sampler = crops_from(lambda t: t.train_labels)
        learner, unlabeled_crops = self._unlabeled_learning(model)
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
        selector = CheckpointSelector(cfg.selection)
        loss_ema, reason, step = None, "budget", 0
        holding_out = self.has_held_out and cfg.holdout_until > 0
        self.start_check = None
        if self.steps_before and self.has_held_out:
            # A continued run must not end worse than where it started: the start model is
            # scored on the held-out strokes first and kept unless training beats it.
            result = self._evaluate(0, False)
            self.start_check = result
            if holding_out:  # otherwise the check is the kept model's, as in a first run
                self.check = result
            self._keep(result, model, selector)
            self.history.append((0, float("nan"), result.loss, result.accuracy))
            yield TrainingEvent("eval", 0, max_steps, float("nan"), time.perf_counter() - start,
                                0.0, result.loss, result.accuracy, 0, None)
        def take_strokes() -> bool:
            nonlocal sampler, selector, holding_out, learner, unlabeled_crops
            if not self._take_images():
                return False
            holding_out = self.has_held_out and (cfg.holdout_until > 0 if live is not None
                                                 else holding_out)
            sampler = crops_from(lambda t: t.train_labels if holding_out else t.labels)
            if learner is not None:
                learner, unlabeled_crops = self._unlabeled_learning(model)
            selector, self.start_check = CheckpointSelector(cfg.selection), None
            return True

        try:
            for step in range(1, max_steps + 1):
                elapsed = time.perf_counter() - start
                progress = budget.progress(step - 1, elapsed)
                if holding_out and self.check is not None and self.check.step > 0 \
                        and progress >= cfg.holdout_until:
                    holding_out = False
                    if self.start_check is not None \
                            and self.check.score <= self.start_check.score:
                        reason = "start model kept"
                        break
                    sampler = crops_from(lambda t: t.labels)
                    if unlabeled_crops is not None:
                        for i, t in enumerate(self.images):
                            unlabeled_crops.set_strokes(i, t.labels)
                factor = warmup_cosine(progress) if live is None else live.lr(step)
                for group, base_lr in zip(opt.param_groups, base_lrs):
                    group["lr"] = base_lr * factor
                batch = sampler.sample(cfg.batch_size)
                x = batch.images
                y = batch.targets.to(self.device)
                weight = cfg.unlabeled.weight_at(progress) if learner is not None else 0.0
                if weight > 0:
                    extra = unlabeled_crops.sample(cfg.unlabeled.crops)
                    with torch.no_grad(), torch.autocast(self.device.type, enabled=use_amp):
                        weak = model(fast_layout(model.standardise(extra.weak).to(self.device),
                                                 self.device))
                    strong, targets = learner.strong_views(
                        extra, learner.pseudo_labels(weak.float().cpu(), extra, self.weights))
                    x = torch.cat([x, model.standardise(strong)])
                with torch.autocast(self.device.type, enabled=use_amp):
                    logits = model(fast_layout(x.to(self.device), self.device))
                n = len(batch.images)
                loss = self._loss(logits[:n], y)
                if weight > 0:
                    loss = loss + weight * learner.loss(logits[n:], targets.to(self.device))
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                value = float(loss.detach())
                loss_ema = value if loss_ema is None else 0.9 * loss_ema + 0.1 * value
                elapsed = time.perf_counter() - start
                self.steps_done = step
                yield TrainingEvent("step", step, max_steps, loss_ema, elapsed,
                                    budget.progress(step, elapsed))
                out_of_time = budget.out_of_time(elapsed)
                last = step == max_steps or out_of_time or self.stopping
                ends_holdout = holding_out and budget.progress(step, elapsed) >= cfg.holdout_until
                if step % cfg.eval_every == 0 or step == cfg.first_eval or last or ends_holdout:
                    want = preview and (cfg.preview_every is None or step % cfg.preview_every == 0
                                        or last)
                    # strokes taken at the last evaluation would be scored, never trained
                    # on: they stay in the inbox for whoever runs next
                    if not last and self.inbox.pending and take_strokes():
                        yield TrainingEvent("strokes", step, max_steps, loss_ema, elapsed)
                    result = self._evaluate(step, want)
                    if holding_out or not self.has_held_out:
                        self.check = result
                    self.history.append((step, loss_ema, result.loss, result.accuracy))
                    if learner is not None:
                        self._log_unlabeled(step, learner)
                    self._keep(result, model, selector)
                    now = time.perf_counter() - start
                    yield TrainingEvent("eval", step, max_steps, loss_ema, now,
                                        budget.progress(step, now), result.loss, result.accuracy,
                                        self.best_step, result.previews)
                    if live is not None:
                        if live.should_idle(selector.stale, step, cfg.min_steps,
                                            self.inbox.quiet_for(), selector.kept_passed) \
                                and not self.stopping:
                            yield TrainingEvent("idle", step, max_steps, loss_ema, now)
                            self.inbox.wait(self._stop)
                            if take_strokes():
                                yield TrainingEvent("strokes", step, max_steps, loss_ema,
                                                    time.perf_counter() - start)
                    elif selector.plateaued(step) and not holding_out:
                        reason = "plateau"
                        break
                if self.stopping:
                    reason = "stopped"
                    break
                if out_of_time:
                    reason = "time cap"
                    break
            if self.start_check is not None and holding_out and self.check is not None \
                    and self.check.score <= self.start_check.score:
                reason = "start model kept"
        finally:
            model.encoder.requires_grad_(True)
            if reason == "start model kept":
                self.best_state, self.best_step, self.kept = self._start_state, 0, self.start_check
            if self.start_check is not None and self.kept is self.start_check:
                self.check = self.start_check  # the self-check describes the model kept
            if self.best_state is not None:
                model.load_state_dict(self.best_state)
            model.eval()
        best_val = self.kept.loss if self.kept is not None else None
        self.stop_reason = reason
        self.finish(step, time.perf_counter() - start, best_val)
        yield TrainingEvent("done", step, max_steps, loss_ema or 0.0,
                            time.perf_counter() - start, 1.0, best_val, None, self.best_step,
                            reason=reason, diagnosis=self.diagnose())

    def finish(self, steps: int, seconds: float, best_val: float | None = None) -> None:
        """Measure the kept model's class shares and record the run in the provenance (done by
        :meth:`run` however it ends; a model is complete only after this). The shares become
        the class prior only when the model passed the collapse check: a collapsed model's
        shares would push every prediction further towards its one class."""
        self.image_fractions = self._class_prior()
        self.class_prior = None if self.collapsed else self.image_fractions
        self.provenance.update({"steps": steps, "total_steps": self.steps_before + steps,
                                "best_step": self.best_step, "best_val_loss": best_val,
                                "stop_reason": self.stop_reason or "stopped",
                                "seconds": round(seconds, 2), "device": self.device.type,
                                "seed": self.config.seed,
                                "selection": self.config.selection.describe(),
                                "checked_at_step": self.check.step if self.check else None})
        if "unlabeled" in self.provenance:
            self.provenance["unlabeled"]["log"] = self.unlabeled_log

    @property
    def finished(self) -> bool:
        return self.image_fractions is not None

    @property
    def collapsed(self) -> bool:
        """True when the kept model failed the collapse check (no model of the run passed)."""
        return self.kept is not None and bool(self.kept.collapse)

    def diagnose(self, class_names: list[str] | None = None) -> TrainingDiagnosis:
        """Return the finished model's self-check (held-out recall per class, class shares in
        the training images) with a warning for each sign that it should not be trusted yet."""
        extra = []
        if self.stop_reason == "time cap":
            extra.append(self.config.budget.cut_short(self.steps_done))
        check = self.check or self.kept
        start = self.start_check
        compared = start is not None and check is not None and check is not start \
            and self.config.holdout_until > 0  # both scored on strokes neither trained on yet
        return diagnose_training(self.steps_before + self.steps_done, self.config.min_steps,
                                 self.stop_reason or "stopped", check.recall if check else {},
                                 self.image_fractions or [], self.has_held_out, class_names,
                                 extra_warnings=[e for e in extra if e],
                                 scored_on_training=check.scored_on_training if check else [],
                                 collapse=self.kept.collapse if self.kept else [],
                                 network_accuracy=(check.accuracy if check and self.has_held_out
                                                   else None),
                                 forest_accuracy=self.forest_accuracy,
                                 stroke_width_px=self.stroke_widths(),
                                 stroke_pixel_size=self.preprocess.pixel_size,
                                 start_recall=start.recall if compared else None)

    def stroke_widths(self) -> dict[int, float]:
        """Return how wide each class was painted, in pixels of the first image (the reference
        pixel size, when pixel sizes are given): the mean line width of its strokes over the
        training images, weighted by its painted pixels (the measurement compares a predicted
        boundary class's width with it)."""
        totals: dict[int, list[float]] = {}
        reference = self.preprocess.pixel_size
        for t in self.images:
            widths = t.record.get("stroke_width_px", {})
            own = t.record.get("pixel_size")
            factor = own / reference if own and reference else 1.0
            for c, w in widths.items():
                w = w * factor
                n = float((t.labels == int(c)).sum())
                entry = totals.setdefault(int(c), [0.0, 0.0])
                entry[0] += w * n
                entry[1] += n
        return {c: round(wn / n, 2) for c, (wn, n) in sorted(totals.items()) if n > 0}

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
        if self.finished:
            provenance["diagnosis"] = self.diagnose(class_names).to_dict()
        return ModelBundle(self.model.cpu(), list(class_names or []), list(class_colours or []),
                           self.preprocess, provenance, class_prior=self.class_prior)
