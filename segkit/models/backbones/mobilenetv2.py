"""MobileNetV2 backbone with an output stride of 8, 16 or 32.

Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018,
https://arxiv.org/abs/1801.04381

Parameter names equal ``torchvision.models.mobilenet_v2().features`` so torchvision's
ImageNet checkpoints load strictly. Layers are numbered like the official TensorFlow
DeepLab endpoints: ``layer_1`` is the stem conv (``features.0``), ``layer_N`` is
``features.(N-1)``, ``layer_18`` the last 320-channel block and ``layer_19`` the
optional 1x1 conv to 1280 channels. Every bottleneck block also publishes the inner end point
``layer_N/depthwise_output`` (TF's name: the depthwise conv's output after BN + ReLU6), which
DeepLabV3+ reads as its low-level feature.

Output stride follows the official DeepLab rule (:func:`~segkit.models.backbones._base.dilation_schedule`):
once the running stride reaches the target, a later stride-2 layer gets stride 1 and keeps the
previous dilation rate; every layer after it gets the rate multiplied by that stride. Only
depthwise convs are dilated. (torchvision and smp give the new rate to the layer that lost its
stride; that costs the same but does not reproduce the official weights' outputs.)

This module imports nothing from segkit outside ``segkit.models.backbones``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segkit.models.backbones._base import (
    Backbone,
    FeatureInfo,
    NormLayer,
    check_output_stride,
    dilation_schedule,
    unwrap_state_dict,
)

__all__ = [
    "FeatureInfo",
    "InvertedResidual",
    "MobileNetV2",
    "load_backbone_state",
    "load_torchvision_weights",
    "make_divisible",
]

MIN_DEPTH = 8  # TF slim's min_depth: no layer narrower than 8 channels, whatever the width multiplier

# (expand ratio t, output channels c, repeats n, first stride s) -- Table 2 of the paper.
INVERTED_RESIDUAL_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(value: float, divisor: int, min_value: int | None = None) -> int:
    """Round channels to the nearest multiple of ``divisor`` (half up), at least ``min_value`` (default:
    ``divisor``), and not 10% below ``value``: TF slim's ``_make_divisible``, as torchvision's."""
    min_value = min_value or divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding computed from the input size.

    TF pads asymmetrically (more at the bottom/right) when a stride-2 conv meets an even
    input size; PyTorch's symmetric padding then shifts the output by one pixel.
    """

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, k, s, d in zip(x.shape[-2:], self.kernel_size, self.stride, self.dilation):
            out = math.ceil(size / s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def conv_norm_act(
    in_ch: int,
    out_ch: int,
    kernel_size: int,
    norm_layer: NormLayer,
    *,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
    tf_same_padding: bool = False,
) -> nn.Sequential:
    """conv -> norm -> ReLU6, indexed ``0``/``1``/``2`` like torchvision's Conv2dNormActivation."""
    conv_cls = Conv2dSame if tf_same_padding and stride > 1 else nn.Conv2d
    padding = 0 if conv_cls is Conv2dSame else (kernel_size - 1) // 2 * dilation
    conv = conv_cls(in_ch, out_ch, kernel_size, stride, padding, dilation=dilation, groups=groups, bias=False)
    return nn.Sequential(conv, norm_layer(out_ch), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """Expand 1x1 -> depthwise 3x3 (strided or dilated) -> linear project 1x1, residual when shapes match."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        stride: int,
        expand_ratio: int,
        norm_layer: NormLayer,
        *,
        dilation: int = 1,
        tf_same_padding: bool = False,
    ) -> None:
        super().__init__()
        hidden = int(round(in_ch * expand_ratio))
        self.stride = stride
        self.dilation = dilation
        self.hidden_channels = hidden
        self.use_res_connect = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(conv_norm_act(in_ch, hidden, 1, norm_layer))
        self._depthwise_index = len(layers)
        layers += [
            conv_norm_act(
                hidden,
                hidden,
                3,
                norm_layer,
                stride=stride,
                dilation=dilation,
                groups=hidden,
                tf_same_padding=tf_same_padding,
            ),
            nn.Conv2d(hidden, out_ch, 1, bias=False),
            norm_layer(out_ch),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = out_ch

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)

    def forward_endpoints(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The block output and its inner end point ``depthwise_output`` (after the depthwise BN + ReLU6)."""
        h = x
        depthwise = x
        for idx, layer in enumerate(self.conv):
            h = layer(h)
            if idx == self._depthwise_index:
                depthwise = h  # [N, hidden, h, w]
        return (x + h if self.use_res_connect else h), {"depthwise_output": depthwise}


class MobileNetV2(Backbone):
    """MobileNetV2 feature extractor returning a dict of named feature maps.

    Args:
        width_mult: channel multiplier (depth multiplier in TF), e.g. 1.0, 0.5.
        round_nearest: round channel counts to the nearest multiple of this (TF's ``divisible_by``);
            1 rounds to the nearest integer, as official checkpoints exported without rounding.
        output_stride: stride of the deepest features, 8, 16 or 32 (dilation beyond).
        out_features: names of the layers to return, ``layer_1`` .. ``layer_19``, or inner end points
            of the bottleneck blocks ``layer_2/depthwise_output`` .. ``layer_18/depthwise_output``
            (the depthwise conv's output after BN + ReLU6, as TF DeepLab's end points; DeepLabV3+
            reads ``layer_4/depthwise_output``: 144 channels at stride 4 for width 1.0).
            Default: the last layer of every stride plus the last layer built.
        final_conv: build ``layer_19``, the 1x1 conv to 1280 channels. DeepLab's MNet V2*
            head reads the 320-channel ``layer_18`` and does not build it.
        frozen_stages: -1 freezes nothing; ``k >= 0`` freezes the stem and the first ``k``
            bottleneck stages (of 7; 8 also freezes ``layer_19``): no gradients, BN in eval mode.
        norm_eval: keep every norm layer in eval mode (running statistics frozen) in ``train()``.
        norm_layer: builds the norm layer from a channel count; default ``nn.BatchNorm2d``.
        tf_same_padding: TF 'SAME' padding for the stride-2 convs, to reproduce TF-trained
            weights exactly at even input sizes.
    """

    def __init__(
        self,
        *,
        width_mult: float = 1.0,
        round_nearest: int = 8,
        output_stride: Literal[8, 16, 32] = 32,
        out_features: Sequence[str] | None = None,
        final_conv: bool = True,
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
        num_stages = len(INVERTED_RESIDUAL_SETTING) + 1
        if not (isinstance(frozen_stages, int) and -1 <= frozen_stages <= num_stages):
            raise ValueError(
                f"frozen_stages must be -1 (none) or 0..{num_stages} (0 = stem only), got {frozen_stages!r}."
            )
        norm_layer = norm_layer or nn.BatchNorm2d
        self.output_stride = output_stride

        blocks = [
            (t, c, s if i == 0 else 1, stage)
            for stage, (t, c, n, s) in enumerate(INVERTED_RESIDUAL_SETTING, 1)
            for i in range(n)
        ]
        schedule = dilation_schedule([s for _, _, s, _ in blocks], output_stride, input_stride=2)
        in_ch = make_divisible(32 * width_mult, round_nearest, MIN_DEPTH)
        layers: list[nn.Module] = [conv_norm_act(3, in_ch, 3, norm_layer, stride=2, tf_same_padding=tf_same_padding)]
        available = [FeatureInfo("layer_1", in_ch, 2)]
        self.layer_stage = [0]  # stage index of every layer, for frozen_stages
        self.layer_dilation = [1]  # dilation rate of the depthwise conv of every layer (1 for the stem)
        current_stride = 2
        for (t, c, _, stage), (layer_stride, layer_rate) in zip(blocks, schedule):
            out_ch = make_divisible(c * width_mult, round_nearest, MIN_DEPTH)
            block = InvertedResidual(
                in_ch, out_ch, layer_stride, t, norm_layer, dilation=layer_rate, tf_same_padding=tf_same_padding
            )
            layers.append(block)
            current_stride *= layer_stride
            name = f"layer_{len(layers)}"
            available += [
                FeatureInfo(f"{name}/depthwise_output", block.hidden_channels, current_stride),
                FeatureInfo(name, out_ch, current_stride),
            ]
            self.layer_stage.append(stage)
            self.layer_dilation.append(layer_rate)
            in_ch = out_ch
        if final_conv:
            last_ch = make_divisible(1280 * max(1.0, width_mult), round_nearest, MIN_DEPTH)
            layers.append(conv_norm_act(in_ch, last_ch, 1, norm_layer))
            available.append(FeatureInfo(f"layer_{len(layers)}", last_ch, current_stride))
            self.layer_stage.append(num_stages)
            self.layer_dilation.append(1)
        self.features = nn.Sequential(*layers)

        outputs = [info for info in available if "/" not in info.name]
        default = sorted(
            set({info.stride: info.name for info in outputs}.values()) | {outputs[-1].name}, key=lambda n: int(n[6:])
        )
        self._setup(
            available,
            out_features,
            layer_of=lambda name: int(name.split("/")[0][6:]) - 1,
            default=default,
            valid_names=f"layer_1 .. layer_{len(layers)}"
            + ("" if final_conv else " (layer_19 needs final_conv=True)")
            + f" and layer_2/depthwise_output .. layer_{len(blocks) + 1}/depthwise_output",
            layer_stage=self.layer_stage,
            frozen_stages=frozen_stages,
            norm_eval=norm_eval,
        )

    def _layers(self) -> nn.Sequential:
        return self.features


def load_torchvision_weights(
    backbone: MobileNetV2, path: str | Path, *, strict: bool = True
) -> tuple[list[str], list[str]]:
    """Load a torchvision ImageNet ``mobilenet_v2`` checkpoint file (a local path) into ``backbone``.

    Accepts the full classifier state dict (``features.*`` + ``classifier.*``; the classifier
    is dropped) or a bare ``features`` state dict, optionally nested under ``state_dict``/``model``.
    See :func:`load_backbone_state` for the return value and ``strict``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"ImageNet weights file not found: {path}. Download torchvision's mobilenet_v2 weights "
            "(e.g. mobilenet_v2-b0353104.pth or mobilenet_v2-7ebf99e0.pth) on a machine with internet and pass its path."
        )
    state = unwrap_state_dict(torch.load(path, map_location="cpu", weights_only=True), source=str(path))
    return load_backbone_state(backbone, state, strict=strict, source=str(path))


def load_backbone_state(
    backbone: MobileNetV2, state: dict[str, Tensor], *, strict: bool = True, source: str = "state dict"
) -> tuple[list[str], list[str]]:
    """Load torchvision-named MobileNetV2 tensors (``features.*``, optional ``classifier.*``) into ``backbone``.

    Returns:
        ``(missing, unexpected)`` key lists (mis-shaped keys count as unexpected). With ``strict``
        a mismatch raises a ``RuntimeError`` listing them; otherwise the fitting tensors are loaded.
        A checkpoint's ``layer_19`` (1280-channel conv) is dropped when the backbone does not build it.
    """
    if not any(k.startswith("features.") for k in state):
        state = {f"features.{k}": v for k, v in state.items()}
    own = backbone.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    if f"features.{len(backbone.features)}.0.weight" not in own:  # no final conv: layer_19 is not used
        state = {k: v for k, v in state.items() if not k.startswith(f"features.{len(backbone.features)}.")}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shape_mismatch = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if strict and (missing or unexpected or shape_mismatch):
        raise RuntimeError(
            f"{source} does not fit this MobileNetV2 (width_mult/round_nearest must match the checkpoint). "
            f"Missing keys: {missing[:10]}{'...' if len(missing) > 10 else ''}; unexpected keys: "
            f"{unexpected[:10]}{'...' if len(unexpected) > 10 else ''}; shape mismatches: {shape_mismatch[:10]}."
        )
    backbone.load_state_dict({k: v for k, v in state.items() if k in own and k not in shape_mismatch}, strict=False)
    return missing + shape_mismatch, unexpected + shape_mismatch
