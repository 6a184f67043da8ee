"""What ``segkit test`` and ``segkit infer`` do with a loaded model, as functions (no argument parsing)::

    model, cfg = load_eval_model("best.pth")                      # segkit.checkpoint.load
    result = evaluate_model(model, cfg, json_path="val.json")     # cfg.data's val split: metrics, JSON report
    result = segment_images(model, cfg, list_images(Path("photos")), "out")  # <name>.png, <name>_overlay.jpg

Loading what a command names (a checkpoint, an exported file, a checkpoint in a runtime) happens one layer up:
:func:`segkit.export.source.evaluate_checkpoint` and :func:`segkit.export.source.infer_images` load the model and
call these.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from segkit.config import Config
from segkit.data import (
    DatasetError,
    build_dataset,
    build_eval_transform,
    collate_drop_bad,
    read_image,
    resolve_data_root,
)
from segkit.evaluation.evaluator import evaluate, protocol_dict
from segkit.evaluation.image import label_map
from segkit.evaluation.metrics import SegMetrics
from segkit.evaluation.predict import MAX_PIXELS
from segkit.evaluation.report import PredictionWriter, format_report_json, metrics_to_json, model_identity
from segkit.evaluation.viz import class_palette, legend_names, save_label_png, save_overlay
from segkit.utils.device import resolve_device
from segkit.utils.io import OutputPathError, atomic_write_text, check_output

__all__ = [
    "COCO_DEFAULT_SPLIT",
    "IMAGE_SUFFIXES",
    "EvalResult",
    "InferResult",
    "check_eval_outputs",
    "default_split",
    "evaluate_model",
    "list_images",
    "note",
    "output_names",
    "segment",
    "segment_images",
]

COCO_DEFAULT_SPLIT = "val2017"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm")

Log = Callable[[str], Any]


def note(message: str) -> None:
    """Write ``message`` on stderr, above a progress bar if one is drawn (the commands' default ``log``)."""
    tqdm.write(message, file=sys.stderr)


# -- segkit test --------------------------------------------------------------------------------------------------


def default_split(cfg: Config) -> str:
    """The split to evaluate when none is given: ``data.val_split``, except for COCO when that split has no
    annotation file (a VOC checkpoint's ``val``), then :data:`COCO_DEFAULT_SPLIT` (``val2017``)."""
    split = cfg.data.val_split
    if cfg.data.dataset == "coco" and not (Path(cfg.data.root) / "annotations" / f"instances_{split}.json").is_file():
        return COCO_DEFAULT_SPLIT
    return split


@dataclass
class EvalResult:
    """What :func:`evaluate_model` found.

    Attributes:
        metrics: the split's metrics; ``metrics.num_images`` 0 when every sample failed to load (nothing scored).
        class_names: the data set's class names (the rows of ``metrics``).
        dataset: ``data.dataset`` evaluated.
        split: the split evaluated.
        report: the JSON report (:func:`segkit.evaluation.report.metrics_to_json`); None when nothing was scored.
        bad_samples_report: the data set's list of the samples left out ('' when none).
    """

    metrics: SegMetrics
    class_names: list[str]
    dataset: str
    split: str
    report: dict[str, Any] | None = None
    bad_samples_report: str = ""


def check_eval_outputs(
    json_path: str | os.PathLike | None,
    save_pred: str | os.PathLike | None,
    inputs: Mapping[str, Any] | None = None,
) -> None:
    """``segkit test``'s outputs, before the evaluation: ``--json`` a writable file and ``--save-pred`` a writable
    folder, neither of them one of ``inputs`` (:func:`segkit.utils.io.check_output`) nor the other one.

    Raises:
        OutputPathError: with the fix.
    """
    if json_path is not None:
        check_output(json_path, inputs=inputs, flag="--json")
    if save_pred is not None:
        check_output(save_pred, inputs=inputs, kind="folder", flag="--save-pred")
        if json_path is not None and Path(os.path.abspath(json_path)) == Path(os.path.abspath(save_pred)):
            raise OutputPathError(f"--json {json_path} is also --save-pred's folder; name a file outside it.")


def _dataset_inputs(dataset: Any) -> dict[str, Any]:
    """The folders a data set reads its samples from (images, masks, a mask cache), by what they are."""
    masks = [getattr(dataset, attr, None) for attr in ("mask_dir", "cache_dir")]
    return {
        "data set's image folder": getattr(dataset, "image_dir", None),
        "data set's mask folder": [m for m in masks if m is not None],
    }


def evaluate_model(
    model: Any,
    cfg: Config,
    *,
    split: str | None = None,
    device: str | torch.device | None = None,
    identity: Mapping[str, Any] | None = None,
    json_path: str | os.PathLike | None = None,
    save_pred: str | os.PathLike | None = None,
    progress: bool = True,
    max_pixels: int | None = MAX_PIXELS,
    name: str | None = None,
    log: Log = note,
) -> EvalResult:
    """Evaluate ``model`` on ``split`` of ``cfg.data`` under the protocol ``cfg.eval``: ``segkit test``'s work.

    A relative ``data.root`` is made absolute (read from the current folder); with ``data.skip_bad_samples`` a bad
    sample is left out, not replaced (each scored image counts once), and listed in ``bad_samples_report``. A line
    saying what is evaluated goes to ``log`` first.

    Args:
        model: a segkit model or a runtime's runner (any callable returning ``{"out": logits}``), on ``device``.
        cfg: its effective config (data set, preprocessing, protocol).
        split: default :func:`default_split`.
        device: where inputs go (default: CUDA when available).
        identity: what the report records about the model (default :func:`segkit.evaluation.report.model_identity`).
        json_path: write the JSON report there (atomically), when an image was scored.
        save_pred: write ``<id>.png`` and ``<id>_overlay.jpg`` (ground truth | prediction) per image into this folder.
        progress: show a progress bar.
        max_pixels: pixel budget of one forward pass (None: no limit).
        name: what the log line calls the model (e.g. its file).
        log: where the line goes (default: stderr).
    """
    device = resolve_device(device)
    data_line = resolve_data_root(cfg)
    split = split or default_split(cfg)
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
    check_eval_outputs(json_path, save_pred, _dataset_inputs(dataset))  # never into the data set, before the work
    names = list(dataset.class_names)
    ident = dict(identity) if identity is not None else model_identity(model, cfg)
    kind = ", ".join(str(ident[k]) for k in ("precision", "runtime", "quantization") if ident[k])
    log(
        f"Evaluating {name or type(model).__name__} ({kind}) on {cfg.data.dataset} '{split}' ({len(dataset)} images, "
        f"{dataset.num_classes} classes) protocol {protocol_dict(cfg.eval)} on {device}; {data_line}"
    )
    writer = None
    if save_pred is not None:
        mean, std = cfg.model.input_mean, cfg.model.input_std
        writer = PredictionWriter(save_pred, mean, std, dataset.palette, names, dataset.ignore_index)
    metrics = evaluate(
        model,
        loader,
        dataset.num_classes,
        ignore_index=dataset.ignore_index,
        device=device,
        protocol=cfg.eval,
        progress=progress,
        on_batch=writer,
        max_pixels=max_pixels,
    )
    result = EvalResult(
        metrics, names, cfg.data.dataset, split, bad_samples_report=dataset.bad_samples_report(metrics.bad_samples)
    )
    if metrics.num_images == 0:
        return result
    result.report = metrics_to_json(
        metrics,
        names,
        {**protocol_dict(cfg.eval), "dataset": cfg.data.dataset, "split": split},
        ident["config"],
        decoder=ident["model"]["decoder"],
        model=ident["model"],
        precision=ident["precision"],
        runtime=ident["runtime"],
        quantization=ident["quantization"],
    )
    if json_path is not None:
        atomic_write_text(json_path, format_report_json(result.report))
    return result


# -- segkit infer -------------------------------------------------------------------------------------------------


def list_images(path: str | os.PathLike) -> list[Path]:
    """``path`` itself, or the image files directly inside the folder ``path`` (sorted).

    Raises:
        DatasetError: ``path`` does not exist, or the folder holds no image files.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DatasetError(f"--input {path} does not exist; pass an image file or a folder of images.")
    images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DatasetError(f"--input folder {path} holds no images (looked for {', '.join(IMAGE_SUFFIXES)}).")
    return images


def output_names(paths: Sequence[Path]) -> list[str]:
    """Output stems: the file stem, made unique (``a.jpg`` and ``a.png`` -> ``a_jpg``, ``a_png``)."""
    stems = [p.stem for p in paths]
    return [f"{p.stem}_{p.suffix.lstrip('.').lower()}" if stems.count(p.stem) > 1 else p.stem for p in paths]


def segment(
    model: Any, image: np.ndarray, cfg: Config, device: str | torch.device, budget: int | None = MAX_PIXELS
) -> np.ndarray:
    """The label map [H, W] of an RGB image under ``cfg.eval``: :func:`segkit.evaluation.image.label_map`."""
    return label_map(model, image, cfg, device, budget)


@dataclass
class InferResult:
    """What :func:`segment_images` did: the images it was given, and ``(path, reason)`` of those it skipped."""

    paths: list[Path]
    output: Path
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def done(self) -> int:
        """How many images were segmented."""
        return len(self.paths) - len(self.failed)


def segment_images(
    model: Any,
    cfg: Config,
    paths: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    alpha: float = 0.5,
    progress: bool = True,
    max_pixels: int | None = MAX_PIXELS,
    log: Log = note,
) -> InferResult:
    """Write ``<name>.png`` (the label map in the class colours) and ``<name>_overlay.jpg`` (the prediction over the
    image, with a legend) into ``output`` for each image: ``segkit infer``'s work.

    Colours and legend names are the model's (``palette``, ``class_names``), else VOC's
    (:func:`segkit.evaluation.viz.class_palette`). An unreadable image is skipped with a warning to ``log`` and
    listed in the result's ``failed``; the others are still processed.

    Raises:
        OutputPathError: ``output`` is one of ``paths``, the folder one of them lies in, a file, or not writable
            (before any image is read).
    """
    device = resolve_device(device)
    paths = [Path(p) for p in paths]
    num_classes = cfg.model.num_classes
    names = legend_names(num_classes, getattr(model, "class_names", None))
    palette = class_palette(num_classes, getattr(model, "palette", None))
    # never over or beside the images read (:func:`segkit.utils.io.check_output`), and writable, before any image
    out = check_output(output, inputs={"--input": paths}, kind="folder", flag="--output", beside_inputs=False)
    out.mkdir(parents=True, exist_ok=True)
    result = InferResult(paths, out)
    bar = tqdm(
        list(zip(paths, output_names(paths))), desc="infer", unit="img", disable=not progress, dynamic_ncols=True
    )
    for path, stem in bar:
        try:
            image = read_image(path)  # RGB uint8 [H, W, 3]
        except DatasetError as exc:
            reason = f"{type(exc.__cause__).__name__}: {exc.__cause__}" if exc.__cause__ else str(exc)
            result.failed.append((path, reason))
            log(f"warning: skipping {path}: not a readable image ({reason})")
            continue
        label = segment(model, image, cfg, device, max_pixels)
        save_label_png(out / f"{stem}.png", label, palette)
        save_overlay(out / f"{stem}_overlay.jpg", image, label, palette, names, alpha=alpha)
    bar.close()
    return result
