#!/usr/bin/env python
"""Train a segmentation model.

    python tools/train.py --config voc_mnv2_os16 [--set train.lr=0.01 ...] [--work-dir DIR]
        [--data-root DIR] [--resume [CKPT]] [--device cpu|cuda] [--seed N]
    torchrun --nproc_per_node 2 tools/train.py --config ...      # DDP (gloo on CPU, NCCL on GPUs)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segkit.checkpoint import CheckpointError  # noqa: E402
from segkit.config import ConfigError, load_config  # noqa: E402
from segkit.data import DatasetError  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="config name in configs/ (e.g. voc_mnv2_os16) or a YAML path")
    parser.add_argument("--set", nargs="+", default=[], action="extend", metavar="KEY=VALUE",
                        help="override config keys, e.g. --set train.lr=0.01 model.output_stride=8 (repeatable)")
    parser.add_argument("--work-dir", help="output folder (default: work_dirs/<config name>)")
    parser.add_argument("--data-root", help="data set root (overrides data.root)")
    parser.add_argument("--resume", nargs="?", const=True, default=None, metavar="CKPT",
                        help="continue from CKPT, or from WORK_DIR/latest.pth when no path is given")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    parser.add_argument("--seed", type=int, help="overrides train.seed")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to metrics.jsonl)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config (YAML) and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = list(args.set)
    if args.data_root:
        overrides.append(f"data.root={args.data_root}")
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    try:
        cfg = load_config(args.config, overrides)
        if args.print_config:
            print(cfg.to_yaml(), end="")
            return 0
        from segkit.train import TrainingDiverged, exit_code, train

        result = train(cfg, work_dir=args.work_dir, resume=args.resume, device=args.device,
                       progress=not args.no_progress)
    except (ConfigError, DatasetError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TrainingDiverged as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return exit_code(result)


if __name__ == "__main__":
    sys.exit(main())
