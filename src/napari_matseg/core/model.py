"""The segmentation network: a timm encoder, a U-Net decoder and a 1x1 classification head."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_float, check_int
from .encoders import DEFAULT_ENCODER, GREY_MEAN, GREY_STD, create_encoder, input_statistics
from .errors import InputError

MAX_CLASSES = 64
DECODER_ACTIVATIONS = ("relu", "leaky_relu")
DEFAULT_DECODER_ACTIVATION = "leaky_relu"
LEAKY_SLOPE = 0.1


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network's architecture (saved in every bundle).

    ``input_mean`` and ``input_std`` are the grey levels (of the 0..1 normalised image) that the
    encoder's weights expect as 0 and 1 after standardisation; :func:`build_model` fills them in
    from where the weights came from (bundles older than these fields used 0.449 / 0.226).

    ``decoder_activation`` is ``"leaky_relu"`` (slope 0.1, the default) or ``"relu"``. A leaky
    unit keeps a gradient where a plain one is zero on every pixel of a region. With ReLU, the
    last block's units could all go dark on one phase (a MetalDAM void, NASA's secondary γ′),
    whose probabilities then stayed near uniform and whose class was lost on other micrographs
    (docs/benchmarks.md). Bundles older than this field load as ReLU.
    """

    num_classes: int = 2
    encoder: str = DEFAULT_ENCODER
    in_chans: int = 1
    decoder_channels: tuple[int, ...] = (64, 48, 32, 24, 16)
    input_mean: float | None = None
    input_std: float | None = None
    decoder_activation: str = DEFAULT_DECODER_ACTIVATION

    def __post_init__(self):
        check_int("the number of classes", self.num_classes, 2, MAX_CLASSES)
        if not isinstance(self.encoder, str) or not self.encoder:
            raise InputError(f"the encoder must be a timm model name, got {self.encoder!r}")
        check_int("the input channels", self.in_chans, 1, 4)
        channels = self.decoder_channels
        if not isinstance(channels, (tuple, list)) or not channels:
            raise InputError(f"the decoder channels must be a list of numbers, got {channels!r}")
        object.__setattr__(self, "decoder_channels",
                           tuple(check_int("a decoder channel count", c, 1, 4096) for c in channels))
        if self.input_mean is not None:
            check_float("the input mean", self.input_mean, -10, 10)
        if self.input_std is not None:
            check_float("the input std", self.input_std, 0, 10, strict_minimum=True)
        if self.decoder_activation not in DECODER_ACTIVATIONS:
            raise InputError(f"the decoder activation must be one of {', '.join(DECODER_ACTIVATIONS)}, "
                             f"got {self.decoder_activation!r}")

    @property
    def mean(self) -> float:
        return GREY_MEAN if self.input_mean is None else self.input_mean

    @property
    def std(self) -> float:
        return GREY_STD if self.input_std is None else self.input_std

    def to_dict(self) -> dict:
        d = asdict(self)
        d["decoder_channels"] = list(self.decoder_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """Return the config stored in a bundle (raises :class:`InputError` for bad values)."""
        if not isinstance(d, dict):
            raise InputError(f"the model description must be a mapping, got {type(d).__name__}")
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "decoder_channels" in known and isinstance(known["decoder_channels"], list):
            known["decoder_channels"] = tuple(known["decoder_channels"])
        known.setdefault("decoder_activation", "relu")
        return cls(**known)


def _activation(name: str) -> nn.Module:
    return nn.LeakyReLU(LEAKY_SLOPE, inplace=True) if name == "leaky_relu" else nn.ReLU(inplace=True)


def _conv_norm_act(cin: int, cout: int, activation: str) -> nn.Sequential:
    """3x3 conv, GroupNorm, activation: GroupNorm behaves the same in training and inference, which
    matters when a few crops of one image are all the batch there is."""
    groups = max(1, min(8, cout // 4))
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(groups, cout),
                         _activation(activation))


class UpBlock(nn.Module):
    """Upsample x2, concatenate the skip connection (if any), two 3x3 convolutions."""

    def __init__(self, cin: int, cskip: int, cout: int, activation: str):
        super().__init__()
        self.convs = nn.Sequential(_conv_norm_act(cin + cskip, cout, activation),
                                   _conv_norm_act(cout, cout, activation))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        size = skip.shape[-2:] if skip is not None else (x.shape[-2] * 2, x.shape[-1] * 2)
        x = F.interpolate(x, size=size, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.convs(x)


class UNetDecoder(nn.Module):
    """U-Net decoder over encoder features at strides 2, 4, ... back to full resolution."""

    def __init__(self, encoder_channels: list[int], reductions: list[int],
                 decoder_channels: tuple[int, ...], activation: str):
        super().__init__()
        skips = list(reversed(encoder_channels[:-1]))
        steps = int(round(torch.log2(torch.tensor(float(reductions[-1]))).item()))
        if len(decoder_channels) < steps:
            raise ValueError(f"need {steps} decoder stages for stride {reductions[-1]}, "
                             f"got {len(decoder_channels)}")
        blocks, cin = [], encoder_channels[-1]
        for i, cout in enumerate(decoder_channels[:steps]):
            cskip = skips[i] if i < len(skips) else 0
            blocks.append(UpBlock(cin, cskip, cout, activation))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = cin

    def forward_stages(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Return every block's output, coarse to fine (strides 16, 8, ... 1 for a stride-32 encoder)."""
        x, skips, outputs = features[-1], list(reversed(features[:-1])), []
        for i, block in enumerate(self.blocks):
            x = block(x, skips[i] if i < len(skips) else None)
            outputs.append(x)
        return outputs

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.forward_stages(features)[-1]


class SegmentationModel(nn.Module):
    """Encoder / decoder / head; ``forward`` returns class logits at the input's resolution."""

    def __init__(self, config: ModelConfig, encoder: nn.Module):
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.decoder = UNetDecoder(encoder.feature_info.channels(), encoder.feature_info.reduction(),
                                   config.decoder_channels, config.decoder_activation)
        self.head = nn.Conv2d(self.decoder.out_channels, config.num_classes, 1)

    def standardise(self, pixels: torch.Tensor) -> torch.Tensor:
        """Return 0..1 grey levels shifted and scaled the way this encoder's weights expect."""
        return (pixels - self.config.mean) / self.config.std

    @property
    def stride(self) -> int:
        """Input sides should be multiples of this for exact skip alignment."""
        return int(self.encoder.feature_info.reduction()[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.decoder(self.encoder(x)))
        if logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits

    def replace_head(self, num_classes: int) -> None:
        """Start a fresh head for another number of classes, keeping encoder and decoder."""
        self.head = nn.Conv2d(self.decoder.out_channels, num_classes, 1)
        self.config = replace(self.config, num_classes=num_classes)


def build_model(config: ModelConfig | None = None, encoder_weights: str | None = "imagenet",
                ) -> tuple[SegmentationModel, str]:
    """Return a new model and a note on where its encoder weights came from.

    Input statistics left unset in ``config`` are filled in from the weights' origin."""
    config = config or ModelConfig()
    encoder, origin = create_encoder(config.encoder, config.in_chans, encoder_weights)
    if config.input_mean is None or config.input_std is None:
        stats = input_statistics(encoder, origin)
        config = replace(config, input_mean=stats.mean if config.input_mean is None else config.input_mean,
                         input_std=stats.std if config.input_std is None else config.input_std)
    return SegmentationModel(config, encoder), origin
