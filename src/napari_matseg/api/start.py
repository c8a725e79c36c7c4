"""Where a fine-tune starts from: the default ImageNet encoder, a pretrained encoder, or a model
trained before (a warm start). Decided here once for the widgets, the command line and the
benchmarks; a warm start always trains a copy, so the model it came from stays as it was."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..core.bundle import (ModelBundle, check_classes, default_class_names, default_colours,
                           load_bundle, read_metadata)
from ..core.errors import InputError
from ..core.model import SegmentationModel
from ..core.preprocess import PreprocessConfig

DEFAULT_START = "ImageNet EfficientNet-Lite0 (default)"


@dataclass
class StartingPoint:
    """What :class:`~napari_matseg.core.Finetuner` needs to begin: a trained model to continue
    (``continue_from``, copied by :meth:`training_model` in the worker, so the GUI thread never
    pays for the copy), a network to train as it is (``model``), or a pretrained bundle whose
    encoder it takes (``pretrained``), or none of these (a new ImageNet-initialised model); the
    preprocessing to keep, the steps behind the model, and the class names and colours."""

    description: str
    class_names: list[str]
    class_colours: list[str]
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    model: SegmentationModel | None = None
    continue_from: SegmentationModel | None = None
    pretrained: ModelBundle | None = None
    steps_before: int = 0
    warm_start: dict | None = None

    @property
    def continuing(self) -> bool:
        """True when training continues a trained segmentation model."""
        return self.continue_from is not None

    def training_model(self) -> SegmentationModel | None:
        """Return the network to train: a fresh copy of ``continue_from`` (the original is never
        trained in place), else ``model`` (None: the fine-tune builds a new one)."""
        if self.continue_from is not None:
            return copy.deepcopy(self.continue_from)
        return self.model


def predicts_alike(bundle: ModelBundle, other: ModelBundle) -> bool:
    """Return True when two bundles predict alike: the same weights and the same class prior
    (a continued run that kept its start model's weights but trained on other images has a new
    prior, so it is another model). The Train dock lists a round's start model only when the
    round changed something."""
    if bundle.class_prior != other.class_prior or bundle.class_names != other.class_names:
        return False
    mine, theirs = bundle.model.state_dict(), other.model.state_dict()
    return mine.keys() == theirs.keys() and all(
        mine[k].shape == theirs[k].shape and torch.equal(mine[k], theirs[k]) for k in mine)


def continues_training(start: StartingPoint | ModelBundle | str | Path | None) -> bool:
    """Return True when a fine-tune from ``start`` continues a trained segmentation model (a
    warm start, with the continuing budget), False for the default start and for a pretrained
    bundle (``matseg pretrain``), whose encoder starts a first fit. The one rule the command
    line, the Train dock and :func:`finetune` follow; a path is judged by its metadata alone."""
    if start is None:
        return False
    if isinstance(start, StartingPoint):
        return start.continuing
    if isinstance(start, ModelBundle):
        return start.kind == "segmentation"
    if isinstance(start, (str, Path)):
        return read_metadata(start).get("kind", "segmentation") == "segmentation"
    raise InputError(f"a fine-tune starts from a model bundle or its path, not "
                     f"{type(start).__name__}")


def as_bundle(start: ModelBundle | str | Path | None) -> ModelBundle | None:
    """Return ``start`` as a loaded bundle (None stays None)."""
    if start is None or isinstance(start, ModelBundle):
        return start
    return load_bundle(start)


def _classes(names, colours, count: int, fallback_names=None, fallback_colours=None):
    names = list(names) if names else list(fallback_names or default_class_names(count))
    if colours:
        colours = list(colours)
    elif fallback_colours and len(fallback_colours) == len(names):
        colours = list(fallback_colours)
    else:
        colours = default_colours(len(names))
    check_classes(names, colours)
    if len(names) < 2:
        raise InputError(f"a model needs at least two classes, got {len(names)}")
    return names, colours


def resolve_start(start: ModelBundle | str | Path | None, painted_classes: int,
                  class_names: list[str] | None = None, class_colours: list[str] | None = None,
                  scale: float | None = None, transfer: str = "encoder") -> StartingPoint:
    """Return the :class:`StartingPoint` for fine-tuning from ``start`` (a bundle, its path, or
    None for the default), for strokes whose highest class is ``painted_classes``.

    A trained model is copied (the original is never trained in place) and must have as many
    classes as are asked for; its names and colours are the default ones. ``scale`` overrides
    the working scale. Raises :class:`InputError` when the classes do not fit.
    """
    label = Path(start).name if isinstance(start, (str, Path)) else None
    bundle = as_bundle(start)
    if bundle is not None and bundle.kind == "segmentation":
        count = bundle.model.config.num_classes
        names, colours = _classes(class_names, class_colours, count, bundle.class_names,
                                  bundle.class_colours)
        if len(names) != count:
            which = f"the model '{label}'" if label else "the model"
            raise InputError(f"{which} predicts {count} classes but {len(names)} are asked for: "
                             "start from the default model for other classes, or match the classes")
        if painted_classes > count:
            raise InputError(f"the strokes use class {painted_classes} but the model predicts "
                             f"{count} classes")
        preprocess = bundle.preprocess if scale is None else replace(bundle.preprocess, scale=scale)
        return StartingPoint(f"continuing {label or 'a trained model'} ({bundle.trained_steps} steps)",
                             names, colours, preprocess, continue_from=bundle.model,
                             steps_before=bundle.trained_steps, warm_start=dict(bundle.provenance))
    count = max(painted_classes, len(class_names or []), 2)
    names, colours = _classes(class_names, class_colours, count)
    if painted_classes > len(names):
        raise InputError(f"the strokes use class {painted_classes} but there are {len(names)} "
                         "classes: add a class for every label you paint")
    if bundle is not None:
        method = bundle.provenance.get("pretraining_method", "unknown")
        preprocess = replace(PreprocessConfig(normalizer=bundle.preprocess.normalizer), scale=scale)
        what = f"the {method} pretrained {transfer} of {label or 'a pretrained model'}"
        if transfer == "network":
            from ..core.finetune import start_from_pretrained

            return StartingPoint(what, names, colours, preprocess,
                                 start_from_pretrained(bundle, len(names), keep_decoder=True))
        if transfer != "encoder":
            raise InputError(f"a pretrained start transfers its 'encoder' or 'network', not {transfer!r}")
        return StartingPoint(what, names, colours, preprocess, pretrained=bundle)
    return StartingPoint(DEFAULT_START, names, colours, PreprocessConfig(scale=scale))
