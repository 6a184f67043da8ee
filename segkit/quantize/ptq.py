"""Static int8 post-training quantization of a segkit model into ONNX (QDQ), OpenVINO IR or LiteRT files.

Weights are int8 per output channel, activations int8/uint8 per tensor with ranges calibrated on real
images. ONNX: fp32 export -> ``quant_pre_process`` -> ``quantize_static`` (QDQ). OpenVINO: the fp32
ONNX graph -> ``nncf.quantize``. LiteRT: ``torch.export`` -> torchao ``prepare_pt2e`` with litert-torch's
``PT2EQuantizer`` -> calibration -> ``convert_pt2e`` -> ``litert_torch.convert`` (full integer). ExecuTorch: the same
PT2E steps with ExecuTorch's ``XNNPACKQuantizer``, lowered to the XNNPACK delegate (:mod:`segkit.quantize.executorch`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from segkit.quantize.formats import EXTENSIONS, FORMATS, QuantizeError, check_fusion_format
from segkit.utils.io import atomic_path
from segkit.utils.quiet import quiet_libraries

INSTALL = "pip install 'segkit-deeplab[deploy]'"
# import name -> pip name of the optional packages each --format runs (quantizer, converter, verifying runtime)
PIP_NAMES = {
    "onnx": "onnx",
    "onnxscript": "onnxscript",
    "onnxruntime": "onnxruntime",
    "openvino": "openvino",
    "nncf": "nncf",
    "torchao": "torchao",
    "litert_torch": "litert-torch",
    "ai_edge_litert": "ai-edge-litert",
    "executorch": "executorch",
}
PACKAGES = {
    "onnx": ("onnx", "onnxscript", "onnxruntime"),
    "openvino": ("onnx", "onnxscript", "openvino", "nncf"),
    "tflite": ("torchao", "litert_torch", "ai_edge_litert"),
    "executorch": ("torchao", "executorch"),
}
EXTRAS = {"executorch": "executorch"}  # format -> the extra that installs its packages (default: deploy)
QAT_PACKAGES = ("torchao", "litert_torch")  # loading a QAT checkpoint prepares its PT2E graph


def require_packages(fmt: str, qat: bool = False) -> None:
    """QuantizeError (one line, with the install line) unless every package ``--format fmt`` needs is installed.

    Checked by name (``importlib.util.find_spec``), before any data is read or calibrated: the packages are
    only imported where they run, after calibration.
    """
    import importlib.util

    needed = list(PACKAGES.get(fmt, ()))
    needed += [name for name in QAT_PACKAGES if qat and name not in needed]
    missing = []
    for name in needed:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a parent that fails to import, or a module set to None
            found = False
        if not found:
            missing.append(PIP_NAMES[name])
    if missing:
        what = f"--format {fmt}" + (" of a quantization-aware training checkpoint" if qat else "")
        install = INSTALL.replace("[deploy]", f"[{EXTRAS.get(fmt, 'deploy')}]")
        raise QuantizeError(
            f"{what} needs {', '.join(repr(m) for m in missing)}, not installed: {install} "
            f"(or pip install {' '.join(missing)})."
        )


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
    quantization: str = "ptq",
    argmax_fusion: bool = False,
) -> dict[str, Any]:
    """Write an int8 file of ``model`` calibrated on ``images`` (from :func:`calibration_images`); returns its metadata.

    A QAT checkpoint's :class:`segkit.models.qat.QatModel` goes to :func:`quantize_qat` instead.

    Args:
        model: a float segkit segmentor (eval mode, carrying ``segkit_config``).
        path: the output (.onnx, .xml with its .bin beside it, or .tflite); written atomically.
        images: calibration samples ``{"image": [1, 3, H, W]}`` at ``input_size``.
        format: "onnx", "openvino" or "tflite".
        input: "float" (normalised) or "uint8" (RGB NHWC, normalisation in the graph; the official files' input).
        output: "logits" or "labels" (argmax in the graph).
        quantization: the metadata's "quantization" ("qat": float weights fine-tuned by QAT, recalibrated).
        argmax_fusion: with ``output="labels"``, the Edge TPU's argmax fusion (argmax at the logits' resolution,
            labels upscaled by nearest neighbour; onnx and openvino only), recorded as the metadata's
            ``argmax_fusion``.
    """
    from segkit.export import ExportWrapper

    path = Path(path)
    _check(format, path, images)
    check_fusion_format(argmax_fusion, format)
    require_packages(format)
    path.parent.mkdir(parents=True, exist_ok=True)
    layout = "nhwc" if format == "tflite" else "nchw"  # ExecuTorch: NCHW, as the PyTorch model
    wrapper = ExportWrapper(model, input=input, output=output, layout=layout, argmax_fusion=argmax_fusion).eval()
    feeds = [_as_input(item["image"], input, wrapper.mean_rgb, wrapper.std_rgb, layout) for item in images]
    extra = {"precision": "int8", "quantization": quantization, "num_calib": len(images)}
    from segkit.export.progress import timed_step

    silent = format in QUANTIZERS  # tens of seconds without a bar of their own (LiteRT and ExecuTorch show theirs)
    with timed_step(f"quantizing ({QUANTIZERS.get(format, format)})", enabled=progress and silent):
        return _quantize(model, wrapper, path, feeds, format, input_size, input, output, extra)


QUANTIZERS = {"onnx": "ONNX Runtime QDQ", "openvino": "NNCF"}  # the quantizer each format's step names


def _quantize(
    model: nn.Module,
    wrapper: nn.Module,
    path: Path,
    feeds: list[Tensor],
    format: str,  # noqa: A002 - --format
    input_size: tuple[int, int],
    input: str,  # noqa: A002 - --input
    output: str,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Calibrate and write ``path`` in ``format``: :func:`quantize_model`'s work once the inputs are prepared."""
    if format == "tflite":
        with quiet_libraries():  # litert-torch and LiteRT's C++ log lines
            return _tflite(model, wrapper, path, feeds, input_size, input, output, extra)
    if format == "executorch":
        from segkit.quantize.executorch import quantize_executorch

        return quantize_executorch(model, wrapper, path, feeds, input_size, input, output, extra)
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

    from segkit.runtimes.metadata import add_onnx_metadata

    pre = tmp / "pre.onnx"
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    graph = onnx.load(str(pre), load_external_data=False).graph
    name = graph.input[0].name
    # the float tail after the last conv (the logits' upsampling, an in-graph argmax) stays float: quantizing
    # it re-quantizes the full-size logits (a Q and a DQ over H x W x classes) and made int8 no faster than fp32
    producer = {o: n for n in graph.node for o in n.output}
    tail, todo = [], [o.name for o in graph.output]
    while todo:
        node = producer.get(todo.pop())
        if (
            node is not None
            and node.op_type not in ("Conv", "ConvTranspose", "MatMul", "Gemm")
            and node.name not in tail
        ):
            tail.append(node.name)
            todo += list(node.input[:1])

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
            nodes_to_exclude=tail,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
        proto = onnx.load(str(out))
        add_onnx_metadata(proto, {**meta, "runtime": "onnxruntime"})
        onnx.save(proto, str(out))


def _openvino(fp32: Path, path: Path, feeds: list[Tensor], meta: dict[str, Any], tmp: Path) -> None:
    import json

    with quiet_libraries():  # NNCF's INFO lines, torch's "No CUDA runtime is found" as NNCF loads
        import nncf
        import openvino as ov

        ov_model = ov.convert_model(str(fp32))
        quantized = nncf.quantize(ov_model, nncf.Dataset(feeds, lambda x: x.numpy()), subset_size=len(feeds))
    quantized.set_rt_info(json.dumps({**meta, "exported_as": "openvino", "runtime": "openvino"}), "segkit_metadata")
    from segkit.export.openvino import save_ir

    save_ir(quantized, path)  # the .xml and its .bin together, the .bin first (as segkit export writes them)


def quantize_qat(
    model: nn.Module,
    path: str | os.PathLike,
    images: Sequence[dict[str, Any]] = (),
    *,
    format: str = "tflite",  # noqa: A002 - --format
    input_size: tuple[int, int] = (513, 513),
    input: str = "float",  # noqa: A002 - --input
    output: str = "logits",
    progress: bool = True,
    argmax_fusion: bool = False,
) -> dict[str, Any]:
    """Write the int8 file of a quantization-aware trained :class:`segkit.models.qat.QatModel`; returns its metadata.

    tflite: ``convert_pt2e`` of the trained fake-quant graph (its learned ranges, no calibration:
    ``num_calib`` 0) through litert-torch. onnx / openvino have no PT2E path here: they recalibrate the
    float model holding the QAT-fine-tuned weights on ``images`` (needed; ``quantization`` "qat"), with
    ``argmax_fusion`` when asked (tflite refuses it: its converted graph has no backbone and head to fuse).
    """
    from segkit.export import ExportWrapper
    from segkit.models.qat import convert, float_state_dict, pt2e_quantizer

    path = Path(path)
    cfg = model.segkit_config
    check_fusion_format(argmax_fusion, format)
    if format != "tflite":
        if not images:
            raise QuantizeError(
                f"--format {format} recalibrates a QAT checkpoint (only LiteRT takes its trained ranges as they "
                "are): pass --calib-data ROOT, or use --format tflite."
            )
        from segkit.models import build_model

        float_model = build_model(cfg)
        float_model.load_state_dict(float_state_dict(model.state_dict()))
        float_model.eval().segkit_config = cfg
        return quantize_model(
            float_model,
            path,
            images,
            format=format,
            input_size=input_size,
            input=input,
            output=output,
            progress=progress,
            quantization="qat",
            argmax_fusion=argmax_fusion,
        )
    _check(format, path, [{}])
    require_packages(format, qat=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = ExportWrapper(_Int8Graph(convert(model), cfg), input=input, output=output, layout="nhwc").eval()
    example = wrapper.example(tuple(input_size))
    extra = {"precision": "int8", "quantization": "qat", "num_calib": 0}
    quantizer = pt2e_quantizer(is_qat=True, per_channel=cfg.qat.per_channel)
    return write_pt2e_tflite(model, wrapper, quantizer, path, example, input_size, input, output, extra)


class _Int8Graph(nn.Module):
    """A ``convert_pt2e`` graph as a submodule that ``.eval()`` leaves alone (exported graphs refuse it)."""

    def __init__(self, graph: nn.Module, cfg: Any) -> None:
        super().__init__()
        self.graph = graph
        self.segkit_config = cfg

    def train(self, mode: bool = True) -> _Int8Graph:
        self.training = mode
        return self

    def forward(self, x: Tensor) -> Any:
        return self.graph(x)


def pt2e_quantizer(is_qat: bool = False) -> Any:
    """litert-torch's PT2E quantizer: symmetric int8, per-channel weights (QAT: fake-quant observers)."""
    from segkit.models.qat import pt2e_quantizer as quantizer

    return quantizer(is_qat=is_qat)


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
    with quiet_libraries():  # TensorFlow's C++ logs a few lines as litert-torch loads
        import litert_torch
        from litert_torch.quantize.quant_config import QuantConfig

    from segkit.runtimes.metadata import model_metadata, write_tflite_metadata

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
    # an exported graph keeps the root's ``training`` flag of torch.export (True) although its BN and dropout
    # nodes are in eval form; the flag only makes litert-torch warn "converted in training mode"
    converted.training = False
    with quiet_libraries():
        edge = litert_torch.convert(converted, (example,), quant_config=QuantConfig(pt2e_quantizer=quantizer))
    with atomic_path(path) as out:
        edge.export(str(out))
        write_tflite_metadata(out, meta)
    return meta


Progress = Callable[[int], None]
