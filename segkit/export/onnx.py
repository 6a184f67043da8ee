"""ONNX export through ``torch.onnx.export``: the dynamo exporter by default (``torch.export`` based: about half
the nodes, BN folded and no shape arithmetic), the TorchScript tracer on request."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segkit.export.errors import ExportError, export_failure, torch_export
from segkit.export.formats import DEFAULT_EXPORTER, EXPORTERS, OPSET, OPSETS
from segkit.export.wrapper import prepare_export
from segkit.runtimes.metadata import add_onnx_metadata


def check_opset(opset: int, exporter: str = DEFAULT_EXPORTER) -> int:
    """``opset`` when ``exporter`` writes it, else ExportError saying which opsets it writes."""
    if exporter not in EXPORTERS:
        raise ExportError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}.")
    low, high = OPSETS[exporter]
    if not isinstance(opset, int) or isinstance(opset, bool) or not low <= opset <= high:
        other = f" (--exporter torchscript writes 7..{high}; opsets below 11 lack some of segkit's resizes)"
        raise ExportError(
            f"--opset {opset} cannot be written by the {exporter} exporter, which writes opsets {low}..{high}; "
            f"pass --opset {low}..{high}{other if exporter == 'dynamo' else ''}."
        )
    return opset


def has_tf_same_padding(model: nn.Module) -> bool:
    """True when ``model`` pads like TF's 'SAME' (``model.tf_same_padding``, e.g. a converted official model): its
    padding depends on the input size, which the TorchScript tracer bakes in at the traced size."""
    cfg = getattr(model, "segkit_config", None)
    if cfg is not None and getattr(cfg.model, "tf_same_padding", False):
        return True
    return any(type(m).__name__ == "Conv2dSame" for m in model.modules())


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise ExportError("ONNX export needs the 'onnx' package: pip install 'segkit-deeplab[deploy]'.") from exc
    return onnx


def _torchscript_onnx(module: nn.Module, args: tuple) -> None:
    import io

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, io.BytesIO(), dynamo=False, opset_version=OPSET)


def check_size(input_size: Any, dynamic: bool) -> tuple[int, int]:
    """``(H, W)`` from an int or a pair; positive."""
    if isinstance(input_size, int):
        input_size = (input_size, input_size)
    try:
        h, w = (int(v) for v in input_size)
    except (TypeError, ValueError):
        raise ExportError(f"input_size must be (H, W) in pixels, got {input_size!r}.") from None
    if h < 16 or w < 16:
        raise ExportError(f"input_size must be at least 16x16 pixels, got {h}x{w}.")
    return h, w


@dataclass(frozen=True)
class _Graph:
    """What an exporter writes: ``wrapper`` traced on ``example`` at ``opset``, its output named ``output``;
    ``spatial``: the input's height and width dimensions, dynamic (with the batch) when ``dynamic``."""

    wrapper: nn.Module
    example: torch.Tensor
    opset: int
    output: str
    spatial: tuple[int, int]
    dynamic: bool


def _export_dynamo(graph: _Graph, path: Path) -> None:
    """``torch.onnx.export(dynamo=True)`` (``torch.export`` based, optimised) of the graph to ``path``."""
    dims = {
        0: torch.export.Dim("batch", max=64),
        graph.spatial[0]: torch.export.Dim("height", min=16, max=4096),
        graph.spatial[1]: torch.export.Dim("width", min=16, max=4096),
    }
    program = torch.onnx.export(
        graph.wrapper,
        (graph.example,),
        dynamo=True,
        opset_version=graph.opset,
        input_names=["image"],
        output_names=[graph.output],
        dynamic_shapes=(dims,) if graph.dynamic else None,
        optimize=True,
        verbose=False,
    )
    program.save(str(path))


def _export_torchscript(graph: _Graph, path: Path) -> None:
    """``torch.onnx.export(dynamo=False)`` (the TorchScript tracer, constants folded) of the graph to ``path``."""
    output, (height, width) = graph.output, graph.spatial
    in_axes = {0: "batch", height: "height", width: "width"}
    out_axes = {0: "batch", 1: "height", 2: "width"} if output == "labels" else {0: "batch", 2: "height", 3: "width"}
    torch.onnx.export(
        graph.wrapper,
        (graph.example,),
        str(path),
        dynamo=False,
        opset_version=graph.opset,
        input_names=["image"],
        output_names=[output],
        dynamic_axes={"image": in_axes, output: out_axes} if graph.dynamic else None,
        do_constant_folding=True,
    )


# exporter -> (write the file, try one submodule: what finds the failing layer after a failed export)
_EXPORTER_FUNCTIONS = {
    "dynamo": (_export_dynamo, torch_export),
    "torchscript": (_export_torchscript, _torchscript_onnx),
}


def export_onnx(
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
    """Write ``model`` as an ONNX file (atomically) and return the metadata it carries.

    Args:
        model: segkit segmentor (put in eval mode); its ``segkit_config`` gives mean/std and names.
        path: the .onnx file.
        input_size: (H, W) traced; the file's fixed size unless ``dynamic``.
        dynamic: height and width (and batch) dynamic.
        input: "float" (normalised NCHW) or "uint8" (RGB NHWC, normalised in the graph).
        output: "logits" (NCHW float) or "labels" (uint8 [N, H, W] argmax).
        opset: ONNX opset.
        exporter: "torchscript" (``dynamo=False``) or "dynamo" (``torch.export`` based).
        metadata: extra entries merged into the segkit metadata.
        module: an already wrapped module to export instead of ``ExportWrapper(model, ...)``.
        argmax_fusion: with ``output="labels"``, the argmax at the logits' resolution upscaled with nearest
            neighbour (:func:`~segkit.export.wrapper.fused_labels`) instead of the official argmax of the upsampled
            logits; recorded in the metadata.
    """
    onnx = _import_onnx()
    check_opset(opset, exporter)
    if exporter == "torchscript" and dynamic and has_tf_same_padding(module if module is not None else model):
        raise ExportError(
            "--exporter torchscript with --dynamic cannot export a model with TF 'SAME' padding (model.tf_same_padding, "
            "e.g. a converted official model): the tracer bakes in the padding of the traced size, so the file is "
            "wrong at every other size; use the default --exporter dynamo, or a static --input-size."
        )
    h, w = check_size(input_size, dynamic)
    wrapper, example, meta = prepare_export(
        model,
        module,
        input=input,
        output=output,
        layout="nchw",
        size=(h, w),
        dynamic=dynamic,
        fmt="onnx",
        metadata=metadata,
        argmax_fusion=argmax_fusion,
    )
    spatial = (1, 2) if input == "uint8" else (2, 3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from segkit.utils.io import atomic_path

    graph = _Graph(wrapper, example, opset, output, spatial, dynamic)
    run, probe = _EXPORTER_FUNCTIONS[exporter]
    with atomic_path(path) as tmp:
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                run(graph, tmp)
        except ExportError:
            raise
        except Exception as exc:  # noqa: BLE001 - converter errors become one line naming the layer
            raise export_failure("ONNX", exc, wrapper, example, probe) from exc
        proto = onnx.load(str(tmp))
        written = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=None)
        if written != opset:  # an exporter that quietly wrote another opset than asked
            raise ExportError(
                f"the {exporter} exporter wrote opset {written} although --opset {opset} was asked; "
                f"pass --opset {written} (or another exporter)."
            )
        add_onnx_metadata(proto, meta)
        onnx.save(proto, str(tmp))
    return meta
