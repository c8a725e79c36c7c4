"""Fine-tuning as a job: from painted strokes on one or several micrographs to a model bundle."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ..core.budget import Budget
from ..core.bundle import ModelBundle
from ..core.errors import InputError
from ..core.finetune import AnnotatedImage, FinetuneConfig, Finetuner, UnlabeledImage
from ..core.imageio import label_array, to_grey
from ..core.encoders import check_encoder_name
from ..core.model import ModelConfig
from ..core.quickfit import QuickClassifier, QuickFitConfig
from .budgets import default_finetune_budget
from .events import EventKind, JobEvent
from .job import Job
from .start import StartingPoint, resolve_start


def as_annotated(images) -> list[AnnotatedImage]:
    """Return ``images`` (AnnotatedImage objects, or (image, labels) / (name, image, labels)
    tuples) as a list of :class:`AnnotatedImage`, each checked: a 2-D micrograph, labels of its
    size holding class numbers."""
    if isinstance(images, AnnotatedImage):
        images = [images]
    out = []
    for i, item in enumerate(images):
        if isinstance(item, tuple):
            item = (AnnotatedImage(item[0], item[1], f"image {i + 1}") if len(item) == 2
                    else AnnotatedImage(item[1], item[2], str(item[0])))
        if not isinstance(item, AnnotatedImage):
            raise InputError(f"training image {i + 1} must be an AnnotatedImage or an "
                             "(image, labels) pair")
        try:
            grey = to_grey(item.image)
            labels = label_array(item.labels)
        except InputError as exc:
            raise InputError(f"{item.name}: {exc}") from exc
        if labels.shape != grey.shape:
            raise InputError(f"{item.name}: the strokes are {labels.shape[1]} x {labels.shape[0]} "
                             f"pixels but the image is {grey.shape[1]} x {grey.shape[0]}: paint on "
                             "a layer the size of the image")
        out.append(replace(item, labels=labels))
    if not out:
        raise InputError("no training images: give at least one image with painted strokes")
    painted = sorted({int(c) for item in out for c in np.unique(item.labels[item.labels > 0])})
    if not painted:
        raise InputError("nothing is painted: paint a few strokes of each class first")
    if len(painted) < 2:
        raise InputError(f"only class {painted[0]} is painted: paint at least two classes")
    return out


def as_unlabeled(images) -> list[UnlabeledImage]:
    """Return ``images`` (UnlabeledImage objects, arrays, or (name, array) pairs) as a list of
    :class:`UnlabeledImage`, each checked to be a 2-D micrograph (or RGB)."""
    out = []
    for i, item in enumerate(images or ()):
        if isinstance(item, tuple) and len(item) == 2:
            item = UnlabeledImage(item[1], str(item[0]))
        elif isinstance(item, np.ndarray):
            item = UnlabeledImage(item, f"unlabeled {i + 1}")
        if not isinstance(item, UnlabeledImage):
            raise InputError(f"unlabeled image {i + 1} must be an array, a (name, array) pair or "
                             "an UnlabeledImage")
        try:
            to_grey(item.image)
        except InputError as exc:
            raise InputError(f"{item.name}: {exc}") from exc
        out.append(item)
    return out


class FinetuneJob(Job):
    """Fine-tune a model on the strokes of ``images`` (see :func:`napari_matseg.api.finetune`).

    The result is a complete :class:`ModelBundle` (weights, classes, class prior, self-check,
    provenance) however the run ends: budget, plateau, time cap or :meth:`stop`.
    """

    what = "training"

    def __init__(self, images, start: StartingPoint, config: FinetuneConfig, preview: bool = False,
                 model_config: ModelConfig | None = None, encoder_weights: str | None = "imagenet",
                 unlabeled: Sequence[UnlabeledImage] = ()):
        super().__init__(config.device)
        self.images = images
        self.unlabeled = list(unlabeled)
        self.start = start
        self.config = replace(config, device=str(self.device))
        self.preview = preview
        self.model_config = model_config
        self.encoder_weights = encoder_weights
        self.tuner: Finetuner | None = None
        self.quick_accuracy: float | None = None

    @property
    def budget(self) -> Budget:
        return self.config.budget

    def stop(self) -> None:
        super().stop()
        if self.tuner is not None:
            self.tuner.stop()

    def _run(self) -> Iterator[JobEvent]:
        start, config = self.start, self.config
        yield JobEvent(EventKind.STARTED, message=f"training from {start.description}: "
                       f"{self.budget.describe()} on {self.device.type}")
        for i, item in enumerate(self.images):
            yield JobEvent(EventKind.READING, progress=0.0, name=item.name,
                           message=f"preparing {item.name} ({i + 1} of {len(self.images)})")
        tuner = Finetuner(self.images, num_classes=len(start.class_names), model=start.training_model(),
                          config=config, preprocess=start.preprocess,
                          model_config=self.model_config, pretrained=start.pretrained,
                          steps_before=start.steps_before, encoder_weights=self.encoder_weights,
                          unlabeled=self.unlabeled)
        self.tuner = tuner
        if self.stopping:
            tuner.stop()
        quick_accuracy = self.quick_accuracy = None
        if self.preview or tuner.has_held_out:
            preview = yield from quick_preview(tuner, config.seed, self.preview)
            quick_accuracy = self.quick_accuracy = preview
        began = time.perf_counter()
        network_shown = quick_accuracy is None or not self.preview
        for event in tuner.run(preview=self.preview):
            if event.kind == "step":
                yield JobEvent(EventKind.STEP, event.progress, step=event.step,
                               max_steps=self.budget.steps, loss=event.loss, elapsed=event.elapsed,
                               eta_seconds=self._eta(event.step, time.perf_counter() - began),
                               message=self._step_text(event, time.perf_counter() - began))
            elif event.kind == "eval":
                yield JobEvent(EventKind.EVALUATION, event.progress, step=event.step,
                               max_steps=self.budget.steps, loss=event.loss, elapsed=event.elapsed,
                               val_loss=event.val_loss, val_accuracy=event.val_accuracy,
                               best_step=event.best_step)
                network_shown = network_shown or (event.val_accuracy is not None
                                                  and event.val_accuracy >= quick_accuracy)
                if event.previews and network_shown:
                    yield JobEvent(EventKind.PREVIEW, event.progress, step=event.step,
                                   previews=event.previews, elapsed=event.elapsed, name="network")
        bundle = tuner.to_bundle(start.class_names, start.class_colours)
        if start.warm_start is not None:
            bundle.provenance["warm_start"] = start.warm_start
        self.result = bundle
        p = tuner.provenance
        diagnosis = tuner.diagnose(start.class_names) if tuner.finished else None
        warnings = tuple(diagnosis.warnings) if diagnosis else ()
        yield JobEvent(EventKind.DONE, 1.0, step=tuner.steps_done, max_steps=self.budget.steps,
                       elapsed=float(p.get("seconds", 0)), result=bundle,
                       reason=p.get("stop_reason"), warnings=warnings,
                       message=training_summary(p, tuner.best_step, diagnosis))

    def _eta(self, step: int, elapsed: float) -> float | None:
        """Return the seconds left at the pace so far (evaluations included)."""
        if step < 2:
            return None
        left = []
        if self.budget.steps is not None:
            left.append((self.budget.steps - step) * elapsed / step)
        if self.budget.max_seconds is not None:
            left.append(self.budget.max_seconds - elapsed)
        return max(0.0, min(left))

    def _step_text(self, event, elapsed: float) -> str:
        of = f"/{self.budget.steps}" if self.budget.steps is not None else ""
        eta = self._eta(event.step, elapsed)
        left = f" · about {format_seconds(eta)} left" if eta is not None else ""
        return f"step {event.step}{of} · loss {event.loss:.3f}{left}"


def quick_preview(tuner: Finetuner, seed: int, preview: bool) -> Iterator[JobEvent]:
    """Fit the quick forest on ``tuner``'s training strokes, score it on the held-out strokes
    (recorded as the tuner's ``forest_accuracy``) and, with ``preview``, yield its class maps
    as a PREVIEW event named "quick". Return (as the generator's value) the forest's held-out
    balanced accuracy, None without held-out strokes."""
    quick = QuickClassifier(QuickFitConfig(seed=seed), threads=torch.get_num_threads())
    quick.fit([(t.prepared.pixels, t.train_labels) for t in tuner.images])
    accuracy = quick.balanced_accuracy(tuner.scoring_labels()[0]) if tuner.has_held_out else None
    tuner.forest_accuracy = accuracy
    if preview:
        previews = {t.name: tuner.map_back(quick.predict_fitted(i), t.prepared)
                    for i, t in enumerate(tuner.images)}
        held = "" if accuracy is None else f", {accuracy:.0%} of the held-out strokes right"
        yield JobEvent(EventKind.PREVIEW, 0.0, previews=previews, name="quick",
                       message=f"quick preview (filter-bank forest{held}); the network trains…")
    return accuracy


STOP_REASONS = {
    "budget": "ran its steps",
    "plateau": "stopped early: the held-out score had stopped improving",
    "stopped": "stopped on request",
    "time cap": "ended by the time cap",
    "start model kept": "kept the start model: training did not beat it on the held-out strokes",
}


def training_summary(provenance: dict, kept_step: int, diagnosis=None) -> str:
    """Return the one-line summary of a finished fine-tune: steps, time, the step whose weights
    were kept, why it ended, and the held-out scores of the network and the quick forest (saying
    so when the forest won, or when the model collapsed)."""
    reason = provenance.get("stop_reason") or "stopped"
    text = (f"{provenance.get('steps')} steps in {provenance.get('seconds', 0):.0f} s, kept step "
            f"{kept_step}; {STOP_REASONS.get(reason, reason)}")
    if diagnosis is None:
        return text
    if diagnosis.network_accuracy is not None:
        text += f"; held-out strokes right: network {diagnosis.network_accuracy:.0%}"
        if diagnosis.forest_accuracy is not None:
            text += f", quick forest {diagnosis.forest_accuracy:.0%}"
            if diagnosis.forest_wins:
                text += " (the forest does better on these strokes)"
    if diagnosis.collapsed:
        text += "; COLLAPSED: paint more and train again"
    if diagnosis.made_worse:
        text += "; worse than before this round on " + ", ".join(
            f"class {c}" for c in diagnosis.made_worse)
    return text


def format_seconds(seconds: float) -> str:
    """Return ``seconds`` as '45 s' or '2 min 10 s'."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 60} min {seconds % 60:02d} s"


def finetune(images, class_names: Sequence[str] | None = None,
             class_colours: Sequence[str] | None = None,
             start: ModelBundle | str | Path | None = None, budget: Budget | None = None,
             config: FinetuneConfig | None = None, encoder: str | None = None,
             scale: float | None = None, device: str = "auto", preview: bool = False,
             encoder_weights: str | None = "imagenet", transfer: str = "encoder",
             unlabeled=()) -> FinetuneJob:
    """Return a job that fine-tunes a segmentation model on painted strokes.

    ``images``: one or several :class:`AnnotatedImage` (or (image, labels) pairs) of any sizes.
    ``start``: None (ImageNet EfficientNet-Lite0), a pretrained bundle (its encoder is taken),
    or a trained bundle or its path (training continues on a copy: the original is unchanged).
    ``budget``: steps, with an optional time cap; by default 180 steps for a first fit and
    :data:`~napari_matseg.api.budgets.CONTINUE_STEPS` when continuing. ``device``: ``"auto"``
    (CUDA, then MPS, then the CPU) or a torch device name. A new model has ``encoder`` (a timm
    name) with ``encoder_weights`` (``"imagenet"`` or None, random); from a pretrained bundle,
    ``transfer`` is ``"encoder"`` (default) or ``"network"`` (its decoder too).
    ``unlabeled``: micrographs nobody painted (arrays, (name, array) pairs or
    :class:`UnlabeledImage`) that training learns from (giving any switches
    ``config.unlabeled`` on); the painted images' unpainted pixels count as well.

    Everything is checked here, before any work: images and strokes, classes against the start
    model, the device. Iterate ``job.run()`` for events, or call ``job.wait()`` for the bundle.
    """
    annotated = as_annotated(images)
    painted = max(int(item.labels.max()) for item in annotated)
    point = resolve_start(start, painted, list(class_names or []) or None,
                          list(class_colours or []) or None, scale, transfer)
    config = config or FinetuneConfig()
    budget = budget or default_finetune_budget(point)
    config = replace(config, budget=budget, device=device if device != "auto" else config.device)
    model_config = ModelConfig(encoder=check_encoder_name(encoder)) if encoder else None
    if model_config is not None and (point.model is not None or point.continuing):
        raise InputError("a new encoder cannot be chosen when continuing a trained model")
    unlabeled = as_unlabeled(unlabeled)
    if unlabeled:
        config = replace(config, unlabeled=config.unlabeled.switched_on())
    return FinetuneJob(annotated, point, config, preview, model_config, encoder_weights, unlabeled)
