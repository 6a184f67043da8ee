"""Run exported files (ONNX Runtime, OpenVINO, LiteRT) with the call contract of a segkit model.

from segkit.runtimes import load_exported
model = load_exported("model.onnx")            # or .tflite, or an OpenVINO .xml; runtime= to choose
logits = model(x)["out"]                       # x: normalised float images [N, 3, H, W]
"""

from __future__ import annotations

from segkit.utils.lazy import lazy_exports

# public name -> defining module, imported on first use (segkit.runtimes.names stays light for the CLI parsers)
_EXPORTS = {
    "BY_EXTENSION": "segkit.runtimes.names",
    "RUNTIMES": "segkit.runtimes.names",
    "ExportedModelError": "segkit.runtimes.backends",
    "ExportedModel": "segkit.runtimes.runner",
    "load_exported": "segkit.runtimes.runner",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
