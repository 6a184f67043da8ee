"""MobileNetV1 backbone with an output stride of 8, 16 or 32.

Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
Applications", 2017, https://arxiv.org/abs/1704.04861 (Table 1). The "MNet V1" rows of the
MobileNetV2 paper's Table 7 put a DeepLabV3 ASPP head on its 1024-channel output.

Layout of TF-slim's ``mobilenet_v1``: a 3x3 stride-2 stem conv (``conv2d_0``) and 13
depthwise-separable blocks (``conv2d_1`` .. ``conv2d_13``: depthwise 3x3 -> BN -> ReLU6 ->
pointwise 1x1 -> BN -> ReLU6). Output stride follows the same official rule as segkit's
MobileNetV2 (and slim's ``mobilenet_v1_base``; :func:`~segkit.models.backbones._base.dilation_schedule`): once the running stride reaches the target, a
later stride-2 layer gets stride 1 and keeps the previous rate; the layers after it get the rate
multiplied by that stride. Only depthwise convs are dilated.

This module imports nothing from segkit outside ``segkit.models.backbones``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import nn

from segkit.models.backbones._base import Backbone, FeatureInfo, NormLayer, check_output_stride, dilation_schedule
from segkit.models.backbones.mobilenetv2 import MIN_DEPTH, conv_norm_act, make_divisible

__all__ = ["MobileNetV1", "DepthwiseSeparable"]

# (output channels, stride) of the 13 depthwise-separable blocks -- Table 1 of the paper.
DEPTHWISE_SEPARABLE_SETTING: tuple[tuple[int, int], ...] = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)


class DepthwiseSeparable(nn.Sequential):
    """Depthwise 3x3 (strided or dilated) -> BN -> ReLU6 -> pointwise 1x1 -> BN -> ReLU6."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        stride: int,
        norm_layer: NormLayer,
        *,
        dilation: int = 1,
        tf_same_padding: bool = False,
    ) -> None:
        super().__init__(
            conv_norm_act(
                in_ch,
                in_ch,
                3,
                norm_layer,
                stride=stride,
                dilation=dilation,
                groups=in_ch,
                tf_same_padding=tf_same_padding,
            ),
            conv_norm_act(in_ch, out_ch, 1, norm_layer),
        )
        self.stride = stride
        self.dilation = dilation


def _depth(channels: int, width_mult: float, round_nearest: int) -> int:
    """Channels of a layer: slim MobileNetV1's ``max(int(c * width_mult), 8)`` with ``round_nearest=1``,
    else the nearest multiple of ``round_nearest`` (as MobileNetV2)."""
    if round_nearest == 1:
        return max(int(channels * width_mult), MIN_DEPTH)
    return make_divisible(channels * width_mult, round_nearest, MIN_DEPTH)


class MobileNetV1(Backbone):
    """MobileNetV1 feature extractor returning a dict of named feature maps.

    Args:
        width_mult: channel multiplier (depth multiplier in TF), e.g. 1.0, 0.5.
        round_nearest: round channel counts to a multiple of this; 1 gives slim's ``max(int(c * width_mult), 8)``.
        output_stride: stride of the deepest features, 8, 16 or 32 (dilation beyond).
        out_features: names of the layers to return, ``conv2d_0`` .. ``conv2d_13``.
            Default: the last layer of every stride.
        frozen_stages: -1 freezes nothing; ``k >= 0`` freezes the stem and the first ``k``
            depthwise-separable blocks (of 13): no gradients, BN in eval mode.
        norm_eval: keep every norm layer in eval mode (running statistics frozen) in ``train()``.
        norm_layer: builds the norm layer from a channel count; default ``nn.BatchNorm2d``.
        tf_same_padding: TF 'SAME' padding for the stride-2 convs (TF-trained weights at even sizes).
    """

    def __init__(
        self,
        *,
        width_mult: float = 1.0,
        round_nearest: int = 8,
        output_stride: Literal[8, 16, 32] = 32,
        out_features: Sequence[str] | None = None,
        frozen_stages: int = -1,
        norm_eval: bool = False,
        norm_layer: NormLayer | None = None,
        tf_same_padding: bool = False,
    ) -> None:
        super().__init__()
        check_output_stride(output_stride)
        if not (isinstance(width_mult, (int, float)) and width_mult > 0):
            raise ValueError(f"width_mult must be a number > 0 (e.g. 1.0 or 0.5), got {width_mult!r}.")
        if not (isinstance(round_nearest, int) and round_nearest >= 1):
            raise ValueError(f"round_nearest must be an integer >= 1 (1 disables rounding), got {round_nearest!r}.")
        num_blocks = len(DEPTHWISE_SEPARABLE_SETTING)
        if not (isinstance(frozen_stages, int) and -1 <= frozen_stages <= num_blocks):
            raise ValueError(
                f"frozen_stages must be -1 (none) or 0..{num_blocks} (0 = stem only), got {frozen_stages!r}."
            )
        norm_layer = norm_layer or nn.BatchNorm2d
        self.output_stride = output_stride

        in_ch = _depth(32, width_mult, round_nearest)
        layers: list[nn.Module] = [conv_norm_act(3, in_ch, 3, norm_layer, stride=2, tf_same_padding=tf_same_padding)]
        available = [FeatureInfo("conv2d_0", in_ch, 2)]
        self.layer_dilation = [1]  # dilation of every layer's depthwise conv (1 for the stem)
        schedule = dilation_schedule([s for _, s in DEPTHWISE_SEPARABLE_SETTING], output_stride, input_stride=2)
        current_stride = 2
        for (c, _), (layer_stride, layer_rate) in zip(DEPTHWISE_SEPARABLE_SETTING, schedule):
            out_ch = _depth(c, width_mult, round_nearest)
            layers.append(
                DepthwiseSeparable(
                    in_ch, out_ch, layer_stride, norm_layer, dilation=layer_rate, tf_same_padding=tf_same_padding
                )
            )
            current_stride *= layer_stride
            available.append(FeatureInfo(f"conv2d_{len(layers) - 1}", out_ch, current_stride))
            self.layer_dilation.append(layer_rate)
            in_ch = out_ch
        self.features = nn.Sequential(*layers)

        self._setup(
            available,
            out_features,
            layer_of=lambda name: int(name[7:]),
            default=list({info.stride: info.name for info in available}.values()),
            valid_names=f"conv2d_0 .. conv2d_{num_blocks}",
            layer_stage=range(len(layers)),  # stage k = conv2d_k
            frozen_stages=frozen_stages,
            norm_eval=norm_eval,
        )

    def _layers(self) -> nn.Sequential:
        return self.features
