"""Trainable params and conv/linear MAdds: the paper's Table 7, or any config.

    python tools/complexity.py --table7 [--input-size 513] [--json OUT.json] [--markdown OUT.md]
    python tools/complexity.py --config voc_mnv2_os8 [--set k=v ...] [--input-size 513] [--multi-scale]

Both MAdds conventions of :mod:`segkit.complexity` are shown: ``pytorch`` (what segkit computes) and
``tf1`` (TF1's atrous overhead, how the paper counted). MF rows are 12 passes: scales 0.5 .. 1.75 at
``int((size - 1) * scale + 1)`` (the official DeepLab rounding: 257 .. 897 for 513), each also flipped.
Models are built and counted on the ``meta`` device: no arithmetic, seconds for all eight rows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script from a checkout: make ``segkit`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segkit.complexity import count_config, format_count, multi_scale_sizes, table7, table7_markdown
from segkit.config import ConfigError, load_config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--table7", action="store_true", help="all eight rows of the paper's Table 7")
    mode.add_argument("--config", help="one config, by name in configs/ or YAML path")
    parser.add_argument("--set", nargs="+", default=[], action="extend", metavar="KEY=VALUE",
                        help="config overrides for --config, e.g. model.output_stride=8")
    parser.add_argument("--input-size", type=int, default=513, help="square eval crop (default 513, as the paper)")
    parser.add_argument("--multi-scale", action="store_true",
                        help="with --config: sum the passes of the config's eval.scales and eval.flip")
    parser.add_argument("--json", type=Path, help="write the rows as JSON here")
    parser.add_argument("--markdown", type=Path, help="write the table as markdown here")
    args = parser.parse_args(argv)
    if args.input_size < 16:
        parser.error(f"--input-size must be >= 16, got {args.input_size}.")
    if args.table7 and (args.set or args.multi_scale):
        parser.error("--set and --multi-scale apply to --config only; --table7 uses each row's own config.")
    return args


def _write(path: Path | None, text: str) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = parse_args(argv)
    if args.table7:
        rows = table7(args.input_size)
        markdown = table7_markdown(rows)
        print(f"Table 7 at {args.input_size}x{args.input_size} (MF: 12 passes at "
              f"{', '.join(str(s) for s in multi_scale_sizes(args.input_size, (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)))}"
              " x flip); 'diff' = segkit / paper - 1")
        print(markdown)
        _write(args.json, json.dumps(rows, indent=2) + "\n")
        _write(args.markdown, markdown + "\n")
        return 0
    try:
        cfg = load_config(args.config, args.set)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    scales, flip = (cfg.eval.scales, cfg.eval.flip) if args.multi_scale else ([1.0], False)
    report = count_config(cfg, args.input_size, scales=scales, flip=flip)
    m = cfg.model
    row = {"config": cfg.name, "backbone": m.backbone, "os": m.output_stride, "aspp": m.aspp,
           "input_sizes": [h for h, _ in report.input_sizes], "params": report.params,
           "madds_pytorch": report.madds_pytorch, "madds_tf1": report.madds_tf1}
    passes = len(report.input_sizes)
    print(f"{cfg.name}: backbone {m.backbone}, OS {m.output_stride}, ASPP {m.aspp}; "
          f"{passes} pass{'es' if passes > 1 else ''} at {', '.join(map(str, row['input_sizes']))}")
    print(f"  params        {report.params:>18,}  ({format_count(report.params)})")
    print(f"  MAdds pytorch {report.madds_pytorch:>18,}  ({format_count(report.madds_pytorch)})")
    print(f"  MAdds tf1     {report.madds_tf1:>18,}  ({format_count(report.madds_tf1)})")
    _write(args.json, json.dumps(row, indent=2) + "\n")
    _write(args.markdown, f"| config | params | MAdds pytorch | MAdds tf1 |\n|---|---|---|---|\n"
                          f"| {cfg.name} | {format_count(report.params)} | {format_count(report.madds_pytorch)} "
                          f"| {format_count(report.madds_tf1)} |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
