"""Segment images with a checkpoint: a palette label map and an overlay with a legend per image.

    segkit infer --checkpoint work_dirs/demo_mnv2_os16/best.pth --input photo.jpg --output out/
    segkit infer --checkpoint ckpt.pth --input photos/ --output out/ --resize-longer 513 --pad-to 513
    segkit infer --checkpoint ckpt.pth --input aerial.png --output out/ --slide 513 341

For every image '<name>.<ext>' (a file, or the images directly inside a folder; read with its EXIF
orientation applied, as viewers show it) it writes
'<name>.png', the label map as a palette PNG in the checkpoint's class colours (VOC colours when the
checkpoint has none; reading it back with PIL gives the class indices), and '<name>_overlay.jpg', the
prediction blended over the image with a legend of the classes present. The prediction protocol
defaults to the checkpoint's 'eval' section; a forward pass over '--max-pixels' is refused with the fix
(use '--slide CROP STRIDE' or '--resize-longer N' for large images).

Unreadable or corrupt images are skipped with a warning naming the file; the others are still
processed, and the exit status is then 1. Exit status 2: a usage or input error (missing checkpoint,
missing input, no images in the folder, an image over the pixel budget).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from segkit.cli import common
from segkit.config import parse_override


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_model_source_arguments(parser)
    parser.add_argument(
        "--input", required=True, type=Path, help="an image file, or a folder of images (not recursive)"
    )
    parser.add_argument("--output", required=True, type=Path, help="folder for <name>.png and <name>_overlay.jpg")
    common.add_config_arguments(
        parser, config_help="config name or YAML path, only for a bare state dict", set_example="eval.pad_to=513"
    )
    common.add_device_argument(parser)
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of the class colours in the overlay (0..1)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    common.add_protocol_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Segment as ``args`` say and print what was written; the project's errors propagate (``main`` prints them)."""
    from segkit.export.source import ModelSource, infer_images  # heavy (torch): not for --help

    if not 0.0 <= args.alpha <= 1.0:
        print(f"error: --alpha must be in [0, 1], got {args.alpha}.", file=sys.stderr)
        return 2
    overrides = {**dict(parse_override(item) for item in args.set), **common.protocol_overrides(args)}
    result = infer_images(
        ModelSource(args.checkpoint, args.model, args.runtime, args.config, overrides, args.fast),
        args.input,
        args.output,
        device=args.device,
        alpha=args.alpha,
        progress=not args.no_progress,
        max_pixels=common.max_pixels(args),
    )
    print(f"Wrote label maps and overlays of {result.done} image(s) to {args.output}", file=sys.stderr)
    if result.failed:
        print(
            f"error: {len(result.failed)} of {len(result.paths)} images could not be read and were skipped: "
            + ", ".join(str(p) for p, _ in result.failed),
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    return common.run_main(run, build_parser().parse_args(argv))
