"""Run exported files (ONNX Runtime, OpenVINO, LiteRT) with the call contract of a segkit model.

from segkit.runtimes import load_exported
model = load_exported("model.onnx")            # or .tflite, or an OpenVINO .xml; runtime= to choose
logits = model(x)["out"]                       # x: normalised float images [N, 3, H, W]
"""

from __future__ import annotations

from segkit.runtimes.backends import BY_EXTENSION, RUNTIMES, ExportedModelError
from segkit.runtimes.runner import ExportedModel, load_exported

__all__ = [
    "BY_EXTENSION",
    "RUNTIMES",
    "ExportedModel",
    "ExportedModelError",
    "load_exported",
]
