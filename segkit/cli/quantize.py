"""Int8 post-training quantization of a checkpoint into an ONNX Runtime, OpenVINO or LiteRT file, verified."""

from __future__ import annotations

import argparse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="segkit quantize", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", required=True, help="float segkit checkpoint (or converted official model)")
    p.add_argument("--calib-data", required=True, help="data-set root holding the calibration images")
    p.add_argument("--calib-split", default="train", help="split of the calibration images (default: train)")
    p.add_argument("--num-calib", type=int, default=200, help="calibration images (default: 200)")
    p.add_argument("--dataset", default=None, help="data-set kind of --calib-data/--verify (default: the config's)")
    p.add_argument("--format", required=True, choices=("onnx", "openvino", "tflite"))
    p.add_argument("--out", required=True, help="output file (.onnx, .xml with .bin, .tflite)")
    p.add_argument("--input-size", type=int, nargs=2, default=(513, 513), metavar=("H", "W"))
    p.add_argument(
        "--input", choices=("float", "uint8"), default="float", help="uint8: RGB NHWC in (like the official files)"
    )
    p.add_argument("--output", choices=("logits", "labels"), default="logits")
    p.add_argument("--verify", default=None, help="data-set root to verify on (val split); default: calibration images")
    p.add_argument("--verify-split", default="val")
    p.add_argument("--num-verify", type=int, default=50)
    p.add_argument("--no-progress", action="store_true")
    return p


def _run(args: argparse.Namespace) -> int:
    import segkit
    from segkit.quantize import calibration_images, quantize_model, verify_int8

    model = segkit.load_model(args.checkpoint)
    size = tuple(args.input_size)
    images = calibration_images(
        model,
        args.calib_data,
        split=args.calib_split,
        num=args.num_calib,
        input_size=size,
        dataset=args.dataset,
        progress=not args.no_progress,
    )
    quantize_model(
        model,
        args.out,
        images,
        format=args.format,
        input_size=size,
        input=args.input,
        output=args.output,
        progress=not args.no_progress,
    )
    if args.verify:
        check = calibration_images(
            model,
            args.verify,
            split=args.verify_split,
            num=args.num_verify,
            input_size=size,
            dataset=args.dataset,
            with_masks=True,
            progress=not args.no_progress,
        )
    else:
        check = images[: args.num_verify]
    report = verify_int8(model, args.out, check)
    print(report.line())
    return 0 if report.passed() else 1


def main(argv: list[str] | None = None) -> int:
    """``segkit quantize ...``; returns the exit code."""
    from segkit.cli.common import ERRORS, run_main
    from segkit.quantize import QuantizeError

    args = build_parser().parse_args(argv)
    return run_main(_run, args, errors=(*ERRORS, QuantizeError))
