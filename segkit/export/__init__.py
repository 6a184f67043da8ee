"""Export a segkit model to ONNX or LiteRT (TFLite), with its metadata, verified in the runtime.

    from segkit.export import export_checkpoint, export_onnx, export_tflite, read_metadata, verify
    export_onnx(model, "model.onnx", input_size=(513, 513), input="uint8", output="labels")
    report = verify(model, "model.onnx")   # max |logit diff|, relative diff, pixel agreement
    # what `segkit export` runs: a checkpoint -> a file, verified in its runtime
    report = export_checkpoint("best.pth", "model.tflite", input_size=(513, 513))

The graph holds what the options ask for: ``input="uint8"`` puts the normalisation inside (RGB uint8
NHWC in), ``output="labels"`` the argmax (the upsampling to the input size is always inside: it is
part of the segmentor). Resizing and padding an image to a static input size happen on the host
(:mod:`segkit.evaluation.predict`'s fixed-input protocol), in float, for checkpoints and exported files alike.
"""

from __future__ import annotations

from segkit.export.cache import cached_export, load_for_tools
from segkit.export.command import EXTENSIONS, FORMATS, ExportReport, export_checkpoint, export_format, export_model
from segkit.export.errors import ExportError
from segkit.export.onnx import DEFAULT_EXPORTER, EXPORTERS, OPSET, export_onnx
from segkit.export.tflite import export_tflite
from segkit.export.verify import VerifyReport, verification_images, verify
from segkit.export.wrapper import INPUTS, OUTPUTS, ExportWrapper
from segkit.runtimes.metadata import model_metadata, read_metadata, write_tflite_metadata

__all__ = [
    "DEFAULT_EXPORTER",
    "EXPORTERS",
    "EXTENSIONS",
    "FORMATS",
    "INPUTS",
    "OPSET",
    "OUTPUTS",
    "ExportError",
    "ExportReport",
    "ExportWrapper",
    "VerifyReport",
    "cached_export",
    "export_checkpoint",
    "export_format",
    "export_model",
    "export_onnx",
    "export_tflite",
    "load_for_tools",
    "model_metadata",
    "read_metadata",
    "verification_images",
    "verify",
    "write_tflite_metadata",
]
