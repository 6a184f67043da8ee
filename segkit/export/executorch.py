"""ExecuTorch export: ``torch.export`` -> ``to_edge_transform_and_lower`` with the XNNPACK partitioner ->
``to_executorch`` -> a ``.pte`` program (static shapes, NCHW float or NHWC uint8 in, logits NCHW or labels out).

The program carries segkit's metadata as a second method, ``segkit_metadata``, that returns the JSON text as a
uint8 tensor (:data:`segkit.runtimes.metadata.PTE_METADATA_METHOD`), and the partitioner's report (which ops stay
outside the XNNPACK delegate, run by ExecuTorch's portable kernels) under the metadata's ``"delegation"`` key.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segkit.export.errors import ExportError, export_failure
from segkit.export.onnx import check_size
from segkit.export.wrapper import prepare_export
from segkit.runtimes.metadata import PTE_METADATA_METHOD
from segkit.utils.quiet import quiet_libraries

__all__ = ["DYNAMIC_REFUSED", "INSTALL", "delegation_line", "export_executorch", "import_executorch", "lower_to_pte"]

INSTALL = "pip install 'segkit-deeplab[executorch]'"
DYNAMIC_REFUSED = (
    "ExecuTorch export needs a static input size (XNNPACK delegates the bilinear resize only with static sizes); "
    "drop --dynamic and pass --input-size H W, or export --format onnx for dynamic shapes."
)
# bookkeeping nodes of a lowered graph that are no ops (the delegate's outputs are unpacked by getitem)
_NOT_OPS = ("getitem", "executorch_call_delegate")


def import_executorch() -> Any:
    """The ``executorch.exir`` module, imported quietly; ExportError with the install line when it is missing."""
    try:
        with quiet_libraries(), warnings.catch_warnings():  # torchao's pytree and executorch's import warnings
            warnings.simplefilter("ignore")
            import executorch.exir as exir
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner  # noqa: F401
    except ImportError as exc:
        raise ExportError(f"ExecuTorch export needs the 'executorch' package ({exc}); {INSTALL}.") from exc
    return exir


def _op_name(node_name: str) -> str:
    """``aten_full_like_default_1`` -> ``aten.full_like`` (the partitioner report's op type, readable)."""
    name = re.sub(r"_\d+$", "", node_name)
    name = re.sub(r"_(default|tensor|dim|vec|int|scalar|Tensor|Scalar)$", "", name)
    for prefix in ("aten", "quantized_decomposed", "dim_order_ops"):
        if name.startswith(prefix + "_"):
            return prefix + "." + name[len(prefix) + 1 :]
    return name


def delegation(edge: Any) -> dict[str, Any]:
    """The XNNPACK partitioner's report of a lowered program: delegated subgraphs and nodes, and the ops left outside
    (op -> count), run by ExecuTorch's portable kernels."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(edge.exported_program().graph_module)
    outside: dict[str, int] = {}
    for row in info.delegation_by_operator.values():
        if row.non_delegated and row.op_type not in _NOT_OPS:
            name = _op_name(row.op_type)
            outside[name] = outside.get(name, 0) + row.non_delegated
    return {
        "backend": "XnnpackBackend",
        "subgraphs": int(info.num_delegated_subgraphs),
        "delegated_nodes": int(info.num_delegated_nodes),
        "outside": dict(sorted(outside.items())),
    }


def delegation_line(meta: dict[str, Any]) -> str:
    """``XNNPACK delegate: 2 subgraph(s), 384 nodes; outside it (portable kernels): aten.full_like x1``."""
    info = meta.get("delegation") or {}
    outside = info.get("outside") or {}
    rest = ", ".join(f"{op} x{n}" for op, n in outside.items()) if outside else "none"
    return (
        f"XNNPACK delegate: {info.get('subgraphs', 0)} subgraph(s), {info.get('delegated_nodes', 0)} nodes; "
        f"outside it (ExecuTorch portable kernels): {rest}"
    )


def lower_to_pte(
    program: torch.export.ExportedProgram,
    path: str | os.PathLike,
    meta: dict[str, Any],
    on_failure: Callable[[BaseException], ExportError] | None = None,
) -> dict[str, Any]:
    """Lower ``program`` to XNNPACK, write the ``.pte`` (atomically) with ``meta`` (plus its ``"delegation"``) as the
    ``segkit_metadata`` method; returns the metadata written."""
    exir = import_executorch()
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    from segkit.utils.io import atomic_path

    try:
        with warnings.catch_warnings(), quiet_libraries():
            warnings.simplefilter("ignore")
            methods: dict[str, Any] = {PTE_METADATA_METHOD: torch.zeros(1, dtype=torch.uint8)}
            edge = exir.to_edge_transform_and_lower(
                program, partitioner=[XnnpackPartitioner()], constant_methods=methods
            )
            # the report of this lowering goes into the metadata: the manager keeps ``methods`` (not a copy) and
            # reads it in to_executorch, so one lowering (a minute for MobileNetV2 + DeepLabV3) does both
            meta = {**meta, "delegation": delegation(edge)}
            methods[PTE_METADATA_METHOD] = torch.frombuffer(bytearray(json.dumps(meta).encode()), dtype=torch.uint8)
            if getattr(edge, "_config_methods", methods) is not methods:  # a release that copies it: lower again
                edge = exir.to_edge_transform_and_lower(
                    program, partitioner=[XnnpackPartitioner()], constant_methods=methods
                )
            buffer = edge.to_executorch().buffer
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001 - lowering errors become one line
        if on_failure is not None:
            raise on_failure(exc) from exc
        raise ExportError(
            f"cannot lower the model to ExecuTorch (XNNPACK): {' '.join(str(exc).split())[:240]}"
        ) from exc
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer)
    return meta


def export_executorch(
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
) -> dict[str, Any]:
    """Write ``model`` as an ExecuTorch ``.pte`` program, XNNPACK-delegated fp32, and return its metadata.

    Args:
        model: segkit segmentor (eval mode).
        path: the .pte file (written atomically).
        input_size: (H, W), the program's fixed input size.
        dynamic: refused (:data:`DYNAMIC_REFUSED`).
        input: "float" (normalised NCHW) or "uint8" (RGB NHWC, normalised in the graph).
        output: "logits" (NCHW float) or "labels" (uint8 [N, H, W]; the argmax runs outside XNNPACK).
        metadata: extra entries merged into the segkit metadata.
        module: an already wrapped module to export instead of ``ExportWrapper(model, ...)``.
        argmax_fusion: with ``output="labels"``, the argmax at the logits' resolution upscaled with nearest
            neighbour (:func:`~segkit.export.wrapper.fused_labels`) instead of the official argmax of the upsampled
            logits; recorded in the metadata.
    """
    if dynamic:
        raise ExportError(DYNAMIC_REFUSED)
    h, w = check_size(input_size, dynamic)
    import_executorch()  # the install line before the work
    wrapper, example, meta = prepare_export(
        model,
        module,
        input=input,
        output=output,
        layout="nchw",
        size=(h, w),
        dynamic=False,
        fmt="executorch",
        metadata=metadata,
        argmax_fusion=argmax_fusion,
    )
    meta.setdefault("precision", "fp32")
    meta["runtime"] = "executorch"
    try:
        with warnings.catch_warnings(), torch.no_grad(), quiet_libraries():
            warnings.simplefilter("ignore")
            program = torch.export.export(wrapper, (example,), strict=False)
    except Exception as exc:  # noqa: BLE001 - export errors become one line naming the layer
        raise export_failure("ExecuTorch", exc, wrapper, example) from exc
    return lower_to_pte(program, path, meta, on_failure=lambda exc: export_failure("ExecuTorch", exc, wrapper, example))
