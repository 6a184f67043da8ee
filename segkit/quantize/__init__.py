"""Int8 post-training quantization (ONNX Runtime QDQ, OpenVINO via NNCF, LiteRT via litert-torch's PT2E
quantizer), verified against the float model.

    from segkit.quantize import calibration_images, quantize_model, verify_int8
    images = calibration_images(model, "data/VOCdevkit", split="train", num=200, input_size=(513, 513))
    quantize_model(model, "model_int8.onnx", images, format="onnx", input_size=(513, 513))
    print(verify_int8(model, "model_int8.onnx", images[:20]).line())
    # what `segkit quantize` runs: a checkpoint (float or QAT) -> a verified int8 file
    report = quantize_checkpoint("best.pth", "model_int8.tflite", format="tflite", calib_data="data")
"""

from __future__ import annotations

from segkit.quantize.calib import calibration_images, fit_to_size
from segkit.quantize.check import Int8Report, verify_int8
from segkit.quantize.command import is_qat_checkpoint, quantize_checkpoint
from segkit.quantize.ptq import FORMATS, QuantizeError, quantize_model

__all__ = [
    "FORMATS",
    "Int8Report",
    "QuantizeError",
    "calibration_images",
    "fit_to_size",
    "is_qat_checkpoint",
    "quantize_checkpoint",
    "quantize_model",
    "verify_int8",
]
