"""Export errors, and finding the layer an exporter fails on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from segkit.evaluation.predict import InferenceError


class ExportError(InferenceError):
    """An export cannot be made or verified; the one-line message names the layer and the fix."""


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception message (converter messages run to pages)."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()[:300]
    return type(exc).__name__


def failing_layer(model: nn.Module, example: torch.Tensor, try_export: Callable[[nn.Module, tuple], Any]) -> str | None:
    """The deepest submodule of ``model`` whose own export fails (``try_export(module, args)`` raises).

    One eager pass records every submodule's positional tensor inputs; then the submodules are tried
    from the root down, following the failing child. Runs only after an export failed.
    """
    inputs: dict[str, tuple] = {}
    hooks = []
    for name, module in model.named_modules():

        def hook(mod: nn.Module, args: tuple, _name: str = name) -> None:
            if _name not in inputs and args and all(torch.is_tensor(a) for a in args):
                inputs[_name] = tuple(a.detach() for a in args)

        hooks.append(module.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            model(example)
    except Exception:  # noqa: BLE001 - the eager pass itself fails: the root is the culprit
        return None
    finally:
        for h in hooks:
            h.remove()
    culprit: str | None = None
    current = ""
    while True:
        module = model.get_submodule(current) if current else model
        failing_child = None
        for child_name, _child in module.named_children():
            full = f"{current}.{child_name}" if current else child_name
            if full not in inputs:
                continue
            try:
                try_export(model.get_submodule(full), inputs[full])
            except Exception:  # noqa: BLE001 - any exporter failure marks the child
                failing_child = full
                break
        if failing_child is None:
            return culprit
        culprit = current = failing_child


def torch_export(module: nn.Module, args: tuple) -> None:
    """``torch.export`` (what the dynamo ONNX exporter and litert-torch start from)."""
    torch.export.export(module.eval(), args, strict=False)


def export_failure(
    fmt: str,
    exc: BaseException,
    model: nn.Module,
    example: torch.Tensor,
    try_export: Callable[[nn.Module, tuple], Any] = torch_export,
) -> ExportError:
    """A one-line ExportError for a converter exception: the layer it fails on and what to change."""
    layer = failing_layer(model, example, try_export)
    where = ""
    if layer:
        sub = model.get_submodule(layer)
        shown = layer[len("model.") :] if layer.startswith("model.") else layer
        where = f" at layer '{shown}' ({type(sub).__name__})"
    return ExportError(
        f"cannot export to {fmt}{where}: {first_line(exc)}. Change that layer to use standard tensor ops "
        "(no data-dependent shapes, Python-side values or custom ops), or keep the model in PyTorch "
        "(segkit test/infer --checkpoint)."
    )
