"""Live training as a job: the network keeps fine-tuning while the user paints.

:func:`live_training` checks its inputs as :func:`~napari_matseg.api.finetune` does and returns
a :class:`LiveTrainingJob`. Iterating ``job.run()`` trains with no end set
(:class:`~napari_matseg.core.live_schedule.LiveSchedule`): ``job.update_strokes(...)``, from any
thread, hands it the strokes as they are now; the loop takes them at its next evaluation,
splits them again (the held-out pieces stay put), rebuilds its crop sampler and carries on with
the same weights and optimiser. It idles when no stroke changed for a while and the held-out
score stopped improving, and wakes on the next change. ``job.stop()`` ends it with a complete
bundle (the model the selection kept, as a single run keeps it); ``job.best_so_far()`` packs
that model while it still runs.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, replace
from typing import Iterator, Mapping

import numpy as np

from ..core.bundle import ModelBundle
from ..core.errors import InputError
from ..core.finetune import AnnotatedImage, FinetuneConfig, Finetuner
from ..core.imageio import label_array
from ..core.live_schedule import LiveSchedule
from ..core.predict import PredictConfig, predict_tiled
from .events import EventKind, JobEvent
from .budgets import default_finetune_budget
from .finetune_job import as_annotated, finetune, quick_preview, training_summary
from .job import Job
from .start import StartingPoint, resolve_start


@dataclass
class _Shown:
    """What the preview on screen scored on the held-out strokes (None: any network's preview
    replaces it), the quick forest's score, and whether a network's preview was shown."""

    score: float | None = None
    forest: float | None = None
    network: bool = False


def collapse_note(tuner: Finetuner) -> str:
    """Return why a live run's kept model is not to be trusted yet, in words for the status line
    (empty when it passed the collapse check), so an idle message does not hide it."""
    if not tuner.collapsed:
        return ""
    return (f"the kept model fails the collapse check ({'; '.join(tuner.kept.collapse)}): "
            "paint more of that class where it shows")


class LiveTrainingJob(Job):
    """Fine-tune on strokes that keep changing (see :func:`live_training`). Events: STARTED, a
    quick PREVIEW, then STEP and EVALUATION as a single run gives them (no step budget:
    ``max_steps`` is None, progress 0), PREVIEW of the network when it beats the preview shown
    last, MESSAGE when new strokes are taken or the run idles, and DONE with the bundle once
    stopped."""

    what = "live training"

    def __init__(self, images: list[AnnotatedImage], start: StartingPoint, config: FinetuneConfig,
                 schedule: LiveSchedule | None = None, preview: bool = True, model_config=None,
                 encoder_weights: str | None = "imagenet"):
        super().__init__(config.device)
        self.images = list(images)
        self.start = start
        self.config = replace(config, device=str(self.device))
        self.schedule = schedule or LiveSchedule()
        self.preview = preview
        self.model_config = model_config
        self.encoder_weights = encoder_weights
        self.tuner: Finetuner | None = None
        self.idle = False
        self._lock = threading.Lock()
        self._steps_before = self._updates_before = 0  # of the rounds before the current one
        self._completed: ModelBundle | None = None  # the last complete round's model

    def stop(self) -> None:
        super().stop()
        if self.tuner is not None:
            self.tuner.stop()

    def update_strokes(self, strokes) -> bool:
        """Give the run the strokes as they are now, from any thread: a list of
        :class:`AnnotatedImage` (or (image, labels) pairs), the whole set to train on (images
        left out stop training), or a mapping of image names to labels, which replaces the
        strokes of those images. Checked here: raises InputError for strokes that cannot train
        (unknown names, a class the model lacks, fewer than two classes). Return True when the
        strokes differ from the last ones given (the run then takes them at its next
        evaluation, and wakes if it was idle)."""
        with self._lock:
            if isinstance(strokes, Mapping):
                names = {item.name for item in self.images}
                unknown = sorted(set(strokes) - names)
                if unknown:
                    raise InputError(f"no training image is called {unknown[0]!r}: give the whole "
                                     "set of images to add one")
                images = [replace(item, labels=label_array(strokes[item.name]))
                          if item.name in strokes else item for item in self.images]
                images = as_annotated(images)
            else:
                images = as_annotated(strokes)
            # not training yet: the run starts from these
            changed = True if self.tuner is None else self.tuner.update_images(images)
            self.images = images
            return changed

    @property
    def steps_done(self) -> int:
        """Return the steps trained so far, over every round."""
        with self._lock:
            return self._steps_before + (self.tuner.steps_done if self.tuner is not None else 0)

    @property
    def stroke_updates(self) -> int:
        """Return how many times the run took changed strokes (a new round counts as one)."""
        with self._lock:
            return self._updates_before + (self.tuner.stroke_updates if self.tuner is not None
                                           else 0)

    def _new_tuner(self, point: StartingPoint, config: FinetuneConfig, model_config) -> Finetuner:
        """Return a tuner for ``point`` on the painted images as they are now (raises InputError
        for strokes that cannot train)."""
        with self._lock:
            images = self.images
        painted = [item for item in images if np.asarray(item.labels).any()]
        tuner = Finetuner(painted, num_classes=len(point.class_names),
                          model=point.training_model(), config=config,
                          preprocess=point.preprocess, model_config=model_config,
                          pretrained=point.pretrained, steps_before=point.steps_before,
                          encoder_weights=self.encoder_weights)
        with self._lock:
            if self.tuner is not None:
                self._steps_before += self.tuner.steps_done
                self._updates_before += self.tuner.stroke_updates
            self.tuner = tuner
            if self.images is not images:
                tuner.update_images(self.images)
        if self.stopping:
            tuner.stop()
        return tuner

    def _training_events(self, tuner: Finetuner, shown: "_Shown", live: LiveSchedule | None,
                         label: str = "live") -> Iterator[JobEvent]:
        """Translate a tuner's events into the job's: STEP, EVALUATION, a network PREVIEW when it
        beats the preview on screen, MESSAGE when strokes are taken or the run idles."""
        for event in tuner.run(preview=self.preview, live=live):
            if event.kind == "step":
                self.idle = False
                progress = event.progress if live is None else 0.0
                yield JobEvent(EventKind.STEP, progress, step=event.step, loss=event.loss,
                               elapsed=event.elapsed,
                               message=f"{label}: step {event.step} · loss {event.loss:.3f} · "
                                       f"{self.stroke_updates} stroke updates taken"
                                       + (" · the kept model loses a painted class: training on"
                                          if tuner.collapsed else ""))
            elif event.kind == "eval":
                yield JobEvent(EventKind.EVALUATION, 0.0, step=event.step, loss=event.loss,
                               elapsed=event.elapsed, val_loss=event.val_loss,
                               val_accuracy=event.val_accuracy, best_step=event.best_step)
                better = shown.score is None or (event.val_accuracy is not None
                                                 and event.val_accuracy > shown.score)
                if event.previews and better:
                    shown.score, shown.network = event.val_accuracy, True
                    yield JobEvent(EventKind.PREVIEW, 0.0, step=event.step,
                                   previews=event.previews, elapsed=event.elapsed, name="network")
            elif event.kind == "strokes":
                # scores on other strokes do not compare: the next network preview is shown
                # (or, while the forest's is on screen, the first that beats the forest's score)
                shown.score = None if shown.network else shown.forest
                painted = tuner.provenance["painted_pixels"]
                yield JobEvent(EventKind.MESSAGE, 0.0, step=event.step, elapsed=event.elapsed,
                               message=f"{label}: took the new strokes ({len(tuner.images)} "
                                       f"images, {painted:,} painted pixels) at step {event.step}")
            elif event.kind == "idle":
                self.idle = True
                why = collapse_note(tuner) or "the held-out score has stopped improving"
                yield JobEvent(EventKind.MESSAGE, 0.0, step=event.step, elapsed=event.elapsed,
                               name="idle",
                               message=f"live: idle at step {event.step}, {why}; paint to wake it, "
                                       "Stop to end it")

    def _finished(self, tuner: Finetuner, point: StartingPoint) -> tuple[ModelBundle, object]:
        """Return a finished tuner's bundle and self-check."""
        bundle = tuner.to_bundle(point.class_names, point.class_colours)
        if point.warm_start is not None:
            bundle.provenance["warm_start"] = point.warm_start
        return bundle, (tuner.diagnose(point.class_names) if tuner.finished else None)

    def _run(self) -> Iterator[JobEvent]:
        start, config = self.start, self.config
        how = ("in rounds, as if you pressed Train after each batch of strokes"
               if self.schedule.rounds else "it keeps learning as you paint")
        yield JobEvent(EventKind.STARTED, message=f"live training from {start.description} on "
                       f"{self.device.type}: {how}; Stop ends it")
        tuner = self._new_tuner(start, config, self.model_config)
        shown = _Shown()
        if self.preview or tuner.has_held_out:
            shown.forest = shown.score = yield from quick_preview(tuner, config.seed, self.preview)
        if self.schedule.rounds:
            yield from self._run_rounds(tuner, shown)
            return
        yield from self._training_events(tuner, shown, self.schedule)
        bundle, diagnosis = self._finished(tuner, start)
        self.result = bundle
        yield JobEvent(EventKind.DONE, 1.0, step=tuner.steps_done, result=bundle,
                       elapsed=float(tuner.provenance.get("seconds", 0)),
                       reason=tuner.provenance.get("stop_reason"),
                       warnings=tuple(diagnosis.warnings) if diagnosis else (),
                       message=training_summary(tuner.provenance, tuner.best_step, diagnosis))

    def _run_rounds(self, tuner: Finetuner, shown: "_Shown") -> Iterator[JobEvent]:
        """Train round after round (see :class:`LiveSchedule`'s ``rounds``): each round a complete
        fine-tune from the last round's model, on the strokes as they are when it begins (and
        those it takes at its evaluations); idle between rounds until a stroke changes. Stop
        keeps the last complete round's model (annealed to its end), or the cut-short first
        round's when none has finished."""
        point, round_no, kept = self.start, 1, None
        while True:
            yield from self._training_events(tuner, shown, None, f"live round {round_no}")
            cut_short = (tuner.stop_reason == "stopped"
                         and tuner.steps_done < tuner.config.budget.step_limit)
            if kept is None or not cut_short:
                bundle, diagnosis = self._finished(tuner, point)
                kept = (bundle, diagnosis, tuner)
                self._completed = None if cut_short else bundle
            if self.stopping:
                break
            yield JobEvent(EventKind.MESSAGE, 0.0, step=self.steps_done, name="round",
                           message=f"live: round {round_no} done, "
                                   + training_summary(tuner.provenance, tuner.best_step, diagnosis))
            next_tuner = None
            while next_tuner is None:
                if not tuner.inbox.pending:
                    self.idle = True
                    note = collapse_note(tuner)
                    yield JobEvent(EventKind.MESSAGE, 0.0, step=self.steps_done, name="idle",
                                   message=f"live: idle after round {round_no}"
                                           + (f", {note}" if note else "")
                                           + "; paint to start the next round, Stop to end it")
                    tuner.inbox.wait(self._stop)
                if self.stopping:
                    break
                tuner.inbox.take()  # the next round starts from the job's images as they are now
                point = resolve_start(kept[0], len(self.start.class_names),
                                      list(self.start.class_names), list(self.start.class_colours))
                config = replace(self.config, budget=default_finetune_budget(point))
                try:
                    next_tuner = self._new_tuner(point, config, None)
                except InputError as exc:
                    yield JobEvent(EventKind.MESSAGE, 0.0, step=self.steps_done, name="idle",
                                   message=f"live: the strokes cannot train ({exc}); round "
                                           f"{round_no}'s model is kept: paint to try again")
                    self.idle = True
                    tuner.inbox.wait(self._stop)
            if self.stopping:
                break
            self.idle = False
            round_no += 1
            tuner = next_tuner
            with self._lock:
                self._updates_before += 1
            shown.score = None if shown.network else shown.forest
        bundle, diagnosis, last = kept
        self.result = bundle
        yield JobEvent(EventKind.DONE, 1.0, step=self.steps_done, result=bundle,
                       elapsed=float(last.provenance.get("seconds", 0)),
                       reason=last.provenance.get("stop_reason"),
                       warnings=tuple(diagnosis.warnings) if diagnosis else (),
                       message=f"{round_no} live round(s); the last complete one: "
                               + training_summary(last.provenance, last.best_step, diagnosis))

    def best_so_far(self) -> ModelBundle | None:
        """Return the model the selection keeps so far as a bundle with its class prior (the
        finished bundle once the job has ended; None before the first evaluation), without
        stopping the run: what Save writes during live training. Its provenance says it is a
        snapshot (``live_snapshot``); the self-check comes with the finished bundle."""
        if self.result is not None:
            return self.result
        if self._completed is not None:
            return self._completed
        tuner = self.tuner
        state = tuner.best_state if tuner is not None else None
        if state is None:
            return None
        model = copy.deepcopy(tuner.model)
        model.load_state_dict(state)
        model = model.cpu().eval()
        images = list(tuner.images)
        counts = np.zeros(tuner.num_classes)
        for t in images:
            classes, _, _ = predict_tiled(model, t.prepared.pixels,
                                          PredictConfig(keep_probabilities=False), "cpu")
            counts += np.bincount(classes.ravel(), minlength=tuner.num_classes)[:tuner.num_classes]
        kept = tuner.kept
        collapsed = kept is not None and bool(kept.collapse)
        prior = None if collapsed else [round(float(c), 6) for c in counts / counts.sum()]
        provenance = {**tuner.provenance, "steps": tuner.best_step,
                      "total_steps": tuner.steps_before + tuner.best_step,
                      "best_step": tuner.best_step, "stop_reason": "live snapshot",
                      "live_snapshot": True, "device": tuner.device.type,
                      "seed": self.config.seed, "selection": self.config.selection.describe(),
                      "finetune": self.config.to_dict()}
        return ModelBundle(model, list(self.start.class_names), list(self.start.class_colours),
                           tuner.preprocess, provenance, class_prior=prior)


def live_training(images, class_names=None, class_colours=None, start=None,
                  config: FinetuneConfig | None = None, schedule: LiveSchedule | None = None,
                  encoder: str | None = None, scale: float | None = None, device: str = "auto",
                  preview: bool = True, encoder_weights: str | None = "imagenet",
                  transfer: str = "encoder") -> LiveTrainingJob:
    """Return a job that keeps fine-tuning on strokes that keep changing
    (:class:`LiveTrainingJob`); the arguments are :func:`~napari_matseg.api.finetune`'s, with
    ``schedule`` (:class:`~napari_matseg.core.live_schedule.LiveSchedule`: warm-up, learning
    rate, when to idle) instead of a budget. Everything is checked here, before any work."""
    job = finetune(images, class_names, class_colours, start=start, config=config,
                   encoder=encoder, scale=scale, device=device, preview=preview,
                   encoder_weights=encoder_weights, transfer=transfer)
    return LiveTrainingJob(job.images, job.start, job.config, schedule, preview, job.model_config,
                           job.encoder_weights)
