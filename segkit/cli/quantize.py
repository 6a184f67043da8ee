"""Int8 quantization of a checkpoint into an ONNX Runtime, OpenVINO, LiteRT or ExecuTorch file, verified against it.

A float checkpoint is calibrated on --calib-data (post-training quantization). A quantization-aware
training checkpoint (train.qat) converts to LiteRT with its trained ranges, without calibration; ONNX
and OpenVINO recalibrate its fine-tuned float weights (--calib-data needed). The format follows the
--out extension (.onnx, .xml, .tflite, .pte) unless --format names it."""

from __future__ import annotations

import argparse

from segkit.cli.common import options, run_main, side_arg, verdict
from segkit.export.formats import INPUTS, OUTPUTS
from segkit.quantize.formats import EXTENSIONS, FORMATS

EXAMPLES = """examples:
  segkit quantize --checkpoint best.pth --calib-data data --out model_int8.onnx          # ONNX Runtime (QDQ)
  segkit quantize --checkpoint best.pth --calib-data data --out model_int8.xml           # OpenVINO (NNCF), + .bin
  segkit quantize --checkpoint best.pth --calib-data data --out model_int8.tflite --input uint8   # LiteRT
  segkit quantize --checkpoint best.pth --calib-data data --out model_int8.pte           # ExecuTorch (XNNPACK)
  segkit quantize --checkpoint qat/best.pth --out qat_int8.tflite --input-size 160 160   # QAT: no --calib-data
  segkit quantize --checkpoint best.pth --calib-data data --out fused_int8.onnx --output labels --argmax-fusion

Exit status: 0 written and verified; 1 the verification failed (nothing written); 2 a usage or input error."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="segkit quantize",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        help="segkit checkpoint (.pth): float (or a converted official model), or a quantization-aware training one",
    )
    p.add_argument(
        "--out",
        required=True,
        help="the int8 file to write: .onnx, .xml (with its .bin beside it), .tflite or .pte; written only once verified",
    )
    by_extension = ", ".join(f"{ext} {fmt}" for fmt, ext in EXTENSIONS.items())
    p.add_argument("--format", choices=FORMATS, help=f"int8 format; default: from the --out extension ({by_extension})")
    p.add_argument(
        "--calib-data",
        default=None,
        metavar="ROOT",
        help="data-set root of the calibration images; required, except for a quantization-aware training "
        "checkpoint written to .tflite (it keeps its trained ranges)",
    )
    p.add_argument(
        "--calib-split",
        default=None,
        help="split of the calibration images (default: train, else trainval or val when --calib-data has no train "
        "split, said)",
    )
    p.add_argument("--num-calib", type=int, default=200, metavar="N", help="calibration images (default: 200)")
    p.add_argument(
        "--dataset", default=None, help="data-set kind of --calib-data and --verify (default: the checkpoint's)"
    )
    p.add_argument(
        "--input-size",
        type=side_arg,
        nargs=2,
        default=(513, 513),
        metavar=("H", "W"),
        help="static input size of the file, 16..8192 each and at most 2048x2048 pixels (default: 513 513)",
    )
    p.add_argument(
        "--input",
        choices=INPUTS,
        default="float",
        help="float: normalised images (default); uint8: RGB NHWC, normalised in the graph (like the official files)",
    )
    p.add_argument(
        "--output",
        choices=OUTPUTS,
        default="logits",
        help="logits at the input size (default), or the uint8 label map (argmax in the graph)",
    )
    p.add_argument(
        "--argmax-fusion",
        action="store_true",
        help="with --output labels, --format onnx or openvino: argmax at the logits' resolution, labels upscaled by "
        "nearest neighbour (the Edge TPU's fusion; verified against the fused float labels, its cost printed)",
    )
    p.add_argument(
        "--verify",
        default=None,
        metavar="ROOT",
        help="data-set root of held-out images to verify on (its --verify-split, with masks); default: --calib-data's "
        "--verify-split, or a disjoint part of --calib-split when that is the same or absent; never an image "
        "calibrated on",
    )
    p.add_argument(
        "--verify-split",
        default="val",
        help="split of the verification images (default: val), of --verify or else --calib-data",
    )
    p.add_argument(
        "--num-verify", type=int, default=50, metavar="N", help="images the int8 file is verified on (default: 50)"
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return p


def run(args: argparse.Namespace) -> int:
    from segkit.quantize.command import quantize_checkpoint  # heavy (torch): not for --help

    report = quantize_checkpoint(
        args.checkpoint,
        args.out,
        **options(args, "format", "calib_data", "calib_split", "num_calib", "dataset", "input", "output"),
        **options(args, "argmax_fusion"),
        **options(args, "verify", "verify_split", "num_verify"),
        input_size=tuple(args.input_size),
        progress=not args.no_progress,
    )
    print(report.line())
    if report.fusion is not None:
        print(report.fusion.line())
    if report.reference == "fake-int8":
        print("(QAT checkpoint: the reference is its fake-quantized model in PyTorch, precision fake-int8)")
    return verdict(report)


def main(argv: list[str] | None = None) -> int:
    """``segkit quantize ...``; returns the exit code."""
    return run_main(run, build_parser().parse_args(argv))
