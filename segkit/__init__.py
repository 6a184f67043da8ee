"""segkit: MobileNetV2 + DeepLabV3 semantic segmentation, faithful to the paper's Table 7.

Public API::

    import segkit
    cfg = segkit.load_config("voc_mnv2_os16", ["model.output_stride=8"])
    model = segkit.build_model(cfg).eval()
    model = segkit.load_model("work_dirs/demo_mnv2_os16/best.pth")   # any segkit or converted checkpoint
    labels = model.predict("photo.jpg")                               # [H, W] label map, the checkpoint's protocol
    labels, probs = model.predict(image, probs=True)                  # path, PIL image or RGB uint8 array
    fast = segkit.optimize_for_inference(model)                       # BN folded, channels_last

The command line is ``segkit <subcommand>`` (:mod:`segkit.cli`). Attributes are imported lazily, so ``from segkit.models.backbones import MobileNetV2`` loads
the backbone alone (no config, YAML or data code).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> defining module (imported on first use)

_API = {
    "Config": "segkit.config",
    "ConfigError": "segkit.config",
    "load_config": "segkit.config",
    "build_model": "segkit.models",
    "load_model": "segkit.checkpoint.load",
    "load_state_into": "segkit.checkpoint.load",
    "optimize_for_inference": "segkit.models.fuse",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'segkit' has no attribute {name!r}; public API: {', '.join(__all__)}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
