"""The runtimes an exported file runs in and the file extension each takes by default, without importing them (the
command-line parsers offer them as ``--runtime`` choices)."""

from __future__ import annotations

__all__ = ["BY_EXTENSION", "RUNTIMES"]

RUNTIMES = ("onnxruntime", "openvino", "litert", "executorch")
BY_EXTENSION = {".onnx": "onnxruntime", ".xml": "openvino", ".tflite": "litert", ".pte": "executorch"}
