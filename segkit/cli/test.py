"""Evaluate a checkpoint: per-class IoU table, mIoU, pixel and mean class accuracy.

    segkit test --checkpoint work_dirs/demo_mnv2_os16/best.pth
    segkit test --checkpoint ckpt.pth --data-root data --ms-flip --json val_mf.json
    segkit test --checkpoint ckpt.pth --data-root data --resize-longer 513 --pad-to 513
    segkit test --checkpoint ckpt.pth --data-root cityscapes --slide 769 513

The checkpoint carries its model config, preprocessing and class names; the data set, its root and
split and the eval protocol default to the checkpoint's config (its 'data' and 'eval' sections);
a relative data.root is read from the current folder, and the folder read is printed.
'--dataset coco' without '--split' evaluates val2017 unless the checkpoint's val_split is a COCO split.
With '--set data.skip_bad_samples=true' bad samples are left out (each scored image counts once) and
listed at the end.
Protocols: the whole image at one scale (default); '--ms-flip', the paper's MF: softmax averaged over
scales 0.5..1.75 and their horizontal flips; '--resize-longer'/'--pad-to', a fixed-input deployment
protocol: resize the longer side keeping the aspect ratio, pad bottom/right with the mean pixel, crop
the prediction back and resize it to the mask with nearest neighbour; '--slide CROP STRIDE', overlapping
windows with their logits averaged. A forward pass over '--max-pixels' is refused with the fix.

The '--json' report records the config name, the architecture, the precision (fp32 | bf16 | int8 |
fake-int8) and runtime (pytorch | onnxruntime | openvino | litert) that ran the model, and for an int8
file its quantization (ptq | qat); 'segkit tradeoff' places the result by them.

Exit status: 0 on success, 2 on a usage or input error (the message says what to fix).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from segkit.checkpoint.load import load_eval_model
from segkit.cli.common import (
    add_model_source_arguments,
    add_protocol_arguments,
    max_pixels,
    protocol_overrides,
    resolve_data_root,
    resolve_device,
    run_main,
)
from segkit.config import Config, parse_override
from segkit.data import build_dataset, build_eval_transform, collate_drop_bad
from segkit.evaluation.evaluator import evaluate, protocol_dict
from segkit.evaluation.metrics import format_metrics_table
from segkit.evaluation.report import REPORT_MODEL_FIELDS, format_report_json, metrics_to_json
from segkit.utils.io import atomic_write_text

COCO_DEFAULT_SPLIT = "val2017"


def default_split(cfg: Config) -> str:
    """The split to evaluate without ``--split``: ``data.val_split``, except for COCO when that split has
    no annotation file (a VOC checkpoint's ``val``), then ``val2017``."""
    split = cfg.data.val_split
    if cfg.data.dataset == "coco" and not (Path(cfg.data.root) / "annotations" / f"instances_{split}.json").is_file():
        return COCO_DEFAULT_SPLIT
    return split


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_source_arguments(parser)
    parser.add_argument(
        "--data-root",
        help="data set root (VOC: the folder holding VOCdevkit/VOC2012); default: the checkpoint's data.root",
    )
    parser.add_argument(
        "--dataset",
        choices=["voc", "folder", "coco", "synthetic"],
        help="data set kind; default: the checkpoint's data.dataset",
    )
    parser.add_argument(
        "--split",
        help="split to evaluate; default: the checkpoint's data.val_split (val), "
        f"for COCO {COCO_DEFAULT_SPLIT} when the checkpoint's val_split has no COCO annotations",
    )
    parser.add_argument("--json", type=Path, metavar="OUT.json", help="write the metrics as JSON (atomically)")
    parser.add_argument(
        "--save-pred",
        type=Path,
        metavar="DIR",
        help="write <id>.png (palette label map) and <id>_overlay.jpg (ground truth | prediction)",
    )
    parser.add_argument("--config", help="config name or YAML path, only for a bare state dict")
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        action="extend",
        metavar="KEY=VALUE",
        help="config overrides, e.g. --set data.skip_bad_samples=true",
    )
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="cpu, cuda or cuda:N (default: cuda when available)",
    )
    parser.add_argument("--num-workers", type=int, metavar="N", help="data loading workers; default: data.num_workers")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_protocol_arguments(parser)
    return parser


def cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Config overrides: ``--set`` first, then the dedicated flags (which win)."""
    overrides = dict(parse_override(item) for item in args.set)
    if args.data_root is not None:
        overrides["data.root"] = args.data_root
    if args.dataset is not None:
        overrides["data.dataset"] = args.dataset
    if args.num_workers is not None:
        overrides["data.num_workers"] = args.num_workers
    overrides.update(protocol_overrides(args))
    return overrides


def load_for_eval(args: argparse.Namespace, device: torch.device) -> tuple[Any, Config]:
    """``(model, cfg)``: the model (any callable returning ``{"out": logits}``) and the effective config."""
    if args.model is not None or args.runtime is not None:  # an exported file (segkit.runtimes)
        from segkit.export import load_for_tools

        return load_for_tools(
            args.model, args.runtime, checkpoint=args.checkpoint, config=args.config, overrides=cli_overrides(args)
        )
    return load_eval_model(
        args.checkpoint, config=args.config, overrides=cli_overrides(args), device=device, fast=args.fast
    )


def report_identity(model: Any, cfg: Config) -> dict[str, Any]:
    """What a report records about the model: ``config`` (name), ``model`` (architecture fields), ``precision``,
    ``runtime`` and ``quantization`` (the model's attributes; defaults fp32 / pytorch / None).

    A foreign .tflite file (no segkit metadata, e.g. the official uint8 DeepLab file) is named
    ``tflite_<stem>`` as ``segkit convert`` names its checkpoint, with the architecture read from its graph,
    so ``segkit tradeoff`` puts it beside the converted official weights.
    """
    precision = str(getattr(model, "precision", None) or "fp32")
    meta = getattr(model, "metadata", None)
    quantization = (meta or {}).get("quantization") or getattr(model, "quantization", None)
    if quantization is None and precision == "fake-int8":
        quantization = "qat"
    name, fields = cfg.name, {k: getattr(cfg.model, k) for k in REPORT_MODEL_FIELDS}
    path = getattr(model, "path", None)
    if meta is None and isinstance(path, Path) and path.suffix.lower() == ".tflite":
        name = "tflite_" + re.sub(r"[^A-Za-z0-9_]+", "_", path.stem)
        try:
            from segkit.convert.tflite import infer_architecture, load_tflite

            arch = infer_architecture(load_tflite(path)).model_config()
            fields = {k: getattr(arch, k) for k in REPORT_MODEL_FIELDS}
        except Exception:  # noqa: BLE001 - no tflite package or a graph convert cannot read: keep the defaults
            pass
    return {
        "config": name,
        "model": fields,
        "precision": precision,
        "runtime": str(getattr(model, "runtime", None) or "pytorch"),
        "quantization": quantization,
    }


def run(args: argparse.Namespace) -> int:
    """Evaluate as ``args`` say; the project's errors propagate (``main`` turns them into one line)."""
    device = resolve_device(args.device)
    model, cfg = load_for_eval(args, device)
    data_line = resolve_data_root(cfg)
    split = args.split or default_split(cfg)
    transform = build_eval_transform(cfg.model.input_mean, cfg.model.input_std)
    # "drop": with data.skip_bad_samples a bad sample is left out, not replaced (no image counts twice)
    dataset = build_dataset(cfg.data, split, transform, num_classes=cfg.model.num_classes, skip_mode="drop")
    loader = DataLoader(
        dataset,
        batch_size=1,
        shuffle=False,
        num_workers=cfg.data.num_workers,
        pin_memory=device.type == "cuda",
        collate_fn=collate_drop_bad,
    )
    class_names = list(dataset.class_names)
    ident = report_identity(model, cfg)
    kind = ", ".join(str(ident[k]) for k in ("precision", "runtime", "quantization") if ident[k])
    print(
        f"Evaluating {args.model or args.checkpoint} ({kind}) on {cfg.data.dataset} '{split}' ({len(dataset)} images, "
        f"{dataset.num_classes} classes) protocol {protocol_dict(cfg.eval)} on {device}; {data_line}",
        file=sys.stderr,
    )
    metrics = evaluate(
        model,
        loader,
        dataset.num_classes,
        ignore_index=dataset.ignore_index,
        device=device,
        protocol=cfg.eval,
        class_names=class_names,
        save_pred_dir=args.save_pred,
        palette=dataset.palette,
        progress=not args.no_progress,
        max_pixels=max_pixels(args),
    )
    bad_report = dataset.bad_samples_report(metrics.bad_samples)
    if metrics.num_images == 0:
        print(
            f"{bad_report}\nerror: every sample of {cfg.data.dataset} '{split}' failed to load (listed above); "
            "nothing was evaluated. Fix the data (segkit prepare-data verify lists the problems).",
            file=sys.stderr,
        )
        return 2
    print(format_metrics_table(metrics, class_names))
    if args.json is not None:
        protocol = {**protocol_dict(cfg.eval), "dataset": cfg.data.dataset, "split": split}
        report = metrics_to_json(
            metrics,
            class_names,
            protocol,
            ident["config"],
            decoder=ident["model"]["decoder"],
            model=ident["model"],
            precision=ident["precision"],
            runtime=ident["runtime"],
            quantization=ident["quantization"],
        )
        atomic_write_text(args.json, format_report_json(report))
        print(f"Wrote {args.json}", file=sys.stderr)
    if args.save_pred is not None:
        print(f"Wrote predictions and overlays to {args.save_pred}", file=sys.stderr)
    if bad_report:
        print(
            f"{bad_report}\nScored {metrics.num_images} images; the bad samples above were left out.", file=sys.stderr
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    return run_main(run, build_parser().parse_args(argv))
