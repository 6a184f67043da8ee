"""What ``--model`` and ``--runtime`` give the tools: an exported file, or a checkpoint exported on the fly."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from segkit.runtimes.backends import ExportedModelError
from segkit.runtimes.runner import ExportedModel, load_exported


def cache_dir() -> Path:
    """``$SEGKIT_CACHE/exports``, default ``~/.cache/segkit/exports``."""
    root = os.environ.get("SEGKIT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "segkit")
    return Path(root) / "exports"


def cached_export(
    checkpoint: str | os.PathLike,
    runtime: str,
    *,
    config: Any = None,
    overrides: Mapping[str, Any] | None = None,
    input_size: int | None = None,
) -> Path:
    """The exported file of ``checkpoint`` for ``runtime`` (exported on first use, then reused).

    onnxruntime / openvino: a dynamic-size float ONNX file (every protocol works); litert: a static
    file at ``input_size`` (the protocol's pad_to). The cache key holds the checkpoint's path, size and
    modification time, the model overrides and the segkit version, so a new checkpoint is re-exported.
    """
    from segkit.checkpoint.load import load_model
    from segkit.runtimes.metadata import segkit_version

    ckpt = Path(checkpoint)
    if not ckpt.is_file():
        raise ExportedModelError(f"checkpoint not found: {ckpt}; pass a segkit .pth file.")
    model_overrides = {k: v for k, v in (overrides or {}).items() if k.startswith("model.")}
    stat = ckpt.stat()
    fmt = "tflite" if runtime == "litert" else "onnx"
    if fmt == "tflite" and not input_size:
        raise ExportedModelError(
            "--runtime litert on a checkpoint needs a static size: add --pad-to N (and "
            "--resize-longer N), or use --runtime onnxruntime / openvino."
        )
    key = json.dumps(
        [
            str(ckpt.resolve()),
            stat.st_size,
            stat.st_mtime_ns,
            str(config),
            model_overrides,
            segkit_version(),
            fmt,
            input_size,
        ],
        sort_keys=True,
        default=str,
    )
    out = cache_dir() / f"{ckpt.stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.{fmt}"
    if out.is_file():
        return out
    from segkit.export.command import refuse_qat_checkpoint
    from segkit.export.onnx import export_onnx
    from segkit.export.tflite import export_tflite

    refuse_qat_checkpoint(ckpt, config, model_overrides, runtime=runtime)  # before its fake-quant graph is built
    model = load_model(ckpt, config=config, overrides=model_overrides, device="cpu")
    if fmt == "onnx":
        export_onnx(model, out, input_size=(65, 65), dynamic=True)
    else:
        export_tflite(model, out, input_size=(input_size, input_size))
    return out


def load_for_tools(
    model_path: str | os.PathLike | None,
    runtime: str | None,
    *,
    checkpoint: str | None = None,
    config: Any = None,
    overrides: Mapping[str, Any] | None = None,
    threads: int | None = None,
) -> tuple[ExportedModel, Any]:
    """``(model, cfg)`` for ``segkit test/infer --model FILE`` or ``--checkpoint CKPT --runtime R``.

    The config comes from the file's metadata (or defaults for a foreign file: VOC classes, the input
    quantization's mean/std); ``overrides`` apply on top. A static file implies its input size as the
    fixed-input protocol (``resize_longer`` and ``pad_to``) unless the overrides set them.
    """
    from segkit.config import apply_overrides, config_from_dict

    overrides = dict(overrides or {})
    if model_path is None:
        size = overrides.get("eval.pad_to") or overrides.get("eval.resize_longer")
        if runtime == "litert" and not size:
            from segkit.checkpoint.load import load_model

            eval_cfg = load_model(checkpoint, config=config, device="cpu").segkit_config.eval
            size = eval_cfg.pad_to or eval_cfg.resize_longer
        model_path = cached_export(checkpoint, runtime, config=config, overrides=overrides, input_size=size)
    model = load_exported(model_path, runtime, threads=threads or torch.get_num_threads())
    implied = {k: v for k, v in model.implied_protocol().items() if k not in overrides}
    cfg = config_from_dict(apply_overrides(model.segkit_config.to_dict(), {**implied, **overrides}))
    for key in ("model.input_mean", "model.input_std"):  # the file's own normalisation unless overridden
        if key in overrides:
            setattr(model, key.split("_")[-1], list(overrides[key]))
    model.class_names = model.class_names or _default_names(cfg.model.num_classes)
    return model, cfg


def _default_names(num_classes: int) -> list[str] | None:
    from segkit.data.classes import VOC_CLASSES

    return list(VOC_CLASSES) if num_classes == len(VOC_CLASSES) else None
