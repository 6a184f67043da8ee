"""Int8 quantization of a checkpoint into an ONNX Runtime, OpenVINO or LiteRT file, verified.

A float checkpoint is calibrated on --calib-data (post-training quantization). A quantization-aware
training checkpoint (train.qat) converts to LiteRT with its trained ranges, without calibration; ONNX
and OpenVINO recalibrate its fine-tuned float weights (--calib-data needed)."""

from __future__ import annotations

import argparse

from segkit.cli.common import options, run_main, side_arg, verdict
from segkit.export import INPUTS, OUTPUTS
from segkit.quantize import FORMATS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="segkit quantize", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", required=True, help="float segkit checkpoint (or converted official model)")
    p.add_argument(
        "--calib-data",
        default=None,
        help="data-set root of the calibration images (not needed: QAT checkpoint, tflite)",
    )
    p.add_argument("--calib-split", default="train", help="split of the calibration images (default: train)")
    p.add_argument("--num-calib", type=int, default=200, help="calibration images (default: 200)")
    p.add_argument("--dataset", default=None, help="data-set kind of --calib-data/--verify (default: the config's)")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True, help="output file (.onnx, .xml with .bin, .tflite)")
    p.add_argument(
        "--input-size",
        type=side_arg,
        nargs=2,
        default=(513, 513),
        metavar=("H", "W"),
        help="16..8192 each, at most 2048x2048 pixels",
    )
    p.add_argument("--input", choices=INPUTS, default="float", help="uint8: RGB NHWC in (like the official files)")
    p.add_argument("--output", choices=OUTPUTS, default="logits")
    p.add_argument("--verify", default=None, help="data-set root to verify on (val split); default: calibration images")
    p.add_argument("--verify-split", default="val")
    p.add_argument("--num-verify", type=int, default=50)
    p.add_argument("--no-progress", action="store_true")
    return p


def run(args: argparse.Namespace) -> int:
    from segkit.quantize import quantize_checkpoint  # heavy (torch): not for --help

    report = quantize_checkpoint(
        args.checkpoint,
        args.out,
        **options(args, "format", "calib_data", "calib_split", "num_calib", "dataset", "input", "output"),
        **options(args, "verify", "verify_split", "num_verify"),
        input_size=tuple(args.input_size),
        progress=not args.no_progress,
    )
    print(report.line())
    if report.reference == "fake-int8":
        print("(QAT checkpoint: the reference is its fake-quantized model in PyTorch, precision fake-int8)")
    return verdict(report)


def main(argv: list[str] | None = None) -> int:
    """``segkit quantize ...``; returns the exit code."""
    return run_main(run, build_parser().parse_args(argv))
