"""Run an int8 file next to its float model: pixel agreement, mIoU of both where masks exist, file size.

The file runs through :func:`segkit.runtimes.load_exported`, exactly as ``segkit test/infer --model`` runs it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from segkit.evaluation.metrics import (
    MIOU_DEFINITION,
    MIOU_GT_OR_PRED_DEFINITION,
    metrics_from_confusion,
    stray_classes,
)

if TYPE_CHECKING:
    from segkit.export.verify import FusionCost

AGREE_MIN = 0.99  # pixel agreement an int8 file needs with its reference model to be written


def file_size(path: str | os.PathLike) -> int:
    """Bytes on disk (an OpenVINO .xml counts with its .bin)."""
    path = Path(path)
    size = path.stat().st_size
    if path.suffix.lower() == ".xml" and path.with_suffix(".bin").is_file():
        size += path.with_suffix(".bin").stat().st_size
    return size


def _labels(runner: Any, image: Tensor) -> np.ndarray:
    out = runner(image)
    return (out["labels"] if "labels" in out else out["out"].argmax(1))[0].numpy()


@dataclass
class Int8Report:
    """Int8 file vs float model on the same images."""

    path: str
    size_bytes: int
    n_images: int
    agreement: float  # share of (content) pixels with the same label
    miou_float: float | None = None  # mean IoU over the classes in the ground truth (segkit's mIoU)
    miou_int8: float | None = None
    per_image: list[float] = field(default_factory=list)
    reference: str = "fp32"  # what the file was compared with: the float model, or a QAT checkpoint's fake-int8 one
    written: bool = True  # False: the verification failed and the file was not written to ``path``
    miou_float_gt_or_pred: float | None = None  # the other definition: classes in the ground truth or the prediction
    miou_int8_gt_or_pred: float | None = None
    stray_int8: list[tuple[str, int]] = field(default_factory=list)  # (class, predicted px): stray int8 classes
    calibrated_on: str = ""  # "200 real images of 'train' under data" (segkit.quantize.images.choose_images)
    verified_on: str = ""  # "50 real images of 'val' under data (held out: ...)"; empty: f"{n_images} images"
    # an --argmax-fusion file (verified against the fused float labels): the fusion's cost against the official ones
    fusion: FusionCost | None = None

    def passed(self, agree_min: float = AGREE_MIN) -> bool:
        return self.agreement >= agree_min

    def failure(self) -> str:
        """What a failed verification means, on one line."""
        return (
            f"verification failed: the int8 file agrees with the {self.reference} model on "
            f"{100 * self.agreement:.2f}% of the pixels, below {100 * AGREE_MIN:g}%; it was not written to "
            f"{self.path} (a file there before is unchanged). Calibrate on more or more representative images "
            "(--calib-data, --num-calib)."
        )

    def line(self) -> str:
        text = (
            f"{self.path}: {self.size_bytes / 1e6:.2f} MB; int8 vs float{' (both argmax-fused)' if self.fusion else ''} "
            f"on {self.verified_on or f'{self.n_images} images'}: "
            f"pixel agreement {100 * self.agreement:.2f}%"
        )
        if self.miou_float is not None:
            text += f"; mIoU ({MIOU_DEFINITION}) float {100 * self.miou_float:.2f} | int8 {100 * self.miou_int8:.2f}"
            if self.miou_float_gt_or_pred is not None and self.miou_int8_gt_or_pred is not None:
                text += (
                    f" (over the {MIOU_GT_OR_PRED_DEFINITION}: float {100 * self.miou_float_gt_or_pred:.2f} | "
                    f"int8 {100 * self.miou_int8_gt_or_pred:.2f})"
                )
            if self.stray_int8:
                text += "; int8 stray: " + ", ".join(f"{c} ({n} px)" for c, n in self.stray_int8)
        return text


def _miou(cm: np.ndarray) -> float:
    """segkit's mIoU of a confusion matrix: over the classes in the ground truth (:data:`MIOU_DEFINITION`)."""
    return metrics_from_confusion(cm).miou


def verify_int8(
    model: nn.Module,
    path: str | os.PathLike,
    images: Sequence[dict[str, Any]],
    *,
    ignore_index: int = 255,
    progress: bool = False,
) -> Int8Report:
    """Compare ``path`` with the float ``model`` on ``images`` (from :func:`calibration_images`; masks optional).

    Agreement and mIoU count only the resized image content (padding excluded); mIoU is over the classes
    present in the ground truth (as ``segkit test`` reports it; the mean over the classes in the ground truth or
    the prediction beside it), the masks resized to the content with nearest neighbour. ``progress``: a bar.

    A file whose metadata says ``argmax_fusion`` is compared with the fused float labels
    (:func:`segkit.export.wrapper.fused_labels`), and the report's ``fusion`` gives the fusion's cost against the
    official labels of the float model on the same images (pixel agreement; the mIoU of both with masks).
    """
    import torch.nn.functional as F

    from segkit.export.wrapper import fused_labels
    from segkit.runtimes import load_exported

    runner = load_exported(path, threads=torch.get_num_threads())  # what `segkit test --model` runs
    fusion = bool((runner.metadata or {}).get("argmax_fusion", False))
    n = model.segkit_config.model.num_classes
    cm_f, cm_q, cm_o = (np.zeros((n, n), np.int64) for _ in range(3))  # reference, int8, official (fusion only)
    same = total = official_same = 0
    per_image: list[float] = []
    has_masks = all("mask" in item for item in images) and len(images) > 0
    from tqdm import tqdm

    bar = tqdm(images, desc="verifying int8 vs float", unit="img", leave=False, disable=not progress, file=sys.stderr)
    for item in bar:
        h, w = item["extent"]
        with torch.no_grad():
            out = model(item["image"])
            official = (out["out"] if isinstance(out, dict) else out)[0].argmax(0).numpy()[:h, :w]
            ref = fused_labels(model, item["image"])[0].long().numpy()[:h, :w] if fusion else official
        official_same += int((ref == official).sum())
        got = _labels(runner, item["image"])[:h, :w]
        eq = int((ref == got).sum())
        same, total = same + eq, total + ref.size
        per_image.append(eq / ref.size)
        if has_masks:
            mask = F.interpolate(item["mask"][None, None].float(), size=(h, w), mode="nearest")[0, 0].long().numpy()
            valid = mask != ignore_index
            for cm, pred in ((cm_f, ref), (cm_q, got), (cm_o, official)):
                cm += np.bincount(n * mask[valid] + pred[valid], minlength=n * n).reshape(n, n)
    report = Int8Report(str(path), file_size(path), len(images), same / max(total, 1), per_image=per_image)
    if has_masks:
        m_f, m_q = metrics_from_confusion(cm_f), metrics_from_confusion(cm_q)
        report.miou_float, report.miou_int8 = m_f.miou, m_q.miou
        report.miou_float_gt_or_pred, report.miou_int8_gt_or_pred = m_f.miou_gt_or_pred, m_q.miou_gt_or_pred
        names = getattr(model, "class_names", None) or []
        report.stray_int8 = [(names[c] if c < len(names) else f"class {c}", px) for c, px in stray_classes(m_q)]
    if fusion:
        from segkit.export.verify import FusionCost

        miou = (report.miou_float, metrics_from_confusion(cm_o).miou) if has_masks else (None, None)
        report.fusion = FusionCost(official_same / max(total, 1), len(images), "the images above", *miou)
    return report
