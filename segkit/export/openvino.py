"""OpenVINO IR export (fp32): the ONNX export of :mod:`segkit.export.onnx`, converted by ``openvino.convert_model``.

The IR is a pair: ``model.xml`` (the graph) and ``model.bin`` (the weights, fp32) beside it. The ONNX route was
measured against ``openvino.convert_model`` on the torch module (TorchScript tracing): the same logits to the bit,
and faster on the official MobileNetV2 model at 513x513 (25-32 s against 44-46 s on a loaded 2-core CPU); it also
keeps dynamic shapes right for TF 'SAME' padding and gives the IR the ONNX file's segkit metadata (OpenVINO keeps
ONNX ``metadata_props`` in the IR's ``rt_info``, where :func:`segkit.runtimes.metadata.read_metadata` reads it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from segkit.export.errors import ExportError, first_line
from segkit.export.formats import DEFAULT_EXPORTER, OPSET
from segkit.export.onnx import export_onnx
from segkit.utils.quiet import quiet_libraries

INSTALL = "pip install 'segkit-deeplab[deploy]'"


def _import_openvino() -> Any:
    try:
        with quiet_libraries():
            import openvino
    except ImportError as exc:
        raise ExportError(f"OpenVINO export needs the 'openvino' package: {INSTALL}.") from exc
    return openvino


def save_ir(ov_model: Any, path: str | os.PathLike) -> None:
    """Write ``path`` (.xml) and its .bin (fp32 weights): both into a hidden folder beside them, then moved, the .bin
    first, so a reader never finds an .xml without its weights (nor a half-written pair)."""
    ov = _import_openvino()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        ov.save_model(ov_model, str(stage / path.name), compress_to_fp16=False)
        umask = os.umask(0)
        os.umask(umask)
        for suffix in (".bin", ".xml"):
            written = (stage / path.name).with_suffix(suffix)
            os.chmod(written, 0o666 & ~umask)
            os.replace(written, path.with_suffix(suffix))
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def export_openvino(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    input_size: tuple[int, int] | int = (513, 513),
    dynamic: bool = False,
    input: str = "float",  # noqa: A002 - the command line's --input
    output: str = "logits",
    opset: int = OPSET,
    exporter: str = DEFAULT_EXPORTER,
    metadata: dict[str, Any] | None = None,
    module: nn.Module | None = None,
    argmax_fusion: bool = False,
) -> dict[str, Any]:
    """Write ``model`` as an fp32 OpenVINO IR, ``path`` (.xml) with its .bin beside it, and return its metadata.

    The arguments are :func:`~segkit.export.onnx.export_onnx`'s (``opset`` and ``exporter`` make the intermediate
    ONNX file, ``argmax_fusion`` its labels); the layout is NCHW, the metadata says ``exported_as: "openvino"``.
    """
    path = Path(path)
    if path.suffix.lower() != ".xml":
        raise ExportError(
            f"an OpenVINO IR is an .xml file (its weights in a .bin beside it), got {path}; name it *.xml."
        )
    ov = _import_openvino()
    extra = {**(metadata or {}), "exported_as": "openvino", "runtime": "openvino"}
    with tempfile.TemporaryDirectory(prefix="segkit-openvino-") as tmp:
        onnx_file = Path(tmp) / "model.onnx"
        meta = export_onnx(
            model,
            onnx_file,
            input_size=input_size,
            dynamic=dynamic,
            input=input,
            output=output,
            opset=opset,
            exporter=exporter,
            metadata=extra,
            module=module,
            argmax_fusion=argmax_fusion,
        )
        try:
            with quiet_libraries():
                ov_model = ov.convert_model(str(onnx_file))
        except Exception as exc:  # noqa: BLE001 - the converter's errors run to pages
            raise ExportError(
                f"OpenVINO cannot convert the ONNX export of the model: {first_line(exc)}; export --format onnx and "
                "run it with --runtime openvino, or report the layer to OpenVINO."
            ) from exc
    save_ir(ov_model, path)
    return meta
