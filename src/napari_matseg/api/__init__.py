"""The one place that runs napari-matseg's jobs, for the widgets, the ``matseg`` command line,
the benchmarks and your scripts (no Qt here).

A job is made by :func:`finetune`, :func:`adapt`, :func:`predict`, :func:`pretrain` or :func:`measure`, which
check every input
before any work starts. Iterate ``job.run()`` for :class:`JobEvent` objects (an
:class:`EventKind`, a progress fraction, and what the kind reports), call ``job.stop()`` from
any thread to end it early, or ``job.wait()`` to run it and get its result::

    from napari_matseg import api
    from napari_matseg.core import AnnotatedImage, read_image, read_labels

    job = api.finetune([AnnotatedImage(read_image("a.tif"), read_labels("a_strokes.png"), "a")],
                       class_names=["matrix", "austenite"])
    for event in job.run():
        if event.kind is api.EventKind.STEP:
            print(event.message)
    bundle = job.result                       # a complete model, however the run ended
    summary = api.predict(bundle, ["b.tif", "c.tif"],
                          output=api.OutputFolder("results")).wait()

Decisions made here, once: a warm start trains a copy of its model; the device is picked
(``"auto"``: CUDA, then MPS, then the CPU) and checked; budgets count steps, with an optional
time cap that says when it cut a run short; outputs are checked before work and written
atomically, never replacing files unless asked.
"""

from ..core.budget import Budget
from ..core.finetune import AnnotatedImage, FinetuneConfig, UnlabeledImage
from ..core.unlabeled import UnlabeledConfig
from ..core.pretrain import PretrainConfig
from .adapt import ADAPT_IMAGES, adapt
from .budgets import CONTINUE_STEPS, FIRST_FIT_STEPS, default_finetune_budget
from .events import EventKind, JobEvent
from .finetune_job import FinetuneJob, finetune, format_seconds
from .job import Job
from .live_training import LiveSchedule, LiveTrainingJob, live_training
from .measure_job import (ImageMeasurements, LabelSource, MeasureJob, MeasureOptions, MeasureReport,
                          check_report_folder, measure, write_report)
from .outputs import (OutputFolder, check_model_path, fallback_model_path, keep_start_model,
                      save_with_fallback)
from .predict_job import ImageSource, PredictJob, PredictOptions, PredictSummary, predict
from .pretrain_job import PretrainJob, pretrain
from .start import (DEFAULT_START, StartingPoint, continues_training, predicts_alike,
                    resolve_start)
from .tables import PHASE_COLUMNS, phase_rows, write_csv

__all__ = [
    "ADAPT_IMAGES", "adapt", "AnnotatedImage", "Budget", "CONTINUE_STEPS", "DEFAULT_START", "EventKind", "FIRST_FIT_STEPS",
    "FinetuneConfig", "FinetuneJob", "ImageMeasurements", "ImageSource", "Job", "JobEvent",
    "LabelSource", "LiveSchedule", "LiveTrainingJob", "MeasureJob", "MeasureOptions", "MeasureReport", "OutputFolder",
    "PHASE_COLUMNS", "PredictJob", "PredictOptions", "PredictSummary", "PretrainConfig",
    "PretrainJob", "StartingPoint", "check_model_path", "check_report_folder", "continues_training", "default_finetune_budget", "finetune",
    "fallback_model_path", "format_seconds", "keep_start_model", "live_training", "measure", "phase_rows", "predict", "predicts_alike", "pretrain", "resolve_start",
    "save_with_fallback", "UnlabeledConfig", "UnlabeledImage",
    "write_csv", "write_report",
]
