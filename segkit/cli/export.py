"""Export a checkpoint to ONNX, OpenVINO IR, LiteRT (TFLite) or ExecuTorch and verify the file in its runtime.

    segkit export --checkpoint ckpt.pth --format onnx --out model.onnx --input-size 513 513
    segkit export --checkpoint ckpt.pth --format onnx --out model.onnx --dynamic
    segkit export --checkpoint ckpt.pth --format openvino --out model.xml --input-size 513 513
    segkit export --checkpoint ckpt.pth --format tflite --out model.tflite --input uint8 --output labels
    segkit export --checkpoint ckpt.pth --format executorch --out model.pte --input-size 513 513
    segkit export --checkpoint ckpt.pth --format web --out site/ --input-size 513 513
    segkit export --checkpoint ckpt.pth --format web --out site/ --model model_int8.onnx

'--input uint8' puts the normalisation inside the graph (RGB uint8 NHWC in); '--output labels' puts the
argmax inside (a uint8 label map [N, H, W] out); '--argmax-fusion' with it takes that argmax at the logits' own
resolution and upscales the labels (the Edge TPU's fusion), verified against the same fusion in PyTorch, with its
pixel agreement and mIoU cost against the official semantics printed. The file carries segkit's metadata (config, class
names, palette, mean/std, input size, input/output kinds). The export is then run in its runtime
(onnxruntime / openvino / ai-edge-litert / executorch) next to the PyTorch model on the '--verify' data (a data-set root;
default: the config's val split when it is on disk, else segkit's synthetic images), and the max
|logit difference| (absolute and relative to the logit range) and the pixel agreement are printed.

'--format web' writes a folder: a page segmenting images or the camera with onnxruntime-web (WASM, or
WebGPU for a float model), the model (fp32 ONNX, or the '--model' file, e.g. an int8 one of segkit quantize,
verified against the checkpoint), its metadata and onnxruntime-web's files (copied from node_modules, else
linked from the CDN). Serve it with any static server; WASM threads need the COOP/COEP headers (docs/deploy.md).

The file is verified beside '--out' and renamed onto it only when the verification passed: a file that
fails it is not written ('--out' keeps what it held). '--out' is never one of the inputs.

Exit status: 0 on success; 1 when verification fails (agreement below 99.9% or relative logit
difference above 1e-3; nothing written); 2 on a usage or input error, or an export that cannot work (the message names
the layer and what to change).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from segkit.cli.common import add_config_arguments, options, run_main, side_arg, verdict
from segkit.export.formats import DEFAULT_EXPORTER, EXPORTERS, FORMATS, INPUTS, OPSET, OPSETS, OUTPUTS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--checkpoint", required=True, help="segkit checkpoint (.pth), or a bare state dict with --config"
    )
    parser.add_argument("--format", choices=FORMATS, help="default: from the --out extension")
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="the file to write (.onnx, .xml with its .bin, .tflite or .pte), atomically; a folder for web",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--input-size",
        type=side_arg,
        nargs="+",
        metavar="N",
        help="H W (or one N for NxN) of a static file, 16..8192 each and at most 2048x2048 pixels; default: the "
        "config's eval.pad_to, else data.crop_size",
    )
    size.add_argument("--dynamic", action="store_true", help="dynamic batch, height and width (ONNX, OpenVINO)")
    input_help = "float: normalised images (ONNX NCHW, TFLite NHWC); uint8: RGB NHWC, normalised in the graph"
    parser.add_argument("--input", choices=INPUTS, default="float", help=input_help)
    parser.add_argument(
        "--output",
        choices=OUTPUTS,
        default="logits",
        help="logits at the input size (ONNX NCHW, TFLite NHWC) or the uint8 label map (argmax in the graph)",
    )
    parser.add_argument(
        "--argmax-fusion",
        action="store_true",
        help="with --output labels: argmax at the logits' resolution, labels upscaled by nearest neighbour (the Edge "
        "TPU's fusion; cheaper, not the official semantics: its pixel agreement and mIoU cost are printed)",
    )
    written = "; ".join(f"{name} writes {low}..{high}" for name, (low, high) in OPSETS.items())
    opset_help = f"ONNX opset (default {OPSET}; {written}); OpenVINO: of the ONNX file it converts"
    parser.add_argument("--opset", type=int, default=OPSET, help=opset_help)
    parser.add_argument(
        "--exporter",
        choices=EXPORTERS,
        default=DEFAULT_EXPORTER,
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
    web = parser.add_argument_group("--format web (a static page running the model with onnxruntime-web)")
    web.add_argument(
        "--model",
        type=Path,
        metavar="FILE.onnx",
        help="ship this ONNX file (e.g. segkit quantize's int8 file), verified against --checkpoint, instead of "
        "exporting the checkpoint to fp32",
    )
    web.add_argument(
        "--ort-web",
        type=Path,
        metavar="DIR",
        help="node_modules/onnxruntime-web to copy next to the page (default: $SEGKIT_ORT_WEB, else node_modules "
        "here or above, else the page links the public CDN)",
    )
    add_config_arguments(
        parser,
        config_help="config name or YAML path, only for a bare state dict",
        set_example="model.align_corners=false",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    written: list[str] = []
    web = {"model_file": args.model, "ort_web": args.ort_web}
    if args.format == "web" or any(web.values()):  # heavy imports (torch): not for --help
        from segkit.export.web import export_web as export  # a folder; it refuses --model/--ort-web without web
    else:
        from segkit.export import export_checkpoint as export

        web = {}
    report = export(
        args.checkpoint,
        args.out,
        **options(args, "format", "input_size", "dynamic", "input", "output", "argmax_fusion", "opset", "exporter"),
        **options(args, "config"),
        **web,
        verify_root=args.verify,
        verify_images=args.verify_images,
        skip_verify=args.no_verify,
        overrides=args.set,
        log=written.append,  # "Wrote ...": said after the verification it waited for
    )
    if report.verification is not None:
        print(report.verification.line(), flush=True)
        if report.verification.fusion is not None:
            print(report.verification.fusion.line(), flush=True)
    for line in written:
        print(line, file=sys.stderr)
    return 0 if report.verification is None else verdict(report)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    return run_main(run, build_parser().parse_args(argv))
