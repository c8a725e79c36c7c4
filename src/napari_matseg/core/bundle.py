"""One-file model bundles: safetensors weights with the JSON metadata in the same file's header.

Loading never unpickles anything; writes go to a temporary file that is renamed into place,
so a crash never leaves half a model behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .atomic import atomic_write
from .errors import BundleError
from .model import ModelConfig, SegmentationModel, build_model
from .predict import PredictConfig, Prediction, predict_image
from .preprocess import PreprocessConfig

FORMAT = "napari-matseg-bundle"
FORMAT_VERSION = 1
BUNDLE_SUFFIX = ".matseg"

DEFAULT_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                   "#7f7f7f", "#bcbd22", "#17becf"]


def default_class_names(n: int) -> list[str]:
    return [f"class {i}" for i in range(1, n + 1)]


def default_colours(n: int) -> list[str]:
    return [DEFAULT_COLOURS[i % len(DEFAULT_COLOURS)] for i in range(n)]


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
        if self.class_prior is not None and len(self.class_prior) != n:
            raise BundleError(f"the model has {n} classes but its class prior has "
                              f"{len(self.class_prior)} values")

    @property
    def trained_steps(self) -> int:
        """Fine-tuning steps behind this model, warm starts included (0 for a pretrained start):
        what a further fine-tune from it passes as ``steps_before``."""
        if self.kind != "segmentation":
            return 0
        return int(self.provenance.get("total_steps", self.provenance.get("steps", 0)) or 0)

    def metadata(self) -> dict:
        from .. import __version__

        return {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": self.kind,
                "package_version": __version__, "model": self.model.config.to_dict(),
                "class_names": self.class_names, "class_colours": self.class_colours,
                "preprocess": self.preprocess.to_dict(), "provenance": self.provenance,
                "class_prior": self.class_prior}

    def predict_config(self, **options) -> PredictConfig:
        """Return the :class:`PredictConfig` for this model: ``options`` plus its class prior."""
        prior = tuple(self.class_prior) if self.class_prior is not None else None
        return PredictConfig(**{"class_prior": prior, **options})

    def predict(self, image, info_band: int | str | None = "auto", pixel_size: float | None = None,
                device: str | torch.device = "cpu", **options) -> "Prediction":
        """Return the :class:`Prediction` of this model for a raw micrograph, with its
        preprocessing and class prior (``options`` go to :class:`PredictConfig`)."""
        return predict_image(self.model.to(device), image, self.preprocess,
                             self.predict_config(**options), info_band, device,
                             pixel_size=pixel_size)

    def save(self, path: str | Path) -> Path:
        """Write the bundle atomically to ``path`` and return it."""
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        metadata = {"matseg": json.dumps(self.metadata())}
        return atomic_write(path, lambda tmp: save_file(state, tmp, metadata=metadata))


def read_metadata(path: str | Path) -> dict:
    """Return a bundle's JSON metadata without loading its weights."""
    from safetensors import safe_open

    path = Path(path)
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
    if meta.get("format") != FORMAT:
        raise BundleError(f"{path}: not a napari-matseg bundle (format {meta.get('format')!r})")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
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
        config = ModelConfig.from_dict(meta["model"])
        model, _ = build_model(config, encoder_weights=None)
        state = load_file(str(path), device=str(device))
        model.load_state_dict(state, strict=True)
    except BundleError:
        raise
    except Exception as exc:
        raise BundleError(f"{path}: the weights do not fit the model described in the bundle ({exc})") from exc
    model.eval()
    return ModelBundle(model=model, class_names=list(meta["class_names"]),
                       class_colours=list(meta["class_colours"]),
                       preprocess=PreprocessConfig.from_dict(meta.get("preprocess", {})),
                       provenance=dict(meta.get("provenance", {})),
                       kind=meta.get("kind", "segmentation"), class_prior=meta.get("class_prior"))
