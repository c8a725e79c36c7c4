"""Background jobs for the widgets: each wraps one core call and yields what the GUI shows.

Qt objects are never created here; the GUI thread connects to the worker's signals.
"""

from __future__ import annotations

import os

import numpy as np
from napari.qt.threading import thread_worker


def worker_threads() -> int:
    """Torch threads for background work: all cores but one, so the viewer keeps a core."""
    return max(1, (os.cpu_count() or 2) - 1)


@thread_worker
def train_job(make_tuner, preview: bool = True):
    """Build the :class:`Finetuner` (slow: loads weights) and run it, yielding its events.

    The first thing yielded is the tuner itself, so the GUI can stop it.
    """
    import torch

    torch.set_num_threads(worker_threads())
    tuner = make_tuner()
    yield tuner
    for event in tuner.run(preview=preview):
        yield event
    return tuner


@thread_worker
def predict_job(model, preprocess, items, config, info_band="auto", output_dir=None,
                file_format="png"):
    """Predict each (name, image-or-path) in ``items``; yields (name, Prediction or error text)."""
    import torch

    from ..core.errors import MatsegError
    from ..core.imageio import read_image, write_labels
    from ..core.predict import predict_image

    torch.set_num_threads(worker_threads())
    for name, source in items:
        try:
            image = read_image(source) if not isinstance(source, np.ndarray) else source
            prediction = predict_image(model, image, preprocess, config, info_band)
        except MatsegError as exc:
            yield name, str(exc)
            continue
        if output_dir is not None:
            stem = os.path.splitext(os.path.basename(name))[0]
            write_labels(os.path.join(output_dir, f"{stem}_labels.{file_format}"), prediction.labels)
            prediction.probabilities = None
        yield name, prediction


@thread_worker
def pretrain_job(make_trainer):
    """Read the images and build the :class:`Pretrainer` (slow), then run it, yielding events.

    Yields ``("reading", done, total)`` while images load, then the trainer itself (so the GUI
    can stop it), then its :class:`PretrainEvent` objects.
    """
    import torch

    torch.set_num_threads(worker_threads())
    trainer = None
    for item in make_trainer():
        if isinstance(item, tuple):
            yield item
        else:
            trainer = item
    yield trainer
    for event in trainer.run():
        yield event
    return trainer
