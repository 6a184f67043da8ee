"""What ``segkit export`` can write, without importing torch: the formats and their file extensions, the graph's
input/output kinds and the ONNX exporters with the opsets they write (the command-line parser offers them)."""

from __future__ import annotations

__all__ = [
    "DEFAULT_EXPORTER",
    "EXPORTERS",
    "EXTENSIONS",
    "FORMATS",
    "INPUTS",
    "MAX_OPSET",
    "OPSET",
    "OPSETS",
    "OUTPUTS",
]

# openvino: an .xml with its .bin beside it; web: a folder (page, script, ONNX model, onnxruntime-web)
FORMATS = ("onnx", "openvino", "tflite", "executorch", "web")
EXTENSIONS = {".onnx": "onnx", ".xml": "openvino", ".tflite": "tflite", ".pte": "executorch"}  # extension -> format

INPUTS = ("float", "uint8")  # float: normalised images; uint8: RGB NHWC, normalised in the graph
OUTPUTS = ("logits", "labels")  # logits at the input size, or the uint8 label map (argmax in the graph)

OPSET = 18  # the dynamo exporter's native opset; ONNX Runtime >= 1.14, OpenVINO >= 2023.0
EXPORTERS = ("torchscript", "dynamo")
DEFAULT_EXPORTER = "dynamo"  # half the nodes (BN folded, no shape arithmetic)
MAX_OPSET = 23  # the newest opset torch.onnx writes (torch.onnx._constants.ONNX_MAX_OPSET)
# exporter -> the opsets it writes: the dynamo exporter has no implementations below 18 (asked for less it silently
# writes 18), the TorchScript tracer none below 7
OPSETS = {"dynamo": (OPSET, MAX_OPSET), "torchscript": (7, MAX_OPSET)}
