"""Training-step benchmark (CPU, or CUDA with --device cuda): segkit against smp's DeepLabV3-MobileNetV2, in the same run.

    python benchmarks/training.py [--models ...] [--batch 8] [--size 513] [--steps 3] [--quick] [--json OUT]
    python benchmarks/training.py --device cuda --batch 16 --steps 10 --warmup 3 [--amp bf16]
        [--channels-last] [--compile] [--tf32 default|on|off]

Seconds per SGD step (forward, cross-entropy on the full-resolution logits, backward, update) on a
fixed random batch, interleaved (round robin) after one warm-up step, median of ``--steps`` steps
(default 3: one smp step at batch 8 takes about a minute on 2 cores); the ratio column is the median
over rounds of the within-round ratio to the first model. smp runs at the largest multiple of
8 not above ``--size`` (it rejects 513). ``--memory`` adds the peak RSS of one step, measured in a
fresh process per model (see ``benchmarks/inference.py``).

On CUDA every timed step ends with ``torch.cuda.synchronize``; ``--amp bf16`` runs forward and loss under
``torch.autocast`` (bfloat16, no GradScaler needed); the TF32 state (``--tf32``, default: torch's, i.e.
cuDNN convolutions in TF32, matmuls in full fp32) is reported; the peak GPU memory of one step of each
model is its resident weights/optimiser state/inputs plus the step's high-water mark above them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

if not __package__:  # run as a file (python benchmarks/<name>.py): the checkout's benchmarks package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.benchutils import (  # noqa: E402
    PEERS,
    SEGKIT_CONFIGS,
    bench_main,
    candidates,
    interleaved,
    logits,
    machine_info,
    make_train_step,
    markdown_report,
    median,
    paired_median_ratio,
    peak_rss_mb_subprocess,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    names = list(SEGKIT_CONFIGS) + list(PEERS)
    parser.add_argument(
        "--models",
        nargs="+",
        default=["voc_mnv2_os16", "smp_deeplabv3_mobilenet_v2"],
        choices=names,
        metavar="NAME",
        help=f"models (default: voc_mnv2_os16 and smp); any of {', '.join(names)}",
    )
    parser.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    parser.add_argument("--size", type=int, default=513, help="square crop (default 513)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per model (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed warm-up steps (default 1)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--channels-last", action="store_true", help="NHWC models and inputs (all models)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to train (default cpu)")
    parser.add_argument("--amp", choices=["none", "bf16"], default="none", help="autocast dtype (default none: fp32)")
    parser.add_argument("--compile", action="store_true", help="torch.compile every model (compiles during warm-up)")
    parser.add_argument(
        "--tf32",
        choices=["default", "on", "off"],
        default="default",
        help="CUDA TF32 for matmuls and convolutions (default: leave torch's settings)",
    )
    parser.add_argument("--memory", action="store_true", help="also measure peak RSS of one step per model")
    parser.add_argument("--quick", action="store_true", help="smoke test: batch 2, 1 step, no warm-up")
    parser.add_argument("--json", type=Path, help="write results as JSON")
    parser.add_argument("--markdown", type=Path, help="write the table as markdown")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.steps, args.warmup = 2, 1, 0
    for key in ("batch", "size", "steps"):
        if getattr(args, key) < 1:
            parser.error(f"--{key} must be >= 1, got {getattr(args, key)}.")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda was requested but CUDA is not available; use --device cpu.")
    if args.compile and args.warmup < 1:
        parser.error("--compile needs --warmup >= 1 (the first step compiles).")
    return args


def tf32_state() -> dict[str, object]:
    """Whether CUDA matmuls and cuDNN convolutions may use TF32 (what "fp32" means on an Ampere+ GPU)."""
    return {
        "matmul": torch.backends.cuda.matmul.allow_tf32,
        "cudnn": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


def make_step(
    model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, amp: torch.dtype | None, device: torch.device
) -> Callable[[], None]:
    """One SGD step with forward + loss under autocast (``amp``), synchronised on CUDA."""
    if amp is None and device.type == "cpu":
        return make_train_step(model, x, target)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss = torch.nn.functional.cross_entropy(logits(model(x)), target, ignore_index=255)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return step


def run(args: argparse.Namespace) -> dict[str, object]:
    """Measure every model; returns the result dict (also what ``--json`` writes)."""
    from segkit.analysis.complexity import count_complexity

    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine_info()
    device = torch.device(args.device)
    amp = torch.bfloat16 if args.amp == "bf16" else None
    if device.type == "cuda":
        if args.tf32 != "default":
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32 == "on"
        info.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda, tf32=tf32_state())
    print(
        f"{info['date']}  {info['cpu']}  cores {info['cpu_count']}  torch threads {info['torch_threads']}", flush=True
    )
    cands = candidates(args.size)
    steps, rows = {}, {}
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    for name in args.models:
        cand = cands[name]
        model = cand.build().train()
        report = count_complexity(model, cand.input_size, device="meta")
        base = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
        model = model.to(device=device, memory_format=fmt)
        if args.compile:
            model = torch.compile(model)
        x = torch.randn(args.batch, 3, cand.input_size, cand.input_size, device=device).contiguous(memory_format=fmt)
        target = torch.randint(0, 21, (args.batch, cand.input_size, cand.input_size), device=device)
        steps[name] = make_step(model, x, target, amp, device)
        rows[name] = {
            "model": name,
            "config": cand.config,
            "input_size": cand.input_size,
            "params": report.params,
            "madds": report.madds_pytorch,
            "note": cand.note,
        }
        if device.type == "cuda":  # one step first, so momentum buffers count as resident
            steps[name]()
            rows[name]["resident_gpu_mb"] = (torch.cuda.memory_allocated(device) - base) / 2**20
    times = interleaved(steps, args.steps, args.warmup)
    ref = args.models[0]
    for name in args.models:
        rows[name]["step_s"] = median(times[name])
        rows[name]["step_all_s"] = [round(t, 2) for t in times[name]]
        rows[name]["images_per_s"] = args.batch / rows[name]["step_s"]
    for name in args.models:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            steps[name]()
            step_peak = (torch.cuda.max_memory_allocated(device) - before) / 2**20
            rows[name]["peak_gpu_mem_mb"] = rows[name]["resident_gpu_mb"] + step_peak
    for name in args.models:
        rows[name]["ratio_to_first"] = paired_median_ratio(times[name], times[ref])
        if args.memory:
            rows[name]["peak_mem_mb"] = peak_rss_mb_subprocess(name, args.batch, args.size, fast=False, train=True)
    return {
        "machine": info,
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "markdown")},
        "rows": list(rows.values()),
    }


def to_markdown(result: dict[str, object]) -> str:
    info, settings = result["machine"], result["settings"]
    header = ["model", "crop", "params", "MAdds/img (fwd)", "s/step", f"vs {settings['models'][0]}", "img/s"]
    if settings["memory"]:
        header.append("peak mem (MB)")
    cuda = settings.get("device") == "cuda"
    if cuda:
        header.append("peak GPU mem (MB)")
    rows = []
    for r in result["rows"]:
        row = [
            r["model"],
            str(r["input_size"]),
            f"{r['params'] / 1e6:.2f}M",
            f"{r['madds'] / 1e9:.2f}B",
            f"{r['step_s']:.2f}",
            f"{r['ratio_to_first']:.2f}x",
            f"{r['images_per_s']:.2f}",
        ]
        if settings["memory"]:
            row.append(f"{r['peak_mem_mb']:.0f}" if r.get("peak_mem_mb") is not None else "-")
        if cuda:
            row.append(f"{r['peak_gpu_mem_mb']:.0f}")
        rows.append(row)
    precision = "bf16 autocast" if settings.get("amp") == "bf16" else "fp32"
    where = f"{info['cpu']}, {info['cpu_count']} cores, torch {info['torch']} with {info['torch_threads']} threads"
    if cuda:
        tf32 = info["tf32"]
        where = f"{info['gpu']}, CUDA {info['cuda']}, torch {info['torch']}, host {info['cpu']}"
        if precision == "fp32":
            precision = (
                f"fp32 (TF32 matmul {'on' if tf32['matmul'] else 'off'}, cuDNN {'on' if tf32['cudnn'] else 'off'})"
            )
    if settings.get("compile"):
        precision += " + torch.compile"
    title = (
        f"Training step, {info['date']}, {where}, {precision}, batch {settings['batch']}, "
        f"{'channels_last' if settings['channels_last'] else 'NCHW'}; median of {settings['steps']} interleaved "
        f"steps after {settings['warmup']} warm-up; 1-min load average at start {info['load_average_1min_at_start']}."
    )
    return markdown_report(title, header, rows, result["rows"])


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    return bench_main(run, to_markdown, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
