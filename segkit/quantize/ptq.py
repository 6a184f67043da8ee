"""Static int8 post-training quantization of a segkit model into ONNX (QDQ), OpenVINO IR or LiteRT files.

Weights are int8 per output channel, activations int8/uint8 per tensor with ranges calibrated on real
images. ONNX: fp32 export -> ``quant_pre_process`` -> ``quantize_static`` (QDQ). OpenVINO: the fp32
ONNX graph -> ``nncf.quantize``. LiteRT: ``torch.export`` -> torchao ``prepare_pt2e`` with litert-torch's
``PT2EQuantizer`` -> calibration -> ``convert_pt2e`` -> ``litert_torch.convert`` (full integer).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from segkit.utils.io import atomic_path

FORMATS = ("onnx", "openvino", "tflite")
EXTENSIONS = {"onnx": ".onnx", "openvino": ".xml", "tflite": ".tflite"}


class QuantizeError(ValueError):
    """A quantization request that cannot work; the message says what to change."""


def _as_input(image: Tensor, kind: str, mean: Sequence[float], std: Sequence[float], layout: str) -> Tensor:
    """A normalised [1, 3, H, W] image as the file's input: float NCHW/NHWC or RGB uint8 NHWC."""
    if kind == "uint8":
        m = torch.tensor(mean).view(1, 3, 1, 1)
        s = torch.tensor(std).view(1, 3, 1, 1)
        return (image * s + m).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    return image.permute(0, 2, 3, 1).contiguous() if layout == "nhwc" else image


def _check(fmt: str, path: Path, images: Sequence[dict[str, Any]]) -> None:
    if fmt not in FORMATS:
        raise QuantizeError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}.")
    if path.suffix.lower() != EXTENSIONS[fmt]:
        raise QuantizeError(
            f"--format {fmt} writes a {EXTENSIONS[fmt]} file, got --out {path}; name the output *{EXTENSIONS[fmt]}."
        )
    if not images:
        raise QuantizeError("no calibration images: pass --calib-data ROOT holding the --calib-split images.")


def quantize_model(
    model: nn.Module,
    path: str | os.PathLike,
    images: Sequence[dict[str, Any]],
    *,
    format: str = "onnx",
    input_size: tuple[int, int] = (513, 513),  # noqa: A002 - --format
    input: str = "float",
    output: str = "logits",  # noqa: A002 - --input
    progress: bool = True,
) -> dict[str, Any]:
    """Write an int8 file of ``model`` calibrated on ``images`` (from :func:`calibration_images`); returns its metadata.

    Args:
        model: a float segkit segmentor (eval mode, carrying ``segkit_config``).
        path: the output (.onnx, .xml with its .bin beside it, or .tflite); written atomically.
        images: calibration samples ``{"image": [1, 3, H, W]}`` at ``input_size``.
        format: "onnx", "openvino" or "tflite".
        input: "float" (normalised) or "uint8" (RGB NHWC, normalisation in the graph; the official files' input).
        output: "logits" or "labels" (argmax in the graph).
    """
    from segkit.export import ExportWrapper

    path = Path(path)
    _check(format, path, images)
    path.parent.mkdir(parents=True, exist_ok=True)
    layout = "nhwc" if format == "tflite" else "nchw"
    wrapper = ExportWrapper(model, input=input, output=output, layout=layout).eval()
    feeds = [_as_input(item["image"], input, wrapper.mean_rgb, wrapper.std_rgb, layout) for item in images]
    extra = {"precision": "int8", "quantization": "ptq", "num_calib": len(images)}
    if format == "tflite":
        return _tflite(model, wrapper, path, feeds, input_size, input, output, extra)
    with tempfile.TemporaryDirectory(prefix="segkit-int8-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        from segkit.export import export_onnx

        meta = export_onnx(
            model, fp32, input_size=tuple(input_size), input=input, output=output, module=wrapper, metadata=extra
        )
        if format == "onnx":
            _onnx(fp32, path, feeds, meta, Path(tmp))
        else:
            _openvino(fp32, path, feeds, meta, Path(tmp))
    return meta


def _onnx(fp32: Path, path: Path, feeds: list[Tensor], meta: dict[str, Any], tmp: Path) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from segkit.export.metadata import add_onnx_metadata

    pre = tmp / "pre.onnx"
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    name = onnx.load(str(pre), load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.items, None)
            return None if x is None else {name: x.numpy()}

    with atomic_path(path) as out:
        quantize_static(
            str(pre),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
        proto = onnx.load(str(out))
        add_onnx_metadata(proto, {**meta, "runtime": "onnxruntime"})
        onnx.save(proto, str(out))


def _openvino(fp32: Path, path: Path, feeds: list[Tensor], meta: dict[str, Any], tmp: Path) -> None:
    import json
    import logging

    import nncf
    import openvino as ov

    logging.getLogger("nncf").setLevel(logging.WARNING)
    ov_model = ov.convert_model(str(fp32))
    quantized = nncf.quantize(ov_model, nncf.Dataset(feeds, lambda x: x.numpy()), subset_size=len(feeds))
    quantized.set_rt_info(json.dumps({**meta, "exported_as": "openvino", "runtime": "openvino"}), "segkit_metadata")
    save_openvino(quantized, path, tmp)


def save_openvino(ov_model: Any, path: Path, tmp: Path | None = None) -> None:
    """Write ``path`` (.xml) and its .bin together: both to a temporary folder beside them, then moved,
    the .bin first, so a reader never finds an .xml without its weights."""
    import openvino as ov

    stage = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        ov.save_model(ov_model, str(stage / path.name), compress_to_fp16=False)
        umask = os.umask(0)
        os.umask(umask)
        for suffix in (".bin", ".xml"):
            staged = (stage / path.name).with_suffix(suffix)
            os.chmod(staged, 0o666 & ~umask)
            os.replace(staged, path.with_suffix(suffix))
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def pt2e_quantizer(is_qat: bool = False) -> Any:
    """litert-torch's PT2E quantizer: symmetric int8, per-channel weights (QAT: fake-quant observers)."""
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config

    return PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_qat=is_qat))


def _tflite(
    model: nn.Module,
    wrapper: nn.Module,
    path: Path,
    feeds: list[Tensor],
    input_size: tuple[int, int],
    input: str,
    output: str,
    extra: dict[str, Any],
) -> dict[str, Any]:  # noqa: A002
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = pt2e_quantizer()
    example = feeds[0]
    with torch.no_grad():
        prepared = prepare_pt2e(torch.export.export(wrapper, (example,)).module(), quantizer)
        for x in feeds:
            prepared(x)
        converted = convert_pt2e(prepared, fold_quantize=False)
    return write_pt2e_tflite(model, converted, quantizer, path, example, input_size, input, output, extra)


def write_pt2e_tflite(
    model: nn.Module,
    converted: nn.Module,
    quantizer: Any,
    path: Path,
    example: Tensor,
    input_size: tuple[int, int],
    input: str,
    output: str,  # noqa: A002
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Convert a ``convert_pt2e`` module with litert-torch into a full-integer .tflite (atomic) with metadata."""
    import litert_torch
    from litert_torch.quantize.quant_config import QuantConfig

    from segkit.export.metadata import model_metadata, write_tflite_metadata

    meta = model_metadata(
        model,
        input=input,
        output=output,
        input_size=tuple(input_size),
        dynamic=False,
        layout="nhwc",
        mean=list(model.segkit_config.model.input_mean),
        std=list(model.segkit_config.model.input_std),
        fmt="tflite",
    )
    meta.update(extra, runtime="litert")
    edge = litert_torch.convert(converted, (example,), quant_config=QuantConfig(pt2e_quantizer=quantizer))
    with atomic_path(path) as out:
        edge.export(str(out))
        write_tflite_metadata(out, meta)
    return meta


Progress = Callable[[int], None]
