"""What ``segkit quantize`` can write, without importing torch: the int8 formats, the file each writes, the format an
output's name implies, and the error of a request that cannot work."""

from __future__ import annotations

import os
from pathlib import Path

from segkit.errors import SegkitError

__all__ = ["EXTENSIONS", "FORMATS", "FUSION_FORMATS", "QuantizeError", "check_fusion_format", "quantize_format"]

FORMATS = ("onnx", "openvino", "tflite", "executorch")
# format -> the extension of its file
EXTENSIONS = {"onnx": ".onnx", "openvino": ".xml", "tflite": ".tflite", "executorch": ".pte"}
FUSION_FORMATS = ("onnx", "openvino")  # the int8 formats ``--argmax-fusion`` writes (both quantize an ONNX graph)


class QuantizeError(SegkitError, ValueError):
    """A quantization request that cannot work; the message says what to change."""


def quantize_format(out: str | os.PathLike, format: str | None = None) -> str:  # noqa: A002 - mirrors --format
    """``format``, or the one ``out``'s extension names (.onnx onnx, .xml openvino, .tflite tflite, .pte executorch).

    Raises:
        QuantizeError: ``format`` is unknown, ``out``'s extension is not the one ``format`` writes, or (no
            ``format``) the extension names none of them.
    """
    suffix = Path(out).suffix.lower()
    if format is None:
        named = {ext: fmt for fmt, ext in EXTENSIONS.items()}.get(suffix)
        if named is None:
            names = ", ".join(f"*{ext} ({fmt})" for fmt, ext in EXTENSIONS.items())
            raise QuantizeError(
                f"cannot tell the int8 format of --out {out}: name it {names}, or pass --format "
                f"{'|'.join(FORMATS)} with its extension."
            )
        return named
    if format not in FORMATS:
        raise QuantizeError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}.")
    if suffix != EXTENSIONS[format]:
        ext = EXTENSIONS[format]
        raise QuantizeError(f"--format {format} writes a {ext} file, got --out {out}; name the output *{ext}.")
    return format


def check_fusion_format(argmax_fusion: bool, format: str) -> None:  # noqa: A002 - mirrors --format
    """QuantizeError for ``--argmax-fusion`` with an int8 format that does not write it (LiteRT, ExecuTorch)."""
    if argmax_fusion and format not in FUSION_FORMATS:
        raise QuantizeError(
            f"--argmax-fusion is written to --format onnx or openvino, got --format {format}; quantize to "
            f"{' or '.join(EXTENSIONS[f] for f in FUSION_FORMATS)}, or drop --argmax-fusion (`segkit export "
            "--argmax-fusion` writes a float file of every format)."
        )
