"""Backbones: ``nn.Module``s returning ``dict[str, Tensor]`` and publishing ``feature_info``.

Importable alone (no config or data code), e.g. to drive a torchvision detector::

    from segkit.models.backbones import MobileNetV2
"""

from segkit.models.backbones.mobilenetv2 import FeatureInfo, MobileNetV2, load_torchvision_weights

__all__ = ["FeatureInfo", "MobileNetV2", "load_torchvision_weights"]
