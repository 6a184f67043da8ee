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

from segkit.export.errors import ExportError
from segkit.export.onnx import DEFAULT_EXPORTER, OPSET, export_onnx
from segkit.export.tflite import DYNAMIC_REFUSED, export_tflite
from segkit.export.verify import AGREE_MIN, REL_MAX, VerifyReport, verification_images, verify

__all__ = ["EXTENSIONS", "FORMATS", "ExportReport", "export_checkpoint", "export_format", "export_model"]

FORMATS = ("onnx", "tflite")
EXTENSIONS = {".onnx": "onnx", ".tflite": "tflite"}  # file extension -> format


def export_format(path: str | os.PathLike, format: str | None = None) -> str:  # noqa: A002 - mirrors --format
    """``format`` (one of :data:`FORMATS`), or the format ``path``'s extension names."""
    if format is not None:
        if format not in FORMATS:
            raise ExportError(f"unknown export format {format!r}; use one of {', '.join(FORMATS)}.")
        return format
    fmt = EXTENSIONS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ExportError(
            f"cannot tell the format of {path}; pass --format {'|'.join(FORMATS)} or name it {'/'.join(EXTENSIONS)}."
        )
    return fmt


def export_model(model: nn.Module, path: str | os.PathLike, format: str | None = None, **kwargs: Any) -> dict:  # noqa: A002
    """Export ``model`` to ``format`` ("onnx" | "tflite"; default: from the file extension); returns the metadata
    written. ``kwargs`` go to :func:`~segkit.export.onnx.export_onnx` or :func:`~segkit.export.tflite.export_tflite`.
    """
    fmt = export_format(path, format)
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

    def line(self) -> str:
        """``Wrote model.onnx (onnx, 513x513, input float nchw, output logits, opset 18)``."""
        shape = "dynamic H, W" if self.dynamic else f"{self.input_size[0]}x{self.input_size[1]}"
        meta = self.metadata
        opset = f", opset {self.opset}" if self.opset is not None else ""
        return (
            f"Wrote {self.path} ({self.format}, {shape}, input {meta['input']} {meta['input_layout']}, "
            f"output {meta['output']}{opset})"
        )

    def passed(self) -> bool:
        """True when the verification passed or was skipped."""
        return self.verification is None or self.verification.passed()

    def failure(self) -> str:
        """What a failed verification means, on one line."""
        return (
            f"verification failed: needs pixel agreement >= {100 * AGREE_MIN:.1f}% and relative logit difference "
            f"<= {REL_MAX:g}; the file does not compute what the PyTorch model does."
        )


def _input_size(input_size: int | Sequence[int] | None, cfg: Any) -> tuple[int, int]:
    """``(H, W)`` from one N or H W; default: the config's eval.pad_to, else data.crop_size."""
    if input_size is None:
        side = cfg.eval.pad_to or cfg.data.crop_size
        return (side, side)
    sizes = [input_size] if isinstance(input_size, int) else list(input_size)
    if len(sizes) not in (1, 2):
        raise ExportError(f"--input-size takes H W or one N, got {' '.join(map(str, sizes))}.")
    return (sizes[0], sizes[-1])


def export_checkpoint(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    *,
    format: str | None = None,  # noqa: A002 - --format
    input_size: int | Sequence[int] | None = None,
    dynamic: bool = False,
    input: str = "float",  # noqa: A002 - --input
    output: str = "logits",
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
        format: "onnx" or "tflite" (:data:`FORMATS`).
        input_size: H W (or one N for NxN) of a static file; default: the config's eval.pad_to, else data.crop_size.
        dynamic: dynamic batch, height and width (ONNX only).
        input, output: see :func:`~segkit.export.onnx.export_onnx`.
        opset, exporter: ONNX only.
        verify_root: data-set root of the verification images; default: the config's data.root when it is on
            disk, else segkit's synthetic images.
        verify_images: how many images are verified.
        skip_verify: write the file only.
        config, overrides: the config of a bare state dict, and ``["section.key=value", ...]`` overrides.
        log: called with :meth:`ExportReport.line` once the file is written (before the verification runs).

    Raises:
        ExportError: a format that cannot be told or made (LiteRT with ``dynamic``), or a layer that cannot export.
    """
    from segkit.checkpoint.load import load_model

    out = Path(out)
    fmt = export_format(out, format)
    if fmt == "tflite" and dynamic:
        raise ExportError(DYNAMIC_REFUSED)
    model = load_model(checkpoint, config=config, overrides=overrides, device="cpu")
    cfg = model.segkit_config
    size = _input_size(input_size, cfg)
    onnx_only = {"opset": opset, "exporter": exporter} if fmt == "onnx" else {}
    meta = export_model(model, out, fmt, input_size=size, dynamic=dynamic, input=input, output=output, **onnx_only)
    report = ExportReport(out, fmt, size, dynamic, meta, opset if fmt == "onnx" else None)
    if log is not None:
        log(report.line())
    if skip_verify:
        return report
    root = verify_root if verify_root is not None else cfg.data.root
    images, source = verification_images(
        root if Path(root).exists() else None, limit=verify_images, split=cfg.data.val_split
    )
    report.verification = verify(model, out, images, source=source)
    return report
