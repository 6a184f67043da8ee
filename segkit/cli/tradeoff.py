"""mIoU vs MAdds trade-off of the paper's Table 7, with segkit's own measurements where available.

    segkit tradeoff [--results DIR] [--latency FILE] [--runtimes-json FILE] [--complexity-json FILE] [--out DIR]

Writes OUT/tradeoff.png (mIoU against MAdds on a log axis: the paper's eight points, segkit's results
beside them; a second panel against measured CPU latency when a latency file is given) and OUT/tradeoff.md.
Results are the `segkit test --json` files under --results, placed on a row by config name, or by the
architecture recorded in the file (how a converted official checkpoint, config `tflite_...`, is placed).
Results are placed by (row, precision, runtime, quantization), the report's fields of those names: an int8
(or fake-int8) result gets a row and marker of its own beside the float one, never over it.
Latency: `benchmarks/inference.py --json` output (default RESULTS/inference.json when it exists) for the
float rows; `--runtimes-json` (`benchmarks/runtimes.py --json`, default RESULTS/runtimes.json when it
exists) gives each int8 / other-runtime result the latency of its runtime at 513, beside that runtime's fp32.
MAdds are measured (a few seconds) unless --complexity-json gives `segkit complexity --table7 --json` output.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from segkit.cli.common import run_main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, help="folder searched (recursively) for segkit test --json files")
    parser.add_argument(
        "--latency", type=Path, help="benchmarks/inference.py --json output (default: RESULTS/inference.json)"
    )
    parser.add_argument(
        "--runtimes-json",
        type=Path,
        help="benchmarks/runtimes.py --json output: latency of int8 / runtime results by (config, precision, "
        "runtime) (default: RESULTS/runtimes.json)",
    )
    parser.add_argument("--complexity-json", type=Path, help="segkit complexity --table7 --json output to reuse")
    parser.add_argument(
        "--out", type=Path, default=Path("work_dirs/tradeoff"), help="output folder (default work_dirs/tradeoff)"
    )
    parser.add_argument("--input-size", type=int, default=513, help="eval crop for the measured MAdds (default 513)")
    return parser


def _run(args: argparse.Namespace) -> int:
    from segkit.analysis.complexity import TABLE7, extra_rows, table7
    from segkit.analysis.plot import plot
    from segkit.analysis.tradeoff import load_latency, load_results, load_runtime_latency, tradeoff_markdown
    from segkit.utils.io import atomic_write_text

    results, notes = load_results(args.results) if args.results else ([], [])
    latency = load_latency(args.latency or (args.results / "inference.json" if args.results else None))
    runtimes_path = args.runtimes_json or (args.results / "runtimes.json" if args.results else None)
    try:
        runtime_latency = load_runtime_latency(runtimes_path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        print(
            f"error: --runtimes-json {runtimes_path}: {exc}; produce it with python benchmarks/runtimes.py "
            "--json FILE.",
            file=sys.stderr,
        )
        return 2
    if args.complexity_json:
        try:
            data = json.loads(args.complexity_json.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            print(
                f"error: --complexity-json {args.complexity_json}: not readable JSON ({exc}); produce it with "
                "segkit complexity --table7 --json FILE.",
                file=sys.stderr,
            )
            return 2
        rows = data.get("rows", data) if isinstance(data, dict) else data
        extras = data.get("extra_rows") if isinstance(data, dict) else None
        extras = extra_rows(args.input_size) if extras is None else extras
    else:
        rows, extras = table7(args.input_size), extra_rows(args.input_size)
    if (
        not isinstance(rows, list)
        or len(rows) != len(TABLE7)
        or not all(isinstance(r, dict) and "madds_tf1" in r for r in rows)
    ):
        print(
            f"error: {args.complexity_json} does not hold the {len(TABLE7)} rows of Table 7 with 'madds_tf1'; "
            "produce it with segkit complexity --table7 --json FILE.",
            file=sys.stderr,
        )
        return 2
    madds = {row.config: r["madds_tf1"] for row, r in zip(TABLE7, rows)}
    madds.update({r["config"]: r["madds_tf1"] for r in extras if isinstance(r, dict) and "config" in r})
    results = [r for r in results if r.config in madds]
    for note in notes:
        print(note, file=sys.stderr)
    markdown = tradeoff_markdown(madds, results, latency, runtime_latency)
    atomic_write_text(args.out / "tradeoff.md", markdown + "\n")
    plot(madds, results, latency, args.out / "tradeoff.png", runtime_latency)
    print(markdown)
    quantized = sum(r.precision not in ("fp32", "bf16") for r in results)
    print(
        f"wrote {args.out / 'tradeoff.png'} and {args.out / 'tradeoff.md'} "
        f"({len(results)} mIoU result(s), {quantized} of them int8/fake-int8; {len(latency)} latency row(s), "
        f"{len(runtime_latency)} runtime latency row(s))"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.results is not None and not args.results.is_dir():
        parser.error(f"--results {args.results}: not a folder. Pass the folder holding segkit test --json outputs.")
    if args.complexity_json is not None and not args.complexity_json.is_file():
        parser.error(
            f"--complexity-json {args.complexity_json}: no such file. Produce it with "
            "segkit complexity --table7 --json FILE."
        )
    if args.runtimes_json is not None and not args.runtimes_json.is_file():
        parser.error(
            f"--runtimes-json {args.runtimes_json}: no such file. Produce it with python benchmarks/runtimes.py "
            "--json FILE."
        )
    if args.latency is not None and not args.latency.is_file():
        parser.error(f"--latency {args.latency}: no such file. Produce it with benchmarks/inference.py --json.")
    if args.input_size < 16:
        parser.error(f"--input-size must be >= 16, got {args.input_size}.")
    return run_main(_run, args)


if __name__ == "__main__":
    raise SystemExit(main())
