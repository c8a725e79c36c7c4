"""The segmentation network: a timm encoder, a U-Net decoder and a 1x1 classification head."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import DEFAULT_ENCODER, create_encoder


@dataclass
class ModelConfig:
    """Everything needed to rebuild the network's architecture (saved in every bundle)."""

    num_classes: int = 2
    encoder: str = DEFAULT_ENCODER
    in_chans: int = 1
    decoder_channels: tuple[int, ...] = (64, 48, 32, 24, 16)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["decoder_channels"] = list(self.decoder_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "decoder_channels" in known:
            known["decoder_channels"] = tuple(known["decoder_channels"])
        return cls(**known)


def _conv_norm_relu(cin: int, cout: int) -> nn.Sequential:
    """3x3 conv, GroupNorm, ReLU: GroupNorm behaves the same in training and inference, which
    matters when a few crops of one image are all the batch there is."""
    groups = max(1, min(8, cout // 4))
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(groups, cout),
                         nn.ReLU(inplace=True))


class UpBlock(nn.Module):
    """Upsample x2, concatenate the skip connection (if any), two 3x3 convolutions."""

    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.convs = nn.Sequential(_conv_norm_relu(cin + cskip, cout), _conv_norm_relu(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        size = skip.shape[-2:] if skip is not None else (x.shape[-2] * 2, x.shape[-1] * 2)
        x = F.interpolate(x, size=size, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.convs(x)


class UNetDecoder(nn.Module):
    """U-Net decoder over encoder features at strides 2, 4, ... back to full resolution."""

    def __init__(self, encoder_channels: list[int], reductions: list[int],
                 decoder_channels: tuple[int, ...]):
        super().__init__()
        skips = list(reversed(encoder_channels[:-1]))
        steps = int(round(torch.log2(torch.tensor(float(reductions[-1]))).item()))
        if len(decoder_channels) < steps:
            raise ValueError(f"need {steps} decoder stages for stride {reductions[-1]}, "
                             f"got {len(decoder_channels)}")
        blocks, cin = [], encoder_channels[-1]
        for i, cout in enumerate(decoder_channels[:steps]):
            cskip = skips[i] if i < len(skips) else 0
            blocks.append(UpBlock(cin, cskip, cout))
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
                                   config.decoder_channels)
        self.head = nn.Conv2d(self.decoder.out_channels, config.num_classes, 1)

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
        self.config.num_classes = num_classes


def build_model(config: ModelConfig | None = None, encoder_weights: str | None = "imagenet",
                ) -> tuple[SegmentationModel, str]:
    """Return a new model and a note on where its encoder weights came from."""
    config = config or ModelConfig()
    if config.num_classes < 2:
        raise ValueError("a segmentation model needs at least 2 classes")
    encoder, origin = create_encoder(config.encoder, config.in_chans, encoder_weights)
    return SegmentationModel(config, encoder), origin
