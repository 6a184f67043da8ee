"""DeepLabV3 head: image pooling + 1x1 branch (+ optional three 3x3 atrous branches).

Chen et al., "Rethinking Atrous Convolution for Semantic Image Segmentation", 2017,
https://arxiv.org/abs/1706.05587. The MobileNetV2 paper's light head ("MNet V2*" without
ASPP) keeps only image pooling and the 1x1 branch; this is the head of the released
official models. Layout as the official TensorFlow DeepLab:
concat(pool, aspp0[, atrous...]) -> 1x1 conv -> BN -> ReLU -> dropout [-> DeepLabV3+ decoder]
-> 1x1 logits (bias). The atrous branches may be depthwise-separable (TF's ``aspp_with_separable_conv``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from functools import partial

import torch
from torch import Tensor, nn

from segkit.models.backbones._base import NormLayer


def default_aspp_rates(output_stride: int) -> tuple[int, int, int]:
    """Atrous rates tied to the output stride: 6/12/18 at 16, 12/24/36 at 8, 3/6/9 at 32."""
    rates = {8: (12, 24, 36), 16: (6, 12, 18), 32: (3, 6, 9)}
    if output_stride not in rates:
        raise ValueError(
            f"output_stride must be one of {sorted(rates)} for the default ASPP rates, got "
            f"{output_stride!r}; pass atrous_rates explicitly for another stride."
        )
    return rates[output_stride]


def _conv_bn_relu(
    in_ch: int, out_ch: int, kernel_size: int, norm_layer: NormLayer, dilation: int = 1, groups: int = 1
) -> nn.Sequential:
    padding = (kernel_size - 1) // 2 * dilation
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size, padding=padding, dilation=dilation, groups=groups, bias=False),
        norm_layer(out_ch),
        nn.ReLU(inplace=True),
    )


def separable_conv_bn_relu(in_ch: int, out_ch: int, norm_layer: NormLayer, dilation: int = 1) -> nn.Sequential:
    """TF DeepLab's ``split_separable_conv2d``: depthwise 3x3 (rate) + BN + ReLU -> pointwise 1x1 + BN + ReLU."""
    return nn.Sequential(
        OrderedDict(
            depthwise=_conv_bn_relu(in_ch, in_ch, 3, norm_layer, dilation, groups=in_ch),
            pointwise=_conv_bn_relu(in_ch, out_ch, 1, norm_layer),
        )
    )


class ImagePooling(nn.Module):
    """Global average pool -> 1x1 conv -> BN -> ReLU -> broadcast back to the feature size."""

    def __init__(self, in_ch: int, out_ch: int, norm_layer: NormLayer) -> None:
        super().__init__()
        self.conv = _conv_bn_relu(in_ch, out_ch, 1, norm_layer)

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.conv(x.mean(dim=(2, 3), keepdim=True))  # [N, C, 1, 1]
        # Bilinear upsampling of a 1x1 map (as TF does) is a broadcast. Written as a product with ones
        # (exact: x * 1.0 == x) rather than expand(): expand() exports to a BROADCAST_TO whose NCHW
        # target shape the LiteRT interpreter refuses after the NHWC layout rewrite ("failed to prepare").
        return pooled * torch.ones_like(x[:, :1])


class DeepLabV3Head(nn.Module):
    """DeepLabV3 head producing logits at the feature resolution (with a decoder: at the decoder's).

    Args:
        in_channels: channels of the backbone feature it reads.
        num_classes: number of output classes.
        atrous_rates: rates of the 3x3 atrous branches; empty for the light head (no ASPP).
        channels: filters of every branch and of the projection (256 in the paper).
        dropout: dropout probability after the projection (official: keep 0.9 -> 0.1).
        norm_layer: builds the norm layer from a channel count.
        separable: atrous branches as depthwise 3x3 + pointwise 1x1 (TF's ``aspp_with_separable_conv``).
        decoder: optional DeepLabV3+ decoder (:class:`~segkit.models.heads.deeplabv3plus.DeepLabV3PlusDecoder`)
            between the projection and the logits; ``forward`` then takes the low-level feature too.
            The logits conv stays ``classifier`` (TF's ``logits`` scope, the same with and without decoder).
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
        separable: bool = False,
        decoder: nn.Module | None = None,
    ) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        self.atrous_rates = tuple(atrous_rates)
        self.separable = separable
        self.image_pool = ImagePooling(in_channels, channels, norm_layer)
        self.aspp0 = _conv_bn_relu(in_channels, channels, 1, norm_layer)
        branch = separable_conv_bn_relu if separable else partial(_conv_bn_relu, kernel_size=3)
        self.atrous = nn.ModuleList(
            branch(in_channels, channels, norm_layer=norm_layer, dilation=r) for r in self.atrous_rates
        )
        self.project = _conv_bn_relu(channels * (2 + len(self.atrous_rates)), channels, 1, norm_layer)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()  # element-wise, as slim.dropout
        self.decoder = decoder
        self.classifier = nn.Conv2d(getattr(decoder, "out_channels", channels), num_classes, 1)

    def forward(self, x: Tensor, low_level: Tensor | None = None) -> Tensor:
        # x: [N, C, h, w]; low_level (with a decoder): [N, C_low, H', W'] at the decoder stride
        branches = [self.image_pool(x), self.aspp0(x)] + [branch(x) for branch in self.atrous]
        x = self.dropout(self.project(torch.cat(branches, dim=1)))  # [N, channels, h, w], the encoder output
        if self.decoder is not None:
            if low_level is None:
                raise ValueError(
                    "this head has a decoder: call it with the low-level feature as well, head(x, low_level)."
                )
            x = self.decoder(x, low_level)  # [N, 256, H', W']
        return self.classifier(x)  # [N, num_classes, h, w] (H', W' with a decoder)
