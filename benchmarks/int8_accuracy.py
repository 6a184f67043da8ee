"""Accuracy cost of int8: segkit's PTQ (and QAT) files against the float model, through the user's commands.

    python benchmarks/int8_accuracy.py official [--formats onnx openvino tflite] [--json OUT] [--markdown OUT]
    python benchmarks/int8_accuracy.py demo --float FLOAT.pth [--qat QAT.pth] [--data-root .cache/synthetic_voc]

``official``: the converted official DeepLab MobileNetV2 VOC model (``../shared/data``) on the 8 real VOC
images of ``voc_sample``, float vs segkit PTQ int8 per format. With only 8 images, calibration is
two-fold: each file is calibrated on 4 images and scored on the other 4, so no image is scored by a file
calibrated on it. Protocol of the official files: longer side resized to 513, padded to 513x513.
Figures: pixel agreement with the float model, mIoU over the classes present in the ground truth (segkit's
one definition, as ``segkit test`` / ``segkit quantize`` and ``reference/summary.json``; the mean over the classes in
the ground truth or the prediction beside it), pixel agreement with the official uint8 file's own predictions (the TFLite
interpreter's, ``reference/``), file size.

``demo``: a float checkpoint trained on the synthetic set (``make demo``) and its QAT fine-tune on the
synthetic val split: float, QAT fake-quant (PyTorch), PTQ int8 and QAT int8 per format, mIoU as ``segkit
test`` reports it (over the classes in the ground truth; ``miou_gt_or_pred`` beside it). Every int8 file is made by ``segkit quantize`` (which prints its own verification)
and scored by ``segkit test --model``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

if not __package__:  # run as a file (python benchmarks/<name>.py): the checkout's benchmarks package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks.benchutils import machine_info, markdown_table, write_outputs  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
OFFICIAL = SHARED / "tflite" / "deeplabv3_mnv2_pascal_quant.tflite"
VOC = SHARED / "voc_sample" / "VOCdevkit" / "VOC2012"
REFERENCE = SHARED / "reference"
EXT = {"onnx": ".onnx", "openvino": ".xml", "tflite": ".tflite"}
RUNTIME = {"onnx": "onnxruntime", "openvino": "openvino", "tflite": "litert"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("official", "demo"))
    p.add_argument("--formats", nargs="+", default=["onnx", "openvino", "tflite"], choices=tuple(EXT))
    p.add_argument("--float", dest="float_ckpt", type=Path, help="demo: the float checkpoint")
    p.add_argument("--qat", type=Path, help="demo: the QAT checkpoint fine-tuned from --float")
    p.add_argument("--data-root", type=Path, default=REPO / ".cache" / "synthetic_voc", help="demo: the data set")
    p.add_argument("--num-calib", type=int, default=200, help="demo: calibration images (train split)")
    p.add_argument("--work", type=Path, help="folder for the files (default: a temporary one)")
    p.add_argument("--reuse", action="store_true", help="keep int8 files already in --work (skip their quantization)")
    p.add_argument("--reports", type=Path, help="official: write segkit test reports (float, each int8 format) here")
    p.add_argument("--json", type=Path)
    p.add_argument("--markdown", type=Path)
    return p.parse_args(argv)


def run_cli(module: str, argv: list[str]) -> tuple[int, str]:
    """Run ``segkit <module> argv`` in this process; returns its exit code and what it printed."""
    import importlib

    main = importlib.import_module(f"segkit.cli.{module}").main
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(argv)
    text = out.getvalue()
    print(f"$ segkit {module} {' '.join(argv)}\n{text.strip()[-1500:]}", flush=True)
    if rc not in (0, 1):  # quantize exits 1 below 99% agreement: still a result to report
        raise SystemExit(f"segkit {module} failed with exit code {rc}")
    return rc, text


def read_preds(folder: Path) -> dict[str, np.ndarray]:
    """The ``--save-pred`` label maps (palette PNGs) by image id."""
    return {p.stem: np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))}


def agreement(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    same = sum(int((a[k] == b[k]).sum()) for k in a)
    return same / sum(a[k].size for k in a)


def miou_present(confusion: np.ndarray) -> float:
    """segkit's mIoU: over the classes present in the ground truth (rows), as ``reference/summary.json``."""
    from segkit.evaluation.metrics import metrics_from_confusion

    return metrics_from_confusion(np.asarray(confusion)).miou


def miou_gt_or_pred(confusion: np.ndarray) -> float:
    """The other definition, printed beside it: over the classes in the ground truth or the prediction."""
    from segkit.evaluation.metrics import metrics_from_confusion

    return metrics_from_confusion(np.asarray(confusion)).miou_gt_or_pred


def file_size(path: Path) -> int:
    return path.stat().st_size + (path.with_suffix(".bin").stat().st_size if path.suffix == ".xml" else 0)


def evaluate(source: list[str], root: Path, split: str, work: Path, name: str, extra: list[str]) -> dict:
    """``segkit test`` of a checkpoint or file: the JSON report plus the predictions by image id."""
    out = work / f"eval_{name}"
    run_cli("test", [*source, "--data-root", str(root), "--split", split, "--no-progress", "--num-workers", "0",
                     "--json", str(out / "report.json"), "--save-pred", str(out / "pred"), *extra])  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    return {"report": report, "preds": read_preds(out / "pred"), "confusion": np.asarray(report["confusion"])}


def fold_root(work: Path) -> tuple[Path, list[list[str]]]:
    """A VOC root over ``voc_sample`` with two halves of its images as splits ``fold0`` / ``fold1``."""
    root = work / "voc_folds"
    voc = root / "VOCdevkit" / "VOC2012"
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    for sub in ("JPEGImages", "SegmentationClass"):
        if not (voc / sub).exists():
            (voc / sub).symlink_to(VOC / sub)
    ids = sorted((VOC / "ImageSets" / "Segmentation" / "val.txt").read_text().split())
    folds = [ids[0::2], ids[1::2]]
    for k, fold in enumerate(folds):
        (voc / "ImageSets" / "Segmentation" / f"fold{k}.txt").write_text("\n".join(fold) + "\n")
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(ids) + "\n")
    return root, folds


def two_fold_report(reports: list[dict]) -> dict:
    """One ``segkit test`` report of both halves (confusions summed, every metric recomputed from it), so
    ``segkit tradeoff`` can place the int8 result of all 8 images."""
    from segkit.evaluation.metrics import metrics_from_confusion
    from segkit.evaluation.report import metrics_to_json

    first = reports[0]
    confusion = sum(np.asarray(r["confusion"], dtype=np.int64) for r in reports)
    metrics = metrics_from_confusion(confusion)
    metrics.num_images = sum(int(r["num_images"]) for r in reports)
    keep = ("decoder", "model", "precision", "runtime", "quantization")
    protocol = {**first["protocol"], "split": "val (two folds: each half scored by the file calibrated on the other)"}
    return metrics_to_json(
        metrics, list(first["per_class_iou"]), protocol, first["config"], **{k: first.get(k) for k in keep}
    )


def official(args: argparse.Namespace, work: Path) -> dict:
    from segkit.convert import convert_tflite

    if not OFFICIAL.is_file():
        raise SystemExit(f"{OFFICIAL} not found: this measurement needs ../shared/data beside the checkout.")
    ckpt = work / "official.pth"
    convert_tflite(OFFICIAL, ckpt)
    root, folds = fold_root(work)
    protocol = ["--resize-longer", "513", "--pad-to", "513"]
    ref_npz = np.load(REFERENCE / "coral_deeplabv3_mnv2_pascal_quant_preds.npz")
    reference = {k: ref_npz[k] for k in ref_npz.files}
    summary = json.loads((REFERENCE / "summary.json").read_text())["coral_deeplabv3_mnv2_pascal_quant"]
    fp = evaluate(["--checkpoint", str(ckpt)], root, "val", work, "float", protocol)
    rows = [
        {
            "model": "official, converted to segkit (PyTorch fp32)",
            "precision": "fp32",
            "runtime": "pytorch",
            "agreement_float": 1.0,
            "miou": miou_present(fp["confusion"]),
            "miou_gt_or_pred": miou_gt_or_pred(fp["confusion"]),
            "agreement_official": agreement(fp["preds"], reference),
            "size_bytes": None,
        },
        {
            "model": "official uint8 file (TFLite interpreter, reference/)",
            "precision": "uint8 (QAT)",
            "runtime": "litert",
            "agreement_float": agreement(reference, fp["preds"]),
            "miou": float(summary["miou_present"]),
            "miou_gt_or_pred": None,  # reference/ has no confusion matrix
            "agreement_official": 1.0,
            "size_bytes": OFFICIAL.stat().st_size,
        },
    ]
    for fmt in args.formats:
        preds: dict[str, np.ndarray] = {}
        confusion = np.zeros_like(fp["confusion"])
        sizes, seconds, reports = [], [], []
        for k in (0, 1):
            out = work / f"official_int8_fold{k}{EXT[fmt]}"
            start = time.perf_counter()
            if not (args.reuse and out.is_file()):
                run_cli("quantize", ["--checkpoint", str(ckpt), "--calib-data", str(root), "--calib-split", f"fold{k}",
                                     "--num-calib", str(len(folds[k])), "--format", fmt, "--out", str(out),
                                     "--input-size", "513", "513", "--no-progress"])  # fmt: skip
                seconds.append(time.perf_counter() - start)
            scored = evaluate(["--model", str(out)], root, f"fold{1 - k}", work, f"{fmt}_fold{k}", [])
            preds.update(scored["preds"])
            confusion += scored["confusion"]
            reports.append(scored["report"])
            sizes.append(file_size(out))
        rows.append(
            {
                "model": f"segkit PTQ int8, {fmt} (calibrated on the other 4 images)",
                "precision": "int8",
                "runtime": RUNTIME[fmt],
                "agreement_float": agreement(preds, fp["preds"]),
                "miou": miou_present(confusion),
                "miou_gt_or_pred": miou_gt_or_pred(confusion),
                "agreement_official": agreement(preds, reference),
                "size_bytes": int(np.mean(sizes)),
                "quantize_seconds": float(np.mean(seconds)) if seconds else None,
            }
        )
        if args.reports:
            _write_report(args.reports / f"official_{fmt}_int8.json", two_fold_report(reports))
    if args.reports:
        _write_report(args.reports / "official_fp32.json", fp["report"])
    return {"what": "official", "images": sum(len(f) for f in folds), "miou_definition": _definition(), "rows": rows}


def _write_report(path: Path, report: dict) -> None:
    from segkit.evaluation.report import format_report_json
    from segkit.utils.io import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, format_report_json(report))


def demo(args: argparse.Namespace, work: Path) -> dict:
    if args.float_ckpt is None or not args.float_ckpt.is_file():
        raise SystemExit("demo needs --float CHECKPOINT (make demo writes work_dirs/demo_mnv2_os16/best.pth).")
    root, split = args.data_root, "val"
    size = str(_image_size(args.float_ckpt))
    fp = evaluate(["--checkpoint", str(args.float_ckpt)], root, split, work, "demo_float", [])
    base = float(fp["report"]["miou"])

    def row(model: str, precision: str, runtime: str, scored: dict, path: Path | None = None) -> dict:
        return {
            "model": model,
            "precision": precision,
            "runtime": runtime,
            "miou": float(scored["report"]["miou"]),
            "miou_gt_or_pred": scored["report"].get("miou_gt_or_pred"),
            "delta_points": 100 * (float(scored["report"]["miou"]) - base),
            "agreement_float": agreement(scored["preds"], fp["preds"]),
            "size_bytes": file_size(path) if path else None,
        }

    rows = [row("float (PyTorch)", "fp32", "pytorch", fp)]
    sources = [("PTQ", args.float_ckpt)]
    if args.qat is not None:
        qat = evaluate(["--checkpoint", str(args.qat)], root, split, work, "demo_qat", [])
        rows.append(row("QAT, fake-quant (PyTorch)", "fake-int8", "pytorch", qat))
        sources.append(("QAT", args.qat))
    for kind, ckpt in sources:
        for fmt in args.formats:
            out = work / f"demo_{kind.lower()}{EXT[fmt]}"
            calib = ["--calib-data", str(root), "--calib-split", "train", "--num-calib", str(args.num_calib)]
            if kind == "QAT" and fmt == "tflite":
                calib = []  # PT2E: the trained observers are the calibration
            if not (args.reuse and out.is_file()):
                run_cli("quantize", ["--checkpoint", str(ckpt), *calib, "--format", fmt, "--out", str(out),
                                     "--input-size", size, size, "--verify", str(root), "--no-progress"])  # fmt: skip
            scored = evaluate(["--model", str(out)], root, split, work, f"demo_{kind}_{fmt}", [])
            rows.append(row(f"{kind} int8, {fmt}{' (recalibrated)' if kind == 'QAT' and calib else ''}",
                            "int8", RUNTIME[fmt], scored, out))  # fmt: skip
    return {"what": "demo", "images": int(fp["report"]["num_images"]), "miou_definition": _definition(), "rows": rows}


def _definition() -> str:
    from segkit.evaluation.metrics import MIOU_DEFINITION

    return MIOU_DEFINITION


def _image_size(ckpt: Path) -> int:
    """The synthetic images' side (the static input of the demo's int8 files)."""
    import segkit

    return int(segkit.load_model(ckpt).segkit_config.data.synthetic_image_size)


def to_markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"int8 accuracy ({result['what']}, {result['images']} images), {m['date']}, {m['cpu']}", ""]
    header = ["model", "precision", "runtime", "mIoU (classes in GT)", "mIoU (GT or pred)", "agreement with float",
              "size (MB)"]  # fmt: skip
    if result["what"] == "official":
        header.insert(5, "agreement with official uint8")
    else:
        header.insert(5, "vs float (points)")
    body = []
    for r in result["rows"]:
        other = r.get("miou_gt_or_pred")
        cells = [r["model"], r["precision"], r["runtime"], f"{100 * r['miou']:.2f}"]
        cells.append(f"{100 * other:.2f}" if other is not None else "-")
        if result["what"] == "official":
            cells.append(f"{100 * r['agreement_official']:.2f}%")
        else:
            cells.append(f"{r['delta_points']:+.2f}")
        cells += [f"{100 * r['agreement_float']:.2f}%", f"{r['size_bytes'] / 1e6:.2f}" if r["size_bytes"] else "-"]
        body.append(cells)
    definition = result.get("miou_definition", "classes in the ground truth")
    note = f"\n\nmIoU: mean IoU over the {definition}; beside it the mean over the classes in the ground truth or the "
    note += "prediction (a stray predicted pixel of a class absent from the ground truth adds an IoU of 0 there)."
    return "\n".join(lines) + "\n" + markdown_table(header, body) + note


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory(prefix="segkit-int8-acc-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        result = official(args, work) if args.what == "official" else demo(args, work)
    result["machine"] = machine_info()
    markdown = to_markdown(result)
    print(markdown)
    write_outputs(result, markdown, args.json, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
