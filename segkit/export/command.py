"""What ``segkit export`` does, as one function: a checkpoint -> an ONNX or LiteRT file, verified in its runtime.

    report = export_checkpoint("best.pth", "model.onnx", input_size=(513, 513), input="uint8")
    print(report.verification.line())      # max |logit diff|, relative diff, pixel agreement
    assert report.passed()

:func:`export_model` is the model-level dispatcher: a model (not a checkpoint) to the format its file name (or
``format``) says.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from segkit.evaluation.predict import check_input_size
from segkit.export.errors import ExportError
from segkit.export.formats import EXTENSIONS, FORMATS
from segkit.export.onnx import DEFAULT_EXPORTER, OPSET, check_opset, export_onnx
from segkit.export.progress import timed_step
from segkit.export.tflite import DYNAMIC_REFUSED, export_tflite
from segkit.export.verify import AGREE_MIN, REL_MAX, VerifyReport, find_verification_images, verify
from segkit.utils.io import check_output, staged_output

ONNX_BASED = ("onnx", "openvino")  # formats written through the ONNX exporter (opset, exporter apply)

__all__ = ["EXTENSIONS", "FORMATS", "ExportReport", "export_checkpoint", "export_format", "export_model"]


def export_format(path: str | os.PathLike, format: str | None = None) -> str:  # noqa: A002 - mirrors --format
    """``format`` (one of :data:`FORMATS`), or the format ``path``'s extension names."""
    if format is not None:
        if format not in FORMATS:
            raise ExportError(f"unknown export format {format!r}; use one of {', '.join(FORMATS)}.")
        if format == "web":  # a folder: segkit.export.web.export_web (which imports this module) writes it
            raise ExportError("format 'web' writes a folder, not a model file: use segkit.export.web.export_web.")
        ext = next(e for e, f in EXTENSIONS.items() if f == format)
        if Path(path).suffix.lower() != ext:  # the runtimes open a file by its extension: it must say the format
            raise ExportError(f"--format {format} writes a {ext} file, got --out {path}; name the output *{ext}.")
        return format
    fmt = EXTENSIONS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ExportError(
            f"cannot tell the format of {path}; pass --format {'|'.join(FORMATS)} or name it {'/'.join(EXTENSIONS)}."
        )
    return fmt


def export_model(model: nn.Module, path: str | os.PathLike, format: str | None = None, **kwargs: Any) -> dict:  # noqa: A002
    """Export ``model`` to ``format`` ("onnx" | "openvino" | "tflite" | "executorch"; default: from the file extension);
    returns the metadata written. ``kwargs`` go to :func:`~segkit.export.onnx.export_onnx`,
    :func:`~segkit.export.openvino.export_openvino`, :func:`~segkit.export.tflite.export_tflite` or
    :func:`~segkit.export.executorch.export_executorch`.
    """
    fmt = export_format(path, format)
    if fmt == "executorch":
        from segkit.export.executorch import export_executorch

        return export_executorch(model, path, **kwargs)
    if fmt == "openvino":  # an .xml with its .bin, converted from the ONNX export
        from segkit.export.openvino import export_openvino

        return export_openvino(model, path, **kwargs)
    return (export_onnx if fmt == "onnx" else export_tflite)(model, path, **kwargs)


@dataclass
class ExportReport:
    """What :func:`export_checkpoint` wrote and, unless skipped, how the file compares with the PyTorch model."""

    path: Path
    format: str
    input_size: tuple[int, int]
    dynamic: bool
    metadata: dict[str, Any]
    opset: int | None = None  # ONNX only
    verification: VerifyReport | None = None  # None: verification skipped
    written: bool = True  # False: the verification failed and nothing was written to ``path``

    def line(self) -> str:
        """``Wrote model.onnx (onnx, 513x513, input float nchw, output logits, opset 18)``."""
        shape = "dynamic H, W" if self.dynamic else f"{self.input_size[0]}x{self.input_size[1]}"
        meta = self.metadata
        opset = f", opset {self.opset}" if self.opset is not None else ""
        fusion = " (argmax fusion)" if meta.get("argmax_fusion") else ""
        return (
            f"Wrote {self.path} ({self.format}, {shape}, input {meta['input']} {meta['input_layout']}, "
            f"output {meta['output']}{fusion}{opset})"
        )

    def passed(self) -> bool:
        """True when the verification passed or was skipped."""
        return self.verification is None or self.verification.passed()

    def failure(self) -> str:
        """What a failed verification means, on one line."""
        return (
            f"verification failed: needs pixel agreement >= {100 * AGREE_MIN:.1f}% and relative logit difference "
            f"<= {REL_MAX:g}; the file does not compute what the PyTorch model does, so it was not written to "
            f"{self.path} (a file there before is unchanged; --no-verify writes it unchecked)."
        )


def _input_size(input_size: int | Sequence[int] | None, cfg: Any) -> tuple[int, int]:
    """``(H, W)`` from one N or H W; default: the config's eval.pad_to, else data.crop_size."""
    if input_size is None:
        side = cfg.eval.pad_to or cfg.data.crop_size
        return (side, side)
    return check_input_size(input_size, error=ExportError)  # one N or H W, each 16..8192, within the pixel budget


def refuse_qat_checkpoint(
    checkpoint: str | os.PathLike,
    config: Any = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    *,
    runtime: str | None = None,
) -> None:
    """ExportError when ``checkpoint`` (or a bare state dict's ``config`` with ``overrides``) is a
    quantization-aware training one. Read before the model is built: its fake-quant graph does not export to a
    float file (torch.export fails deep in FX after ~45 s); ``segkit quantize`` converts it with its trained ranges.
    ``runtime``: the checkpoint is exported to run under ``--runtime`` (test, infer), which the message names.
    """
    if config is None:  # what segkit.quantize.is_qat_checkpoint reads (quantize sits above export)
        from segkit.checkpoint.format import checkpoint_config, load_checkpoint

        ckpt = load_checkpoint(checkpoint)
        qat = ckpt.get("kind", "segmentor") == "segmentor" and bool(checkpoint_config(ckpt).train.qat)
    else:
        from segkit.config import Config, apply_overrides, config_from_dict, load_config

        items = dict(overrides) if isinstance(overrides, Mapping) else list(overrides)
        if isinstance(config, Config):
            cfg = config_from_dict(apply_overrides(config.to_dict(), items)) if items else config
        else:
            cfg = load_config(config, items or None)
        qat = cfg.train.qat
    if qat and runtime is not None:
        raise ExportError(
            f"{checkpoint} is a quantization-aware training checkpoint (train.qat: true), which --runtime {runtime} "
            "cannot run (it exports the checkpoint to a float file); drop --runtime to run its fake-quantized model in "
            "PyTorch, or use `segkit quantize` for a QAT checkpoint and pass its int8 file as --model."
        )
    if qat:
        raise ExportError(
            f"{checkpoint} is a quantization-aware training checkpoint (train.qat: true), which segkit export "
            "cannot write as a float file; use `segkit quantize` for a QAT checkpoint: segkit quantize --checkpoint "
            f"{checkpoint} --format tflite --out model_int8.tflite (its trained int8 ranges)."
        )


def export_checkpoint(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    *,
    format: str | None = None,  # noqa: A002 - --format
    input_size: int | Sequence[int] | None = None,
    dynamic: bool = False,
    input: str = "float",  # noqa: A002 - --input
    output: str = "logits",
    argmax_fusion: bool = False,
    opset: int = OPSET,
    exporter: str = DEFAULT_EXPORTER,
    verify_root: str | os.PathLike | None = None,
    verify_images: int = 8,
    skip_verify: bool = False,
    config: str | os.PathLike | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    log: Callable[[str], Any] | None = None,
) -> ExportReport:
    """Export ``checkpoint`` to ``out`` and verify the file in its runtime next to the PyTorch model.

    Args:
        checkpoint: a segkit checkpoint, or a bare state dict with ``config``.
        out: the file to write (atomically); its extension gives the format unless ``format`` does.
        format: "onnx", "openvino" (an .xml with its .bin), "tflite" or "executorch" (:data:`FORMATS`).
        input_size: H W (or one N for NxN) of a static file; default: the config's eval.pad_to, else data.crop_size.
        dynamic: dynamic batch, height and width (ONNX and OpenVINO only).
        input, output: see :func:`~segkit.export.onnx.export_onnx`.
        argmax_fusion: with ``output="labels"``, the Edge TPU's argmax fusion (argmax at the logits' resolution,
            nearest-neighbour upscale of the labels) instead of the official semantics. The file is verified against
            the fused PyTorch labels, and ``report.verification.fusion`` holds its cost against the official
            semantics on the same images (pixel agreement; mIoU of both where the images have masks).
        opset, exporter: ONNX, and the ONNX file an OpenVINO IR is converted from.
        verify_root: data-set root of the verification images; default: the config's data.root when it is on
            disk, else segkit's synthetic images.
        verify_images: how many images are verified (at least 1).
        skip_verify: write the file only.
        config, overrides: the config of a bare state dict, and ``["section.key=value", ...]`` overrides.
        log: called with :meth:`ExportReport.line` once the file is at ``out`` (after its verification passed).

    The file is written and verified beside ``out`` (:func:`segkit.utils.io.staged_output`) and renamed onto ``out``
    only when the verification passed (or was skipped): a failed (``report.written`` False) or interrupted
    verification leaves ``out`` as it was. ``out`` is checked first: never one of the inputs, and writable.

    Raises:
        ExportError: a format that cannot be told or made (LiteRT with ``dynamic``), an opset the exporter does not
            write, a combination that cannot be right, a classifier checkpoint, verification options that verify
            nothing, or a layer that cannot export.
        OutputPathError: ``out`` is an input or cannot be written.
    """
    from segkit.checkpoint.load import load_model

    out = Path(out)
    fmt = export_format(out, format)
    if dynamic and fmt in ("tflite", "executorch"):
        from segkit.export.executorch import DYNAMIC_REFUSED as EXECUTORCH_DYNAMIC

        raise ExportError(DYNAMIC_REFUSED if fmt == "tflite" else EXECUTORCH_DYNAMIC)
    if fmt in ONNX_BASED:
        check_opset(opset, exporter)
    check_argmax_fusion(argmax_fusion, output)
    _check_verify_options(verify_root, verify_images, skip_verify)
    check_output(out, inputs=_export_inputs(checkpoint, config, verify_root), flag="--out")
    if fmt == "openvino":  # its weights land beside it
        bin_inputs = _export_inputs(checkpoint, config, verify_root)
        check_output(out.with_suffix(".bin"), inputs=bin_inputs, flag="--out (its .bin)")
    refuse_qat_checkpoint(checkpoint, config, overrides)  # before its fake-quant graph is prepared (~10 s)
    model = load_model(checkpoint, config=config, overrides=overrides, device="cpu")
    _refuse_classifier(model, checkpoint)
    cfg = model.segkit_config
    size = _input_size(input_size, cfg)
    images, masks, source = ([], None, "") if skip_verify else _verification_data(verify_root, cfg, verify_images)
    onnx_only = {"opset": opset, "exporter": exporter} if fmt in ONNX_BASED else {}
    with staged_output(out) as staged:
        what, note = _export_step(out, fmt, size, dynamic, exporter)
        with timed_step(what, note, enabled=fmt != "onnx" or exporter == "dynamo"):  # the tracer takes ~1-2 s
            meta = export_model(
                model,
                staged.path,
                fmt,
                input_size=size,
                dynamic=dynamic,
                input=input,
                output=output,
                argmax_fusion=argmax_fusion,
                **onnx_only,
            )
        report = ExportReport(out, fmt, size, dynamic, meta, opset if fmt == "onnx" else None)
        if not skip_verify:  # verified where it was written: only a file that passed appears at ``out``
            report.verification = verify(
                model, staged.path, images, source=source, masks=masks, argmax_fusion=argmax_fusion
            )
            staged.keep = report.written = report.passed()
    if log is not None and report.written:
        log(report.line())
        if fmt == "executorch":  # which ops the XNNPACK partitioner left to the portable kernels
            from segkit.export.executorch import delegation_line

            log(delegation_line(meta))
    return report


def check_argmax_fusion(argmax_fusion: bool, output: str) -> None:
    """ExportError for ``--argmax-fusion`` without ``--output labels`` (the fusion replaces the labels' argmax)."""
    if argmax_fusion and output != "labels":
        raise ExportError(
            f"--argmax-fusion changes how the label map is computed, but --output is {output}; add --output labels "
            "(the file then outputs uint8 labels), or drop --argmax-fusion."
        )


def _verification_data(
    verify_root: str | os.PathLike | None, cfg: Any, limit: int
) -> tuple[list[Any], list[Any] | None, str]:
    """``(images, masks, where from)``: ``--verify``'s images, else the config's validation split when on disk, else
    segkit's synthetic shapes; ``masks``: their ground truth where the root is a VOC split (else None); ``where from``
    says which, whether real or synthetic, and whether held out from training."""
    root = verify_root if verify_root is not None else cfg.data.root
    found = find_verification_images(root if Path(root).exists() else None, limit=limit, split=cfg.data.val_split)
    if verify_root is not None and not found.real:  # fell back to synthetic images
        raise ExportError(
            f"--verify {verify_root} holds no images (looked for a VOC split, then for image files under it); "
            "pass a data-set root with images, or leave --verify out to use the config's data or synthetic images."
        )
    same_root = Path(root).resolve() == Path(cfg.data.root).resolve()
    kind = "synthetic" if cfg.data.dataset == "synthetic" and same_root else "real"  # segkit's set: shapes, not photos
    if verify_root is not None:
        return found.images, found.masks, f"{found.where} ({kind} images, --verify)"
    if found.real:
        held_out = "held out from training" if cfg.data.train_split != cfg.data.val_split else "also its training one"
        where = f"{found.where} ({kind} images: the checkpoint's validation split, {held_out})"
        return found.images, found.masks, where
    where = (
        f"{found.where} (synthetic images, not photos: the checkpoint's data root {cfg.data.root} is absent; pass "
        "--verify ROOT to verify on real images)"
    )
    return found.images, None, where


def _export_step(out: Path, fmt: str, size: tuple[int, int], dynamic: bool, exporter: str) -> tuple[str, str]:
    """What :func:`~segkit.export.progress.timed_step` says while the file is exported, and how long it takes."""
    shape = "dynamic H, W" if dynamic else f"{size[0]}x{size[1]}"
    via = {"onnx": f", {exporter} exporter", "openvino": f", via ONNX, {exporter} exporter"}.get(fmt, "")
    what = f"exporting {out.name} ({fmt}, {shape}{via})"
    note = ""
    if fmt in ONNX_BASED and dynamic and exporter == "dynamo":
        note = (
            " (minutes on a CPU: ~20 s for MobileNetV2 + DeepLabV3, ~150 s with TF 'SAME' padding; "
            "--exporter torchscript takes ~1 s where the model has no TF 'SAME' padding)"
        )
    return what, note


def _export_inputs(
    checkpoint: str | os.PathLike, config: str | os.PathLike | None, verify_root: str | os.PathLike | None
) -> dict[str, Any]:
    """What ``segkit export`` reads, by flag: :func:`~segkit.utils.io.check_output`'s ``inputs``."""
    config_file = config if config is not None and Path(config).is_file() else None
    return {"--checkpoint": checkpoint, "--config": config_file, "--verify": verify_root}


def _check_verify_options(verify_root: str | os.PathLike | None, verify_images: int, skip_verify: bool) -> None:
    """ExportError for verification options that would verify nothing, or verify something else than asked."""
    if skip_verify:
        return
    if isinstance(verify_images, bool) or not isinstance(verify_images, int) or verify_images < 1:
        raise ExportError(
            f"--verify-images {verify_images} verifies nothing; pass --verify-images N with N >= 1 "
            "(default 8), or --no-verify to write the file unchecked."
        )
    if verify_root is not None and not Path(verify_root).is_dir():
        raise ExportError(
            f"--verify {verify_root} is not a folder; pass the data-set root of the verification images, or leave "
            "--verify out to use the config's data (or segkit's synthetic images)."
        )


def _refuse_classifier(model: nn.Module, checkpoint: str | os.PathLike) -> None:
    """ExportError for a converted ImageNet classifier: segkit export writes segmentation models only."""
    from segkit.models.classifier import MobileNetV2Classifier

    if isinstance(model, MobileNetV2Classifier):
        raise ExportError(
            f"{checkpoint} holds a 'classifier' checkpoint (an ImageNet model), not a segmentation model: segkit "
            "export writes segmentors only; export a segmentor checkpoint (segkit convert of a DeepLab .tflite, or "
            "segkit train), or use the classifier as train.init_weights."
        )
