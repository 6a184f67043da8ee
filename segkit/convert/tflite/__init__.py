"""Convert official TFLite MobileNetV2 models (DeepLabV3 segmentors, ImageNet classifiers) to segkit.

The modules follow the data: ``reader`` parses the flatbuffer into a plain-Python graph,
``matcher`` and ``heads`` walk it (backbone blocks, then DeepLabV3(+) / classifier heads),
``architecture`` turns what they found into a :class:`TFLiteArchitecture` (and a segkit config),
``weights`` builds the segkit model and loads the graph's tensors into it, and ``executor`` runs the
graph op by op in float as a reference::

    conversion = convert_tflite("deeplabv3_mnv2_pascal_quant.tflite", "deeplab_official.pth")
    print(conversion.architecture.summary())

Reading needs the optional ``tflite`` package (``pip install 'segkit-deeplab[tflite]'``), imported only
when a file is read.
"""

from segkit.convert.tflite.architecture import TFLiteArchitecture, infer_architecture
from segkit.convert.tflite.executor import legacy_resize_bilinear, run_graph
from segkit.convert.tflite.heads import DecoderSpec
from segkit.convert.tflite.matcher import ConvSpec, TFLiteConversionError
from segkit.convert.tflite.reader import (
    QuantParams,
    TFLiteFormatError,
    TFLiteGraph,
    TFLiteOp,
    TFLiteTensor,
    load_tflite,
)
from segkit.convert.tflite.weights import TFLiteConversion, build_converted_model, convert_tflite, read_labels

__all__ = [
    "ConvSpec",
    "DecoderSpec",
    "QuantParams",
    "TFLiteArchitecture",
    "TFLiteConversion",
    "TFLiteConversionError",
    "TFLiteFormatError",
    "TFLiteGraph",
    "TFLiteOp",
    "TFLiteTensor",
    "build_converted_model",
    "convert_tflite",
    "infer_architecture",
    "legacy_resize_bilinear",
    "load_tflite",
    "read_labels",
    "run_graph",
]
