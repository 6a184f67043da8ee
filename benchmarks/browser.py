"""Browser benchmark: segkit's web page (onnxruntime-web WASM, SIMD, 1 and 2 threads) in headless Chromium next to
ONNX Runtime native on the same .onnx file, on this machine.

    python benchmarks/browser.py [--size 513] [--rounds 15] [--warmup 3] [--markdown benchmarks/results/browser.md]

The model: ``voc_mnv2_os16`` with random weights (latency does not depend on them), exported by
``segkit export --format web`` (fp32 ONNX, verified on one image) into a temporary folder and served from
127.0.0.1 with the cross-origin isolation headers (WASM threads need them). Two pages stay open (``?threads=1``,
``?threads=2``); each round runs one ``session.run`` in every page (timed inside the page with
``performance.now()``), one in ONNX Runtime native with 1 and 2 intra-op threads, and a 2048^3 fp32 GEMM probe
(torch, 2 threads). Reported: the median latency, the paired ratio (median over rounds of the ratio within a round)
to ONNX Runtime native at the same thread count, and ``% of floor`` = (MAdds / the GEMM rate) / latency.
onnxruntime-web >= 1.19 ships SIMD builds only, so every WASM row is SIMD. Needs Chromium, chromedriver, selenium
and ``npm ci`` (node_modules/onnxruntime-web).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

if not __package__:  # run as a file (python benchmarks/<name>.py): the checkout's benchmarks package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.benchutils import GEMM_N, machine_info, markdown_table, median, paired_median_ratio, write_outputs  # noqa: E402

CONFIG = "voc_mnv2_os16"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=513, help="square input size (default 513)")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--json", type=Path)
    p.add_argument("--markdown", type=Path, default=Path(__file__).parent / "results" / "browser.md")
    return p.parse_args(argv)


def export_site(folder: Path, size: int) -> tuple[Path, float]:
    """The web folder of a random-weight ``voc_mnv2_os16`` at ``size``; and the model's MAdds."""
    from segkit.analysis.complexity import count_complexity
    from segkit.checkpoint.format import save_checkpoint
    from segkit.config import load_config
    from segkit.export.web import export_web
    from segkit.models import build_model

    torch.manual_seed(0)
    cfg = load_config(CONFIG)
    model = build_model(cfg).eval()
    save_checkpoint(folder / "model.pth", model, cfg)
    report = export_web(folder / "model.pth", folder / "site", input_size=size, verify_images=1, log=print)
    print(report.verification.line())
    return folder / "site", float(count_complexity(build_model(cfg), size, device="meta").madds_pytorch)


def native_session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session


def run(args: argparse.Namespace) -> dict:
    from tests.helpers.browser import Browser, missing, served

    reason = missing()
    if reason is not None:
        raise SystemExit(f"browser benchmark: {reason}")
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory(prefix="segkit-browser-bench-") as tmp:
        site, madds = export_site(Path(tmp), args.size)
        x = np.random.default_rng(0).standard_normal((1, 3, args.size, args.size)).astype(np.float32)
        native = {t: native_session(site / "model.onnx", t) for t in (1, 2)}
        name = native[1].get_inputs()[0].name
        a, b = torch.randn(GEMM_N, GEMM_N), torch.randn(GEMM_N, GEMM_N)
        times: dict[str, list[float]] = {k: [] for k in ("native1", "native2", "wasm1", "wasm2", "gemm")}
        with served(site) as url, Browser(timeout_s=600) as page1, Browser(timeout_s=600) as page2:
            infos = {
                1: page1.open(f"{url}/index.html?ep=wasm&threads=1"),
                2: page2.open(f"{url}/index.html?ep=wasm&threads=2"),
            }
            assert infos[1]["threads"] == 1 and infos[2]["threads"] == 2 and infos[2]["isolated"], infos
            browser_version = page1.driver.capabilities.get("browserVersion", "?")
            for i in range(args.warmup + args.rounds):
                round_times = {}
                for t in (1, 2):
                    start = time.perf_counter()
                    native[t].run(None, {name: x})
                    round_times[f"native{t}"] = time.perf_counter() - start
                for t, page in ((1, page1), (2, page2)):
                    round_times[f"wasm{t}"] = page.call("benchmark", 1, 0)["ms"][0] / 1000
                start = time.perf_counter()
                torch.mm(a, b)
                round_times["gemm"] = time.perf_counter() - start
                if i >= args.warmup:
                    for key, value in round_times.items():
                        times[key].append(value)
                print(
                    f"round {i + 1}/{args.warmup + args.rounds}: "
                    + ", ".join(f"{k} {1e3 * v:.1f} ms" for k, v in round_times.items())
                )
    import onnxruntime

    gemm_rate = GEMM_N**3 / median(times["gemm"])
    rows = []
    labels = {
        "native1": ("ONNX Runtime native (CPU EP)", 1),
        "native2": ("ONNX Runtime native (CPU EP)", 2),
        "wasm1": ("onnxruntime-web WASM SIMD, Chromium", 1),
        "wasm2": ("onnxruntime-web WASM SIMD, Chromium", 2),
    }
    for key, (path, threads) in labels.items():
        latency = median(times[key])
        rows.append(
            {
                "path": path,
                "threads": threads,
                "latency_ms": 1e3 * latency,
                "vs_native": paired_median_ratio(times[key], times[f"native{threads}"]),
                "pct_of_floor": 100 * (madds / gemm_rate) / latency,
            }
        )
    return {
        "machine": machine_info(),
        "model": CONFIG,
        "input_size": args.size,
        "madds": madds,
        "gemm_fp32_macs_per_s": gemm_rate,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "chromium": browser_version,
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_web": infos[1]["runtime"]["version"],
        "rows": rows,
    }


def to_markdown(result: dict) -> str:
    info = result["machine"]
    title = (
        f"Browser vs native, {info['date']}, {info['cpu']}, {info['cpu_count']} cores; **{result['model']}** at "
        f"{result['input_size']} (random weights, fp32 ONNX from `segkit export --format web`, "
        f"{result['madds'] / 1e9:.2f}B MAdds; GEMM floor fp32 {result['gemm_fp32_macs_per_s'] / 1e9:.0f} GMAC/s at 2 "
        f"threads); Chromium {result['chromium']} headless, onnxruntime-web {result['onnxruntime_web']}, ONNX Runtime "
        f"{result['onnxruntime']}; batch 1, median of {result['rounds']} interleaved rounds after {result['warmup']} "
        f"warm-up; 1-min load at start {info['load_average_1min_at_start']}."
    )
    header = ["path", "threads", "latency (ms)", "vs native (same threads)", "% of floor"]
    rows = [
        [r["path"], str(r["threads"]), f"{r['latency_ms']:.1f}", f"{r['vs_native']:.2f}x", f"{r['pct_of_floor']:.0f}%"]
        for r in result["rows"]
    ]
    notes = [
        "- WASM latency is `session.run` timed in the page (`performance.now()`); the image's preprocessing and the "
        "JavaScript argmax are not included (the page shows them in its per-frame figure).",
        "- onnxruntime-web ships SIMD builds only (no non-SIMD WASM since 1.19): every WASM row is SIMD. Two threads need "
        "cross-origin isolation (COOP/COEP headers); without them the page runs one thread.",
        "- WebGPU is not measured: headless Chromium here has no GPU adapter (the page falls back to WASM).",
    ]
    load, cores = info["load_average_1min_at_start"], info["cpu_count"]
    if load is not None and cores and load > cores:
        notes.append(
            f"- The 1-min load at start was {load} on {cores} cores: other processes shared the CPU, so the absolute "
            "latencies (and the GEMM floor) are inflated; the paired ratios within a round are the figures to read."
        )
    return "\n".join([title, "", markdown_table(header, rows), "", *notes])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    markdown = to_markdown(result)
    print(markdown)
    write_outputs(result, markdown, args.json, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
