"""Segment images with a checkpoint: a palette label map and an overlay with a legend per image.

    segkit infer --checkpoint work_dirs/demo_mnv2_os16/best.pth --input photo.jpg --output out/
    segkit infer --checkpoint ckpt.pth --input photos/ --output out/ --resize-longer 513 --pad-to 513
    segkit infer --checkpoint ckpt.pth --input aerial.png --output out/ --slide 513 341
    segkit infer --checkpoint official.pth --input photos/ --output out/ --legend legend.png --json infer.json
    segkit infer --checkpoint ckpt.pth --input clip.mp4 --output out/ --frame-labels

For every image '<name>.<ext>' (a file, or the images directly inside a folder; read with its EXIF
orientation applied, as viewers show it) it writes
'<name>.png', the label map as a palette PNG in the checkpoint's class colours (VOC colours when the
checkpoint has none; reading it back with PIL gives the class indices), and '<name>_overlay.jpg', the
prediction blended over the image, class boundaries drawn in the class colours ('--contour'), with a
legend of the classes present, sized to the image. '--legend' writes a picture of every class of the model.

The prediction protocol defaults to the checkpoint's 'eval' section and is printed first. A fixed-size
model (its protocol pads to N x N: a converted official checkpoint, 513; an exported file with a static
input) fits any photo: an image larger than N x N has its longer side resized to N, is padded,
predicted, and the label map resized back to the photo. '--resize-longer', '--pad-to' or '--slide'
(or '--set eval.resize_longer=...') turn that off: the protocol is then used as given.

An image that cannot be read, or whose forward pass is over '--max-pixels' (use '--slide CROP STRIDE'
or '--resize-longer N'), is skipped with one warning line naming it and the reason; the others are still
processed and a count of the skipped ones ends the output. Exit status: 0 when at least one image was
segmented (skipped ones are listed), 1 when none could be (nothing is written), 2 on a usage or input
error found before any image (missing checkpoint or input, no images in the folder, a bad protocol).

A video '<name>.mp4' (.mov, .mkv, .webm, .avi, ...; read with PyAV) gives '<name>_overlay.mp4': each frame
segmented exactly as that frame given as an image, the prediction blended over it (no legend), H.264 at
the input's size and frame rate, written under a temporary name and renamed when done; audio is not
copied. '--frame-labels' also writes each frame's label map as '<name>_labels/<k>.png' (k from 000000);
with '--no-overlay', only those.
The frames per second achieved end the output. A corrupt or unreadable video, one without a video stream
or without frames, or frames over '--max-pixels' are an error (exit 2) and nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segkit.cli import common
from segkit.config import parse_override
from segkit.evaluation.style import CONTOURS, DEFAULT_ALPHA, DEFAULT_CONTOUR

if TYPE_CHECKING:
    from segkit.export.source import ModelSource

# protocol keys that set how an image is sized for the model: given any, a fixed-size model's fit is off
GEOMETRY = ("eval.resize_longer", "eval.pad_to", "eval.slide", "eval.resize_range")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_model_source_arguments(parser)
    parser.add_argument(
        "--input",
        required=True,
        type=Path,
        help="an image file, a folder of images (not recursive), or a video file (.mp4, .mov, .mkv, .webm, .avi, ...)",
    )
    parser.add_argument("--output", required=True, type=Path, help="folder for <name>.png and <name>_overlay.jpg")
    common.add_config_arguments(
        parser, config_help="config name or YAML path, only for a bare state dict", set_example="eval.pad_to=513"
    )
    common.add_device_argument(parser)
    parser.add_argument(
        "--alpha",
        type=float,
        default=DEFAULT_ALPHA,
        help=f"weight of the class colours in the overlay, 0..1 (default {DEFAULT_ALPHA})",
    )
    parser.add_argument(
        "--contour",
        choices=CONTOURS,
        default=DEFAULT_CONTOUR,
        help=f"class boundaries in the overlay: in white, in the class colour, or none (default {DEFAULT_CONTOUR})",
    )
    parser.add_argument(
        "--legend", type=Path, metavar="OUT.png", help="also write a legend of every class of the model (PNG)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="OUT.json",
        help="write a report: the model file (sha256), the protocol, and each image's outputs or why it was skipped",
    )
    parser.add_argument(
        "--frame-labels",
        action="store_true",
        help="for a video --input: also write each frame's label map as <name>_labels/<k>.png (palette PNGs); with "
        "--no-overlay, only those",
    )
    parser.add_argument(
        "--no-overlay",
        action="store_true",
        help="images: write the label maps only, not <name>_overlay.jpg (its JPEG encoding costs about a forward pass)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    common.add_protocol_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Segment as ``args`` say and print what was written; the project's errors propagate (``main`` prints them)."""
    from segkit.evaluation.video import is_video
    from segkit.export.source import ModelSource, infer_images  # heavy (torch): not for --help

    if not 0.0 <= args.alpha <= 1.0:
        print(f"error: --alpha must be in [0, 1], got {args.alpha}.", file=sys.stderr)
        return 2
    overrides = {**dict(parse_override(item) for item in args.set), **common.protocol_overrides(args)}
    source = ModelSource(args.checkpoint, args.model, args.runtime, args.config, overrides, args.fast)
    options = dict(
        device=args.device,
        alpha=args.alpha,
        contour=args.contour,
        fit=not any(key in overrides for key in GEOMETRY),  # a resize, pad or window asked for is used as it is
        progress=not args.no_progress,
        max_pixels=common.max_pixels(args),
        json_path=args.json,
        legend_path=args.legend,
    )
    if is_video(args.input):
        return run_video(args, source, options)
    if args.frame_labels:
        print(
            "error: --frame-labels applies to a video --input; an image's label map is always written.", file=sys.stderr
        )
        return 2
    result = infer_images(source, args.input, args.output, overlay=not args.no_overlay, **options)
    if result.fitted:
        print(
            f"{len(result.fitted)} image(s) larger than the model's fixed input were resized to fit it "
            f"({result.fit_protocol})",
            file=sys.stderr,
        )
    if result.done:
        what = "label maps" if args.no_overlay else "label maps and overlays"
        print(f"Wrote {what} of {result.done} image(s) to {args.output}", file=sys.stderr)
    for path in (args.legend, args.json):
        if path is not None:
            print(f"Wrote {path}", file=sys.stderr)
    if result.failed:
        shown = ", ".join(str(p) for p, _ in result.failed[:10]) + (", ..." if len(result.failed) > 10 else "")
        level = "warning" if result.done else "error"
        print(
            f"{level}: skipped {len(result.failed)} of {len(result.paths)} image(s) (reasons above): {shown}",
            file=sys.stderr,
        )
    return 0 if result.done else 1


def run_video(args: argparse.Namespace, source: ModelSource, options: dict[str, Any]) -> int:
    """``segkit infer`` on a video: the overlay video (and the frames' label maps), then the frames per second."""
    from segkit.export.source import infer_video

    if args.no_overlay and not args.frame_labels:
        print(
            "error: --no-overlay on a video leaves nothing to write; add --frame-labels for the label maps.",
            file=sys.stderr,
        )
        return 2
    result = infer_video(
        source, args.input, args.output, labels=args.frame_labels, overlay=not args.no_overlay, **options
    )
    if result.fitted:
        print(
            f"Frames larger than the model's fixed input were resized to fit it ({result.fit_protocol})",
            file=sys.stderr,
        )
    height, width = result.size
    if result.overlay is not None:
        print(
            f"Wrote {result.overlay} ({result.frames} frames, {width}x{height}, {float(result.rate):g} fps)",
            file=sys.stderr,
        )
    if result.labels is not None:
        print(f"Wrote the label maps of {result.frames} frames to {result.labels}", file=sys.stderr)
    for path in (args.legend, args.json):
        if path is not None:
            print(f"Wrote {path}", file=sys.stderr)
    print(f"{result.frames} frames in {result.seconds:.1f} s: {result.frames_per_second:.1f} frames/s", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    return common.run_main(run, build_parser().parse_args(argv))
