"""Metadata carried inside an exported file: ONNX ``metadata_props``, a TFLite ``Metadata`` buffer or an ExecuTorch
program's ``segkit_metadata`` method.

Each holds one entry ``"segkit"``: a JSON object with the config name (and the whole config), class
names, palette, mean/std, input size, input/output kinds and layout, and the segkit version. ONNX
also gets the main fields as separate readable keys.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import nn

KEY = "segkit"
PTE_METADATA_METHOD = "segkit_metadata"  # an ExecuTorch program's method returning the JSON text as uint8


def segkit_version() -> str:
    """The installed segkit's version (package metadata; this layer may not import the ``segkit`` package)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("segkit")
    except PackageNotFoundError:
        return "unknown"


def model_metadata(
    model: nn.Module,
    *,
    input: str,
    output: str,
    input_size: tuple[int, int] | None,  # noqa: A002
    dynamic: bool,
    layout: str,
    mean: list[float],
    std: list[float],
    fmt: str,
    argmax_fusion: bool = False,
) -> dict[str, Any]:
    """The metadata dict of an export of ``model`` (a segkit model carrying ``segkit_config``); ``argmax_fusion``:
    the labels are the argmax at the logits' resolution, upscaled (``segkit export --argmax-fusion``)."""
    cfg = getattr(model, "segkit_config", None)
    class_names = getattr(model, "class_names", None)
    palette = getattr(model, "palette", None)
    num_classes = cfg.model.num_classes if cfg is not None else None
    if class_names is None and num_classes == 21:
        from segkit.data.classes import VOC_CLASSES

        class_names = list(VOC_CLASSES)
    if palette is None and num_classes is not None and num_classes <= 256:
        from segkit.data.classes import VOC_PALETTE

        palette = [list(map(int, c)) for c in VOC_PALETTE[:num_classes]]
    return {
        "format": "segkit-export",
        "version": 1,
        "segkit_version": segkit_version(),
        "exported_as": fmt,
        "config_name": cfg.name if cfg is not None else None,
        "config": cfg.to_dict() if cfg is not None else None,
        "num_classes": num_classes,
        "class_names": list(class_names) if class_names is not None else None,
        "palette": [list(map(int, c)) for c in palette] if palette is not None else None,
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "input_size": list(input_size) if input_size is not None and not dynamic else None,
        "dynamic": bool(dynamic),
        "input": input,
        "output": output,
        "layout": layout,
        "input_layout": "nhwc" if input == "uint8" else layout,
        "align_corners": bool(getattr(model, "align_corners", cfg.model.align_corners if cfg is not None else False)),
        "argmax_fusion": bool(argmax_fusion),
    }


def add_onnx_metadata(onnx_model: Any, meta: dict[str, Any]) -> None:
    """Set ``meta`` into an ``onnx.ModelProto``'s metadata_props (in place)."""
    keep = [p for p in onnx_model.metadata_props if p.key != KEY and not p.key.startswith("segkit.")]
    del onnx_model.metadata_props[:]
    onnx_model.metadata_props.extend(keep)
    entries = {KEY: json.dumps(meta)}
    for k in (
        "config_name",
        "class_names",
        "palette",
        "mean",
        "std",
        "input_size",
        "input",
        "output",
        "argmax_fusion",
        "segkit_version",
    ):
        entries[f"segkit.{k}"] = json.dumps(meta.get(k))
    for k, v in entries.items():
        prop = onnx_model.metadata_props.add()
        prop.key, prop.value = k, v


def _tflite_schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def write_tflite_metadata(path: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Add (or replace) the ``"segkit"`` metadata buffer of a .tflite file, atomically."""
    import flatbuffers
    import numpy as np

    from segkit.utils.io import atomic_path

    schema = _tflite_schema()
    buf = Path(path).read_bytes()
    model = schema.ModelT.InitFromPackedBuf(buf, 0)
    if any(getattr(b, "offset", 0) > 1 for b in (model.buffers or [])):
        raise ValueError(
            f"{path} stores its weights outside the flatbuffer (a > 2 GB model); segkit cannot add metadata to it."
        )
    data = schema.BufferT()
    data.data = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    model.buffers = list(model.buffers or []) + [data]
    entries = [m for m in (model.metadata or []) if (m.name.decode() if isinstance(m.name, bytes) else m.name) != KEY]
    entry = schema.MetadataT()
    entry.name = KEY
    entry.buffer = len(model.buffers) - 1
    model.metadata = entries + [entry]
    builder = flatbuffers.Builder(len(buf) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with atomic_path(path) as tmp:
        tmp.write_bytes(bytes(builder.Output()))


def _tflite_metadata(path: Path) -> dict[str, Any] | None:
    schema = _tflite_schema()
    buf = path.read_bytes()
    model = schema.Model.GetRootAs(buf, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == KEY.encode():
            return json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes().decode())
    return None


def read_metadata(path: str | os.PathLike) -> dict[str, Any] | None:
    """The segkit metadata of an exported .onnx / .tflite / .pte / OpenVINO .xml file; None when it has none."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        return _tflite_metadata(path)
    if suffix == ".onnx":
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        for prop in model.metadata_props:
            if prop.key == KEY:
                return json.loads(prop.value)
        return None
    if suffix == ".pte":
        return _pte_metadata(path)
    if suffix == ".xml":
        import re

        match = re.search(
            r'<segkit value="([^"]*)"', path.read_text(errors="replace")
        )  # ONNX metadata, kept by OpenVINO
        if match:
            import html

            return json.loads(html.unescape(match.group(1)))
        return None
    raise ValueError(f"cannot read metadata of {path}: expected a .onnx, .tflite, .pte or OpenVINO .xml file.")


def _pte_metadata(path: Path) -> dict[str, Any] | None:
    """The JSON an ExecuTorch program's :data:`PTE_METADATA_METHOD` returns (segkit export --format executorch)."""
    import warnings

    from segkit.utils.quiet import quiet_libraries

    with quiet_libraries(), warnings.catch_warnings():  # cpuinfo lines and "experimental API" as the runtime loads
        warnings.simplefilter("ignore")
        from executorch.runtime import Runtime

        program = Runtime.get().load_program(path)
        if PTE_METADATA_METHOD not in program.method_names:
            return None
        blob = program.load_method(PTE_METADATA_METHOD).execute([])[0]
    return json.loads(bytes(blob.numpy().astype("uint8")).decode())
