"""From a raw micrograph to the array the network sees: grey, band removed, normalised, rescaled."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from .checks import check_float, check_info_band
from .errors import InputError
from .imageio import to_grey
from .infoband import content_rows
from .normalize import PercentileNormalizer

MAX_SCALE = 8.0


@dataclass(frozen=True)
class PreprocessConfig:
    """How a micrograph is turned into network input; stored in the bundle and reused to predict.

    ``scale`` resamples the image before the network sees it (0.5 halves each side): a model
    trained at one magnification works best on images brought to the same pixel size. ``None``
    picks it from the training image (:func:`auto_scale`); fine-tuning stores the number chosen,
    so prediction with a bundle always uses the training scale.

    ``pixel_size`` (µm per pixel of the original image, when known) lets a model trained on one
    magnification predict another: :meth:`for_pixel_size` rescales each image to the training
    image's physical pixel size.

    ``info_band`` is the microscope's information band at the bottom of the image: ``"auto"``
    (detected per image), ``None`` or 0 (none), or a height in rows; it is kept out of training
    and prediction.
    """

    normalizer: PercentileNormalizer = field(default_factory=PercentileNormalizer)
    scale: float | None = None
    pixel_size: float | None = None
    info_band: int | str | None = "auto"

    def __post_init__(self):
        if not isinstance(self.normalizer, PercentileNormalizer):
            raise InputError("the normaliser must be a PercentileNormalizer")
        if self.scale is not None:
            check_float("the working scale", self.scale, 1 / MAX_SCALE, MAX_SCALE)
        check_pixel_size(self.pixel_size)
        check_info_band(self.info_band)

    def to_dict(self) -> dict:
        return {"normalizer": self.normalizer.to_dict(), "scale": self.scale,
                "pixel_size": self.pixel_size, "info_band": self.info_band}

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessConfig":
        """Return the config stored in a bundle (raises :class:`InputError` for bad values)."""
        if not isinstance(d, dict):
            raise InputError(f"preprocessing must be a mapping, got {type(d).__name__}")
        normalizer = d.get("normalizer", {})
        if not isinstance(normalizer, dict):
            raise InputError(f"the normaliser must be a mapping, got {type(normalizer).__name__}")
        fields = PercentileNormalizer.__dataclass_fields__
        unknown = sorted(str(k) for k in normalizer if k not in fields)
        if unknown:
            raise InputError(f"the normaliser has unknown settings ({', '.join(map(repr, unknown))}; "
                             f"known: {', '.join(fields)}): made by another program or version?")
        return cls(normalizer=PercentileNormalizer(**normalizer), scale=d.get("scale", 1.0),
                   pixel_size=d.get("pixel_size"), info_band=d.get("info_band", "auto"))

    def with_info_band(self, info_band: int | str | None) -> "PreprocessConfig":
        """Return this config with another information-band setting."""
        return replace(self, info_band=info_band)

    def for_pixel_size(self, pixel_size: float | None) -> "PreprocessConfig":
        """Return the config for an image of ``pixel_size`` µm per pixel: its scale brings the
        image to the same physical pixel size as the training image. Unchanged when either pixel
        size is unknown."""
        if pixel_size is None or self.pixel_size is None:
            return self
        check_pixel_size(pixel_size)
        base = 1.0 if self.scale is None else self.scale
        return replace(self, scale=base * pixel_size / self.pixel_size, pixel_size=pixel_size)


def check_pixel_size(pixel_size: float | None) -> float | None:
    """Return ``pixel_size`` if it is a positive, finite number of µm (or None); raise otherwise."""
    if pixel_size is None:
        return None
    try:
        ok = 0 < float(pixel_size) < 1e4 and np.isfinite(float(pixel_size))
    except (TypeError, ValueError):
        ok = False
    if not ok or isinstance(pixel_size, bool):
        raise InputError(f"pixel size must be a positive number of µm per pixel, got {pixel_size!r}")
    return float(pixel_size)


AUTO_HALVE_SIDE = 900


def auto_scale(shape: tuple[int, int]) -> float:
    """Return 0.5 for micrographs whose longer side is at least 900 px, else 1.

    Measured on MetalDAM (1024 px wide SEM images, benchmarks/fewshot.py): at half size the
    network sees more microstructure per crop and trains twice the steps in the same time;
    small images (the 512 px NASA set) keep every pixel for their fine precipitates.
    """
    return 0.5 if max(shape) >= AUTO_HALVE_SIDE else 1.0


@dataclass
class PreparedImage:
    """A micrograph ready for the network, and how to map results back to the original."""

    pixels: np.ndarray  # float32, about 0..1, content rows only, rescaled
    original_shape: tuple[int, int]
    content_rows: int
    scale: float = 1.0

    @property
    def band_rows(self) -> int:
        """Rows of the information band left out at the original image's bottom (0: none)."""
        return int(self.original_shape[0] - self.content_rows)


MIN_SIDE = 16


def prepare_image(image: np.ndarray, config: PreprocessConfig) -> PreparedImage:
    """Return the image cropped above its information band, normalised and rescaled."""
    grey = to_grey(image)
    rows = content_rows(grey, config.info_band)
    pixels = config.normalizer(grey[:rows])
    scale = auto_scale(pixels.shape) if config.scale is None else config.scale
    if scale != 1.0:
        pixels = resize(pixels, scale, mode="bilinear")
    if min(pixels.shape) < MIN_SIDE:
        raise InputError(f"the image is {rows} x {grey.shape[1]} pixels above its information band, "
                         f"{pixels.shape[0]} x {pixels.shape[1]} at the working scale {scale:g}: "
                         f"too small to segment (at least {MIN_SIDE} pixels a side)")
    return PreparedImage(pixels, grey.shape, rows, scale)


def labels_like(prepared: PreparedImage, labels: np.ndarray) -> np.ndarray:
    """Return ``labels`` (original image size) cut and resampled to match ``prepared.pixels``."""
    labels = labels[:prepared.content_rows]
    if labels.shape != prepared.pixels.shape:
        labels = resize_to(labels, prepared.pixels.shape, "nearest")
    return labels


def resize(array: np.ndarray, scale: float, mode: str = "bilinear") -> np.ndarray:
    """Return a 2-D array resampled by ``scale`` (``nearest`` for labels)."""
    h, w = array.shape
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return resize_to(array, size, mode)


def resize_to(array: np.ndarray, size: tuple[int, int], mode: str = "bilinear") -> np.ndarray:
    """Return a 2-D (or C x H x W) array resampled to ``size``."""
    t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    squeeze = t.ndim == 2
    t = t[None, None] if squeeze else t[None]
    kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    if mode == "nearest":
        mode = "nearest-exact"
    out = F.interpolate(t, size=size, mode=mode, **kwargs)[0]
    out = out[0] if squeeze else out
    return out.numpy().astype(array.dtype) if mode == "nearest-exact" else out.numpy()


