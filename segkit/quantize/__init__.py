"""Int8 post-training quantization (ONNX Runtime QDQ, OpenVINO via NNCF, LiteRT via litert-torch's PT2E
quantizer), verified against the float model.

    from segkit.quantize import calibration_images, quantize_model, verify_int8
    images = calibration_images(model, "data/VOCdevkit", split="train", num=200, input_size=(513, 513))
    quantize_model(model, "model_int8.onnx", images, format="onnx", input_size=(513, 513))
    print(verify_int8(model, "model_int8.onnx", images[:20]).line())
    # what `segkit quantize` runs: a checkpoint (float or QAT) -> a verified int8 file
    report = quantize_checkpoint("best.pth", "model_int8.tflite", calib_data="data")  # format from the name
"""

from __future__ import annotations

from segkit.utils.lazy import lazy_exports

# public name -> defining module, imported on first use: segkit.quantize.formats (the CLI's choices) stays light
_EXPORTS = {
    "EXTENSIONS": "segkit.quantize.formats",
    "FORMATS": "segkit.quantize.formats",
    "Int8Report": "segkit.quantize.check",
    "QuantizeError": "segkit.quantize.formats",
    "calibration_images": "segkit.quantize.calib",
    "fit_to_size": "segkit.quantize.calib",
    "is_qat_checkpoint": "segkit.quantize.command",
    "quantize_checkpoint": "segkit.quantize.command",
    "quantize_format": "segkit.quantize.formats",
    "quantize_model": "segkit.quantize.ptq",
    "verify_int8": "segkit.quantize.check",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
