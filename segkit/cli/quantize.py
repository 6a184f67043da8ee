"""Int8 quantization of a checkpoint into an ONNX Runtime, OpenVINO or LiteRT file, verified.

A float checkpoint is calibrated on --calib-data (post-training quantization). A quantization-aware
training checkpoint (train.qat) converts to LiteRT with its trained ranges, without calibration; ONNX
and OpenVINO recalibrate its fine-tuned float weights (--calib-data needed)."""

from __future__ import annotations

import argparse


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
    from segkit.checkpoint import checkpoint_config, load_checkpoint
    from segkit.quantize import QuantizeError, calibration_images, quantize_model, verify_int8
    from segkit.quantize.ptq import quantize_qat

    ckpt = load_checkpoint(args.checkpoint)
    qat = ckpt.get("kind", "segmentor") == "segmentor" and checkpoint_config(ckpt).train.qat
    del ckpt
    if args.calib_data is None and not (qat and args.format == "tflite"):
        raise QuantizeError(
            f"--calib-data ROOT is required for --format {args.format} of a "
            + (
                "quantization-aware training checkpoint: only LiteRT (--format tflite) takes its trained ranges; "
                "ONNX and OpenVINO recalibrate its fine-tuned float weights on those images."
                if qat
                else "float checkpoint: post-training quantization calibrates on its images (a quantization-aware "
                "training checkpoint converts to --format tflite without them)."
            )
        )
    model = segkit.load_model(args.checkpoint)
    size = tuple(args.input_size)
    images = []
    if args.calib_data is not None and not (qat and args.format == "tflite"):
        images = calibration_images(
            model,
            args.calib_data,
            split=args.calib_split,
            num=args.num_calib,
            input_size=size,
            dataset=args.dataset,
            progress=not args.no_progress,
        )
    options = dict(format=args.format, input_size=size, input=args.input, output=args.output)
    if qat:
        quantize_qat(model, args.out, images, **options, progress=not args.no_progress)
    else:
        quantize_model(model, args.out, images, **options, progress=not args.no_progress)
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
    elif images:
        check = images[: args.num_verify]
    else:  # a QAT checkpoint without --calib-data: its own validation images, if they are here
        check = _own_val_images(model, args, size)
    report = verify_int8(model, args.out, check)
    print(report.line())
    if qat:
        print("(QAT checkpoint: the reference is its fake-quantized model in PyTorch, precision fake-int8)")
    return 0 if report.passed() else 1


def _own_val_images(model: object, args: argparse.Namespace, size: tuple[int, int]) -> list:
    """The checkpoint's validation split (its config's data.root) when present, else random images (said so)."""
    from segkit.data import DatasetError
    from segkit.quantize import calibration_images
    from segkit.quantize.calib import synthetic_images

    data = model.segkit_config.data
    try:
        return calibration_images(
            model, data.root, split=data.val_split, num=args.num_verify, input_size=size, progress=not args.no_progress
        )
    except (DatasetError, OSError):
        print(f"No --verify data and {data.root} is absent: verifying on {args.num_verify} random images.")
        return synthetic_images(model, args.num_verify, size)


def main(argv: list[str] | None = None) -> int:
    """``segkit quantize ...``; returns the exit code."""
    from segkit.cli.common import ERRORS, run_main
    from segkit.quantize import QuantizeError

    args = build_parser().parse_args(argv)
    return run_main(_run, args, errors=(*ERRORS, QuantizeError))
