"""Train a segmentation model from a config.

    segkit train --config voc_mnv2_os16 [--set train.lr=0.01 ...] [--work-dir DIR]
        [--data-root DIR] [--resume [CKPT] | --overwrite] [--device cpu|cuda|cuda:N] [--seed N]
    torchrun --nproc_per_node 2 tools/train.py --config ...      # DDP (gloo on CPU, NCCL on GPUs)

Exit codes: 0 done, 1 diverged or a checkpoint could not be written, 2 a usage/config/data error,
128 + N stopped by signal N (latest.pth saved; the resume command is printed).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="config name in configs/ (e.g. voc_mnv2_os16) or a YAML path")
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        action="extend",
        metavar="KEY=VALUE",
        help="override config keys, e.g. --set train.lr=0.01 model.output_stride=8 (repeatable)",
    )
    parser.add_argument("--work-dir", help="output folder (default: work_dirs/<config name>)")
    parser.add_argument("--data-root", help="data set root (overrides data.root)")
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        metavar="CKPT",
        help="continue from CKPT, or from WORK_DIR/latest.pth when no path is given",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start a new run in a work dir that holds another run's checkpoints (they are deleted)",
    )
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--seed", type=int, help="overrides train.seed")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to metrics.jsonl)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config (YAML) and exit")
    return parser


def _one_line_warning(
    message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    """Warnings as ``warning: ...`` lines, without the source line Python adds."""
    print(f"warning: {message}", file=file or sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run ``segkit train``; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.resume and args.overwrite:
        print(
            "error: --resume continues the run in the work dir and --overwrite replaces it; pass one of them.",
            file=sys.stderr,
        )
        return 2
    from segkit.config import load_config
    from segkit.engine import exit_code, train
    from segkit.errors import SegkitError

    overrides = list(args.set)
    if args.data_root:
        overrides.append(f"data.root={args.data_root}")
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        try:
            cfg = load_config(args.config, overrides)
            if args.print_config:
                print(cfg.to_yaml(), end="")
                return 0
            result = train(
                cfg,
                work_dir=args.work_dir,
                resume=args.resume,
                device=args.device,
                progress=not args.no_progress,
                overwrite=args.overwrite,
            )
        except SegkitError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_code
    return exit_code(result)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
