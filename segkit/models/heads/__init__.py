"""Segmentation heads: DeepLabV3 (ASPP or the light MNet V2* head) and the auxiliary FCN head."""

from segkit.models.heads.deeplabv3 import DeepLabV3Head, default_aspp_rates
from segkit.models.heads.fcn import FCNHead

__all__ = ["DeepLabV3Head", "FCNHead", "default_aspp_rates"]
