"""Convert transformers' MobileNetV2 models (the float official weights on the Hugging Face Hub) to segkit.

``files`` reads a model folder (``config.json`` + ``model.safetensors`` / ``pytorch_model.bin``) or downloads
``hf:ORG/NAME``; ``mapping`` turns its config and tensor names into segkit's; ``convert`` builds, loads and writes::

    from segkit.convert.hf import convert_hf
    conversion = convert_hf("hf:google/deeplabv3_mobilenet_v2_1.0_513", "deeplab_float.pth")

``transformers`` is never imported; ``huggingface_hub`` only for an ``hf:`` download.
"""

from segkit.convert.hf.convert import HFConversion, convert_hf, load_hf_model
from segkit.convert.hf.files import (
    HF_PREFIX,
    HFConversionError,
    HFFolder,
    download_hub_model,
    parse_hub_id,
    read_hf_folder,
    read_safetensors,
)
from segkit.convert.hf.mapping import ARCHITECTURES

__all__ = [
    "ARCHITECTURES",
    "HF_PREFIX",
    "HFConversion",
    "HFConversionError",
    "HFFolder",
    "convert_hf",
    "download_hub_model",
    "load_hf_model",
    "parse_hub_id",
    "read_hf_folder",
    "read_safetensors",
]
