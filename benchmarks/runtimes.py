"""Runtime benchmark: the same weights in PyTorch and in every runtime segkit exports to, one process.

    python benchmarks/runtimes.py [--quick] [--compile] [--json OUT.json] [--markdown OUT.md]

Models: ``voc_mnv2_os16`` at 513 (random weights), the converted official DeepLab model at 513 (when
``../shared/data`` holds it; with its own uint8 TFLite file as an extra row), and a width-0.5 OS8
model at 257. Rows per model: PyTorch eval, ``optimize_for_inference`` fp32, the same under bf16
autocast (only when the CPU has AMX or AVX512-BF16; with its pixel agreement with fp32), torch.compile
(``--compile``, slow to compile), ONNX Runtime, OpenVINO (fp32 precision hint), LiteRT (segkit's
fp32 export) and ExecuTorch (XNNPACK delegate), then the int8 rows: the same weights through segkit's own PTQ
(``segkit.quantize``, static int8, ``--calib`` calibration images: the VOC sample, else random ones; latency does
not depend on them) in ONNX Runtime (QDQ), OpenVINO (NNCF), LiteRT (PT2E, full integer) and ExecuTorch (PT2E with
the XNNPACK quantizer), each with its ratio to the same
runtime's fp32 row (``vs fp32``; the bf16 row's is to optimize_for_inference fp32). Batch 1,
``--threads`` (2) threads everywhere; after warm-up, ``--rounds`` interleaved rounds (one call of every
row, plus fp32 and bf16 GEMM probes, per round); median latency and the paired ratios (median over rounds
of the ratio within a round) to the fastest row and to the same runtime's fp32 row; ``% of floor`` =
(MAdds / that round's fp32 or bf16 GEMM rate) / latency (int8 rows: the fp32 floor). The CPU's bf16 and
int8 (VNNI, AMX) units are printed. JSON rows carry ``runtime`` (pytorch | onnxruntime | openvino | litert | executorch)
and ``precision`` (fp32 | bf16 | int8). End-to-end images/s: ``segkit infer``'s per-image path
(decode, protocol, model, label map) over the VOC sample (or synthetic images) with the checkpoint
(``--fast``) and with the exported runtimes (fp32 and int8).
``--quick``: one tiny model (width 0.35 at 65 px), 2 warm-up + 3 rounds (the test runs it). ``--size 257``:
only the models at that input size. ``--int8 onnx,openvino`` (or ``none``): int8 rows of these formats only.
``--runtimes onnxruntime,executorch``: fp32 rows of these runtimes only (PyTorch's are always there; default: all,
ExecuTorch when installed). ``--no-official``: leave the converted official model out.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

if not __package__:  # run as a file (python benchmarks/<name>.py): the checkout's benchmarks package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.benchutils import interleaved, machine_info, markdown_table, median, paired_median_ratio, write_outputs  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
OFFICIAL = SHARED / "tflite" / "deeplabv3_mnv2_pascal_quant.tflite"
VOC_SAMPLE = SHARED / "voc_sample"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="one tiny model, few rounds (for the test)")
    p.add_argument("--compile", action="store_true", help="add a torch.compile row (slow to compile)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=21)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--e2e-images", type=int, default=8, help="images of the end-to-end measurement")
    p.add_argument("--size", type=int, choices=(513, 257), help="only the models at this input size")
    p.add_argument(
        "--int8",
        type=lambda v: [] if v == "none" else v.split(","),
        default=[f for f in INT8_FORMATS if f != "executorch" or _has_executorch()],
        help="int8 (segkit PTQ) rows of these formats, comma-separated, or none (default: onnx,openvino,tflite, "
        "executorch when installed)",
    )
    p.add_argument("--calib", type=int, default=4, help="calibration images of the int8 files (default 4)")
    p.add_argument(
        "--runtimes",
        type=lambda v: v.split(","),
        default=[r for r in FP32_ROWS if r != "executorch" or _has_executorch()],
        help=f"fp32 rows of these runtimes, comma-separated (default: {','.join(FP32_ROWS)}; executorch when installed)",
    )
    p.add_argument("--no-official", action="store_true", help="leave the converted official model out")
    p.add_argument("--json", type=Path)
    p.add_argument("--markdown", type=Path)
    return p.parse_args(argv)


def cpu_bf16() -> str | None:
    """'amx' / 'avx512_bf16' when the CPU has bf16 matrix units, else None."""
    try:
        flags = next(
            line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
        ).split()
    except (OSError, StopIteration):
        return None
    return "amx" if "amx_bf16" in flags else "avx512_bf16" if "avx512_bf16" in flags else None


def cpu_int8() -> list[str]:
    """The CPU's int8 dot-product / matrix units among amx_int8, avx512_vnni, avx_vnni (/proc/cpuinfo flags)."""
    try:
        flags = set(
            next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
        )
    except (OSError, StopIteration):
        return []
    return [f for f in ("amx_int8", "avx512_vnni", "avx_vnni") if f in flags]


# row -> (runtime, precision, the same runtime's fp32 row its "vs fp32" ratio is to)
ROWS = {
    "PyTorch eval": ("pytorch", "fp32", None),
    "optimize_for_inference fp32": ("pytorch", "fp32", None),
    "optimize_for_inference bf16 autocast": ("pytorch", "bf16", "optimize_for_inference fp32"),
    "torch.compile (optimize_for_inference)": ("pytorch", "fp32", None),
    "ONNX Runtime": ("onnxruntime", "fp32", None),
    "OpenVINO": ("openvino", "fp32", None),
    "LiteRT (segkit fp32 export)": ("litert", "fp32", None),
    "ExecuTorch (XNNPACK)": ("executorch", "fp32", None),
    "ONNX Runtime int8": ("onnxruntime", "int8", "ONNX Runtime"),
    "OpenVINO int8": ("openvino", "int8", "OpenVINO"),
    "LiteRT int8": ("litert", "int8", "LiteRT (segkit fp32 export)"),
    "ExecuTorch int8": ("executorch", "int8", "ExecuTorch (XNNPACK)"),
    "official uint8 TFLite (LiteRT)": ("litert", "int8", "LiteRT (segkit fp32 export)"),
}
INT8_FORMATS = {
    "onnx": ("ONNX Runtime int8", ".onnx"),
    "openvino": ("OpenVINO int8", ".xml"),
    "tflite": ("LiteRT int8", ".tflite"),
    "executorch": ("ExecuTorch int8", ".pte"),
}
# runtime -> its fp32 row (--runtimes)
FP32_ROWS = {
    "onnxruntime": "ONNX Runtime",
    "openvino": "OpenVINO",
    "litert": "LiteRT (segkit fp32 export)",
    "executorch": "ExecuTorch (XNNPACK)",
}


def _has_executorch() -> bool:
    import importlib.util

    return importlib.util.find_spec("executorch") is not None


INT8_GOAL = 0.6  # issue 13: int8 at most 0.6x the fp32 latency of the same runtime, for the fastest runtime


def model_specs(quick: bool, no_official: bool = False) -> list[dict]:
    if quick:
        return [
            {
                "name": "voc_mnv2_os16 w0.35 (quick)",
                "config": "voc_mnv2_os16",
                "set": ["model.width_mult=0.35"],
                "size": 65,
            }
        ]
    specs = [{"name": "voc_mnv2_os16", "config": "voc_mnv2_os16", "set": [], "size": 513}]
    if OFFICIAL.is_file() and not no_official:
        specs.append({"name": "official (converted)", "official": True, "size": 513})
    specs.append({"name": "voc_mnv2_os8 w0.5", "config": "voc_mnv2_os8", "set": ["model.width_mult=0.5"], "size": 257})
    return specs


def build(spec: dict) -> torch.nn.Module:
    import segkit

    if spec.get("official"):
        from segkit.convert.tflite import convert_tflite

        conv = convert_tflite(OFFICIAL)
        model = conv.model.eval()
        model.segkit_config, model.class_names, model.palette = conv.config, conv.class_names, None
        return model
    torch.manual_seed(0)
    cfg = segkit.load_config(spec["config"], spec["set"])
    model = segkit.build_model(cfg).eval()
    model.segkit_config, model.class_names, model.palette = cfg, None, None
    return model


def int8_files(
    model: torch.nn.Module, size: int, tmp: Path, args: argparse.Namespace, errors: dict[str, str]
) -> dict[str, Path]:
    """segkit's own static int8 PTQ of ``model`` in each ``--int8`` format: {"onnx": .onnx, "openvino": .xml, ...}.

    A format whose quantization fails gets no row; its one-line error goes to ``errors`` (JSON and markdown).
    """
    from segkit.quantize import calibration_images, quantize_model
    from segkit.quantize.calib import synthetic_images

    if VOC_SAMPLE.is_dir() and not args.quick:
        calib = calibration_images(
            model, VOC_SAMPLE, split="val", num=args.calib, input_size=(size, size), progress=False
        )
    else:
        calib = synthetic_images(model, args.calib, (size, size))
    files = {}
    for fmt in args.int8:
        ext = INT8_FORMATS[fmt][1]
        start = time.perf_counter()
        path = tmp / f"{len(os.listdir(tmp))}-int8{ext}"
        try:
            quantize_model(model, path, calib, format=fmt, input_size=(size, size), progress=False)
        except Exception as exc:  # noqa: BLE001 - a converter failure costs its row, not the other rows
            errors[fmt] = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            print(f"  int8 {fmt}: FAILED ({errors[fmt]})", flush=True)
            continue
        files[fmt] = path
        print(f"  int8 {fmt}: quantized in {time.perf_counter() - start:.0f} s", flush=True)
    return files


def images(n: int) -> list[np.ndarray]:
    from segkit.export import verification_images

    return verification_images(VOC_SAMPLE if VOC_SAMPLE.is_dir() else None, limit=n)[0]


def bench_model(spec: dict, args: argparse.Namespace, tmp: Path, bf16: str | None) -> dict:
    from segkit.analysis.complexity import count_complexity
    from segkit.export import export_onnx, export_tflite
    from segkit.export.executorch import export_executorch
    from segkit.models.fuse import optimize_for_inference
    from segkit.runtimes import load_exported

    size, t = spec["size"], args.threads
    model = build(spec)
    madds = count_complexity(model, size, device="meta").madds_pytorch
    print(f"[{spec['name']}] {madds / 1e9:.2f}B MAdds at {size}; exporting", flush=True)
    start = time.perf_counter()
    n_files = len(os.listdir(tmp))
    onnx_path, tfl_path, pte_path = (tmp / f"{n_files}{ext}" for ext in (".onnx", ".tflite", ".pte"))
    want = set(args.runtimes)
    if want & {"onnxruntime", "openvino"}:
        export_onnx(model, onnx_path, input_size=(size, size))
    if "litert" in want:
        export_tflite(model, tfl_path, input_size=(size, size))
    if "executorch" in want:
        export_executorch(model, pte_path, input_size=(size, size))
    print(f"[{spec['name']}] exported in {time.perf_counter() - start:.0f} s", flush=True)
    fast = optimize_for_inference(model)
    x = torch.randn(1, 3, size, size)
    paths = {"onnxruntime": onnx_path, "openvino": onnx_path, "litert": tfl_path, "executorch": pte_path}
    fp32 = {rt: load_exported(paths[rt], rt, threads=t) for rt in FP32_ROWS if rt in want}
    nx, nx_nhwc = x.numpy(), np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy())

    def torch_fn(m, autocast=False):
        def fn():
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                m(x)

        return fn

    fns = {"PyTorch eval": torch_fn(model), "optimize_for_inference fp32": torch_fn(fast)}
    if bf16:
        fns["optimize_for_inference bf16 autocast"] = torch_fn(fast, autocast=True)
    if args.compile:
        fns["torch.compile (optimize_for_inference)"] = torch_fn(optimize_for_inference(model, compile=True))
    for rt, runner in fp32.items():
        native = nx_nhwc if rt == "litert" else nx
        fns[FP32_ROWS[rt]] = lambda runner=runner, native=native: runner.run_native(native)
    int8_runners, int8_errors = {}, {}
    for fmt, path in int8_files(model, size, tmp, args, int8_errors).items():
        runner = load_exported(path, threads=t)
        native = runner._native(x)  # the file's own input (a full-integer .tflite: the float image quantized)
        fns[INT8_FORMATS[fmt][0]] = lambda runner=runner, native=native: runner.run_native(native)
        if fmt != "tflite":
            int8_runners[INT8_FORMATS[fmt][0]] = runner
    if spec.get("official"):
        official = load_exported(OFFICIAL, "litert", threads=t)
        u8 = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
        fns["official uint8 TFLite (LiteRT)"] = lambda: official.run_native(u8)
    n = 512 if args.quick else 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    fns["__gemm_fp32__"] = lambda: torch.mm(a, b)
    if bf16:
        ab, bb = a.bfloat16(), b.bfloat16()
        fns["__gemm_bf16__"] = lambda: torch.mm(ab, bb)
    times = interleaved(fns, args.rounds, args.warmup)
    g32 = times.pop("__gemm_fp32__")
    g16 = times.pop("__gemm_bf16__", None)
    fastest = min(times, key=lambda k: median(times[k]))
    rows = []
    for name, ts in times.items():
        gem = g16 if ("bf16" in name and g16) else g32
        runtime, precision, ref = ROWS[name]
        rows.append(
            {
                "row": name,
                "runtime": runtime,
                "precision": precision,
                "latency_ms": median(ts) * 1000,
                "ratio_to_fastest": paired_median_ratio(ts, times[fastest]),
                "ratio_to_fp32": paired_median_ratio(ts, times[ref]) if ref in times else None,
                "fp32_row": ref,
                "floor_fraction": median([madds * g / n**3 / s for s, g in zip(ts, gem)]),
                "fp32": precision == "fp32",
            }
        )
        vs = f", {rows[-1]['ratio_to_fp32']:.2f}x {ref}" if ref in times else ""
        print(
            f"[{spec['name']}] {name}: {rows[-1]['latency_ms']:.1f} ms, {rows[-1]['ratio_to_fastest']:.2f}x fastest{vs}",
            flush=True,
        )
    ours = [r for r in rows if r["precision"] == "int8" and "official" not in r["row"]]
    best = min(ours, key=lambda r: r["latency_ms"]) if ours else None
    result = {
        "model": spec["name"],
        "config": spec.get("config") if not spec.get("set") else None,  # set only for a Table 7 config as is
        "input_size": size,
        "madds": madds,
        "rows": rows,
        "fastest": fastest,
        "gemm_fp32_macs_per_s": n**3 / median(g32),
        "gemm_bf16_macs_per_s": n**3 / median(g16) if g16 else None,
        # the fastest int8 row and its ratio to the same runtime's fp32 row (issue 13's goal: <= 0.6x)
        "int8_errors": int8_errors,  # format -> why it has no int8 row
        "int8_goal": best
        and {"row": best["row"], "ratio_to_fp32": best["ratio_to_fp32"], "met": best["ratio_to_fp32"] <= INT8_GOAL},
    }
    pics = images(args.e2e_images)
    if bf16:
        result["bf16_pixel_agreement"] = _bf16_agreement(fast, pics, size, model.segkit_config)
    runners = {FP32_ROWS[rt]: fp32[rt] for rt in ("onnxruntime", "openvino", "executorch") if rt in fp32}
    runners.update(int8_runners)
    result["end_to_end"] = _end_to_end(fast, runners, pics, size, model.segkit_config)
    return result


def _bf16_agreement(fast, pics, size, cfg) -> float:
    from segkit.evaluation.predict import normalize, predict

    same = total = 0
    for img in pics:
        x = normalize(img, cfg.model.input_mean, cfg.model.input_std)[None]
        ref = predict(fast, x, resize_longer=size, pad_to=size)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = predict(fast, x, resize_longer=size, pad_to=size)
        same, total = same + int((got == ref).sum()), total + ref.numel()
    return same / total


def _end_to_end(fast, runners: dict, pics, size, cfg) -> dict[str, float]:
    """images/s of segkit infer's per-image work (protocol, model, label map at the image size)."""
    from segkit.evaluation.command import segment

    cfg.eval.resize_longer = cfg.eval.pad_to = size
    cfg.eval.scales, cfg.eval.flip, cfg.eval.slide = [1.0], False, None
    out = {}
    for name, m in {"PyTorch --fast": fast, **{f"--runtime {k}": v for k, v in runners.items()}}.items():
        segment(m, pics[0], cfg, torch.device("cpu"), None)  # warm-up
        start = time.perf_counter()
        for img in pics:
            segment(m, img, cfg, torch.device("cpu"), None)
        out[name] = len(pics) / (time.perf_counter() - start)
    return out


def run(args: argparse.Namespace) -> dict:
    if args.quick:
        args.rounds, args.warmup, args.e2e_images = min(args.rounds, 3), min(args.warmup, 2), min(args.e2e_images, 2)
    torch.set_num_threads(args.threads)
    info = machine_info()
    bf16, int8 = cpu_bf16(), cpu_int8()
    print(
        f"{info['date']}  {info['cpu']}  bf16 units: {bf16 or 'none'}  int8 units: {', '.join(int8) or 'none'}  "
        f"threads {args.threads}",
        flush=True,
    )
    specs = [s for s in model_specs(args.quick, args.no_official) if args.quick or args.size in (None, s["size"])]
    with tempfile.TemporaryDirectory() as tmp:
        models = [bench_model(spec, args, Path(tmp), bf16) for spec in specs]
    return {
        "machine": info,
        "bf16_units": bf16,
        "int8_units": int8,
        "settings": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("json", "markdown")
        },
        "models": models,
    }


def to_markdown(result: dict) -> str:
    info, s = result["machine"], result["settings"]
    parts = [
        f"Runtimes, {info['date']}, {info['cpu']} (bf16 units: {result['bf16_units'] or 'none'}; int8 units: "
        f"{', '.join(result.get('int8_units') or []) or 'none'}), "
        f"{s['threads']} threads, batch 1, median of {s['rounds']} interleaved rounds after {s['warmup']} warm-up; "
        f"torch {info['torch']}; 1-min load at start {info['load_average_1min_at_start']}."
    ]
    for m in result["models"]:
        g16 = f", bf16 {m['gemm_bf16_macs_per_s'] / 1e9:.0f}" if m["gemm_bf16_macs_per_s"] else ""
        parts += [
            "",
            f"**{m['model']}** at {m['input_size']} ({m['madds'] / 1e9:.2f}B MAdds; GEMM floor fp32 "
            f"{m['gemm_fp32_macs_per_s'] / 1e9:.0f}{g16} GMAC/s)",
            "",
        ]
        rows = [
            [
                r["row"],
                f"{r['latency_ms']:.1f}",
                f"{r['ratio_to_fastest']:.2f}x",
                "" if r.get("ratio_to_fp32") is None else f"{r['ratio_to_fp32']:.2f}x",
                f"{r['floor_fraction']:.0%}",
            ]
            for r in m["rows"]
        ]
        parts.append(markdown_table(["path", "latency (ms)", "vs fastest", "vs fp32", "% of floor"], rows))
        goal = m.get("int8_goal")
        if goal:
            parts.append(
                f"\nFastest int8: {goal['row']}, {goal['ratio_to_fp32']:.2f}x its runtime's fp32 latency "
                f"(goal <= {INT8_GOAL}x: {'met' if goal['met'] else 'not met'})."
            )
        for fmt, why in (m.get("int8_errors") or {}).items():
            parts.append(f"No {INT8_FORMATS[fmt][0]} row: the quantization failed ({why}).")
        e2e = ", ".join(f"{k} {v:.1f}" for k, v in m["end_to_end"].items())
        parts.append(f"\nEnd-to-end images/s (decode excluded; protocol, model, label map): {e2e}.")
        if "bf16_pixel_agreement" in m:
            parts.append(f"bf16 autocast pixel agreement with fp32: {100 * m['bf16_pixel_agreement']:.2f}%.")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    unknown = sorted(set(args.runtimes) - set(FP32_ROWS))
    if unknown:
        raise SystemExit(f"--runtimes takes {', '.join(FP32_ROWS)} (comma-separated), got {', '.join(unknown)}.")
    unknown = sorted(set(args.int8) - set(INT8_FORMATS))
    if unknown:
        raise SystemExit(f"--int8 takes {', '.join(INT8_FORMATS)} (comma-separated) or none, got {', '.join(unknown)}.")
    result = run(args)
    markdown = to_markdown(result)
    print(markdown)
    write_outputs(result, markdown, args.json, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
