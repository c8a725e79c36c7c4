"""One-file model bundles: safetensors weights with the JSON metadata in the same file's header.

Loading never unpickles anything; writes go to a temporary file that is renamed into place,
so a crash never leaves half a model behind.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from .atomic import atomic_write
from .errors import BundleError, InputError
from .encoders import GREY_MEAN, GREY_STD
from .model import ModelConfig, SegmentationModel, build_model
from .predict import PredictConfig, Prediction, predict_image
from .preprocess import PreprocessConfig

KINDS = ("segmentation", "pretrained")
AS_TRAINED = object()  # predict with the information-band setting the model was trained with
COLOUR = re.compile(r"^#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?$")

FORMAT = "napari-matseg-bundle"
FORMAT_VERSION = 2
# Readers before format 2 drop unknown model fields, so they would rebuild a leaky decoder with
# ReLU and load its weights without a word; a ReLU model is still written as format 1.
RELU_FORMAT_VERSION = 1
BUNDLE_SUFFIX = ".matseg"

DEFAULT_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                   "#7f7f7f", "#bcbd22", "#17becf"]


def default_class_names(n: int) -> list[str]:
    return [f"class {i}" for i in range(1, n + 1)]


def default_colours(n: int) -> list[str]:
    return [DEFAULT_COLOURS[i % len(DEFAULT_COLOURS)] for i in range(n)]


def check_classes(names: list, colours: list) -> None:
    """Raise :class:`InputError` unless ``names`` are distinct non-empty texts and ``colours``
    as many '#rrggbb' colours."""
    if len(colours) != len(names):
        raise InputError(f"{len(colours)} colours were given for {len(names)} classes: give one "
                         "colour per class")
    if not all(isinstance(name, str) and name.strip() for name in names):
        raise InputError(f"class names must be non-empty text, got {names!r}")
    if len(set(names)) != len(names):
        raise InputError(f"class names must differ from each other, got {names!r}")
    bad = [c for c in colours if not (isinstance(c, str) and COLOUR.match(c))]
    if bad:
        raise InputError(f"class colours are written '#rrggbb', got {bad[0]!r}")


@dataclass
class ModelBundle:
    """A trained model and everything needed to use and trust it."""

    model: SegmentationModel
    class_names: list[str] = field(default_factory=list)
    class_colours: list[str] = field(default_factory=list)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    provenance: dict = field(default_factory=dict)
    kind: str = "segmentation"
    class_prior: list[float] | None = None

    def __post_init__(self):
        n = self.model.config.num_classes
        if not self.class_names:
            self.class_names = default_class_names(n)
        if not self.class_colours:
            self.class_colours = default_colours(n)
        if len(self.class_names) != n or len(self.class_colours) != n:
            raise BundleError(f"the model has {n} classes but {len(self.class_names)} names and "
                              f"{len(self.class_colours)} colours were given")
        try:
            check_classes(self.class_names, self.class_colours)
        except InputError as exc:
            raise BundleError(str(exc)) from None
        if self.kind not in KINDS:
            raise BundleError(f"unknown bundle kind {self.kind!r} (expected {' or '.join(KINDS)})")
        if self.class_prior is not None:
            prior = self.class_prior
            if (not isinstance(prior, (list, tuple)) or len(prior) != n
                    or not all(isinstance(p, (int, float)) and not isinstance(p, bool)
                               and math.isfinite(p) and p >= 0 for p in prior)
                    or sum(prior) <= 0):
                raise BundleError(f"the model has {n} classes but its class prior is {prior!r}: "
                                  "it must be one non-negative fraction per class")
            self.class_prior = [float(p) for p in prior]

    @property
    def trained_steps(self) -> int:
        """Fine-tuning steps behind this model, warm starts included (0 for a pretrained start):
        what a further fine-tune from it passes as ``steps_before``."""
        if self.kind != "segmentation":
            return 0
        return int(self.provenance.get("total_steps", self.provenance.get("steps", 0)) or 0)

    def metadata(self) -> dict:
        from .. import __version__

        version = (RELU_FORMAT_VERSION if self.model.config.decoder_activation == "relu"
                   else FORMAT_VERSION)
        return {"format": FORMAT, "format_version": version, "kind": self.kind,
                "package_version": __version__, "model": self.model.config.to_dict(),
                "class_names": self.class_names, "class_colours": self.class_colours,
                "preprocess": self.preprocess.to_dict(), "provenance": self.provenance,
                "class_prior": self.class_prior}

    def predict_config(self, **options) -> PredictConfig:
        """Return the :class:`PredictConfig` for this model: ``options`` plus its class prior."""
        prior = tuple(self.class_prior) if self.class_prior is not None else None
        return PredictConfig(**{"class_prior": prior, **options})

    def preprocess_for(self, info_band=AS_TRAINED) -> PreprocessConfig:
        """Return this model's preprocessing, with another information-band setting unless
        ``info_band`` is :data:`AS_TRAINED`."""
        return self.preprocess if info_band is AS_TRAINED else self.preprocess.with_info_band(info_band)

    def predict(self, image, info_band=AS_TRAINED, pixel_size: float | None = None,
                device: str | torch.device = "cpu", **options) -> "Prediction":
        """Return the :class:`Prediction` of this model for a raw micrograph, with its
        preprocessing (the information band as at training unless ``info_band`` says otherwise)
        and class prior (``options`` go to :class:`PredictConfig`)."""
        return predict_image(self.model.to(device), image, self.preprocess_for(info_band),
                             self.predict_config(**options), device, pixel_size=pixel_size)

    def save(self, path: str | Path) -> Path:
        """Write the bundle atomically to ``path`` and return it; raise :class:`OSError` when it
        cannot be written (a full disk included), leaving any earlier file there whole."""
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        metadata = {"matseg": json.dumps(self.metadata())}

        def write(tmp: str) -> None:
            try:
                save_file(state, tmp, metadata=metadata)
            except Exception as exc:
                error = as_os_error(exc, str(path))
                if error is exc:
                    raise
                raise error from exc

        return atomic_write(path, write)


OS_ERROR_CODE = re.compile(r"os error (\d+)")


def as_os_error(exc: Exception, path: str) -> Exception:
    """Return ``exc`` as the :class:`OSError` it wraps when it is safetensors' ``SafetensorError``
    for a failed write ('I/O error: No space left on device (os error 28)'), so that callers
    that save elsewhere when a disk is full see it as one; any other exception as it is."""
    from safetensors import SafetensorError

    if not isinstance(exc, SafetensorError):
        return exc
    code = OS_ERROR_CODE.search(str(exc))
    if code is None:
        return exc
    number = int(code.group(1))
    return OSError(number, os.strerror(number), path)


def read_metadata(path: str | Path) -> dict:
    """Return a bundle's JSON metadata without loading its weights."""
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        raise BundleError(f"{path}: is a folder, not a model file (.matseg)")
    if not path.is_file():
        raise BundleError(f"{path}: no such model file")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("matseg")
    except Exception as exc:
        raise BundleError(f"{path}: not a readable model bundle (corrupt or not safetensors: {exc})") from exc
    if raw is None:
        raise BundleError(f"{path}: a safetensors file without napari-matseg metadata")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}: the bundle's metadata is corrupt ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise BundleError(f"{path}: not a napari-matseg bundle (format {found!r})")
    version = meta.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise BundleError(f"{path}: the bundle's format version {version!r} is not a number")
    if version > FORMAT_VERSION:
        raise BundleError(f"{path}: bundle format {meta['format_version']} is newer than this "
                          f"napari-matseg understands ({FORMAT_VERSION}); upgrade the package")
    return meta


KIND_HINTS = {"pretrained": "a pretrained starting model (matseg pretrain): fine-tune it on "
                            "your strokes first",
              "segmentation": "a trained segmentation model, not a pretrained start"}


def load_bundle(path: str | Path, device: str | torch.device = "cpu",
                expect: str | None = None) -> ModelBundle:
    """Return the :class:`ModelBundle` stored at ``path``; raise :class:`BundleError` if unusable
    (or, with ``expect``, if it is not of that kind: ``"segmentation"`` or ``"pretrained"``)."""
    from safetensors.torch import load_file

    meta = read_metadata(path)
    kind = meta.get("kind", "segmentation")
    if expect is not None and kind != expect:
        raise BundleError(f"{path}: {KIND_HINTS.get(kind, f'a {kind} bundle')}")
    try:
        described = meta["model"]
        config = ModelConfig.from_dict(described)
        if isinstance(described, dict) and "input_mean" not in described:  # bundles before 0.2
            config = replace(config, input_mean=GREY_MEAN, input_std=GREY_STD)
        preprocess = PreprocessConfig.from_dict(meta.get("preprocess", {}))
        names, colours = meta.get("class_names"), meta.get("class_colours")
        provenance = meta.get("provenance", {})
        if not isinstance(names, list) or not isinstance(colours, list):
            raise InputError("class names and colours must be lists")
        if not isinstance(provenance, dict):
            raise InputError("the provenance must be a mapping")
    except (KeyError, TypeError, InputError) as exc:
        raise BundleError(f"{path}: the bundle's metadata is invalid ({exc})") from exc
    try:
        model, _ = build_model(config, encoder_weights=None)
        state = load_file(str(path), device=str(device))
        model.load_state_dict(state, strict=True)
    except BundleError:
        raise
    except Exception as exc:
        raise BundleError(f"{path}: the weights do not fit the model described in the bundle ({exc})") from exc
    bad = next((name for name, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()),
               None)
    if bad is not None:
        raise BundleError(f"{path}: the weights hold values that are not numbers (NaN or inf, in {bad}); "
                          "the model cannot predict")
    model.eval()
    try:
        return ModelBundle(model=model, class_names=list(names), class_colours=list(colours),
                           preprocess=preprocess, provenance=dict(provenance), kind=kind,
                           class_prior=meta.get("class_prior"))
    except BundleError as exc:
        raise BundleError(f"{path}: {exc}") from exc
