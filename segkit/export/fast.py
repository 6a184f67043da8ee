"""``--fast``: run a checkpoint in the fastest installed runtime, and say which in one line.

On a CPU that is ONNX Runtime, through the export cache (:mod:`segkit.export.cache`: exported once, ~1-7 s, verified
on 2 images, then reused). Measured 2026-12-03 on an AMD EPYC, 2 threads, the official weights at 513x513: ONNX
Runtime fp32 44.7 ms, PyTorch ``optimize_for_inference`` (BN folded, channels_last) 80 ms (1.8x), ``torch.compile``
with inductor freezing 51.5 ms (1.15x, after a 28 s compile). PyTorch ``optimize_for_inference`` runs instead, with
the reason, on a GPU (PyTorch is the fast path there), without onnxruntime, for a quantization-aware training
checkpoint, when the export would be a dynamic one from the dynamo exporter (minutes), or when the cache refuses it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from segkit.config import Config
from segkit.export.cache import cache_file, cache_plan, load_for_tools, requested_size

__all__ = ["FAST_PACKAGES", "FastChoice", "choose_fast_runtime", "load_fast"]

FAST_PACKAGES = ("onnxruntime", "onnx")  # what running a checkpoint in ONNX Runtime needs (export + session)
INSTALL = "pip install 'segkit-deeplab[deploy]'"
SLOWER = "PyTorch optimize_for_inference is ~1.8x slower on CPU"


@dataclass(frozen=True)
class FastChoice:
    """Where ``--fast`` runs a checkpoint: ``runtime`` "onnxruntime" or "pytorch" (optimize_for_inference), and
    ``reason``: why PyTorch (empty for ONNX Runtime)."""

    runtime: str
    reason: str = ""


def missing_fast_packages() -> list[str]:
    """The packages of :data:`FAST_PACKAGES` that cannot be imported."""
    missing = []
    for name in FAST_PACKAGES:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    return missing


def choose_fast_runtime(
    checkpoint: str | os.PathLike,
    device: str | torch.device | None = None,
    *,
    config: Any = None,
    overrides: Mapping[str, Any] | None = None,
) -> FastChoice:
    """Where ``checkpoint`` runs fastest on ``device`` (None: the CPU) under the protocol of its config with
    ``overrides``: ONNX Runtime on a CPU, unless one of the reasons of this module's docstring says PyTorch.

    Raises:
        CheckpointError, ConfigError: as :func:`segkit.checkpoint.load.load_eval_model` (what the PyTorch path raises).
    """
    device = torch.device("cpu" if device is None else device)
    if device.type != "cpu":
        return FastChoice("pytorch", f"the device is {device.type}, where PyTorch is the fast path")
    missing = missing_fast_packages()
    if missing:
        return FastChoice("pytorch", f"{' and '.join(missing)} not installed ({INSTALL} to run it ~1.8x faster there)")
    overrides = dict(overrides or {})
    if Path(checkpoint).is_file():
        cached = cache_file(
            checkpoint, "onnxruntime", config=config, overrides=overrides, input_size=requested_size(overrides)
        )
        if cached.is_file():  # exported (and verified) before: nothing to decide
            return FastChoice("onnxruntime")
    from segkit.checkpoint.load import load_eval_model
    from segkit.export.command import refuse_qat_checkpoint
    from segkit.export.errors import ExportError

    try:
        refuse_qat_checkpoint(checkpoint, config, overrides, runtime="onnxruntime")
    except ExportError:  # its only ExportError: a QAT checkpoint (a bad file raises CheckpointError, as PyTorch's)
        return FastChoice("pytorch", "a quantization-aware training checkpoint runs its fake-quantized model there")
    model, cfg = load_eval_model(checkpoint, config=config, overrides=overrides, device="cpu")
    plan = cache_plan(model, cfg.eval)
    if plan.exporter == "dynamo" and plan.size is None:  # a static dynamo export takes ~9 s: fine
        return FastChoice(
            "pytorch",
            "the model pads like TF 'SAME' and the protocol is not fixed-size, so its ONNX export would take minutes "
            "(dynamo exporter); add --resize-longer N --pad-to N for a ~2 s static export",
        )
    return FastChoice("onnxruntime")


def load_fast(
    checkpoint: str | os.PathLike,
    device: str | torch.device | None = None,
    *,
    config: Any = None,
    overrides: Mapping[str, Any] | None = None,
    log: Callable[[str], Any] | None = None,
) -> tuple[Any, Config]:
    """``(model, cfg)`` of ``checkpoint`` in the runtime :func:`choose_fast_runtime` picks (an
    :class:`~segkit.runtimes.runner.ExportedModel` of the export cache, else the PyTorch model through
    ``optimize_for_inference``), after one line to ``log`` (default: stderr) naming the runtime and why."""
    from segkit.checkpoint.load import load_eval_model
    from segkit.export.errors import ExportError
    from segkit.runtimes.backends import ExportedModelError

    log = log or _to_stderr
    overrides = dict(overrides or {})
    name = Path(checkpoint).name
    choice = choose_fast_runtime(checkpoint, device, config=config, overrides=overrides)
    if choice.runtime == "onnxruntime":
        try:
            model, cfg = load_for_tools(
                None, "onnxruntime", checkpoint=str(checkpoint), config=config, overrides=overrides
            )
        except (ExportError, ExportedModelError) as exc:
            choice = FastChoice("pytorch", f"the export cache refused it: {exc}")
        else:
            log(f"--fast: running {name} in ONNX Runtime (the export cache's {model.path}; {SLOWER})")
            return model, cfg
    result = load_eval_model(checkpoint, config=config, overrides=overrides, device=device, fast=True)
    log(f"--fast: running {name} in PyTorch (optimize_for_inference: BN folded, channels_last): {choice.reason}")
    return result


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
