"""Pretraining as a job: unlabeled micrographs (files or layers) to a pretrained starting model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..core.budget import Budget
from ..core.errors import InputError
from ..core.imageio import label_array, read_image, read_labels, to_grey
from ..core.preprocess import PreprocessConfig
from ..core.pretrain import MicrographPool, PretrainConfig, Pretrainer, method_spec
from .events import EventKind, JobEvent
from .job import Job
from .predict_job import as_sources


class PretrainJob(Job):
    """Pretrain on ``sources`` (see :func:`napari_matseg.api.pretrain`); the result is a bundle
    of kind ``pretrained``, a starting model for fine-tuning."""

    what = "pretraining"

    def __init__(self, sources, config: PretrainConfig, preprocess: PreprocessConfig,
                 labelled: tuple[np.ndarray, np.ndarray] | None, checkpoint: Path | None,
                 resume: bool):
        super().__init__(config.device)
        self.sources = sources
        self.config = replace(config, device=str(self.device))
        self.preprocess = preprocess
        self.labelled = labelled
        self.checkpoint = checkpoint
        self.resume = resume
        self.trainer: Pretrainer | None = None

    def stop(self) -> None:
        super().stop()
        if self.trainer is not None:
            self.trainer.stop()

    def _run(self) -> Iterator[JobEvent]:
        n = len(self.sources)
        yield JobEvent(EventKind.STARTED, message=f"pretraining with {self.config.method} on {n} "
                       f"micrograph(s): {self.config.budget.describe()} on {self.device.type}")
        images, names = [], []
        for i, source in enumerate(self.sources):
            if self.stopping:
                return
            images.append(source.load())
            names.append(source.name)
            yield JobEvent(EventKind.READING, 0.0, name=source.name,
                           message=f"read micrograph {i + 1} of {n}")
        pool = MicrographPool(images, self.preprocess, names=names)
        trainer = Pretrainer(pool, self.config, self.labelled,
                             checkpoint=self.checkpoint, resume=self.resume)
        self.trainer = trainer
        if self.stopping:
            trainer.stop()
        try:
            for event in trainer.run():
                if event.kind == "step":
                    yield JobEvent(EventKind.STEP, event.progress, step=event.step,
                                   max_steps=self.config.budget.steps, loss=event.loss,
                                   elapsed=event.elapsed,
                                   message=f"step {event.step} · {event.elapsed:.0f} s · loss {event.loss:.4f}")
                elif event.kind in ("message", "checkpoint"):
                    yield JobEvent(EventKind.MESSAGE, event.progress, step=event.step,
                                   message=event.message or "", elapsed=event.elapsed)
            if trainer.steps_done == 0:
                yield JobEvent(EventKind.DONE, 1.0, reason="stopped",
                               message="stopped before the first step: nothing was pretrained")
                return
            self.result = trainer.to_bundle()
            yield JobEvent(EventKind.DONE, 1.0, step=trainer.steps_done, elapsed=trainer.elapsed,
                           result=self.result, reason=getattr(trainer, "reason", None),
                           message=f"{trainer.steps_done} steps in {trainer.elapsed:.0f} s, "
                                   f"{len(pool)} images, {trainer.dist.world} process(es)")
        finally:
            trainer.close()


def pretrain(images: Sequence, method: str = "matssl", budget: Budget | None = None,
             config: PretrainConfig | None = None, labelled=None, checkpoint: str | Path | None = None,
             resume: bool = False, device: str = "auto", scale: float | None = None,
             info_band: int | str | None = "auto") -> PretrainJob:
    """Return a job that pretrains the network on unlabeled micrographs with ``method``
    (one of :func:`~napari_matseg.core.pretrain.methods`).

    ``images``: paths, (name, array) pairs or ImageSource objects. ``labelled`` is the
    (image, strokes) pair a method that needs labels (PSCL) spreads. ``budget`` defaults to ten
    minutes. With ``checkpoint`` the state is saved every two minutes; ``resume`` continues it.
    """
    spec = method_spec(method)
    sources = as_sources(images)
    if not sources:
        raise InputError("no micrographs to pretrain on")
    if spec.needs_labels:
        if labelled is None:
            raise InputError(f"{spec.label} needs one image with painted strokes (a scribble layer, "
                             "or --labels IMAGE SCRIBBLES)")
        image, strokes = labelled
        image = read_image(image) if isinstance(image, (str, Path)) else to_grey(image)
        strokes = read_labels(strokes) if isinstance(strokes, (str, Path)) else label_array(strokes)
        labelled = (image, strokes)
    config = config or PretrainConfig(method=method)
    if config.method != method:
        config = replace(config, method=method, options=None)
    config = replace(config, budget=budget or config.budget,
                     device=device if device != "auto" else config.device)
    preprocess = PreprocessConfig(scale=scale, info_band=info_band)
    return PretrainJob(sources, config, preprocess, labelled if spec.needs_labels else None,
                       Path(checkpoint) if checkpoint else None, resume)
