"""Segment images with a checkpoint: a palette label map and an overlay with a legend per image.

    segkit infer --checkpoint work_dirs/demo_mnv2_os16/best.pth --input photo.jpg --output out/
    segkit infer --checkpoint ckpt.pth --input photos/ --output out/ --resize-longer 513 --pad-to 513
    segkit infer --checkpoint ckpt.pth --input aerial.png --output out/ --slide 513 341

For every image '<name>.<ext>' (a file, or the images directly inside a folder; read with its EXIF
orientation applied, as viewers show it) it writes
'<name>.png', the label map as a palette PNG in the checkpoint's class colours (VOC colours when the
checkpoint has none; reading it back with PIL gives the class indices), and '<name>_overlay.jpg', the
prediction blended over the image with a legend of the classes present. The prediction protocol
defaults to the checkpoint's 'eval' section; a forward pass over '--max-pixels' is refused with the fix
(use '--slide CROP STRIDE' or '--resize-longer N' for large images).

Unreadable or corrupt images are skipped with a warning naming the file; the others are still
processed, and the exit status is then 1. Exit status 2: a usage or input error (missing checkpoint,
missing input, no images in the folder, an image over the pixel budget).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from segkit.checkpoint.load import load_eval_model
from segkit.cli.common import (
    add_model_source_arguments,
    add_protocol_arguments,
    max_pixels,
    protocol_overrides,
    resolve_device,
    run_main,
)
from segkit.config import Config, parse_override
from segkit.data import DatasetError
from segkit.data.base import read_image
from segkit.data.classes import VOC_CLASSES, VOC_PALETTE
from segkit.evaluation.predict import normalize, predict, resize_label, resized_extent
from segkit.evaluation.viz import save_label_png, save_overlay

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_source_arguments(parser)
    parser.add_argument(
        "--input", required=True, type=Path, help="an image file, or a folder of images (not recursive)"
    )
    parser.add_argument("--output", required=True, type=Path, help="folder for <name>.png and <name>_overlay.jpg")
    parser.add_argument("--config", help="config name or YAML path, only for a bare state dict")
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        action="extend",
        metavar="KEY=VALUE",
        help="config overrides, e.g. --set eval.pad_to=513",
    )
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="cpu, cuda or cuda:N (default: cuda when available)",
    )
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of the class colours in the overlay (0..1)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_protocol_arguments(parser)
    return parser


def list_images(path: Path) -> list[Path]:
    """``path`` itself, or the image files directly inside the folder ``path`` (sorted).

    Raises:
        DatasetError: ``path`` does not exist, or the folder holds no image files.
    """
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DatasetError(f"--input {path} does not exist; pass an image file or a folder of images.")
    images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DatasetError(f"--input folder {path} holds no images (looked for {', '.join(IMAGE_SUFFIXES)}).")
    return images


def output_names(paths: list[Path]) -> list[str]:
    """Output stems: the file stem, made unique (``a.jpg`` and ``a.png`` -> ``a_jpg``, ``a_png``)."""
    stems = [p.stem for p in paths]
    return [f"{p.stem}_{p.suffix.lstrip('.').lower()}" if stems.count(p.stem) > 1 else p.stem for p in paths]


def load_for_infer(args: argparse.Namespace, device: torch.device) -> tuple[Any, Config]:
    """``(model, cfg)``: the model (any callable returning ``{"out": logits}``) and the effective config."""
    overrides = dict(parse_override(item) for item in args.set)
    overrides.update(protocol_overrides(args))
    if args.model is not None or args.runtime is not None:  # an exported file (segkit.runtimes)
        from segkit.export import load_for_tools

        return load_for_tools(
            args.model, args.runtime, checkpoint=args.checkpoint, config=args.config, overrides=overrides
        )
    return load_eval_model(args.checkpoint, config=args.config, overrides=overrides, device=device, fast=args.fast)


def segment(model: Any, image: np.ndarray, cfg: Config, device: torch.device, budget: int | None) -> np.ndarray:
    """The label map [H, W] (uint8) of an RGB image under ``cfg.eval``.

    The label map is predicted at the protocol's base extent (the image, or its ``resize_longer``
    extent) and only then resized to the image, as uint8: no full-size logits or int64 copies.
    """
    proto = cfg.eval
    x = normalize(image, cfg.model.input_mean, cfg.model.input_std)[None].to(device)  # [1, 3, H, W]
    base = resized_extent(image.shape[:2], proto.resize_longer)
    label = predict(
        model,
        x,
        base,
        scales=proto.scales,
        flip=proto.flip,
        resize_longer=proto.resize_longer,
        pad_to=proto.pad_to,
        slide=proto.slide,
        max_pixels=budget,
        antialias=proto.antialias,
    )  # [1, *base]
    del x
    return resize_label(label.to(torch.uint8), image.shape[:2])[0].cpu().numpy()


def run(args: argparse.Namespace) -> int:
    """Segment as ``args`` say; the project's errors propagate (``main`` turns them into one line)."""
    if not 0.0 <= args.alpha <= 1.0:
        print(f"error: --alpha must be in [0, 1], got {args.alpha}.", file=sys.stderr)
        return 2
    device = resolve_device(args.device)
    paths = list_images(args.input)
    model, cfg = load_for_infer(args, device)
    num_classes = cfg.model.num_classes
    class_names = model.class_names or (
        list(VOC_CLASSES) if num_classes == len(VOC_CLASSES) else [f"class {i}" for i in range(num_classes)]
    )
    palette = np.asarray(model.palette if model.palette is not None else VOC_PALETTE[:num_classes], dtype=np.uint8)
    args.output.mkdir(parents=True, exist_ok=True)

    failed: list[tuple[Path, str]] = []
    bar = tqdm(
        list(zip(paths, output_names(paths))), desc="infer", unit="img", disable=args.no_progress, dynamic_ncols=True
    )
    for path, name in bar:
        try:
            image = read_image(path)  # RGB uint8 [H, W, 3]
        except DatasetError as exc:
            reason = f"{type(exc.__cause__).__name__}: {exc.__cause__}" if exc.__cause__ else str(exc)
            failed.append((path, reason))
            tqdm.write(f"warning: skipping {path}: not a readable image ({reason})", file=sys.stderr)
            continue
        label = segment(model, image, cfg, device, max_pixels(args))
        save_label_png(args.output / f"{name}.png", label, palette)
        save_overlay(args.output / f"{name}_overlay.jpg", image, label, palette, class_names, alpha=args.alpha)
    bar.close()
    done = len(paths) - len(failed)
    print(f"Wrote label maps and overlays of {done} image(s) to {args.output}", file=sys.stderr)
    if failed:
        print(
            f"error: {len(failed)} of {len(paths)} images could not be read and were skipped: "
            + ", ".join(str(p) for p, _ in failed),
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    return run_main(run, build_parser().parse_args(argv))
