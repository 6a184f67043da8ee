"""mIoU vs MAdds trade-off of the paper's Table 7, with segkit's own measurements where available.

    python tools/tradeoff.py [--results DIR] [--latency FILE] [--complexity-json FILE] [--out DIR]

Writes ``DIR/tradeoff.png`` (mIoU against MAdds on a log axis: the paper's eight points, segkit's
measured mIoU beside them; a second panel of mIoU against measured CPU latency when a latency file
is given) and ``DIR/tradeoff.md`` (the same as a table).

Evaluation results are the JSON files of ``tools/test.py --json`` (``{"miou": ..., ...}``; a
fraction in 0..1 or a percentage) found anywhere under ``--results``. A file is matched to a Table 7
row by its ``config`` field when it has one (a config name, or a mapping with ``name``), otherwise by
its file name or the name of its folder starting with the row's config name, the longest match
winning: ``voc_mnv2_os16.json``, ``voc_mnv2_os8_val_mf.json``, ``work_dirs/voc_mnv2_os16_aspp/eval.json``.
Latency is read from ``benchmarks/inference.py --json`` output (rows with ``config`` and
``latency_ms``); by default ``--results/inference.json`` when it exists. segkit's MAdds are measured
(:func:`segkit.complexity.table7`, a few seconds) unless ``--complexity-json`` gives the output of
``tools/complexity.py --table7 --json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script from a checkout: make ``segkit`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segkit.complexity import TABLE7, Table7Row, table7

CONFIG_NAMES = sorted({row.config for row in TABLE7}, key=len, reverse=True)  # longest first
ROWS = {row.config: row for row in TABLE7}


def match_config(path: Path, data: dict[str, Any]) -> str | None:
    """The Table 7 config a result file belongs to, or ``None``."""
    field = data.get("config")
    if isinstance(field, dict):
        field = field.get("name")
    candidates = [Path(field).stem] if isinstance(field, str) else [path.stem, path.parent.name]
    for text in candidates:
        for name in CONFIG_NAMES:
            if text == name or (text.startswith(name) and not text[len(name)].isalnum()):
                return name
    return None


def load_results(results_dir: Path) -> tuple[dict[str, float], list[str]]:
    """``{config: mIoU in %}`` from the evaluation JSONs under ``results_dir``, and notes on skipped files."""
    found: dict[str, float] = {}
    notes: list[str] = []
    for path in sorted(results_dir.rglob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            notes.append(f"skipped {path}: not readable JSON ({exc})")
            continue
        if not isinstance(data, dict) or not isinstance(data.get("miou"), (int, float)):
            continue  # not an evaluation result (e.g. the latency file)
        name = match_config(path, data)
        if name is None:
            notes.append(f"skipped {path}: no Table 7 config in its 'config' field or name "
                         f"(expected one of {', '.join(sorted(CONFIG_NAMES))})")
            continue
        protocol = data.get("protocol")
        if isinstance(protocol, dict) and "scales" in protocol:
            is_mf = len(protocol["scales"]) > 1 and bool(protocol.get("flip"))
            if is_mf != ROWS[name].mf:
                notes.append(f"skipped {path}: evaluated {'with' if is_mf else 'without'} multi-scale + flip, but "
                             f"the Table 7 row of {name} is {'an MF' if ROWS[name].mf else 'a single-scale'} result "
                             f"({'add' if ROWS[name].mf else 'drop'} --ms-flip in tools/test.py)")
                continue
        miou = float(data["miou"]) * (100.0 if data["miou"] <= 1.0 else 1.0)
        if name in found:
            notes.append(f"{path}: a second result for {name}; keeping the last one read")
        found[name] = miou
    return found, notes


def load_latency(path: Path | None) -> dict[str, float]:
    """``{config: latency in ms}`` from a ``benchmarks/inference.py --json`` file."""
    if path is None or not path.is_file():
        return {}
    data = json.loads(path.read_text())
    rows = data.get("rows", data) if isinstance(data, dict) else data
    return {r["config"]: float(r["latency_ms"]) for r in rows
            if isinstance(r, dict) and r.get("config") and r.get("latency_ms") is not None}


# label placement (points) where the default would overlap a neighbour
LABEL_OFFSETS = {"voc_mnv2_os16_aspp": (5, 6), "voc_mnv1_os16_aspp": (5, -11), "voc_mnv2_os16": (-20, 8),
                 "voc_mnv2_os8_aspp": (-60, 8), "voc_mnv1_os8_aspp": (5, -11), "voc_r101_os8_aspp": (-95, -12)}


def _label(row: Table7Row) -> str:
    return f"{row.network} OS{row.os}" + (" ASPP" if row.aspp else "") + (" MF" if row.mf else "")


def tradeoff_markdown(madds: dict[str, int], miou: dict[str, float], latency: dict[str, float]) -> str:
    lines = ["| Network | OS | ASPP | MF | MAdds paper | MAdds segkit (tf1) | mIoU paper | mIoU segkit | CPU latency 513 (ms) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in TABLE7:
        seg = f"{miou[row.config]:.2f}" if row.config in miou else "-"
        lat = f"{latency[row.config]:.0f}" if row.config in latency and not row.mf else "-"
        lines.append(f"| {row.network} | {row.os} | {'yes' if row.aspp else ''} | {'yes' if row.mf else ''} "
                     f"| {row.paper_madds / 1e9:g}B | {madds[row.config] / 1e9:.2f}B | {row.paper_miou:.2f} | {seg} | {lat} |")
    return "\n".join(lines)


def plot(madds: dict[str, int], miou: dict[str, float], latency: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with_latency = any(row.config in latency and not row.mf for row in TABLE7)
    fig, axes = plt.subplots(1, 2 if with_latency else 1, figsize=(13 if with_latency else 7.5, 5.5), squeeze=False)
    ax = axes[0][0]
    colors = {"MNet V1": "tab:blue", "MNet V2*": "tab:green", "ResNet-101": "tab:red"}
    for row in TABLE7:
        color = colors[row.network]
        ax.scatter(row.paper_madds / 1e9, row.paper_miou, color=color, marker="o" if not row.mf else "s", s=50)
        ax.annotate(_label(row), (row.paper_madds / 1e9, row.paper_miou), fontsize=7,
                    xytext=LABEL_OFFSETS.get(row.config, (5, 4)), textcoords="offset points")
        if row.config in miou:
            ax.scatter(madds[row.config] / 1e9, miou[row.config], color=color, marker="*", s=140,
                       edgecolors="black", linewidths=0.5)
    for network, color in colors.items():
        ax.scatter([], [], color=color, label=network)
    ax.scatter([], [], color="gray", marker="o", label="paper, single scale")
    ax.scatter([], [], color="gray", marker="s", label="paper, MF (12 passes)")
    ax.scatter([], [], color="gray", marker="*", s=140, edgecolors="black", label="segkit measured")
    ax.set_xscale("log")
    ax.set_xlabel("MAdds at 513x513 (billions, log; TF1 convention)")
    ax.set_ylabel("PASCAL VOC 2012 val mIoU (%)")
    ax.set_title("MobileNetV2 paper, Table 7: mIoU vs compute")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    if with_latency:
        ax2 = axes[0][1]
        for row in TABLE7:
            if row.config in latency and not row.mf:
                y = miou.get(row.config, row.paper_miou)
                ax2.scatter(latency[row.config], y, color=colors[row.network],
                            marker="*" if row.config in miou else "o", s=100)
                ax2.annotate(_label(row), (latency[row.config], y), fontsize=7, xytext=(5, 3), textcoords="offset points")
        ax2.set_xlabel("segkit CPU latency, 513x513 batch 1 (ms)")
        ax2.set_ylabel("mIoU (%) (segkit's if measured, else the paper's)")
        ax2.set_title("mIoU vs measured CPU latency")
        ax2.grid(True, alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--results", type=Path, help="folder searched (recursively) for tools/test.py --json files")
    parser.add_argument("--latency", type=Path, help="benchmarks/inference.py --json output (default: RESULTS/inference.json)")
    parser.add_argument("--complexity-json", type=Path, help="tools/complexity.py --table7 --json output to reuse")
    parser.add_argument("--out", type=Path, default=Path("work_dirs/tradeoff"), help="output folder (default work_dirs/tradeoff)")
    parser.add_argument("--input-size", type=int, default=513, help="eval crop for the measured MAdds (default 513)")
    args = parser.parse_args(argv)
    if args.results is not None and not args.results.is_dir():
        parser.error(f"--results {args.results}: not a folder. Pass the folder holding tools/test.py --json outputs.")
    if args.complexity_json is not None and not args.complexity_json.is_file():
        parser.error(f"--complexity-json {args.complexity_json}: no such file. Produce it with "
                     "tools/complexity.py --table7 --json FILE.")
    if args.latency is not None and not args.latency.is_file():
        parser.error(f"--latency {args.latency}: no such file. Produce it with benchmarks/inference.py --json.")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = parse_args(argv)
    miou, notes = load_results(args.results) if args.results else ({}, [])
    latency_path = args.latency or (args.results / "inference.json" if args.results else None)
    latency = load_latency(latency_path)
    rows = json.loads(args.complexity_json.read_text()) if args.complexity_json else table7(args.input_size)
    if len(rows) != len(TABLE7):
        print(f"error: {args.complexity_json} holds {len(rows)} rows, expected the {len(TABLE7)} of Table 7.", file=sys.stderr)
        return 2
    madds = {row.config: r["madds_tf1"] for row, r in zip(TABLE7, rows)}
    for note in notes:
        print(note, file=sys.stderr)
    markdown = tradeoff_markdown(madds, miou, latency)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tradeoff.md").write_text(markdown + "\n")
    plot(madds, miou, latency, args.out / "tradeoff.png")
    print(markdown)
    print(f"wrote {args.out / 'tradeoff.png'} and {args.out / 'tradeoff.md'} "
          f"({len(miou)} segkit mIoU result(s), {len(latency)} latency row(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
