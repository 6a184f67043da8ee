"""DeepLabV3+ decoder: refines the encoder output with a low-level backbone feature.

Chen et al., "Encoder-Decoder with Atrous Separable Convolution for Semantic Image Segmentation",
ECCV 2018, https://arxiv.org/abs/1802.02611. Layout as the official TensorFlow DeepLab
(``model.py``, ``refine_by_decoder``), module names as its scopes:

- ``feature_projection0``: 1x1 conv to 48 channels + BN + ReLU on the low-level feature (for
  MobileNetV2 the end point ``layer_4/depthwise_output``: 144 channels at stride 4);
- the encoder output (the DeepLabV3 head's 256-channel projection, after its dropout) resized
  bilinearly to the low-level feature's size, then ``concat(encoder, projection)``;
- ``decoder_conv0``, ``decoder_conv1``: 3x3 convs of 256 channels + BN + ReLU, by default split
  separable as TF's ``split_separable_conv2d`` (depthwise 3x3 + BN + ReLU -> pointwise 1x1 + BN + ReLU).

The 1x1 logits conv stays in :class:`~segkit.models.heads.deeplabv3.DeepLabV3Head` (``classifier``,
TF's ``logits`` scope), which runs this decoder between its projection and the logits.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from segkit.models.backbones._base import NormLayer
from segkit.models.heads.deeplabv3 import _conv_bn_relu, separable_conv_bn_relu
from segkit.models.resize import ResizeMode, resize_bilinear

__all__ = ["DeepLabV3PlusDecoder"]


class DeepLabV3PlusDecoder(nn.Module):
    """The DeepLabV3+ decoder, returning 256-channel features at the low-level feature's resolution.

    Args:
        low_level_channels: channels of the low-level backbone feature.
        in_channels: channels of the encoder output (the head's projection, 256).
        projection_channels: filters of ``feature_projection0`` (48 in the paper and the official code).
        channels: filters of the two decoder convs (256).
        separable: depthwise-separable decoder convs (TF's ``decoder_use_separable_conv``, default True);
            False gives two regular 3x3 convs.
        align_corners: bilinear resizing convention of the encoder output (the model's).
        resize_mode: 'pytorch' or 'tf_legacy' (the model's; :mod:`segkit.models.resize`).
        norm_layer: builds the norm layer from a channel count; default ``nn.BatchNorm2d``.
    """

    def __init__(
        self,
        low_level_channels: int,
        in_channels: int = 256,
        *,
        projection_channels: int = 48,
        channels: int = 256,
        separable: bool = True,
        align_corners: bool = True,
        resize_mode: ResizeMode = "pytorch",
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        self.separable = separable
        self.align_corners = align_corners
        self.resize_mode = resize_mode
        self.out_channels = channels
        self.feature_projection0 = _conv_bn_relu(low_level_channels, projection_channels, 1, norm_layer)
        concat = in_channels + projection_channels
        if separable:
            self.decoder_conv0 = separable_conv_bn_relu(concat, channels, norm_layer)
            self.decoder_conv1 = separable_conv_bn_relu(channels, channels, norm_layer)
        else:
            self.decoder_conv0 = _conv_bn_relu(concat, channels, 3, norm_layer)
            self.decoder_conv1 = _conv_bn_relu(channels, channels, 3, norm_layer)

    def forward(self, x: Tensor, low_level: Tensor) -> Tensor:
        # x: [N, in_channels, h, w] (encoder, stride 8/16/32); low_level: [N, C_low, H', W'] (stride 4/8/16)
        low = self.feature_projection0(low_level)  # [N, 48, H', W']
        x = resize_bilinear(x, low.shape[-2:], align_corners=self.align_corners, mode=self.resize_mode)
        x = torch.cat([x, low], dim=1)  # [N, in_channels + 48, H', W'], encoder first as TF
        return self.decoder_conv1(self.decoder_conv0(x))  # [N, channels, H', W']
