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
MobileNets): once the running stride reaches the target, a later strided unit gets stride 1 and keeps
the previous rate; the units after it get the rate multiplied by that stride.

This module imports nothing from segkit's config or data code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.backbones.mobilenetv2 import FeatureInfo, NormLayer

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
            self.downsample: nn.Module = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), norm_layer(out_ch))
        elif stride > 1:
            self.downsample = nn.MaxPool2d(1, stride)  # slim's subsample(): no parameters
        else:
            self.downsample = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.downsample(x))


class ResNet(nn.Module):
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
        if output_stride not in (8, 16, 32):
            raise ValueError(
                f"output_stride must be 8, 16 or 32, got {output_stride!r}. "
                "Use 16 (DeepLab default), 8 (denser, ~4x the backbone compute) or 32 (classification)."
            )
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
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        c1, c2, c3 = stem_channels
        self.stem = nn.Sequential(
            conv_bn_relu(3, c1, norm_layer, stride=2),
            conv_bn_relu(c1, c2, norm_layer),
            conv_bn_relu(c2, c3, norm_layer),
            (MaxPool2dSame if tf_same_padding else nn.MaxPool2d)(3, 2, padding=0 if tf_same_padding else 1),
        )
        info = [FeatureInfo("stem", c3, 4)]
        self.block_names: list[str] = []
        self.unit_dilation: dict[str, list[int]] = {}  # dilation of every unit's 3x3 conv, per block
        in_ch, current_stride, rate = c3, 4, 1
        for b, (name, mid_ch, units, last_stride) in enumerate(blocks):
            is_last_block = b == len(blocks) - 1
            layers: list[nn.Module] = []
            dilations: list[int] = []
            for i in range(units):
                stride = last_stride if i == units - 1 else 1
                unit_rate = multi_grid[i] if is_last_block else 1
                if stride > 1 and current_stride == output_stride:
                    layer_stride, layer_rate = 1, rate  # keeps the previous rate ...
                    rate *= stride  # ... the units after it get the multiplied rate
                else:
                    layer_stride, layer_rate = stride, rate
                    current_stride *= stride
                layers.append(Bottleneck(in_ch, mid_ch, layer_stride, norm_layer, dilation=layer_rate * unit_rate))
                dilations.append(layer_rate * unit_rate)
                in_ch = mid_ch * EXPANSION
            self.add_module(name, nn.Sequential(*layers))
            self.block_names.append(name)
            self.unit_dilation[name] = dilations
            info.append(FeatureInfo(name, in_ch, current_stride))
        all_info = {i.name: i for i in info}
        self._order = [i.name for i in info]

        if out_features is None:
            out_features = list({i.stride: i.name for i in info}.values())
        unknown = [name for name in out_features if name not in all_info]
        if unknown or not out_features:
            raise ValueError(
                f"out_features {list(out_features)!r} has unknown names {unknown}; valid names are {self._order}."
            )
        self.out_features = sorted(out_features, key=self._order.index)
        self.feature_info = [all_info[name] for name in self.out_features]
        self._last_needed = self._order.index(self.out_features[-1])

        self._init_weights()
        self._freeze_stages()

    @property
    def out_channels(self) -> int:
        """Channels of the deepest returned feature."""
        return self.feature_info[-1].channels

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _frozen_layers(self) -> list[nn.Module]:
        stages = [self.stem] + [getattr(self, name) for name in self.block_names]
        return stages[: self.frozen_stages + 1]

    def _freeze_stages(self) -> None:
        for layer in self._frozen_layers():
            layer.eval()
            for p in layer.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> ResNet:
        super().train(mode)
        if mode:
            for layer in self._frozen_layers():
                layer.eval()
            if self.norm_eval:
                for m in self.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.eval()
        return self

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        # x: [N, 3, H, W], any H and W; each feature: [N, C, ceil(H / stride), ceil(W / stride)]
        outputs: dict[str, Tensor] = {}
        wanted = set(self.out_features)
        for idx, name in enumerate(self._order):
            x = getattr(self, name)(x)
            if name in wanted:
                outputs[name] = x
            if idx == self._last_needed:
                break
        return outputs


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
    return ResNet(RESNET101_BLOCKS, output_stride=output_stride, multi_grid=multi_grid, out_features=out_features,
                  frozen_stages=frozen_stages, norm_eval=norm_eval, norm_layer=norm_layer,
                  tf_same_padding=tf_same_padding)
