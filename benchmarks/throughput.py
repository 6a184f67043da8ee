"""End-to-end throughput: what ``segkit infer`` and ``segkit test`` deliver beside the model-only rate (issue 25).

    python benchmarks/throughput.py [--images 24] [--rounds 3] [--size 513|257] [--json OUT.json] [--markdown OUT.md]

For each file (ONNX Runtime fp32 / int8, logits or labels output, and the int8 labels file on 1 thread; OpenVINO fp32
and int8 (NNCF); LiteRT: the official uint8 file at 513, segkit's fp32 export at 257; PyTorch
``optimize_for_inference``, what ``--fast`` ran before it picked ONNX Runtime), one interleaved run times, per round
and on the same images:

- **model**: the forward pass alone (the file's own input, prepared beforehand), once per image;
- **infer**: ``segment_images`` over a folder of ``--images`` real VOC photos (decode included, label maps written,
  no overlays; ``+overlay``: with them), the model loaded once;
- **test**: ``evaluate_model`` over the same photos as a VOC data set (decode, masks, confusion matrix), the
  DataLoader workers' start-up cancelled (the time of the whole set minus that of its first third, scaled).

Ratios are paired within a round (model time / end-to-end time = the fraction of the model-only rate a user gets).
Also: the argmax fusion's pixel agreement and mIoU cost on the real images (official weights, PyTorch), ONNX Runtime
images/s at batch 1/4/8 with 1 and 2 threads, the peak RSS of ``segkit infer`` on a 513 image and on a 4000x3000
photo (resize-longer and slide), the CPU, its fp32 GEMM rate and the load average.
"""

from __future__ import annotations

import argparse
import inspect
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

if not __package__:  # run as a file (python benchmarks/<name>.py): the checkout's benchmarks package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.benchutils import (
    gemm_fn,
    interleaved,
    machine_info,
    markdown_table,
    median,
    paired_median_ratio,
    write_outputs,
)  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
OFFICIAL = SHARED / "tflite" / "deeplabv3_mnv2_pascal_quant.tflite"
VOC = SHARED / "voc_sample" / "VOCdevkit" / "VOC2012"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=24, help="photos per pass (the 8 VOC samples, repeated)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--size", type=int, choices=(513, 257), help="only this input size")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: batch,memory,fusion,test,overlay")
    p.add_argument("--rows", default="", help="comma-separated substrings: only the rows whose name holds one")
    p.add_argument("--files", type=Path, help="keep the exported/quantized files here and reuse them (default: temp)")
    p.add_argument("--json", type=Path)
    p.add_argument("--markdown", type=Path)
    return p.parse_args(argv)


def voc_copy(root: Path, n: int) -> tuple[Path, list[Path]]:
    """A VOC-layout data set of ``n`` images (the samples repeated under new ids) and its JPEG paths."""
    ids = sorted(p.stem for p in (VOC / "JPEGImages").glob("*.jpg"))
    voc = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    names = []
    for k in range(n):
        src, name = ids[k % len(ids)], f"{k:03d}_{ids[k % len(ids)]}"
        shutil.copy(VOC / "JPEGImages" / f"{src}.jpg", voc / "JPEGImages" / f"{name}.jpg")
        shutil.copy(VOC / "SegmentationClass" / f"{src}.png", voc / "SegmentationClass" / f"{name}.png")
        names.append(name)
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(names) + "\n")
    (voc / "ImageSets" / "Segmentation" / "head.txt").write_text("\n".join(names[: n // 3]) + "\n")
    return root, [voc / "JPEGImages" / f"{n}.jpg" for n in names]


def build_files(size: int, tmp: Path) -> tuple[dict[str, tuple[str, Path]], Path]:
    """{row: (kind, file)} and the checkpoint: the official weights at 513, a random width-0.5 OS8 model at 257
    (files already in ``tmp`` are reused)."""
    names = {
        "ONNX Runtime fp32 logits": ("onnxruntime", tmp / f"fp32_logits_{size}.onnx"),
        "ONNX Runtime fp32 labels": ("onnxruntime", tmp / f"fp32_labels_{size}.onnx"),
        "OpenVINO fp32 logits": ("openvino", tmp / f"fp32_logits_{size}.onnx"),
        "ONNX Runtime int8 logits": ("onnxruntime", tmp / f"int8_logits_{size}.onnx"),
        "ONNX Runtime int8 labels": ("onnxruntime", tmp / f"int8_labels_{size}.onnx"),
    }
    names.update(extra_names(size, tmp))
    if all(path.is_file() for _, path in names.values()) and (tmp / f"model{size}.pth").is_file():
        return names, tmp / f"model{size}.pth"
    import segkit
    from segkit.checkpoint.format import save_checkpoint
    from segkit.export import export_onnx
    from segkit.export.tflite import export_tflite
    from segkit.quantize import calibration_images, quantize_model

    if size == 513:
        from segkit.convert.tflite import convert_tflite

        conv = convert_tflite(OFFICIAL)
        model, cfg = conv.model.eval(), conv.config
        model.segkit_config, model.class_names, model.palette = cfg, conv.class_names, None
    else:
        torch.manual_seed(0)
        cfg = segkit.load_config(
            "voc_mnv2_os8",
            [
                "model.width_mult=0.5",
                "eval.pad_to=257",
                "eval.resize_longer=257",
                "eval.scales=[1.0]",
                "eval.flip=false",
            ],
        )
        model = segkit.build_model(cfg).eval()
        model.segkit_config, model.class_names, model.palette = cfg, None, None
    ckpt = tmp / f"model{size}.pth"
    save_checkpoint(ckpt, model, cfg)
    files: dict[str, tuple[str, Path]] = {}
    for output in ("logits", "labels"):
        path = tmp / f"fp32_{output}_{size}.onnx"
        export_onnx(model, path, input_size=(size, size), output=output)
        files[f"ONNX Runtime fp32 {output}"] = ("onnxruntime", path)
    files["OpenVINO fp32 logits"] = ("openvino", files["ONNX Runtime fp32 logits"][1])
    calib = calibration_images(model, VOC.parents[1], split="val", num=4, input_size=(size, size), progress=False)
    for output in ("logits", "labels"):
        path = tmp / f"int8_{output}_{size}.onnx"
        quantize_model(model, path, calib, format="onnx", input_size=(size, size), output=output, progress=False)
        files[f"ONNX Runtime int8 {output}"] = ("onnxruntime", path)
    for name, (kind, path) in extra_names(size, tmp).items():
        if path.is_file() or path == OFFICIAL:
            files[name] = (kind, path)
            continue
        try:  # the other runtimes' files: skipped with the reason when a package is missing
            if name.startswith("OpenVINO int8"):
                quantize_model(model, path, calib, format="openvino", input_size=(size, size), progress=False)
            else:
                export_tflite(model, path, input_size=(size, size), output="logits" if "logits" in name else "labels")
            files[name] = (kind, path)
        except Exception as exc:  # noqa: BLE001 - a benchmark row left out, said
            print(f"[{size}] {name}: skipped ({type(exc).__name__}: {str(exc)[:200]})", flush=True)
    return files, ckpt


def extra_names(size: int, tmp: Path) -> dict[str, tuple[str, Path]]:
    """OpenVINO int8 (NNCF) and LiteRT files: the official uint8 file at 513, segkit's fp32 export at 257."""
    names = {"OpenVINO int8 logits": ("openvino", tmp / f"int8_logits_{size}.xml")}
    if size == 513:
        names["LiteRT official uint8 labels"] = ("litert", OFFICIAL)
    else:
        names["LiteRT fp32 labels"] = ("litert", tmp / f"fp32_labels_{size}.tflite")
    return names


def load(kind: str, path: Path, ckpt: Path, data_root: Path, threads: int):
    """(model, cfg) as ``segkit test/infer`` load them, with the VOC copy as the data set; a runtime's session gets
    ``threads`` threads (torch's count when it is made); the PyTorch row is ``segkit.optimize_for_inference``."""
    from segkit.checkpoint.load import load_eval_model
    from segkit.export.source import ModelSource

    overrides = {"data.root": str(data_root), "data.dataset": "voc", "data.val_split": "val", "data.num_workers": 2}
    if kind == "pytorch":  # PyTorch itself (``--fast`` now picks ONNX Runtime when it is installed)
        return load_eval_model(ckpt, overrides=overrides, device="cpu", fast=True)
    if kind == "fast":  # what `segkit test/infer --checkpoint CKPT --fast` loads (exported once into the cache)
        return ModelSource(checkpoint=ckpt, overrides=overrides, fast=True).load("cpu", log=lambda line: print(line))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return ModelSource(model=path, runtime=kind, overrides=overrides).load("cpu")
    finally:
        torch.set_num_threads(before)


def model_only(model, cfg, pics: list[np.ndarray]):
    """A function running the forward pass alone on every picture (inputs prepared beforehand, at the file's size)."""
    from segkit.evaluation.predict import normalize, resized_extent

    side = cfg.eval.pad_to or 513
    inputs = []
    for rgb in pics:
        x = normalize(rgb, cfg.model.input_mean, cfg.model.input_std)[None]
        h, w = resized_extent(x.shape[-2:], side if max(x.shape[-2:]) > side else None)
        x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=True)
        x = torch.nn.functional.pad(x, (0, side - w, 0, side - h))
        inputs.append(model._native(x) if hasattr(model, "_native") else x)
    if hasattr(model, "run_native"):
        return lambda: [model.run_native(a) for a in inputs]

    def torch_fn():
        with torch.inference_mode():
            for x in inputs:
                model(x)

    return torch_fn


def e2e_fns(name, model, cfg, paths, data_root: Path, out: Path, skip: set[str]) -> dict:
    from segkit.evaluation.command import evaluate_model, segment_images

    has_overlay = "overlay" in inspect.signature(segment_images).parameters
    fns = {}

    def infer(overlay: bool):
        def fn():
            shutil.rmtree(out, ignore_errors=True)
            kw = {"overlay": overlay} if has_overlay else {}
            segment_images(model, cfg, paths, out, device="cpu", progress=False, log=lambda *_: None, **kw)

        return fn

    fns[f"{name} | infer"] = infer(False)
    if "overlay" not in skip:
        fns[f"{name} | infer+overlay"] = infer(True)
    if "test" not in skip:  # the whole set and its first third: the difference cancels the start-up (workers)
        for split in ("val", "head"):
            fns[f"{name} | test {split}"] = lambda split=split: evaluate_model(
                model, cfg, split=split, device="cpu", progress=False, log=lambda *_: None
            )
    return fns


def bench_size(size: int, args: argparse.Namespace, tmp: Path) -> dict:
    from segkit.data import read_image

    skip = set(filter(None, args.skip.split(",")))
    print(f"[{size}] exporting and quantizing", flush=True)
    files, ckpt = build_files(size, tmp)
    if args.rows:
        keep = args.rows.split(",")
        files = {k: v for k, v in files.items() if any(part in k for part in keep)}
    data_root, paths = voc_copy(tmp / f"voc{size}", args.images)
    pics = [read_image(p) for p in paths]
    rows = dict(files)
    if "ONNX Runtime int8 labels" in files:  # the same file on one core: how throughput scales with the cores
        rows["ONNX Runtime int8 labels, 1 thread"] = files["ONNX Runtime int8 labels"]
    if not args.rows or "PyTorch" in args.rows:
        rows["PyTorch fp32 logits"] = ("pytorch", None)
    if not args.rows or "--fast" in args.rows:  # the checkpoint as `--fast` runs it: ONNX Runtime via the cache
        rows["--fast (checkpoint, ONNX Runtime via the cache)"] = ("fast", None)
    fns, models = {}, {}
    for name, (kind, path) in rows.items():
        model, cfg = load(kind, path, ckpt, data_root, 1 if name.endswith("1 thread") else args.threads)
        models[name] = (model, cfg)
        fns[f"{name} | model"] = model_only(model, cfg, pics)
        fns.update(e2e_fns(name, model, cfg, paths, data_root, tmp / "out", skip))
    fns["__gemm__"] = gemm_fn()
    print(f"[{size}] timing {len(fns)} functions x {args.rounds} rounds", flush=True)
    times = interleaved(fns, args.rounds, args.warmup)
    gemm = times.pop("__gemm__")
    table = []
    head = args.images // 3
    for name in rows:
        if f"{name} | test val" in times:  # start-up cancelled: the time of the last two thirds, scaled to the set
            whole, first = times.pop(f"{name} | test val"), times.pop(f"{name} | test head")
            times[f"{name} | test"] = [(a - b) * args.images / (args.images - head) for a, b in zip(whole, first)]
        ref = times[f"{name} | model"]
        row = {"row": name, "model_images_per_s": args.images / median(ref)}
        for part in ("infer", "infer+overlay", "test"):
            ts = times.get(f"{name} | {part}")
            if ts is None:
                continue
            n = args.images
            row[f"{part}_images_per_s"] = n / median(ts)
            row[f"{part}_vs_model"] = paired_median_ratio(ref, ts)
        table.append(row)
        print(f"[{size}] {row}", flush=True)
    result = {"input_size": size, "images": args.images, "rows": table, "gemm_fp32_macs_per_s": 2048**3 / median(gemm)}
    pairs = {  # latency ratios (model only), paired within rounds: (numerator row, denominator row)
        "pytorch_vs_ort_fp32": ("PyTorch fp32 logits", "ONNX Runtime fp32 logits"),
        "fast_vs_ort_fp32": ("--fast (checkpoint, ONNX Runtime via the cache)", "ONNX Runtime fp32 logits"),
        "int8_vs_fp32_ort": ("ONNX Runtime int8 logits", "ONNX Runtime fp32 logits"),
        "int8_labels_vs_fp32_labels_ort": ("ONNX Runtime int8 labels", "ONNX Runtime fp32 labels"),
        "int8_vs_fp32_openvino": ("OpenVINO int8 logits", "OpenVINO fp32 logits"),
        "one_vs_two_threads_ort_int8": ("ONNX Runtime int8 labels, 1 thread", "ONNX Runtime int8 labels"),
    }
    result["latency_ratios"] = {
        key: paired_median_ratio(times[f"{a} | model"], times[f"{b} | model"])
        for key, (a, b) in pairs.items()
        if f"{a} | model" in times and f"{b} | model" in times
    }
    if size == 513 and "fusion" not in skip and "PyTorch fp32 logits" in models:
        result["argmax_fusion"] = fusion_cost(models["PyTorch fp32 logits"][0], data_root)
    if "batch" not in skip:
        result["batch"] = batch_scaling(ckpt, size, tmp)
    if size == 513 and "memory" not in skip:
        result["memory"] = infer_memory(files["ONNX Runtime int8 labels"][1], paths[0], tmp)
    return result


def fusion_cost(model, data_root: Path) -> dict:
    """Argmax fusion vs the official semantics on the real VOC photos: pixel agreement, mIoU of each."""
    from segkit.data import read_image
    from segkit.data.io import read_mask
    from segkit.evaluation.metrics import ConfusionMatrix
    from segkit.evaluation.predict import normalize, predict, resized_extent
    from segkit.export.wrapper import fused_labels

    cfg = model.segkit_config
    same = total = 0
    conf = {k: ConfusionMatrix(21, ignore_index=255) for k in ("official", "fused")}
    for jpg in sorted((VOC / "JPEGImages").glob("*.jpg")):
        rgb = read_image(jpg)
        mask = torch.from_numpy(np.asarray(read_mask(VOC / "SegmentationClass" / f"{jpg.stem}.png")).astype(np.int64))
        x = normalize(rgb, cfg.model.input_mean, cfg.model.input_std)[None]
        h, w = resized_extent(x.shape[-2:], 513 if max(x.shape[-2:]) > 513 else None)
        with torch.inference_mode():
            ref = predict(model, x, resize_longer=513, pad_to=513)[0]
            xp = torch.nn.functional.pad(x, (0, 513 - w, 0, 513 - h))
            got = fused_labels(model, xp)[0, :h, :w].long()
        same, total = same + int((got == ref).sum()), total + ref.numel()
        conf["official"].update(ref[None], mask[None])
        conf["fused"].update(got[None], mask[None])
    miou = {k: float(c.compute().miou) for k, c in conf.items()}
    return {"pixel_agreement": same / total, "miou_official": miou["official"], "miou_fused": miou["fused"]}


def batch_scaling(ckpt: Path, size: int, tmp: Path) -> list[dict]:
    """ONNX Runtime fp32 (dynamic batch file) images/s at batch 1/4/8 with 1 and 2 threads (model only)."""
    from segkit.checkpoint.load import load_model
    from segkit.export import export_onnx
    from segkit.runtimes import load_exported

    path = tmp / f"dyn{size}.onnx"
    export_onnx(load_model(ckpt), path, input_size=(size, size), dynamic=True)
    out = []
    for threads in (1, 2):
        runner = load_exported(path, "onnxruntime", threads=threads)
        arrays = {b: np.random.randn(b, 3, size, size).astype(np.float32) for b in (1, 4, 8)}
        fns = {b: (lambda a=a, r=runner: r.run_native(a)) for b, a in arrays.items()}
        times = interleaved(fns, 2, 1)
        out += [{"threads": threads, "batch": b, "images_per_s": b / median(ts)} for b, ts in times.items()]
        print(f"[{size}] batch scaling, {threads} thread(s): {out[-3:]}", flush=True)
    return out


def infer_memory(model_file: Path, photo: Path, tmp: Path) -> list[dict]:
    """Peak RSS of ``segkit infer`` (a fresh process) on a 513 image and a 4000x3000 photo (resize-longer, slide)."""
    from PIL import Image

    big = tmp / "big" / "photo_4000x3000.jpg"
    big.parent.mkdir(exist_ok=True)
    Image.open(photo).convert("RGB").resize((4000, 3000), Image.BILINEAR).save(big, quality=90)
    small = tmp / "small"
    small.mkdir(exist_ok=True)
    shutil.copy(photo, small)
    probe = "import resource,subprocess,sys; subprocess.run(sys.argv[1:], check=True); " \
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"  # fmt: skip
    segkit = [sys.executable, "-m", "segkit", "infer", "--model", str(model_file), "--no-progress", "--no-overlay"]
    cases = {
        "513 VOC image (fit: pad to 513)": [*segkit, "--input", str(small)],
        "4000x3000 photo, --resize-longer 513 --pad-to 513": [*segkit, "--input", str(big.parent), "--resize-longer", "513", "--pad-to", "513"],
        "4000x3000 photo, --slide 513 341 (static 513 file)": [*segkit, "--input", str(big.parent), "--slide", "513", "341", "--pad-to", "513"],
    }  # fmt: skip
    out = []
    for name, cmd in cases.items():
        shutil.rmtree(tmp / "mem_out", ignore_errors=True)
        res = subprocess.run([sys.executable, "-c", probe, *cmd, "--output", str(tmp / "mem_out")], capture_output=True, text=True)  # fmt: skip
        kb = int(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else None
        out.append({"case": name, "peak_rss_mb": kb / 1024 if kb else None, "error": None if kb else res.stderr[-300:]})
        print(f"memory: {out[-1]}", flush=True)
    return out


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    info = machine_info()
    print(
        f"{info['date']}  {info['cpu']}  load {info['load_average_1min_at_start']}  threads {args.threads}", flush=True
    )
    sizes = [s for s in (513, 257) if args.size in (None, s)]
    with tempfile.TemporaryDirectory() as tmp:
        files = args.files or Path(tmp)
        files.mkdir(parents=True, exist_ok=True)
        results = [bench_size(s, args, files) for s in sizes]
    info["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    return {"machine": info, "settings": {"images": args.images, "rounds": args.rounds, "threads": args.threads},
            "sizes": results}  # fmt: skip


def to_markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"Throughput, {m['date']}, {m['cpu']}, {result['settings']['threads']} threads, {result['settings']['images']} "
        f"real VOC photos per pass (decode included), median of {result['settings']['rounds']} interleaved rounds; "
        f"1-min load {m['load_average_1min_at_start']} at start, {m.get('load_average_1min_at_end')} at end; "
        f"torch {m['torch']}.",
    ]
    for s in result["sizes"]:
        lines += ["", f"**{s['input_size']}** (fp32 GEMM {s['gemm_fp32_macs_per_s'] / 1e9:.0f} GMAC/s)", ""]
        header = ["file", "model img/s", "infer img/s", "infer / model", "+overlay img/s", "+overlay / model",
                  "test img/s", "test / model"]  # fmt: skip
        rows = []
        for r in s["rows"]:

            def cell(key, fmt="{:.1f}", r=r):
                return fmt.format(r[key]) if key in r else ""

            rows.append([r["row"], cell("model_images_per_s"), cell("infer_images_per_s"), cell("infer_vs_model", "{:.2f}x"),
                         cell("infer+overlay_images_per_s"), cell("infer+overlay_vs_model", "{:.2f}x"),
                         cell("test_images_per_s"), cell("test_vs_model", "{:.2f}x")])  # fmt: skip
        lines.append(markdown_table(header, rows))
        lines.append("")
        words = {
            "pytorch_vs_ort_fp32": "PyTorch (optimize_for_inference) / ONNX Runtime fp32",
            "fast_vs_ort_fp32": "`--fast` on the checkpoint / ONNX Runtime fp32",
            "int8_vs_fp32_ort": "ONNX Runtime int8 / fp32 (logits files)",
            "int8_labels_vs_fp32_labels_ort": "ONNX Runtime int8 / fp32 (labels files)",
            "int8_vs_fp32_openvino": "OpenVINO int8 / fp32",
            "one_vs_two_threads_ort_int8": "ONNX Runtime int8, 1 thread / 2 threads",
        }
        for key, value in s.get("latency_ratios", {}).items():
            lines.append(f"- {words[key]} latency (model only): {value:.2f}x")
        if "argmax_fusion" in s:
            f = s["argmax_fusion"]
            lines.append(f"Argmax fusion (official weights, 8 VOC photos): pixel agreement {f['pixel_agreement']:.2%}, "
                         f"mIoU {f['miou_fused']:.4f} vs {f['miou_official']:.4f} official semantics.")  # fmt: skip
        if "batch" in s:
            by = {(b["threads"], b["batch"]): b["images_per_s"] for b in s["batch"]}
            batches = sorted({b for _, b in by})
            lines += ["", "ONNX Runtime fp32, model only, images/s by batch and threads:", ""]
            rows = [[f"{t} thread(s)", *(f"{by[(t, b)]:.1f}" for b in batches)] for t in sorted({t for t, _ in by})]
            lines += [markdown_table(["", *(f"batch {b}" for b in batches)], rows), ""]
        for mem in s.get("memory", []):
            peak = f"{mem['peak_rss_mb']:.0f} MB" if mem["peak_rss_mb"] else f"failed ({mem['error']})"
            lines.append(f"Peak RSS of segkit infer, {mem['case']}: {peak}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    markdown = to_markdown(result)
    print(markdown)
    write_outputs(result, markdown, args.json, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
