"""segkit: MobileNetV2 + DeepLabV3 semantic segmentation, faithful to the paper's Table 7.

Public API::

    import segkit
    cfg = segkit.load_config("voc_mnv2_os16", ["model.output_stride=8"])
    model = segkit.build_model(cfg).eval()
    model = segkit.load_model("work_dirs/demo/best.pth")
"""

from segkit.checkpoint import load_model
from segkit.config import Config, ConfigError, load_config
from segkit.models import build_model

__all__ = ["Config", "ConfigError", "build_model", "load_config", "load_model"]
__version__ = "0.1.0"
