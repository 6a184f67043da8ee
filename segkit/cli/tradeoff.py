"""mIoU vs MAdds trade-off of the paper's Table 7, with segkit's own measurements where available.

    segkit tradeoff [--results DIR] [--latency FILE] [--runtimes-json FILE] [--complexity-json FILE] [--out DIR]

Writes OUT/tradeoff.png (mIoU against MAdds on a log axis: the paper's eight points, segkit's results
beside them; a second panel against measured CPU latency when a latency file is given) and OUT/tradeoff.md.
Results are the `segkit test --json` files under --results, placed on a row by config name, or by the
architecture recorded in the file (how a converted official checkpoint, config `tflite_...`, is placed).
Results are placed by (row, precision, runtime, quantization), the report's fields of those names: an int8
(or fake-int8) result gets a row and marker of its own beside the float one, never over it.
Latency: --latency (default RESULTS/inference.json when it exists) gives the float rows their CPU latency,
JSON {"rows": [{"config": NAME, "latency_ms": MS}, ...]}; --runtimes-json (default RESULTS/runtimes.json when
it exists) gives each int8 / other-runtime result the latency of its runtime at 513, beside that runtime's
fp32, JSON {"models": [{"config": NAME, "input_size": 513, "rows": [{"row": NAME, "latency_ms": MS,
"runtime": R, "precision": P}, ...]}, ...]} (runtime and precision optional: read from the row name).
MAdds are measured (~20 s on a 2-core CPU, a progress bar) unless --complexity-json gives `segkit complexity
--table7 --json` output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from segkit.cli.common import options, run_main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, help="folder searched (recursively) for segkit test --json files")
    parser.add_argument("--latency", type=Path, help="latency JSON of the float rows (default: RESULTS/inference.json)")
    parser.add_argument(
        "--runtimes-json",
        type=Path,
        help="runtime latency JSON: latency of int8 / runtime results by (config, precision, "
        "runtime) (default: RESULTS/runtimes.json)",
    )
    parser.add_argument("--complexity-json", type=Path, help="segkit complexity --table7 --json output to reuse")
    parser.add_argument(
        "--out", type=Path, default=Path("work_dirs/tradeoff"), help="output folder (default work_dirs/tradeoff)"
    )
    parser.add_argument("--input-size", type=int, default=513, help="eval crop for the measured MAdds (default 513)")
    return parser


def run(args: argparse.Namespace) -> int:
    from segkit.analysis.command import tradeoff_report  # heavy (torch): not for --help

    report = tradeoff_report(
        args.results, **options(args, "latency", "runtimes_json", "complexity_json", "out", "input_size")
    )
    for note in report.notes:
        print(note, file=sys.stderr)
    print(report.markdown)
    print(report.line())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    return run_main(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
