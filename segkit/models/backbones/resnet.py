"""ResNet-101 backbone as DeepLab's ``resnet_v1_101_beta``, output stride 8, 16 or 32.

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, https://arxiv.org/abs/1512.03385;
the "beta" stem and multi-grid of Chen et al., "Rethinking Atrous Convolution for Semantic Image
Segmentation" (DeepLabV3), 2017, https://arxiv.org/abs/1706.05587 (the ResNet-101 rows of the
MobileNetV2 paper's Table 7).

Layout of TF-slim's ``resnet_v1`` as used by the official DeepLab (``resnet_v1_beta.py``):

- stem: three 3x3 convs with 64, 64, 128 filters (the first with stride 2), then a 3x3 stride-2
  max pool (``stem``, stride 4);
- four blocks of bottleneck units ``[3, 4, 23, 3]`` (1x1 -> 3x3 -> 1x1, expansion 4); in blocks 1-3
  the stride 2 sits on the **last** unit's 3x3 conv (TF-slim v1; torchvision puts it on the first
  unit), so ``block1`` ends at stride 8, ``block2`` at 16, ``block3`` at 32. Shortcuts are a
  projection conv + BN when the channels change (first unit of a block) and otherwise identity,
  subsampled by a 1x1 max pool on the strided units;
- ``block4`` (stride 1) has multi-grid rates ``(1, 2, 4)``: its unit ``i`` dilates by
  ``rate * multi_grid[i]``.

Output stride follows the official rule (slim's ``stack_blocks_dense``, the same as segkit's
MobileNets: :func:`~segkit.models.backbones._base.dilation_schedule`): once the running stride reaches the target, a later strided unit gets stride 1 and keeps
the previous rate; the units after it get the rate multiplied by that stride.

This module imports nothing from segkit outside ``segkit.models.backbones``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.backbones._base import Backbone, FeatureInfo, NormLayer, check_output_stride, dilation_schedule

__all__ = ["Bottleneck", "ResNet", "resnet101_beta"]

# (name, bottleneck channels, units, stride of the last unit) of resnet_v1_101_beta.
RESNET101_BLOCKS: tuple[tuple[str, int, int, int], ...] = (
    ("block1", 64, 3, 2),
    ("block2", 128, 4, 2),
    ("block3", 256, 23, 2),
    ("block4", 512, 3, 1),
)
EXPANSION = 4


def conv_bn_relu(in_ch: int, out_ch: int, norm_layer: NormLayer, *, stride: int = 1) -> nn.Sequential:
    """3x3 conv (no bias) -> norm -> ReLU, a stem layer."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False), norm_layer(out_ch), nn.ReLU(inplace=True))


class MaxPool2dSame(nn.MaxPool2d):
    """Max pool with TF 'SAME' padding (asymmetric on even sizes; equal to ``padding=1`` on odd ones)."""

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size in x.shape[-2:]:
            total = max((math.ceil(size / self.stride) - 1) * self.stride + self.kernel_size - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        return F.max_pool2d(x, self.kernel_size, self.stride, 0)


class Bottleneck(nn.Module):
    """ResNet v1 bottleneck: 1x1 -> 3x3 (strided or dilated) -> 1x1, plus the shortcut, then ReLU."""

    def __init__(
        self,
        in_ch: int,
        mid_ch: int,
        stride: int,
        norm_layer: NormLayer,
        *,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        out_ch = mid_ch * EXPANSION
        self.stride = stride
        self.dilation = dilation
        self.conv1 = nn.Conv2d(in_ch, mid_ch, 1, bias=False)
        self.bn1 = norm_layer(mid_ch)
        self.conv2 = nn.Conv2d(mid_ch, mid_ch, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = norm_layer(mid_ch)
        self.conv3 = nn.Conv2d(mid_ch, out_ch, 1, bias=False)
        self.bn3 = norm_layer(out_ch)
        self.relu = nn.ReLU(inplace=True)
        if in_ch != out_ch:
            self.downsample: nn.Module = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), norm_layer(out_ch)
            )
        elif stride > 1:
            self.downsample = nn.MaxPool2d(1, stride)  # slim's subsample(): no parameters
        else:
            self.downsample = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.downsample(x))


class ResNet(Backbone):
    """ResNet v1 "beta" feature extractor returning a dict of named feature maps.

    Args:
        blocks: ``(name, bottleneck channels, units, stride of the last unit)`` per block.
        output_stride: stride of the deepest features, 8, 16 or 32 (dilation beyond).
        multi_grid: rate multipliers of the last block's units (DeepLabV3: ``(1, 2, 4)``).
        out_features: names to return among ``stem``, ``block1`` .. ``block4``. Default: the last
            feature of every stride.
        stem_channels: filters of the three stem convs.
        frozen_stages: -1 freezes nothing; ``k >= 0`` freezes the stem and blocks ``1..k``.
        norm_eval: keep every norm layer in eval mode (running statistics frozen) in ``train()``.
        norm_layer: builds the norm layer from a channel count; default ``nn.BatchNorm2d``.
        tf_same_padding: TF 'SAME' padding for the stem max pool (the convs already match TF's
            ``conv2d_same``), to reproduce TF-trained weights exactly at even input sizes.
    """

    def __init__(
        self,
        blocks: Sequence[tuple[str, int, int, int]] = RESNET101_BLOCKS,
        *,
        output_stride: Literal[8, 16, 32] = 32,
        multi_grid: Sequence[int] = (1, 2, 4),
        out_features: Sequence[str] | None = None,
        stem_channels: tuple[int, int, int] = (64, 64, 128),
        frozen_stages: int = -1,
        norm_eval: bool = False,
        norm_layer: NormLayer | None = None,
        tf_same_padding: bool = False,
    ) -> None:
        super().__init__()
        check_output_stride(output_stride, extra_compute="~4x the backbone compute")
        if len(multi_grid) != blocks[-1][2] or not all(isinstance(r, int) and r >= 1 for r in multi_grid):
            raise ValueError(
                f"multi_grid must hold one integer rate >= 1 per unit of the last block "
                f"({blocks[-1][2]} units), e.g. (1, 2, 4); got {tuple(multi_grid)!r}."
            )
        if not (isinstance(frozen_stages, int) and -1 <= frozen_stages <= len(blocks)):
            raise ValueError(
                f"frozen_stages must be -1 (none) or 0..{len(blocks)} (0 = stem only), got {frozen_stages!r}."
            )
        norm_layer = norm_layer or nn.BatchNorm2d
        self.output_stride = output_stride

        c1, c2, c3 = stem_channels
        self.stem = nn.Sequential(
            conv_bn_relu(3, c1, norm_layer, stride=2),
            conv_bn_relu(c1, c2, norm_layer),
            conv_bn_relu(c2, c3, norm_layer),
            (MaxPool2dSame if tf_same_padding else nn.MaxPool2d)(3, 2, padding=0 if tf_same_padding else 1),
        )
        available = [FeatureInfo("stem", c3, 4)]
        self.block_names: list[str] = []
        self.unit_dilation: dict[str, list[int]] = {}  # dilation of every unit's 3x3 conv, per block
        unit_strides = [
            last_stride if i == units - 1 else 1 for _, _, units, last_stride in blocks for i in range(units)
        ]
        schedule = iter(dilation_schedule(unit_strides, output_stride, input_stride=4))
        in_ch, current_stride = c3, 4
        for b, (name, mid_ch, units, _) in enumerate(blocks):
            is_last_block = b == len(blocks) - 1
            layers: list[nn.Module] = []
            dilations: list[int] = []
            for i in range(units):
                layer_stride, layer_rate = next(schedule)
                rate = layer_rate * (multi_grid[i] if is_last_block else 1)
                layers.append(Bottleneck(in_ch, mid_ch, layer_stride, norm_layer, dilation=rate))
                dilations.append(rate)
                current_stride *= layer_stride
                in_ch = mid_ch * EXPANSION
            self.add_module(name, nn.Sequential(*layers))
            self.block_names.append(name)
            self.unit_dilation[name] = dilations
            available.append(FeatureInfo(name, in_ch, current_stride))
        self._order = [info.name for info in available]

        self._setup(
            available,
            out_features,
            layer_of=self._order.index,
            default=list({info.stride: info.name for info in available}.values()),
            valid_names=str(self._order),
            layer_stage=range(len(self._order)),  # stage 0 = stem, k = block k
            frozen_stages=frozen_stages,
            norm_eval=norm_eval,
            nonlinearity="relu",
        )

    def _layers(self) -> list[nn.Module]:
        return [getattr(self, name) for name in self._order]


def resnet101_beta(
    *,
    output_stride: Literal[8, 16, 32] = 32,
    multi_grid: Sequence[int] = (1, 2, 4),
    out_features: Sequence[str] | None = None,
    frozen_stages: int = -1,
    norm_eval: bool = False,
    norm_layer: NormLayer | None = None,
    tf_same_padding: bool = False,
) -> ResNet:
    """DeepLab's ``resnet_v1_101_beta``: blocks ``[3, 4, 23, 3]``, stem 64/64/128, multi-grid ``(1, 2, 4)``."""
    return ResNet(
        RESNET101_BLOCKS,
        output_stride=output_stride,
        multi_grid=multi_grid,
        out_features=out_features,
        frozen_stages=frozen_stages,
        norm_eval=norm_eval,
        norm_layer=norm_layer,
        tf_same_padding=tf_same_padding,
    )
