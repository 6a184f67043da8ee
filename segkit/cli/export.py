"""Export a checkpoint to ONNX or LiteRT (TFLite) and verify the file in its runtime.

    segkit export --checkpoint ckpt.pth --format onnx --out model.onnx --input-size 513 513
    segkit export --checkpoint ckpt.pth --format onnx --out model.onnx --dynamic
    segkit export --checkpoint ckpt.pth --format tflite --out model.tflite --input uint8 --output labels

'--input uint8' puts the normalisation inside the graph (RGB uint8 NHWC in); '--output labels' puts the
argmax inside (a uint8 label map [N, H, W] out). The file carries segkit's metadata (config, class
names, palette, mean/std, input size, input/output kinds). The export is then run in its runtime
(onnxruntime / ai-edge-litert) next to the PyTorch model on the '--verify' data (a data-set root;
default: the config's val split when it is on disk, else segkit's synthetic images), and the max
|logit difference| (absolute and relative to the logit range) and the pixel agreement are printed.

Exit status: 0 on success; 1 when verification fails (agreement below 99.9% or relative logit
difference above 1e-3); 2 on a usage or input error, or an export that cannot work (the message names
the layer and what to change).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from segkit.checkpoint.load import load_model
from segkit.cli.common import ERRORS, run_main
from segkit.export import OPSET, ExportError, export_onnx, export_tflite, verification_images, verify
from segkit.export.onnx import EXPORTERS
from segkit.export.verify import AGREE_MIN, REL_MAX
from segkit.runtimes import ExportedModelError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--checkpoint", required=True, help="segkit checkpoint (.pth), or a bare state dict with --config"
    )
    parser.add_argument("--format", choices=["onnx", "tflite"], help="default: from the --out extension")
    parser.add_argument("--out", required=True, type=Path, help="the file to write (.onnx or .tflite), atomically")
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--input-size",
        type=int,
        nargs="+",
        metavar="N",
        help="H W (or one N for NxN) of a static file; default: the config's eval.pad_to, else data.crop_size",
    )
    size.add_argument("--dynamic", action="store_true", help="dynamic batch, height and width (ONNX only)")
    parser.add_argument(
        "--input",
        choices=["float", "uint8"],
        default="float",
        help="float: normalised images (ONNX NCHW, TFLite NHWC); uint8: RGB NHWC, normalised in the graph",
    )
    parser.add_argument(
        "--output",
        choices=["logits", "labels"],
        default="logits",
        help="logits at the input size (ONNX NCHW, TFLite NHWC) or the uint8 label map (argmax in the graph)",
    )
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    parser.add_argument(
        "--exporter",
        choices=EXPORTERS,
        default="dynamo",
        help="torch.onnx exporter: dynamo (default, torch.export based: a smaller graph) or torchscript",
    )
    parser.add_argument(
        "--verify",
        metavar="ROOT",
        help="data-set root of the verification images (default: the "
        "config's data.root when on disk, else synthetic images)",
    )
    parser.add_argument("--verify-images", type=int, default=8, metavar="N", help="images verified (default 8)")
    parser.add_argument("--no-verify", action="store_true", help="skip the verification")
    parser.add_argument("--config", help="config name or YAML path, only for a bare state dict")
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        action="extend",
        metavar="KEY=VALUE",
        help="config overrides, e.g. --set model.align_corners=false",
    )
    return parser


def _size(args: argparse.Namespace, cfg) -> tuple[int, int]:
    if args.input_size:
        if len(args.input_size) not in (1, 2):
            raise ExportError(f"--input-size takes H W or one N, got {' '.join(map(str, args.input_size))}.")
        return (args.input_size[0], args.input_size[-1])
    side = cfg.eval.pad_to or cfg.data.crop_size
    return (side, side)


def run(args: argparse.Namespace) -> int:
    fmt = args.format or {".onnx": "onnx", ".tflite": "tflite"}.get(args.out.suffix.lower())
    if fmt is None:
        raise ExportError(f"cannot tell the format of {args.out}; pass --format onnx|tflite or name it .onnx/.tflite.")
    if fmt == "tflite" and args.dynamic:
        from segkit.export.tflite import DYNAMIC_REFUSED

        raise ExportError(DYNAMIC_REFUSED)
    from segkit.config import parse_override

    overrides = dict(parse_override(item) for item in args.set)
    model = load_model(args.checkpoint, config=args.config, overrides=overrides, device="cpu")
    cfg = model.segkit_config
    size = _size(args, cfg)
    kwargs = dict(input_size=size, dynamic=args.dynamic, input=args.input, output=args.output)
    if fmt == "onnx":
        meta = export_onnx(model, args.out, opset=args.opset, exporter=args.exporter, **kwargs)
    else:
        meta = export_tflite(model, args.out, **kwargs)
    shape = "dynamic H, W" if args.dynamic else f"{size[0]}x{size[1]}"
    print(
        f"Wrote {args.out} ({fmt}, {shape}, input {meta['input']} {meta['input_layout']}, output {meta['output']}"
        f"{f', opset {args.opset}' if fmt == 'onnx' else ''})",
        file=sys.stderr,
    )
    if args.no_verify:
        return 0
    root = args.verify if args.verify is not None else cfg.data.root
    images, source = verification_images(
        root if Path(root).exists() else None, limit=args.verify_images, split=cfg.data.val_split
    )
    report = verify(model, args.out, images, source=source)
    print(report.line())
    if not report.passed():
        print(
            f"error: verification failed: needs pixel agreement >= {100 * AGREE_MIN:.1f}% and relative logit "
            f"difference <= {REL_MAX:g}; the file does not compute what the PyTorch model does.",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    return run_main(run, build_parser().parse_args(argv), errors=ERRORS + (ExportError, ExportedModelError))
