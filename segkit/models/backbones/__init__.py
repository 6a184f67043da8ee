"""Backbones: ``nn.Module``s returning ``dict[str, Tensor]`` and publishing ``feature_info``.

Importable alone (no config or data code), e.g. to drive a torchvision detector::

    from segkit.models.backbones import MobileNetV2
"""

from segkit.models.backbones.mobilenetv1 import MobileNetV1
from segkit.models.backbones.mobilenetv2 import FeatureInfo, MobileNetV2, load_backbone_state, load_torchvision_weights
from segkit.models.backbones.resnet import ResNet, resnet101_beta

__all__ = ["FeatureInfo", "MobileNetV1", "MobileNetV2", "ResNet", "load_torchvision_weights", "resnet101_beta"]
