"""What an evaluation leaves on disk: the JSON metrics report and pictures of the predictions.

``metrics_to_json`` + ``format_report_json`` give ``segkit test --json``'s file (``model_identity``: what it
records about the model); ``PredictionWriter`` writes ``<id>.png`` (palette label map) and ``<id>_overlay.jpg``
(ground truth | prediction over the image) for ``segkit test --save-pred``, and plugs into
:func:`segkit.evaluation.evaluator.evaluate` as its ``on_batch`` callback.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from segkit.evaluation.metrics import MIOU_DEFINITION, SegMetrics, stray_classes
from segkit.evaluation.predict import denormalize
from segkit.evaluation.viz import class_palette, overlay, save_label_png, side_by_side
from segkit.utils.io import atomic_path

__all__ = [
    "PRECISIONS",
    "REPORT_MODEL_FIELDS",
    "RUNTIMES",
    "PredictionWriter",
    "file_record",
    "format_report_json",
    "metrics_to_json",
    "model_identity",
    "safe_name",
    "save_prediction",
]


# the model config fields a JSON report records (``segkit tradeoff`` places a result by them)
REPORT_MODEL_FIELDS = ("backbone", "width_mult", "output_stride", "aspp", "decoder", "num_classes")
# what ran the model (the ``precision`` / ``runtime`` of a report; a model object may carry both attributes)
PRECISIONS = ("fp32", "bf16", "int8", "fake-int8")
RUNTIMES = ("pytorch", "onnxruntime", "openvino", "litert", "executorch")


def _num(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def metrics_to_json(
    metrics: SegMetrics,
    class_names: Sequence[str],
    protocol: Any,
    config: str | None = None,
    *,
    decoder: str | None = None,
    model: Mapping[str, Any] | None = None,
    precision: str = "fp32",
    runtime: str = "pytorch",
    quantization: str | None = None,
    model_file: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A JSON-ready dict (NaN -> null): model_file (where the model came from, :func:`file_record`), data (``dataset``,
    ``root`` and ``split`` scored), config (the config's name), decoder (``model.decoder``: ``"none"`` or
    ``"deeplabv3plus"``, so ``segkit tradeoff`` never puts a decoder result on a Table 7 row), model (architecture
    fields, how tradeoff places a converted ``tflite_...`` result), precision (``PRECISIONS``), runtime
    (``RUNTIMES``), quantization (``"ptq"`` | ``"qat"`` | None; tradeoff places a result by row, precision and
    runtime), miou (the mean IoU over the classes in the ground truth), miou_definition (what ``miou`` averages
    over: :data:`segkit.evaluation.metrics.MIOU_DEFINITION`), miou_gt_or_pred (the mean over the classes in the
    ground truth or the prediction), stray_classes (``{name: predicted pixels}`` of the classes predicted on a
    handful of pixels and absent from the ground truth: IoU 0, counted only by ``miou_gt_or_pred``), pixel_acc,
    mean_acc, per_class_iou (0 for a class predicted but not in the ground truth; null for one in neither),
    confusion, num_images (``metrics.num_images``, the images scored), protocol.

    Reports written before ``miou_definition`` existed hold the mean over the classes in the ground truth or the
    prediction under ``miou``; ``segkit tradeoff`` recomputes theirs from ``confusion``."""
    k = len(metrics.per_class_iou)
    if len(class_names) != k:
        raise ValueError(f"{len(class_names)} class names for {k} classes.")
    return {
        "model_file": dict(model_file) if model_file is not None else None,
        "data": dict(data) if data is not None else None,
        "config": config,
        "decoder": decoder,
        "model": dict(model) if model is not None else None,  # architecture, so segkit tradeoff can place any result
        "precision": precision,
        "runtime": runtime,
        "quantization": quantization,
        "miou": _num(metrics.miou),
        "miou_definition": MIOU_DEFINITION,
        "miou_gt_or_pred": _num(metrics.miou_gt_or_pred),
        "stray_classes": {class_names[c]: n for c, n in stray_classes(metrics)},
        "pixel_acc": _num(metrics.pixel_acc),
        "mean_acc": _num(metrics.mean_acc),
        "per_class_iou": {name: _num(float(v)) for name, v in zip(class_names, metrics.per_class_iou)},
        "confusion": metrics.confusion.astype(np.int64).tolist(),
        "num_images": int(metrics.num_images),
        "protocol": protocol,
    }


def model_identity(model: Any, cfg: Any) -> dict[str, Any]:
    """What a report records about the model: ``config`` (``cfg.name``), ``model`` (the architecture fields of
    ``cfg.model``, with ``argmax_fusion: true`` for a file exported with ``--argmax-fusion``), ``precision``,
    ``runtime`` and ``quantization`` (the model's attributes or its file's metadata; defaults fp32 / pytorch / None,
    and ``qat`` for a fake-int8 model)."""
    precision = str(getattr(model, "precision", None) or "fp32")
    quantization = (getattr(model, "metadata", None) or {}).get("quantization") or getattr(model, "quantization", None)
    if quantization is None and precision == "fake-int8":
        quantization = "qat"
    arch = {k: getattr(cfg.model, k) for k in REPORT_MODEL_FIELDS}
    if (getattr(model, "metadata", None) or {}).get("argmax_fusion"):  # labels not of the official semantics
        arch["argmax_fusion"] = True
    return {
        "config": cfg.name,
        "model": arch,
        "precision": precision,
        "runtime": str(getattr(model, "runtime", None) or "pytorch"),
        "quantization": quantization,
    }


def file_record(path: str | os.PathLike | None, *, digest: bool = True) -> dict[str, Any] | None:
    """Where a report's model came from: ``path`` (absolute), ``size`` (bytes), ``mtime`` (UTC, ISO 8601) and
    ``sha256`` (None with ``digest`` False); None when ``path`` is None or not a file."""
    if path is None or not Path(path).is_file():
        return None
    path = Path(path).resolve()
    stat = path.stat()
    sha = None
    if digest:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        sha = h.hexdigest()
    mtime = datetime.datetime.fromtimestamp(stat.st_mtime, datetime.timezone.utc).isoformat(timespec="seconds")
    return {"path": str(path), "size": stat.st_size, "mtime": mtime, "sha256": sha}


_NUMBER_LIST = re.compile(r"\[\s*-?\d[\d.eE+-]*(?:\s*,\s*-?\d[\d.eE+-]*)*\s*\]")


def format_report_json(report: Mapping[str, Any]) -> str:
    """JSON text of a metrics report: indented, each list of numbers (a confusion row) on one line."""
    text = json.dumps(report, indent=2, allow_nan=False)

    def one_line(match: re.Match[str]) -> str:  # raw newlines occur only between JSON tokens, never in strings
        body = match.group(0)
        return "[" + ", ".join(v.strip() for v in body[1:-1].split(",")) + "]" if "\n" in body else body

    return _NUMBER_LIST.sub(one_line, text) + "\n"


def safe_name(sample_id: Any) -> str:
    """A file name for a sample id (path separators replaced, so ids like ``a/b`` stay in one folder)."""
    name = str(sample_id).replace(os.sep, "_").replace("/", "_")
    return name if name not in ("", ".", "..") else f"_{name}"


def save_prediction(
    out_dir: str | os.PathLike,
    sample_id: str,
    image: np.ndarray,
    pred: np.ndarray,
    mask: np.ndarray,
    palette: np.ndarray,
    class_names: Sequence[str],
    ignore_index: int = 255,
) -> None:
    """``<id>.png`` (palette label map) and ``<id>_overlay.jpg`` (ground truth | prediction over the image)."""
    out_dir, name = Path(out_dir), safe_name(sample_id)
    save_label_png(out_dir / f"{name}.png", pred, palette)
    panels = [overlay(image, label, palette, class_names, ignore_index=ignore_index) for label in (mask, pred)]
    with atomic_path(out_dir / f"{name}_overlay.jpg") as tmp:
        side_by_side(panels, ("ground truth", "prediction")).save(tmp, format="JPEG", quality=90)


class PredictionWriter:
    """``on_batch`` callback of :func:`segkit.evaluation.evaluator.evaluate` writing :func:`save_prediction` per image.

    Args:
        out_dir: folder for the pictures (created).
        mean: input normalisation mean (0..255), to recover the image (``cfg.model.input_mean``).
        std: input normalisation std (``cfg.model.input_std``).
        palette: [K, 3] class colours (None: :func:`segkit.evaluation.viz.class_palette`'s default).
        class_names: one name per class, for the legends.
        ignore_index: the ground truth's ignore label.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        mean: Sequence[float],
        std: Sequence[float],
        palette: np.ndarray | Sequence[Sequence[int]] | None,
        class_names: Sequence[str],
        ignore_index: int = 255,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.mean, self.std = mean, std
        self.palette = class_palette(len(class_names), palette)
        self.class_names, self.ignore_index = list(class_names), ignore_index

    def __call__(self, images: Tensor, preds: Tensor, masks: Tensor, ids: Sequence[str]) -> None:
        for image, pred, mask, sample_id in zip(images, preds, masks, ids):
            save_prediction(
                self.out_dir,
                sample_id,
                denormalize(image, self.mean, self.std),
                pred.cpu().numpy().astype(np.uint8),
                mask.cpu().numpy().astype(np.uint8),
                self.palette,
                self.class_names,
                self.ignore_index,
            )
