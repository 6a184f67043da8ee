"""Evaluate a checkpoint: per-class IoU table, mIoU, pixel and mean class accuracy.

    segkit test --checkpoint work_dirs/demo_mnv2_os16/best.pth
    segkit test --checkpoint ckpt.pth --data-root data --ms-flip --json val_mf.json
    segkit test --checkpoint ckpt.pth --data-root data --resize-longer 513 --pad-to 513
    segkit test --checkpoint ckpt.pth --data-root cityscapes --slide 769 513

The checkpoint carries its model config, preprocessing and class names; the data set, its root and
split and the eval protocol default to the checkpoint's config (its 'data' and 'eval' sections);
a relative data.root is read from the current folder, and the folder read is printed.
'--dataset coco' without '--split' evaluates val2017 unless the checkpoint's val_split is a COCO split.
With '--set data.skip_bad_samples=true' bad samples are left out (each scored image counts once) and
listed at the end.
Protocols: the whole image at one scale (default); '--ms-flip', the paper's MF: softmax averaged over
scales 0.5..1.75 and their horizontal flips; '--resize-longer'/'--pad-to', a fixed-input deployment
protocol: resize the longer side keeping the aspect ratio, pad bottom/right with the mean pixel, crop
the prediction back and resize it to the mask with nearest neighbour; '--slide CROP STRIDE', overlapping
windows with their logits averaged. A forward pass over '--max-pixels' is refused with the fix.

The '--json' report records the model file (path, size, time, sha256), the data set, root and split, the
protocol (its name and parameters), the config name, the architecture, the precision (fp32 | bf16 | int8 |
fake-int8) and runtime (pytorch | onnxruntime | openvino | litert) that ran the model, and for an int8
file its quantization (ptq | qat); 'segkit tradeoff' places the result by them.

Exit status: 0 on success, 2 on a usage or input error (the message says what to fix).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from segkit.cli import common
from segkit.config import DATASET_NAMES, parse_override
from segkit.data.sources import COCO_DEFAULT_SPLIT


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_model_source_arguments(parser)
    parser.add_argument(
        "--data-root",
        help="data set root (VOC: the folder holding VOCdevkit/VOC2012); default: the checkpoint's data.root",
    )
    parser.add_argument(
        "--dataset", choices=list(DATASET_NAMES), help="data set kind; default: the checkpoint's data.dataset"
    )
    parser.add_argument(
        "--split",
        help="split to evaluate; default: the checkpoint's data.val_split (val), "
        f"for COCO {COCO_DEFAULT_SPLIT} when the checkpoint's val_split has no COCO annotations",
    )
    parser.add_argument("--json", type=Path, metavar="OUT.json", help="write the metrics as JSON (atomically)")
    parser.add_argument(
        "--save-pred",
        type=Path,
        metavar="DIR",
        help="write <id>.png (palette label map) and <id>_overlay.jpg (ground truth | prediction)",
    )
    common.add_config_arguments(
        parser,
        config_help="config name or YAML path, only for a bare state dict",
        set_example="data.skip_bad_samples=true",
    )
    common.add_device_argument(parser)
    parser.add_argument("--num-workers", type=int, metavar="N", help="data loading workers; default: data.num_workers")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    common.add_protocol_arguments(parser)
    return parser


def cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Config overrides: ``--set`` first, then the dedicated flags (which win)."""
    overrides = dict(parse_override(item) for item in args.set)
    if args.data_root is not None:
        overrides["data.root"] = args.data_root
    if args.dataset is not None:
        overrides["data.dataset"] = args.dataset
    if args.num_workers is not None:
        overrides["data.num_workers"] = args.num_workers
    overrides.update(common.protocol_overrides(args))
    return overrides


def run(args: argparse.Namespace) -> int:
    """Evaluate as ``args`` say and print the results; the project's errors propagate (``main`` prints them)."""
    from segkit.evaluation.metrics import format_metrics_table  # heavy (torch): not for --help
    from segkit.export.source import ModelSource, evaluate_checkpoint

    source = ModelSource(args.checkpoint, args.model, args.runtime, args.config, cli_overrides(args), args.fast)
    result = evaluate_checkpoint(
        source,
        split=args.split,
        device=args.device,
        json_path=args.json,
        save_pred=args.save_pred,
        progress=not args.no_progress,
        max_pixels=common.max_pixels(args),
    )
    bad = result.bad_samples_report
    if result.metrics.num_images == 0:
        print(
            f"{bad}\nerror: every sample of {result.dataset} '{result.split}' failed to load (listed above); "
            "nothing was evaluated. Fix the data (segkit prepare-data verify lists the problems).",
            file=sys.stderr,
        )
        return 2
    print(format_metrics_table(result.metrics, result.class_names, result.extra_means()))
    if args.json is not None:
        print(f"Wrote {args.json}", file=sys.stderr)
    if args.save_pred is not None:
        print(f"Wrote predictions and overlays to {args.save_pred}", file=sys.stderr)
    if bad:
        print(
            f"{bad}\nScored {result.metrics.num_images} images; the bad samples above were left out.", file=sys.stderr
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    return common.run_main(run, build_parser().parse_args(argv))
