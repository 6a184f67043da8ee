"""Converters from other frameworks' files to segkit checkpoints: TFLite files and Hugging Face (transformers) models.

    from segkit.convert import convert_hf, convert_tflite
    conversion = convert_tflite("deeplabv3_mnv2_pascal_quant.tflite", "deeplab_official.pth")
    conversion = convert_hf("hf:google/deeplabv3_mobilenet_v2_1.0_513", "deeplab_float.pth")

The TFLite modules (:mod:`segkit.convert.tflite`) need the optional ``tflite`` package
(``pip install 'segkit-deeplab[tflite]'``) and import it only when a file is read.
"""

from segkit.convert.hf import HFConversion, HFConversionError, convert_hf
from segkit.convert.tflite import (
    TFLiteArchitecture,
    TFLiteConversion,
    TFLiteConversionError,
    TFLiteFormatError,
    TFLiteGraph,
    build_converted_model,
    convert_tflite,
    infer_architecture,
    load_tflite,
    read_labels,
    run_graph,
)

__all__ = [
    "HFConversion",
    "HFConversionError",
    "TFLiteArchitecture",
    "TFLiteConversion",
    "TFLiteConversionError",
    "TFLiteFormatError",
    "TFLiteGraph",
    "build_converted_model",
    "convert_hf",
    "convert_tflite",
    "infer_architecture",
    "load_tflite",
    "read_labels",
    "run_graph",
]
