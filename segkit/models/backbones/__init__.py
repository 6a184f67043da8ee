"""Backbones: ``nn.Module``s returning ``dict[str, Tensor]`` and publishing ``feature_info``.

Importable alone (nothing from segkit outside this package), e.g. to drive a torchvision detector::

    from segkit.models.backbones import MobileNetV2
"""

from segkit.models.backbones._base import Backbone, FeatureInfo, NormLayer, count_parameters, dilation_schedule
from segkit.models.backbones.mobilenetv1 import MobileNetV1
from segkit.models.backbones.mobilenetv2 import MobileNetV2, load_backbone_state, load_torchvision_weights
from segkit.models.backbones.resnet import ResNet, resnet101_beta

__all__ = [
    "Backbone",
    "FeatureInfo",
    "MobileNetV1",
    "MobileNetV2",
    "NormLayer",
    "ResNet",
    "count_parameters",
    "dilation_schedule",
    "load_backbone_state",
    "load_torchvision_weights",
    "resnet101_beta",
]
