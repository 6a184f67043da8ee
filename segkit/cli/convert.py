"""Convert an official MobileNetV2 model (DeepLabV3(+) segmentor or ImageNet classifier) to segkit: a TFLite file, a
Hugging Face model (folder or hf:ID) or a zoo model by name (`segkit zoo` lists them).

    segkit convert deeplabv3_mnv2_pascal_quant.tflite deeplab_official.pth
    segkit convert deeplabv3_mnv2_ade20k_uint8.tflite ade20k_official.pth     # MLPerf ADE20K DeepLabV3+
    segkit convert mobilenet_v2_1.0_224_quant.tflite mnv2_imagenet.pth --labels imagenet_labels.txt
    segkit convert model.tflite --print-graph          # only list the ops
    segkit convert hf:google/deeplabv3_mobilenet_v2_1.0_513 deeplab_float.pth   # float weights, Hugging Face
    segkit convert mobilenet_v2_1.0_224/ mnv2_float.pth        # a downloaded Hugging Face model folder
    segkit convert zoo:deeplabv3_mnv2_voc_uint8 deeplab_official.pth            # by name: fetched, checked, cached

The architecture (width, output stride and dilation rates, head, DeepLabV3+ decoder, classes,
align_corners, input normalisation) is read from the graph, never from the file name, and printed. A segmentor
checkpoint works with `segkit test`, `segkit infer` and segkit.load_model, and as initial weights
for training; a classifier checkpoint (kind "classifier", torchvision-style ``features.*`` +
``classifier.1.*``) initialises a backbone via ``train.init_weights`` or loads with
``segkit.checkpoint.load.load_classifier``. Needs the optional ``tflite`` package
(``pip install 'segkit-deeplab[tflite]'``).

Exit status: 0 on success, 2 on a usage or input error (the message says what to fix).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from segkit.cli.common import ERRORS, run_main

_SUMMARY, _, _DETAILS = __doc__.partition("\n\n")
# besides segkit's errors, reading a .tflite file raises these two (the message says what to install or pass)
_READ_ERRORS = (ImportError, FileNotFoundError)


def build_parser() -> argparse.ArgumentParser:
    """The ``segkit convert`` argument parser."""
    parser = argparse.ArgumentParser(
        description=_SUMMARY, epilog=_DETAILS, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    from segkit.zoo.command import SOURCES  # light: names only

    parser.add_argument("model", metavar="SOURCE", help="what to convert: " + "; ".join(SOURCES))
    parser.add_argument("out", type=Path, nargs="?", help="the segkit checkpoint to write (.pth)")
    labels_help = (
        "class names, one per line (default: VOC's names for a 21-class segmentor, MLPerf's ADE20K names for a "
        "32-class one)"
    )
    parser.add_argument("--labels", type=Path, metavar="FILE", help=labels_help)
    parser.add_argument("--print-graph", action="store_true", help="print the TFLite op list")
    stride_help = "Hugging Face segmentor: build it at this output stride instead of its config.json's"
    parser.add_argument("--output-stride", type=int, choices=(8, 16, 32), help=stride_help)
    return parser


def run(args: argparse.Namespace) -> int:
    from segkit.convert.tflite import load_tflite  # heavy (torch): not for --help

    if args.print_graph:
        print(load_tflite(args.model).summary(show_tensors=True))
        if args.out is None:
            return 0
    from segkit.zoo.command import convert_source

    kind = convert_source(args.model, args.out, labels_file=args.labels, output_stride=args.output_stride)
    print(f"Wrote {kind} checkpoint {args.out}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``segkit convert``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.out is None and not args.print_graph:
        parser.error("give OUT.pth (the checkpoint to write), or --print-graph to only list the ops")
    if args.print_graph and (args.model.startswith(("hf:", "zoo:")) or Path(args.model).is_dir()):
        parser.error("--print-graph lists the ops of a .tflite file; SOURCE is a Hugging Face model or zoo:NAME")
    return run_main(run, args, errors=(*ERRORS, *_READ_ERRORS))
