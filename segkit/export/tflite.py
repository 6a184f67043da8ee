"""LiteRT (TFLite) export through Google's ``litert-torch`` (``litert_torch.convert``, built on torch.export).

Static shapes only, NHWC input (uint8 input is NHWC RGB as well), logits out NHWC or labels [N, H, W].
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segkit.export.errors import ExportError, export_failure
from segkit.export.onnx import check_size
from segkit.export.wrapper import prepare_export
from segkit.runtimes.metadata import write_tflite_metadata
from segkit.utils.quiet import quiet_libraries

DYNAMIC_REFUSED = (
    "LiteRT export needs a static input size (litert-torch converts static shapes only); "
    "drop --dynamic and pass --input-size H W, or export --format onnx for dynamic shapes."
)


def _import_litert() -> Any:
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")  # no progress table on the terminal
    try:
        with quiet_libraries():  # TensorFlow's C++ logs a few lines as it loads
            import litert_torch
    except ImportError as exc:
        raise ExportError("LiteRT export needs 'litert-torch': pip install 'segkit-deeplab[deploy]'.") from exc
    return litert_torch


def export_tflite(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    input_size: tuple[int, int] | int = (513, 513),
    dynamic: bool = False,
    input: str = "float",  # noqa: A002 - the command line's --input
    output: str = "logits",
    metadata: dict[str, Any] | None = None,
    module: nn.Module | None = None,
    argmax_fusion: bool = False,
    quant_config: Any = None,
) -> dict[str, Any]:
    """Write ``model`` as a .tflite file (atomically, with its segkit metadata) and return the metadata.

    Args:
        model: segkit segmentor (eval mode).
        path: the .tflite file.
        input_size: (H, W), the file's fixed input size.
        dynamic: refused (litert-torch converts static shapes only).
        input: "float" (normalised NHWC) or "uint8" (RGB NHWC, normalised in the graph).
        output: "logits" (NHWC float) or "labels" (uint8 [N, H, W]).
        metadata: extra entries merged into the segkit metadata.
        module: an already wrapped (e.g. quantized) module to convert instead of ``ExportWrapper(model, ...)``.
        argmax_fusion: with ``output="labels"``, the argmax at the logits' resolution upscaled with nearest
            neighbour (:func:`~segkit.export.wrapper.fused_labels`) instead of the official argmax of the upsampled
            logits; recorded in the metadata.
        quant_config: passed to ``litert_torch.convert`` (the int8 path).
    """
    if dynamic:
        raise ExportError(DYNAMIC_REFUSED)
    h, w = check_size(input_size, dynamic)
    litert_torch = _import_litert()
    wrapper, example, meta = prepare_export(
        model,
        module,
        input=input,
        output=output,
        layout="nhwc",
        size=(h, w),
        dynamic=False,
        fmt="tflite",
        metadata=metadata,
        argmax_fusion=argmax_fusion,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from segkit.utils.io import atomic_path

    with atomic_path(path) as tmp:
        try:
            with warnings.catch_warnings(), torch.no_grad(), quiet_libraries():
                warnings.simplefilter("ignore")
                kwargs = {"quant_config": quant_config} if quant_config is not None else {}
                converted = litert_torch.convert(wrapper, (example,), **kwargs)
                converted.export(str(tmp))
        except ExportError:
            raise
        except Exception as exc:  # noqa: BLE001 - converter errors become one line naming the layer
            raise export_failure("LiteRT", exc, wrapper, example) from exc
        write_tflite_metadata(tmp, meta)
    return meta
