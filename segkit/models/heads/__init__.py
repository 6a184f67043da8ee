"""Segmentation heads: DeepLabV3 (ASPP or the light MNet V2* head), the DeepLabV3+ decoder and the auxiliary FCN head."""

from segkit.models.heads.deeplabv3 import DeepLabV3Head, default_aspp_rates
from segkit.models.heads.deeplabv3plus import DeepLabV3PlusDecoder
from segkit.models.heads.fcn import FCNHead

__all__ = ["DeepLabV3Head", "DeepLabV3PlusDecoder", "FCNHead", "default_aspp_rates"]
