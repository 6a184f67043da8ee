"""DeepLabV3 head: image pooling + 1x1 branch (+ optional three 3x3 atrous branches).

Chen et al., "Rethinking Atrous Convolution for Semantic Image Segmentation", 2017,
https://arxiv.org/abs/1706.05587. The MobileNetV2 paper's light head ("MNet V2*" without
ASPP) keeps only image pooling and the 1x1 branch; this is the head of the released
official models. Layout as the official TensorFlow DeepLab:
concat(pool, aspp0[, atrous...]) -> 1x1 conv -> BN -> ReLU -> dropout -> 1x1 logits (bias).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NormLayer = Callable[[int], nn.Module]


def default_aspp_rates(output_stride: int) -> tuple[int, int, int]:
    """Atrous rates tied to the output stride: 6/12/18 at 16, 12/24/36 at 8, 3/6/9 at 32."""
    rates = {8: (12, 24, 36), 16: (6, 12, 18), 32: (3, 6, 9)}
    if output_stride not in rates:
        raise ValueError(f"output_stride must be one of {sorted(rates)} for the default ASPP rates, got "
                         f"{output_stride!r}; pass atrous_rates explicitly for another stride.")
    return rates[output_stride]


def _conv_bn_relu(in_ch: int, out_ch: int, kernel_size: int, norm_layer: NormLayer, dilation: int = 1) -> nn.Sequential:
    padding = (kernel_size - 1) // 2 * dilation
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size, padding=padding, dilation=dilation, bias=False),
        norm_layer(out_ch),
        nn.ReLU(inplace=True),
    )


class ImagePooling(nn.Module):
    """Global average pool -> 1x1 conv -> BN -> ReLU -> broadcast back to the feature size."""

    def __init__(self, in_ch: int, out_ch: int, norm_layer: NormLayer) -> None:
        super().__init__()
        self.conv = _conv_bn_relu(in_ch, out_ch, 1, norm_layer)

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.conv(x.mean(dim=(2, 3), keepdim=True))  # [N, C, 1, 1]
        # Bilinear upsampling of a 1x1 map (as TF does) is a broadcast.
        return pooled.expand(-1, -1, x.shape[2], x.shape[3])


class DeepLabV3Head(nn.Module):
    """DeepLabV3 head producing logits at the feature resolution.

    Args:
        in_channels: channels of the backbone feature it reads.
        num_classes: number of output classes.
        atrous_rates: rates of the 3x3 atrous branches; empty for the light head (no ASPP).
        channels: filters of every branch and of the projection (256 in the paper).
        dropout: dropout probability before the classifier (official: keep 0.9 -> 0.1).
        norm_layer: builds the norm layer from a channel count.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        atrous_rates: Sequence[int] = (),
        channels: int = 256,
        dropout: float = 0.1,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        self.atrous_rates = tuple(atrous_rates)
        self.image_pool = ImagePooling(in_channels, channels, norm_layer)
        self.aspp0 = _conv_bn_relu(in_channels, channels, 1, norm_layer)
        self.atrous = nn.ModuleList(_conv_bn_relu(in_channels, channels, 3, norm_layer, r) for r in self.atrous_rates)
        self.project = _conv_bn_relu(channels * (2 + len(self.atrous_rates)), channels, 1, norm_layer)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()  # element-wise, as slim.dropout
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.image_pool(x), self.aspp0(x)] + [branch(x) for branch in self.atrous]
        x = self.project(torch.cat(branches, dim=1))
        return self.classifier(self.dropout(x))  # [N, num_classes, h, w]
