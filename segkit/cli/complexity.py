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
import json
from pathlib import Path

from segkit.cli.common import run_main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--table7", action="store_true", help="all eight rows of the paper's Table 7")
    mode.add_argument("--config", help="one config, by name (see configs/) or YAML path")
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        action="extend",
        metavar="KEY=VALUE",
        help="config overrides for --config, e.g. model.output_stride=8",
    )
    parser.add_argument("--input-size", type=int, default=513, help="square eval crop (default 513, as the paper)")
    parser.add_argument(
        "--multi-scale",
        action="store_true",
        help="with --config: sum the passes of the config's eval.scales and eval.flip",
    )
    parser.add_argument("--json", type=Path, help="write the rows as JSON here (--table7: Table 7's eight rows)")
    parser.add_argument("--markdown", type=Path, help="write the table as markdown here")
    return parser


def _write(path: Path | None, text: str) -> None:
    if path is not None:
        from segkit.utils.io import atomic_write_text

        atomic_write_text(path, text)
        print(f"wrote {path}")


def _table7(args: argparse.Namespace) -> int:
    from segkit.analysis.complexity import (
        MF_SCALES,
        extra_rows,
        format_count,
        multi_scale_sizes,
        table7,
        table7_markdown,
    )

    rows = table7(args.input_size)
    markdown = table7_markdown(rows)
    sizes = ", ".join(str(s) for s in multi_scale_sizes(args.input_size, MF_SCALES))
    print(
        f"Table 7 at {args.input_size}x{args.input_size} (MF: 12 passes at {sizes} x flip); 'diff' = segkit / paper - 1"
    )
    print(markdown)
    extras = extra_rows(args.input_size)
    if extras:
        print("\nNot in Table 7 (segkit configurations, single scale):")
        print(
            "| Network | config | OS | ASPP | decoder | Params | MAdds pytorch | MAdds tf1 |\n|---|---|---|---|---|---|---|---|"
        )
        for r in extras:
            print(
                f"| {r['network']} | {r['config']} | {r['os']} | {'yes' if r['aspp'] else ''} | {r['decoder']} "
                f"| {format_count(r['params'])} | {format_count(r['madds_pytorch'])} | {format_count(r['madds_tf1'])} |"
            )
    _write(args.json, json.dumps(rows, indent=2) + "\n")
    _write(args.markdown, markdown + "\n")
    return 0


def _one_config(args: argparse.Namespace) -> int:
    from segkit.analysis.complexity import count_config, format_count
    from segkit.config import load_config

    cfg = load_config(args.config, args.set)
    scales, flip = (cfg.eval.scales, cfg.eval.flip) if args.multi_scale else ([1.0], False)
    report = count_config(cfg, args.input_size, scales=scales, flip=flip)
    m = cfg.model
    row = {
        "config": cfg.name,
        "backbone": m.backbone,
        "os": m.output_stride,
        "aspp": m.aspp,
        "decoder": m.decoder,
        "input_sizes": [h for h, _ in report.input_sizes],
        "params": report.params,
        "madds_pytorch": report.madds_pytorch,
        "madds_tf1": report.madds_tf1,
    }
    passes = len(report.input_sizes)
    print(
        f"{cfg.name}: backbone {m.backbone}, OS {m.output_stride}, ASPP {m.aspp}, decoder {m.decoder}; "
        f"{passes} pass{'es' if passes > 1 else ''} at {', '.join(map(str, row['input_sizes']))}"
    )
    print(f"  params        {report.params:>18,}  ({format_count(report.params)})")
    print(f"  MAdds pytorch {report.madds_pytorch:>18,}  ({format_count(report.madds_pytorch)})")
    print(f"  MAdds tf1     {report.madds_tf1:>18,}  ({format_count(report.madds_tf1)})")
    _write(args.json, json.dumps(row, indent=2) + "\n")
    _write(
        args.markdown,
        f"| config | params | MAdds pytorch | MAdds tf1 |\n|---|---|---|---|\n"
        f"| {cfg.name} | {format_count(report.params)} | {format_count(report.madds_pytorch)} "
        f"| {format_count(report.madds_tf1)} |\n",
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.input_size < 16:
        parser.error(f"--input-size must be >= 16, got {args.input_size}.")
    if args.table7 and (args.set or args.multi_scale):
        parser.error("--set and --multi-scale apply to --config only; --table7 uses each row's own config.")
    return run_main(_table7 if args.table7 else _one_config, args)


if __name__ == "__main__":
    raise SystemExit(main())
