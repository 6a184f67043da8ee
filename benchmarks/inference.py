"""CPU inference benchmark: segkit's MobileNetV2 configs (four Table 7 rows + two DeepLabV3+) against peers.

    python benchmarks/inference.py [--fast [--compile]] [--quick] [--json OUT.json] [--markdown OUT.md]

One process, every model measured in the same run, interleaved (round robin) after warm-up:

- latency: 513x513 (smp: 512x512, it rejects sizes not divisible by 8), batch 1, median of ``--passes``
  (default 10) timed passes under ``torch.inference_mode()``;
- throughput: images/s at batch ``--batch`` (default 8), median of ``--throughput-passes`` (default 3,
  no extra warm-up: a batch-8 round of the seven models before the two decoder configs took about a minute
  on 2 cores, and the whole run must stay under 8 minutes);
- peak memory: resident memory (RSS) a batch-1 forward adds above the loaded model, measured in a
  fresh process per model (``VmHWM`` after the pass minus ``VmRSS`` before it, high-water mark reset
  through ``/proc/self/clear_refs``); it includes oneDNN's weight/workspace caches, not the weights;
- params (trainable) and MAdds (conv/linear, ``pytorch`` convention: what runs) at the benchmark size;
- ``vs segkit OS16``: latency ratio to segkit's ``voc_mnv2_os16``, the median over rounds of the ratio
  within a round (robust to load bursts from other processes on a shared machine);
- ``% of floor``: (MAdds / the machine's fp32 GEMM rate) / latency, i.e. how close the model gets to
  running every multiply-add at large-``torch.mm`` speed. A 2048^3 ``torch.mm`` runs in every round,
  and the fraction is the median over rounds (each round's model time against that round's GEMM).

``--fast`` runs segkit's models through ``segkit.optimize_for_inference`` (BN folded, channels_last;
``--compile`` adds torch.compile) and adds the plain eval-mode ``voc_mnv2_os16`` as a reference row.
Peers always run as their users would: ``model.eval()``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if not __package__:  # run as a file (python benchmarks/<name>.py): the checkout's benchmarks package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.benchutils import (  # noqa: E402
    GEMM_N,
    PEERS,
    SEGKIT_CONFIGS,
    bench_main,
    candidates,
    gemm_fn,
    interleaved,
    machine_info,
    markdown_report,
    median,
    paired_median_ratio,
    peak_rss_mb_subprocess,
    prepare_inference,
)

EAGER_REF = "voc_mnv2_os16 (eval)"
GEMM = "__gemm__"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    names = list(SEGKIT_CONFIGS) + list(PEERS)
    parser.add_argument(
        "--models",
        nargs="+",
        default=names,
        choices=names,
        metavar="NAME",
        help=f"subset to run (default all): {', '.join(names)}",
    )
    parser.add_argument("--size", type=int, default=513, help="square input size (default 513)")
    parser.add_argument("--passes", type=int, default=10, help="timed batch-1 passes per model (default 10)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed warm-up passes per model (default 1)")
    parser.add_argument("--batch", type=int, default=8, help="batch size of the throughput measurement (default 8)")
    parser.add_argument("--throughput-passes", type=int, default=3, help="timed throughput passes (default 3; 0 skips)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--fast", action="store_true", help="segkit models through segkit.optimize_for_inference")
    parser.add_argument("--compile", action="store_true", help="with --fast: also torch.compile (slow first pass)")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-model peak memory processes")
    parser.add_argument("--quick", action="store_true", help="smoke test: 3 passes, 1 warm-up, 1 throughput pass")
    parser.add_argument("--json", type=Path, help="write results as JSON (rows with config, latency_ms, ...)")
    parser.add_argument("--markdown", type=Path, help="write the table as markdown")
    args = parser.parse_args(argv)
    if args.quick:
        args.passes, args.warmup, args.throughput_passes = 3, 1, min(args.throughput_passes, 1)
    if args.compile and not args.fast:
        parser.error("--compile needs --fast (it is an option of segkit.optimize_for_inference).")
    for key in ("size", "passes", "batch"):
        if getattr(args, key) < 1:
            parser.error(f"--{key} must be >= 1, got {getattr(args, key)}.")
    if "voc_mnv2_os16" not in args.models:
        args.models = ["voc_mnv2_os16", *args.models]  # the reference of the latency ratios
    return args


def run(args: argparse.Namespace) -> dict[str, object]:
    """Measure everything; returns the result dict (also what ``--json`` writes)."""
    from segkit.analysis.complexity import count_complexity

    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine_info()
    print(
        f"{info['date']}  {info['cpu']}  cores {info['cpu_count']}  torch threads {info['torch_threads']}  "
        f"torch {info['torch']}  load {info['load_average_1min_at_start']}",
        flush=True,
    )
    cands = candidates(args.size)
    models, inputs, rows = {}, {}, {}
    names = list(args.models)
    if args.fast:
        names.insert(names.index("voc_mnv2_os16") + 1, EAGER_REF)
    for name in names:
        cand = cands[name if name != EAGER_REF else "voc_mnv2_os16"]
        model = cand.build()
        report = count_complexity(model, cand.input_size, device="meta")
        fast = args.fast and cand.config is not None and name != EAGER_REF
        models[name] = prepare_inference(model, fast=fast, compile=args.compile)
        inputs[name] = cand.input_size
        rows[name] = {
            "model": name,
            "config": cand.config if name != EAGER_REF else None,
            "optimized": fast,
            "input_size": cand.input_size,
            "params": report.params,
            "madds": report.madds_pytorch,
            "note": cand.note,
        }
        print(
            f"built {name}: {report.params / 1e6:.2f}M params, {report.madds_pytorch / 1e9:.2f}B MAdds "
            f"at {cand.input_size}",
            flush=True,
        )

    if not args.no_memory:
        for name in names:
            base = name if name != EAGER_REF else "voc_mnv2_os16"
            fast = rows[name]["optimized"]
            rows[name]["peak_mem_mb"] = peak_rss_mb_subprocess(base, 1, args.size, fast=bool(fast))
            print(f"memory {name}: {rows[name]['peak_mem_mb']:.0f} MB", flush=True)

    def forward_fn(name: str, batch: int):
        x = torch.randn(batch, 3, inputs[name], inputs[name])
        model = models[name]

        def fn() -> None:
            with torch.inference_mode():
                model(x)

        return fn

    # The GEMM probe runs in every round too, so the floor is measured under the same load as the models.
    fns = {n: forward_fn(n, 1) for n in names}
    fns[GEMM] = gemm_fn()
    times = interleaved(fns, args.passes, args.warmup)
    gemm = times.pop(GEMM)
    rate = GEMM_N**3 / median(gemm)
    print(f"fp32 GEMM (torch.mm {GEMM_N}^3): {rate / 1e9:.1f} GMAC/s (median of the rounds)", flush=True)
    ref = times["voc_mnv2_os16"]
    for name in names:
        row = rows[name]
        row["latency_ms"] = median(times[name]) * 1000
        row["latency_min_ms"] = min(times[name]) * 1000
        row["latency_all_ms"] = [round(t * 1000, 1) for t in times[name]]
        row["ratio_to_segkit_os16"] = paired_median_ratio(times[name], ref)
        # (MAdds at this round's GEMM rate) / this round's latency
        row["floor_fraction"] = median([row["madds"] * g / GEMM_N**3 / t for t, g in zip(times[name], gemm)])
        print(
            f"latency {name}: {row['latency_ms']:.0f} ms (min {row['latency_min_ms']:.0f}), "
            f"{row['ratio_to_segkit_os16']:.2f}x segkit OS16",
            flush=True,
        )
    if args.throughput_passes > 0:
        # No extra warm-up: the batch-1 passes warmed the weights; the median drops the first (slower) pass.
        times = interleaved({n: forward_fn(n, args.batch) for n in names}, args.throughput_passes, 0)
        for name in names:
            rows[name]["throughput_ips"] = args.batch / median(times[name])
            rows[name]["throughput_all_s"] = [round(t, 2) for t in times[name]]
            print(f"throughput {name}: {rows[name]['throughput_ips']:.2f} img/s", flush=True)
    return {
        "machine": info,
        "gemm_macs_per_s": rate,
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "markdown")},
        "rows": list(rows.values()),
    }


def to_markdown(result: dict[str, object]) -> str:
    info, settings = result["machine"], result["settings"]
    header = [
        "model",
        "input",
        "params",
        "MAdds",
        "latency (ms)",
        "min (ms)",
        "vs segkit OS16",
        "% of floor",
        f"img/s (batch {settings['batch']})",
        "peak mem (MB)",
    ]
    rows = []
    for r in result["rows"]:
        name = r["model"] + (" (optimized)" if r["optimized"] else "")
        rows.append(
            [
                name,
                str(r["input_size"]),
                f"{r['params'] / 1e6:.2f}M",
                f"{r['madds'] / 1e9:.2f}B",
                f"{r['latency_ms']:.0f}",
                f"{r['latency_min_ms']:.0f}",
                f"{r['ratio_to_segkit_os16']:.2f}x",
                f"{r['floor_fraction']:.0%}",
                f"{r['throughput_ips']:.2f}" if "throughput_ips" in r else "-",
                f"{r['peak_mem_mb']:.0f}" if r.get("peak_mem_mb") is not None else "-",
            ]
        )
    title = (
        f"Inference, {info['date']}, {info['cpu']}, {info['cpu_count']} cores, torch {info['torch']} with "
        f"{info['torch_threads']} threads, fp32; GEMM floor {result['gemm_macs_per_s'] / 1e9:.1f} GMAC/s (median); "
        f"median of {settings['passes']} interleaved passes (throughput: {settings['throughput_passes']}); "
        f"1-min load average at start {info['load_average_1min_at_start']}."
    )
    return markdown_report(title, header, rows, result["rows"])


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    return bench_main(run, to_markdown, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
