"""What ``--model`` and ``--runtime`` give the tools: an exported file, or a checkpoint exported on the fly."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from segkit.runtimes.backends import ExportedModelError
from segkit.runtimes.runner import ExportedModel, load_exported


def cache_dir() -> Path:
    """``$SEGKIT_CACHE/exports``, default ``~/.cache/segkit/exports``."""
    root = os.environ.get("SEGKIT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "segkit")
    return Path(root) / "exports"


# Seconds an export of MobileNetV2 + DeepLabV3 at 513x513 took on a 2-core CPU (docs/deploy.md#the-export-cache):
# what the first-use message announces.
EXPORT_SECONDS = {("torchscript", False): 2, ("torchscript", True): 1, ("dynamo", False): 9, ("dynamo", True): 150}
# Part of every cache key: bumped when cache_plan exports differently, so older files are exported again (2: a
# 'SAME'-padding model's static file from dynamo).
CACHE_VERSION = 2
_PROTOCOL_KEYS = ("eval.resize_longer", "eval.pad_to", "eval.scales", "eval.slide", "eval.resize_range")


@dataclass(frozen=True)
class CachePlan:
    """How a checkpoint is exported for the cache: ``exporter`` and a static ``size`` (None: dynamic H, W)."""

    exporter: str
    size: tuple[int, int] | None

    def describe(self) -> str:
        shape = "dynamic H, W" if self.size is None else f"static {self.size[0]}x{self.size[1]}"
        return f"{shape}, {self.exporter} exporter"

    def estimate_s(self) -> int:
        return EXPORT_SECONDS[(self.exporter, self.size is None)]


def fixed_input_side(eval_cfg: Any) -> int | None:
    """N when every forward pass of the protocol is NxN (longer side resized to N, padded to N, one scale, no
    sliding window), else None."""
    side = eval_cfg.pad_to
    one_scale = [float(s) for s in eval_cfg.scales] == [1.0]
    if side and eval_cfg.resize_longer == side and one_scale and not eval_cfg.slide and not eval_cfg.resize_range:
        return int(side)
    return None


def cache_plan(model: Any, eval_cfg: Any) -> CachePlan:
    """The fastest export that computes what ``model`` computes under the protocol ``eval_cfg``.

    A protocol whose passes are all NxN gets a static NxN file (TorchScript tracer: ~2 s at 513); otherwise a
    dynamic file, from the TorchScript tracer (~1 s) unless the model pads like TF's 'SAME' (a converted official
    model: the tracer would bake in the padding of one size), then from the dynamo exporter (minutes on a CPU). A
    'SAME'-padding model's static file also comes from the dynamo exporter (~9 s at 513): the tracer's graph computes
    each padding from the input's shape at run time, which ONNX Runtime does not fold away (60 ms against 48 ms per
    513 image on 2 cores, 2026-12-03).
    """
    from segkit.export.onnx import has_tf_same_padding

    side = fixed_input_side(eval_cfg)
    same = has_tf_same_padding(model)
    if side is not None:
        return CachePlan("dynamo" if same else "torchscript", (side, side))
    return CachePlan("dynamo" if same else "torchscript", None)


STATIC_FORMATS = {"litert": "tflite", "executorch": "pte"}  # runtime -> its static file's format (else ONNX)


def requested_size(overrides: Mapping[str, Any]) -> int | None:
    """The side the ``eval.*`` overrides fix (``eval.pad_to``, else ``eval.resize_longer``): a static file's size."""
    return overrides.get("eval.pad_to") or overrides.get("eval.resize_longer")


def cache_file(
    checkpoint: str | os.PathLike,
    runtime: str,
    *,
    config: Any = None,
    overrides: Mapping[str, Any] | None = None,
    input_size: int | None = None,
) -> Path:
    """Where :func:`cached_export` keeps ``checkpoint``'s file for ``runtime`` (whether or not it exists yet): the
    key holds the checkpoint's path, size and modification time, the model and protocol overrides and the segkit
    version, so a new checkpoint is re-exported."""
    from segkit.runtimes.metadata import segkit_version

    ckpt = Path(checkpoint)
    overrides = dict(overrides or {})
    model_overrides = {k: v for k, v in overrides.items() if k.startswith("model.")}
    protocol = {k: v for k, v in overrides.items() if k in _PROTOCOL_KEYS}
    stat = ckpt.stat()
    fmt = STATIC_FORMATS.get(runtime, "onnx")
    key = json.dumps(
        [
            CACHE_VERSION,
            str(ckpt.resolve()),
            stat.st_size,
            stat.st_mtime_ns,
            str(config),
            model_overrides,
            segkit_version(),
            fmt,
            input_size,
            protocol if fmt == "onnx" else None,
        ],
        sort_keys=True,
        default=str,
    )
    return cache_dir() / f"{ckpt.stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.{fmt}"


def cached_export(
    checkpoint: str | os.PathLike,
    runtime: str,
    *,
    config: Any = None,
    overrides: Mapping[str, Any] | None = None,
    input_size: int | None = None,
    log: Callable[[str], Any] | None = None,
    verify_root: str | os.PathLike | None = None,
    verify_split: str = "val",
) -> Path:
    """The exported file of ``checkpoint`` for ``runtime`` (exported and verified on first use, then reused).

    onnxruntime / openvino: an ONNX file as :func:`cache_plan` chooses it for the checkpoint's protocol with the
    ``eval.*`` overrides; litert: a static file at ``input_size`` (the protocol's pad_to). The first use says what
    is exported where, ticks the elapsed time, and verifies the file in ``runtime`` against the PyTorch model on
    up to 2 real images of ``verify_root`` (its ``verify_split``, else any image files under it; the data the command
    was given), else on synthetic ones, before it enters the cache; the verification line says which. The cache key holds the checkpoint's path, size and modification
    time, the model and protocol overrides and the segkit version, so a new checkpoint is re-exported. ``log``:
    where the messages go (default: stderr).
    """
    ckpt = Path(checkpoint)
    if not ckpt.is_file():
        raise ExportedModelError(f"checkpoint not found: {ckpt}; pass a segkit .pth file.")
    overrides = dict(overrides or {})
    model_overrides = {k: v for k, v in overrides.items() if k.startswith("model.")}
    protocol = {k: v for k, v in overrides.items() if k in _PROTOCOL_KEYS}
    fmt = STATIC_FORMATS.get(runtime, "onnx")
    if fmt != "onnx" and not input_size:
        raise ExportedModelError(
            f"--runtime {runtime} on a checkpoint needs a static size: add --pad-to N (and "
            "--resize-longer N), or use --runtime onnxruntime / openvino."
        )
    out = cache_file(ckpt, runtime, config=config, overrides=overrides, input_size=input_size)
    if out.is_file():
        return out
    images, source = _cache_verification_images(verify_root, verify_split)
    _export_into_cache(
        ckpt, runtime, out, config, model_overrides, protocol, input_size, log or _to_stderr, images, source
    )
    return out


def _cache_verification_images(root: str | os.PathLike | None, split: str) -> tuple[list[Any], str]:
    """``(images, where from)``: up to 2 real images of ``root`` when it holds any, else 2 synthetic ones of either
    parity (a dynamic file: TF 'SAME' padding differs; a static one: the images fitted to its size)."""
    from segkit.export.verify import find_verification_images, verification_images

    if root is not None:
        found = find_verification_images(root, limit=2, split=split)
        if found.real:
            return found.images, f"{found.where} (the data given)"
    images = verification_images(None, limit=1, synthetic_size=160)[0]
    images += verification_images(None, limit=1, synthetic_size=97)[0]
    return images, "segkit's synthetic images (97, 160 px)"


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _export_into_cache(
    ckpt: Path,
    runtime: str,
    out: Path,
    config: Any,
    model_overrides: dict[str, Any],
    protocol: dict[str, Any],
    input_size: int | None,
    log: Callable[[str], Any],
    images: list[Any],
    source: str,
) -> None:
    """Export ``ckpt`` to ``out`` (staged), verify it in ``runtime``, and move it into the cache only if it passed."""
    from segkit.checkpoint.load import load_model
    from segkit.config import apply_overrides, config_from_dict
    from segkit.export.command import refuse_qat_checkpoint
    from segkit.export.onnx import export_onnx
    from segkit.export.progress import timed_step
    from segkit.export.tflite import export_tflite
    from segkit.export.verify import verify
    from segkit.utils.io import staged_output

    refuse_qat_checkpoint(ckpt, config, model_overrides, runtime=runtime)  # before its fake-quant graph is built
    model = load_model(ckpt, config=config, overrides=model_overrides, device="cpu")
    if out.suffix == ".onnx":
        eval_cfg = config_from_dict(apply_overrides(model.segkit_config.to_dict(), protocol)).eval
        plan = cache_plan(model, eval_cfg)
        what = f"exporting {ckpt.name} for {runtime} ({plan.describe()}) to the cache at {out}"
        note = f" (once; ~{plan.estimate_s()} s at 513x513 on a 2-core CPU)"
    else:
        plan = CachePlan("litert", (input_size, input_size))
        what = f"exporting {ckpt.name} for {runtime} (static {input_size}x{input_size}) to the cache at {out}"
        note = " (once)"
    out.parent.mkdir(parents=True, exist_ok=True)
    with staged_output(out) as staged:
        with timed_step(what, note=note, log=None if log is _to_stderr else log):
            if out.suffix == ".onnx":
                size = plan.size or (65, 65)
                export_onnx(model, staged.path, input_size=size, dynamic=plan.size is None, exporter=plan.exporter)
            elif out.suffix == ".pte":
                from segkit.export.executorch import export_executorch

                export_executorch(model, staged.path, input_size=(input_size, input_size))
            else:
                export_tflite(model, staged.path, input_size=(input_size, input_size))
        report = verify(model, staged.path, images, runtime=runtime, source=source)
        log(report.line())
        staged.keep = report.passed()
    if not report.passed():
        raise ExportedModelError(
            f"the export of {ckpt} for --runtime {runtime} does not compute what the PyTorch model does "
            f"(pixel agreement {100 * report.agreement:.3f}%), so it was not cached; run the checkpoint in PyTorch "
            "(drop --runtime) and report the model's config."
        )


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
        size = requested_size(overrides)
        if runtime in STATIC_FORMATS and not size:
            from segkit.checkpoint.load import load_model

            eval_cfg = load_model(checkpoint, config=config, device="cpu").segkit_config.eval
            size = eval_cfg.pad_to or eval_cfg.resize_longer
        model_path = cached_export(
            checkpoint,
            runtime,
            config=config,
            overrides=overrides,
            input_size=size,
            verify_root=overrides.get("data.root"),  # the data the command was given: verified on its images
            verify_split=overrides.get("data.val_split") or "val",
        )
    model = load_exported(model_path, runtime, threads=threads or torch.get_num_threads())
    implied = {k: v for k, v in model.implied_protocol().items() if k not in overrides}
    cfg = config_from_dict(apply_overrides(model.segkit_config.to_dict(), {**implied, **overrides}))
    if model.metadata is None and "data.num_workers" not in overrides:  # a foreign file's default, not the user's
        from segkit.data.workers import usable_cpus

        cfg.data.num_workers = min(cfg.data.num_workers, usable_cpus())  # clamped silently: nothing to act on
    for key in ("model.input_mean", "model.input_std"):  # the file's own normalisation unless overridden
        if key in overrides:
            setattr(model, key.split("_")[-1], list(overrides[key]))
    model.class_names = model.class_names or _default_names(cfg.model.num_classes)
    return model, cfg


def _default_names(num_classes: int) -> list[str] | None:
    from segkit.data.classes import VOC_CLASSES

    return list(VOC_CLASSES) if num_classes == len(VOC_CLASSES) else None
