"""What every ``segkit`` subcommand shares, defined once: one-line errors, ``--config/--set``, ``--device``, the model
source (``--checkpoint``/``--model``/``--runtime``) and the prediction-protocol flags. (The data root a command reads
is :func:`segkit.data.resolve_data_root`'s.)"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import Any

from segkit.errors import USER_ERROR, SegkitError
from segkit.evaluation.limits import MAX_PIXELS, MAX_SCALE, MAX_SIDE, MF_SCALES, MIN_SCALE, MIN_SIDE
from segkit.runtimes.names import RUNTIMES

__all__ = [
    "ERRORS",
    "add_config_arguments",
    "add_device_argument",
    "add_model_source_arguments",
    "add_protocol_arguments",
    "budget_arg",
    "error_message",
    "max_pixels",
    "options",
    "pixels_arg",
    "protocol_overrides",
    "run_main",
    "scales_arg",
    "verdict",
    "side_arg",
]

# The project's errors: each message already says what is wrong and how to fix it.
ERRORS: tuple[type[BaseException], ...] = (SegkitError,)


def error_message(exc: BaseException) -> str:
    """The message of a segkit error on one line, without the traceback a DataLoader worker adds to it."""
    text = str(exc)
    if "Original Traceback" in text:  # re-raised from a worker: keep the original exception's message
        last = text.rstrip().splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return " ".join(text.split("\n")).strip()


def run_main(
    fn: Callable[..., int], *args: Any, errors: tuple[type[BaseException], ...] = ERRORS, **kwargs: Any
) -> int:
    """``fn(*args, **kwargs)``; one of the project's ``errors`` becomes ``error: <message>`` on stderr and its exit
    code (2 for a user error)."""
    try:
        return fn(*args, **kwargs)
    except errors as exc:
        print(f"error: {error_message(exc)}", file=sys.stderr)
        return getattr(exc, "exit_code", USER_ERROR)


def verdict(report: Any) -> int:
    """Exit code of a command that verified the file it wrote: 0, or 1 after printing why the file was refused."""
    if report.passed():
        return 0
    print(f"error: {report.failure()}", file=sys.stderr)
    return 1


def options(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """``{name: args.name}`` for flags whose library keyword has the flag's name (``--num-calib`` -> num_calib)."""
    return {name: getattr(args, name) for name in names}


def add_config_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    required: bool = False,
    config_help: str = "config name (see `segkit train --help`; e.g. voc_mnv2_os16) or a YAML path",
    set_example: str = "model.output_stride=8",
) -> None:
    """``--config NAME|PATH`` and ``--set KEY=VALUE ...`` (repeatable; later items win)."""
    parser.add_argument("--config", required=required, help=config_help)
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        action="extend",
        metavar="KEY=VALUE",
        help=f"config overrides, e.g. --set {set_example} (repeatable)",
    )


def add_device_argument(parser: argparse.ArgumentParser, *, default: str | None = None, extra: str = "") -> None:
    """``--device``: cpu, cuda or cuda:N; ``default`` None means CUDA when available
    (:func:`segkit.utils.device.resolve_device`)."""
    shown = "cuda when available, else cpu" if default is None else default
    parser.add_argument("--device", default=default, help=f"cpu, cuda or cuda:N{extra} (default: {shown})")


def scales_arg(text: str) -> list[float]:
    """``--scales 0.5,1,1.5``: finite factors in [MIN_SCALE, MAX_SCALE]."""
    try:
        scales = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        scales = []
    if not scales or any(not (math.isfinite(s) and MIN_SCALE <= s <= MAX_SCALE) for s in scales):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated factors in [{MIN_SCALE}, {MAX_SCALE}] such as 0.5,1,1.5, got '{text}'"
        )
    return scales


def _int_arg(text: str, ok: Callable[[int], bool], expected: str) -> int:
    """``int(text)`` when ``ok`` accepts it, else argparse's one-line error ``expected <expected>, got '<text>'``."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got '{text}'")
    return value


def pixels_arg(text: str) -> int:
    """``--resize-longer`` / ``--pad-to``: 0 (off) or a number of pixels >= 16."""
    return _int_arg(text, lambda v: v == 0 or v >= 16, "0 (off) or a number of pixels >= 16")


def budget_arg(text: str) -> int:
    """``--max-pixels``: 0 (no limit) or a positive number of pixels."""
    return _int_arg(text, lambda v: v >= 0, "0 (no limit) or a positive number of pixels")


def side_arg(text: str) -> int:
    """``--input-size`` of export and quantize: a side of MIN_SIDE..MAX_SIDE pixels (16..8192)."""
    return _int_arg(text, lambda v: MIN_SIDE <= v <= MAX_SIDE, f"a side of {MIN_SIDE}..{MAX_SIDE} pixels")


class _SlideAction(argparse.Action):
    """``--slide CROP STRIDE``: both 0 (off), or 1 <= STRIDE <= CROP (a zero or larger stride is refused)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001 - argparse's signature
        crop, stride = values
        if (crop == 0) != (stride == 0) or stride > crop:
            raise argparse.ArgumentError(
                self,
                f"expected CROP STRIDE with 16 <= STRIDE <= CROP (windows every STRIDE pixels), or 0 0 for off; "
                f"got {crop} {stride}",
            )
        setattr(namespace, self.dest, [crop, stride])


def add_protocol_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--ms-flip --scales --flip --resize-longer --pad-to --slide`` (defaults: the checkpoint's ``eval``)
    and ``--fast``."""
    parser.add_argument(
        "--fast",
        action="store_true",
        help="run --checkpoint in the fastest installed runtime, same predictions, and say which: on a CPU ONNX "
        "Runtime through the export cache (exported once, ~1-2 s; 44.7 ms vs 80 ms for PyTorch "
        "optimize_for_inference at 513 on a 2-thread AMD EPYC), else (GPU, no onnxruntime, QAT, a TF 'SAME' model "
        "without a fixed-size protocol) PyTorch optimize_for_inference (BN folded, channels_last); "
        "no-op with --model or --runtime",
    )
    group = parser.add_argument_group("prediction protocol (default: the checkpoint's eval section)")
    group.add_argument(
        "--ms-flip",
        action="store_true",
        help=f"the paper's MF: softmax averaged over scales {','.join(map(str, MF_SCALES))} "
        "(or --scales) and their horizontal flips",
    )
    group.add_argument(
        "--scales",
        type=scales_arg,
        metavar="S1,S2,...",
        help=f"input scales in [{MIN_SCALE}, {MAX_SCALE}], e.g. 0.75,1,1.25",
    )
    group.add_argument("--flip", action="store_true", help="add horizontal flips (implied by --ms-flip)")
    group.add_argument(
        "--resize-longer",
        type=pixels_arg,
        metavar="N",
        help="resize the longer side to N pixels, keeping the aspect ratio (0: off)",
    )
    group.add_argument(
        "--pad-to", type=pixels_arg, metavar="N", help="pad bottom/right to at least NxN with the mean pixel (0: off)"
    )
    group.add_argument(
        "--slide",
        type=pixels_arg,
        nargs=2,
        action=_SlideAction,
        metavar=("CROP", "STRIDE"),
        help="sliding window: CROPxCROP windows every STRIDE pixels (16 <= STRIDE <= CROP), logits of "
        "overlapping windows averaged (bounded memory for large images; 0 0: off)",
    )
    group.add_argument(
        "--antialias",
        action="store_true",
        default=None,
        help="antialiased shrinking (eval.antialias): low-pass input resizes that shrink "
        "(--resize-longer, scales < 1) as PIL does; default: plain bilinear",
    )
    group.add_argument(
        "--max-pixels",
        type=budget_arg,
        default=MAX_PIXELS,
        metavar="N",
        help=f"pixel budget of one forward pass, batch x height x width (default {MAX_PIXELS:,}, "
        "2048x2048; 0: no limit, at the risk of running out of memory); a larger pass, or a resize past it, is "
        "refused with the fix before anything is allocated",
    )


def max_pixels(args: argparse.Namespace) -> int | None:
    """The ``--max-pixels`` budget (None: no limit)."""
    return args.max_pixels if args.max_pixels > 0 else None


def protocol_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Config overrides (``eval.*``) from the arguments of :func:`add_protocol_arguments`."""
    overrides: dict[str, Any] = {}
    if args.ms_flip:
        overrides["eval.scales"] = list(MF_SCALES)
        overrides["eval.flip"] = True
    if args.scales is not None:
        overrides["eval.scales"] = args.scales
    if args.flip:
        overrides["eval.flip"] = True
    for value, key in ((args.resize_longer, "eval.resize_longer"), (args.pad_to, "eval.pad_to")):
        if value is not None:
            overrides[key] = value or None
    if getattr(args, "slide", None) is not None:
        overrides["eval.slide"] = list(args.slide) if all(args.slide) else None
    if getattr(args, "antialias", None):
        overrides["eval.antialias"] = True
    return overrides


def add_model_source_arguments(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint`` or ``--model FILE`` (one of them, required) and ``--runtime``: what test/infer run."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="segkit checkpoint (.pth), or a bare state dict with --config")
    source.add_argument(
        "--model",
        metavar="FILE",
        help="an exported .onnx, .tflite, .pte or OpenVINO .xml file (segkit's "
        "or another's), run in --runtime; a static file implies --resize-longer/--pad-to its size",
    )
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        help="run --model in this runtime (default by extension: .onnx onnxruntime, .xml openvino, "
        ".tflite litert, .pte executorch); with --checkpoint: export it once (cached) and run it there",
    )
