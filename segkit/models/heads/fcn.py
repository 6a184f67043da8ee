"""Auxiliary FCN head (training only): 3x3 conv -> BN -> ReLU -> dropout -> 1x1 logits."""

from __future__ import annotations

from torch import Tensor, nn

from segkit.models.backbones._base import NormLayer


class FCNHead(nn.Sequential):
    """Auxiliary classifier on an intermediate feature, as torchvision's ``FCNHead``."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        channels: int | None = None,
        dropout: float = 0.1,
        norm_layer: NormLayer | None = None,
    ) -> None:
        norm_layer = norm_layer or nn.BatchNorm2d
        channels = channels or max(in_channels // 4, 32)
        super().__init__(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
            norm_layer(channels),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Conv2d(channels, num_classes, 1),
        )

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102 - [N, C, h, w] -> [N, num_classes, h, w]
        return super().forward(x)
