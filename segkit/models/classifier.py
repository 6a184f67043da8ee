"""MobileNetV2 ImageNet classifier on segkit's backbone, with torchvision's parameter names.

Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018,
https://arxiv.org/abs/1801.04381

``MobileNetV2Classifier`` = segkit's :class:`MobileNetV2` (with the 1x1 conv to 1280
channels, output stride 32) -> global average pool -> dropout -> linear. Its state dict is
torchvision's ``mobilenet_v2`` layout (``features.*`` + ``classifier.1.weight/bias``), so a
classifier checkpoint initialises a segmentation backbone with
:func:`segkit.models.backbones.load_torchvision_weights`, and loads into
``torchvision.models.mobilenet_v2(num_classes=...)`` too (BN eps aside).

This module reads no config: ``build_classifier(cfg)`` lives in :mod:`segkit.models.build`
(also ``segkit.models.build_classifier``); loading a classifier checkpoint is ``segkit.load_model`` or
``segkit.checkpoint.load.load_classifier``.
"""

from __future__ import annotations

from torch import Tensor, nn

from segkit.models.backbones import MobileNetV2, NormLayer

__all__ = ["MobileNetV2Classifier"]


class MobileNetV2Classifier(MobileNetV2):
    """MobileNetV2 image classifier (logits, no softmax).

    Args:
        num_classes: output classes (1000 for torchvision's weights, 1001 for TF's with background).
        width_mult: channel multiplier.
        round_nearest: channel rounding; 1 disables it.
        dropout: dropout probability before the linear layer.
        norm_layer: builds the norm layer from a channel count; default ``nn.BatchNorm2d``.
        tf_same_padding: TF 'SAME' padding for stride-2 convs (TF-trained weights at even sizes).
    """

    def __init__(
        self,
        num_classes: int = 1000,
        *,
        width_mult: float = 1.0,
        round_nearest: int = 8,
        dropout: float = 0.2,
        norm_layer: NormLayer | None = None,
        tf_same_padding: bool = False,
    ) -> None:
        if not (isinstance(num_classes, int) and num_classes >= 1):
            raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}.")
        super().__init__(
            width_mult=width_mult,
            round_nearest=round_nearest,
            output_stride=32,
            out_features=["layer_19"],
            final_conv=True,
            norm_layer=norm_layer,
            tf_same_padding=tf_same_padding,
        )
        self.num_classes = num_classes
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.out_channels, num_classes))
        nn.init.normal_(self.classifier[1].weight, 0, 0.01)
        nn.init.zeros_(self.classifier[1].bias)

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        # x: [N, 3, H, W] -> logits [N, num_classes]
        features = super().forward(x)["layer_19"]  # [N, 1280, H/32, W/32]
        return self.classifier(features.mean(dim=(2, 3)))
