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

from segkit.utils.lazy import lazy_exports

# public name -> defining module, imported on first use: segkit.export.formats (the CLI's choices) stays light
_EXPORTS = {
    "DEFAULT_EXPORTER": "segkit.export.formats",
    "EXPORTERS": "segkit.export.formats",
    "EXTENSIONS": "segkit.export.formats",
    "FORMATS": "segkit.export.formats",
    "INPUTS": "segkit.export.formats",
    "OPSET": "segkit.export.formats",
    "OUTPUTS": "segkit.export.formats",
    "ExportError": "segkit.export.errors",
    "ExportReport": "segkit.export.command",
    "ExportWrapper": "segkit.export.wrapper",
    "VerifyReport": "segkit.export.verify",
    "cached_export": "segkit.export.cache",
    "export_checkpoint": "segkit.export.command",
    "export_format": "segkit.export.command",
    "export_model": "segkit.export.command",
    "export_onnx": "segkit.export.onnx",
    "export_openvino": "segkit.export.openvino",
    "export_tflite": "segkit.export.tflite",
    "load_for_tools": "segkit.export.cache",
    "model_metadata": "segkit.runtimes.metadata",
    "read_metadata": "segkit.runtimes.metadata",
    "verification_images": "segkit.export.verify",
    "verify": "segkit.export.verify",
    "write_tflite_metadata": "segkit.runtimes.metadata",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
