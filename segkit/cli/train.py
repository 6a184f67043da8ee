"""Train a segmentation model from a config.

    segkit train --config voc_mnv2_os16 [--set train.lr=0.01 ...] [--work-dir DIR]
        [--data-root DIR] [--resume [CKPT] [--reschedule] | --overwrite] [--device cpu|cuda|cuda:N] [--seed N]
    torchrun --nproc_per_node 2 -m segkit.cli train --config ...      # DDP (gloo on CPU, NCCL on GPUs)

Exit codes: 0 done, 1 diverged or a checkpoint could not be written, 2 a usage/config/data error,
128 + N stopped by signal N (latest.pth saved; the resume command is printed).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import warnings
from typing import Any

from segkit.cli.common import add_config_arguments, add_device_argument, run_main


def build_parser() -> argparse.ArgumentParser:
    from segkit.config import available_configs

    configs = textwrap.fill(", ".join(available_configs()), 100, initial_indent="  ", subsequent_indent="  ")
    parser = argparse.ArgumentParser(
        description=__doc__,
        epilog=f"configs (--config NAME):\n{configs}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(
        parser,
        required=True,
        config_help="config name (listed below, e.g. voc_mnv2_os16) or a YAML path",
        set_example="train.lr=0.01 model.output_stride=8",
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
    parser.add_argument(
        "--reschedule",
        action="store_true",
        help="with --resume: accept a changed train.iterations; the poly LR follows the new total from the resumed "
        "iteration on (without it such a resume is refused)",
    )
    add_device_argument(parser)
    parser.add_argument("--seed", type=int, help="overrides train.seed")
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar (logs still go to metrics.jsonl)"
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved config (YAML) and exit")
    return parser


def _one_line_warning(
    message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    """Warnings as ``warning: ...`` lines, without the source line Python adds."""
    print(f"warning: {message}", file=file or sys.stderr)


def run(args: argparse.Namespace) -> int:
    from segkit.engine.command import train_command, training_config

    options = vars(args)  # the other flags are train_command's keyword arguments
    config, overrides = options.pop("config"), options.pop("set")
    if options.pop("print_config"):
        print(training_config(config, overrides, data_root=args.data_root, seed=args.seed).to_yaml(), end="")
        return 0
    if not args.resume:  # train.init_weights: zoo:NAME -> fetched and converted into the cache the loop reads
        from segkit.zoo.command import fetch_init_weights

        cfg = training_config(config, overrides, data_root=args.data_root, seed=args.seed)
        fetch_init_weights(cfg.train.init_weights, log=lambda line: print(line, file=sys.stderr))
    return train_command(config, overrides, **options)


def main(argv: list[str] | None = None) -> int:
    """Run ``segkit train``; returns the exit code."""
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        return run_main(run, args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
