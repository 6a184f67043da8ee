"""Trainable params and conv/linear MAdds: the paper's Table 7, or any config.

    segkit complexity --table7 [--input-size 513] [--json OUT.json] [--markdown OUT.md]
    segkit complexity --config voc_mnv2_os8 [--set k=v ...] [--input-size 513] [--multi-scale]

Both MAdds conventions of `segkit.analysis.complexity` are shown: `pytorch` (what segkit computes) and `tf1` (TF1's
atrous overhead, how the paper counted). MF rows are 12 passes: scales 0.5 .. 1.75 at
`int((size - 1) * scale + 1)` (the official DeepLab rounding: 257 .. 897 for 513), each also flipped.
`--table7` also prints segkit's configurations outside Table 7 (the DeepLabV3+ decoder ones).
Models are built and counted on the `meta` device: no arithmetic, seconds for all rows.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from segkit.cli.common import add_config_arguments, run_main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table7", action="store_true", help="all eight rows of the paper's Table 7")
    add_config_arguments(parser, config_help="one config, by name (see configs/) or YAML path (or --table7)")
    parser.add_argument("--input-size", type=int, default=513, help="square eval crop (default 513, as the paper)")
    parser.add_argument(
        "--multi-scale",
        action="store_true",
        help="with --config: sum the passes of the config's eval.scales and eval.flip",
    )
    parser.add_argument("--json", type=Path, help="write the rows as JSON here (--table7: Table 7's eight rows)")
    parser.add_argument("--markdown", type=Path, help="write the table as markdown here")
    return parser


def run(args: argparse.Namespace) -> int:
    from segkit.analysis.command import config_complexity, table7_report  # heavy (torch): not for --help

    files = dict(json_path=args.json, markdown_path=args.markdown)
    if args.table7:
        output = table7_report(args.input_size, **files)
    else:
        output = config_complexity(
            args.config, args.set, input_size=args.input_size, multi_scale=args.multi_scale, **files
        )
    print(output.text)
    for path in output.files:
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.table7 == (args.config is not None):  # exactly one of them
        parser.error(
            "argument --config: not allowed with argument --table7"
            if args.table7
            else "one of the arguments --table7 --config is required"
        )
    if args.table7 and (args.set or args.multi_scale):
        parser.error("--set and --multi-scale apply to --config only; --table7 uses each row's own config.")
    return run_main(run, args)


if __name__ == "__main__":
    raise SystemExit(main())
