"""Adapting a trained model to the micrographs it is about to predict (the transductive setting
of issue 26): training continues on the model's own strokes and also learns from a few of those
micrographs, which nobody painted. Measured not better than the model alone on MetalDAM
(docs/benchmarks.md, "Learning from unpainted pixels"), so nothing does it unasked."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.bundle import ModelBundle
from ..core.errors import InputError
from ..core.finetune import UnlabeledImage
from ..core.imageio import list_images, read_image
from ..core.budget import Budget
from .finetune_job import FinetuneJob, finetune
from .start import as_bundle, continues_training

ADAPT_IMAGES = 8  # micrographs learned from, spread over the folder: memory stays bounded


def spread(items: Sequence, count: int) -> list:
    """Return at most ``count`` of ``items``, evenly spaced from the first to the last, so that a
    sorted folder is sampled across its whole length rather than at its start."""
    items = list(items)
    if count < 1:
        raise InputError(f"adapting needs at least one micrograph, not {count}")
    if len(items) <= count:
        return items
    picks = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in dict.fromkeys(picks.tolist())]


def _as_unlabeled(item, info_band) -> UnlabeledImage:
    if isinstance(item, UnlabeledImage):
        return item
    if isinstance(item, (str, Path)):
        return UnlabeledImage(read_image(item), Path(item).name, info_band=info_band)
    if isinstance(item, np.ndarray):
        return UnlabeledImage(item, "micrograph", info_band=info_band)
    raise InputError(f"a micrograph to adapt to is a path or an array, not {type(item).__name__}")


def adapt(model: ModelBundle | str | Path, images, targets: Sequence, budget: Budget | None = None,
          max_images: int = ADAPT_IMAGES, info_band: int | str | None = "auto",
          device: str = "auto") -> FinetuneJob:
    """Return a job that continues training ``model`` on the strokes it was trained on
    (``images``, as for :func:`~napari_matseg.api.finetune`) while it learns from the
    micrographs ``targets`` (a folder, or a list of paths, arrays or :class:`UnlabeledImage`; at
    most ``max_images`` of them, spread over the list, are read). The job's result is the adapted model; ``model``
    itself is unchanged. Raises :class:`InputError` for a model that is not a trained
    segmentation model, or when there is nothing to adapt to."""
    bundle = as_bundle(model)
    if bundle is None or not continues_training(bundle):
        raise InputError("only a trained segmentation model can be adapted to new micrographs")
    if isinstance(targets, (str, Path)):
        targets = list_images([targets])
    picked = spread(targets, max_images)
    if not picked:
        raise InputError("there are no micrographs to adapt the model to")
    unlabeled = []
    for item in picked:
        try:
            unlabeled.append(_as_unlabeled(item, info_band))
        except InputError as exc:
            name = Path(item).name if isinstance(item, (str, Path)) else "a micrograph"
            raise InputError(f"{name}: {exc}") from exc
    return finetune(images, bundle.class_names, bundle.class_colours, start=bundle, budget=budget,
                    device=device, unlabeled=unlabeled)
