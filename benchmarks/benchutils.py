"""Shared pieces of the benchmarks: the compared models, interleaved timing, memory, GEMM rate, machine info.

Not part of the ``segkit`` package; imported as ``benchmarks.benchutils`` by the benchmark scripts.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]

# the four MobileNetV2 Table 7 configs, then the DeepLabV3+ decoder ones (extra points beside Table 7)
SEGKIT_CONFIGS = (
    "voc_mnv2_os16",
    "voc_mnv2_os16_aspp",
    "voc_mnv2_os8",
    "voc_mnv2_os8_aspp",
    "voc_mnv2_os16_plus",
    "voc_mnv2_os16_aspp_plus",
)
PEERS = ("smp_deeplabv3_mobilenet_v2", "tv_deeplabv3_mobilenet_v3_large", "tv_lraspp_mobilenet_v3_large")


@dataclass
class Candidate:
    """One benchmarked model: how to build it and at which input size it runs."""

    name: str
    build: Callable[[], nn.Module]
    input_size: int  # square input; smp needs a multiple of 8 (512 instead of 513)
    config: str | None = None  # segkit config name, for tools/tradeoff.py
    note: str = ""


def _segkit(config: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from segkit.config import load_config
        from segkit.models import build_model

        return build_model(load_config(config))

    return build


def _smp() -> nn.Module:
    import segmentation_models_pytorch as smp

    return smp.DeepLabV3(encoder_name="mobilenet_v2", encoder_weights=None, classes=21)


def _tv_deeplabv3() -> nn.Module:
    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

    return deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21, aux_loss=False)


def _tv_lraspp() -> nn.Module:
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    return lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21)


def candidates(size: int = 513) -> dict[str, Candidate]:
    """All benchmarked models by name: segkit's four MobileNetV2 configs and the three peers."""
    smp_size = size // 8 * 8
    out = {c: Candidate(c, _segkit(c), size, config=c) for c in SEGKIT_CONFIGS}
    out["smp_deeplabv3_mobilenet_v2"] = Candidate(
        "smp_deeplabv3_mobilenet_v2",
        _smp,
        smp_size,
        note=f"smp rejects sizes not divisible by 8: runs at {smp_size}; its DeepLabV3 is OS8 by default",
    )
    out["tv_deeplabv3_mobilenet_v3_large"] = Candidate("tv_deeplabv3_mobilenet_v3_large", _tv_deeplabv3, size)
    out["tv_lraspp_mobilenet_v3_large"] = Candidate("tv_lraspp_mobilenet_v3_large", _tv_lraspp, size)
    return out


def logits(output: object) -> torch.Tensor:
    """The logits of a segkit/torchvision (``{"out": ...}``) or smp (tensor) output."""
    return output["out"] if isinstance(output, dict) else output  # type: ignore[index,return-value]


def interleaved(fns: dict[str, Callable[[], None]], passes: int, warmup: int) -> dict[str, list[float]]:
    """Run every function ``warmup`` times, then ``passes`` rounds of one call each (round robin).

    Interleaving spreads machine noise (other processes, thermal state) evenly over the candidates.

    Returns:
        Seconds of every timed call, per name.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(passes):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def paired_median_ratio(times: list[float], ref: list[float]) -> float:
    """Median over rounds of ``times[i] / ref[i]``: both ran in the same round, so load bursts cancel."""
    return statistics.median(t / r for t, r in zip(times, ref))


GEMM_N = 2048


def gemm_fn(n: int = GEMM_N) -> Callable[[], None]:
    """One fp32 ``torch.mm`` of two ``n x n`` matrices (``n**3`` multiply-adds): the compute floor probe."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return lambda: torch.mm(a, b)


def peak_rss_mb_subprocess(name: str, batch: int, size: int, *, fast: bool, train: bool = False) -> float | None:
    """Peak resident memory (MB) a forward (or training step) adds above the loaded model, in a fresh process.

    Measured as ``VmHWM`` after the pass minus ``VmRSS`` before it, with the high-water mark reset
    (``/proc/self/clear_refs``) just before the pass. A fresh process per model keeps memory freed by
    other models (and kept by the allocator) out of the figure. ``None`` where /proc is unavailable.
    """
    code = (
        f"import sys, json; sys.path.insert(0, {str(ROOT)!r});"
        "from benchmarks.benchutils import measure_peak_rss_mb;"
        f"print(json.dumps(measure_peak_rss_mb({name!r}, {batch}, {size}, fast={fast}, train={train})))"
    )
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"memory measurement of {name} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def measure_peak_rss_mb(name: str, batch: int, size: int, *, fast: bool, train: bool = False) -> float | None:
    """In this process: build ``name``, reset the RSS high-water mark, run one pass, return the peak increase."""
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    cand = candidates(size)[name]
    model = cand.build()
    x = torch.randn(batch, 3, cand.input_size, cand.input_size)
    if train:
        model.train()
        target = torch.randint(0, 21, (batch, cand.input_size, cand.input_size))
        step = make_train_step(model, x, target)
    else:
        model = prepare_inference(model, fast=fast and cand.config is not None)

        def step() -> None:
            with torch.inference_mode():
                model(x)

    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    before = _status_kb("VmRSS")
    step()
    peak = _status_kb("VmHWM")
    return None if before is None or peak is None else (peak - before) / 1024


def prepare_inference(model: nn.Module, *, fast: bool, compile: bool = False) -> nn.Module:
    """Eval mode, or segkit's ``optimize_for_inference`` with ``fast``."""
    if not fast:
        return model.eval()
    from segkit.models.fuse import optimize_for_inference

    return optimize_for_inference(model, compile=compile)


def make_train_step(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> Callable[[], None]:
    """One SGD step (forward, cross-entropy on full-resolution logits, backward, update) on fixed data."""
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(logits(model(x)), target, ignore_index=255)
        loss.backward()
        optimizer.step()

    return step


def machine_info() -> dict[str, object]:
    """Date, CPU, core and thread counts, library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average_1min_at_start": round(load, 2) if load is not None else None,
    }


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_report(title: str, header: list[str], rows: list[list[str]], result_rows: list[dict]) -> str:
    """Title, table, then the distinct ``note`` of the result rows as a bullet list."""
    notes = sorted({r["note"] for r in result_rows if r.get("note")})
    return "\n".join([title, "", markdown_table(header, rows)] + ([""] + [f"- {n}" for n in notes] if notes else []))


def bench_main(run: Callable, to_markdown: Callable, args: Any) -> int:
    """Run a benchmark, print its table, write ``--json``/``--markdown``; returns the exit code."""
    result = run(args)
    markdown = to_markdown(result)
    print(markdown)
    write_outputs(result, markdown, args.json, args.markdown)
    return 0


def write_outputs(result: dict[str, object], markdown: str, json_path: Path | None, md_path: Path | None) -> None:
    for path, text in ((json_path, json.dumps(result, indent=2) + "\n"), (md_path, markdown + "\n")):
        if path is not None:
            from segkit.utils.io import atomic_write_text

            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)
            print(f"wrote {path}")
