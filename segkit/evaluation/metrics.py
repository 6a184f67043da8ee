"""Segmentation metrics from a confusion matrix accumulated over a data set.

The matrix (rows = ground truth, columns = prediction) is built with ``torch.bincount`` on the
tensors' device, summed across processes with :meth:`ConfusionMatrix.all_reduce`, and turned into
IoU / accuracies with NaN for classes that never occur (excluded from the means).

mIoU, everywhere in segkit (``segkit test``, ``segkit quantize``, ``segkit tradeoff``, training's validation, the
benchmarks), is the mean IoU over the classes present in the ground truth of the evaluated set
(:data:`MIOU_DEFINITION`): what the official DeepLab evaluation over the full VOC val set gives (every class
occurs there) and what the official references use. The other common definition, over the classes in the ground
truth *or* the prediction (:data:`MIOU_GT_OR_PRED_DEFINITION`), is kept beside it as ``miou_gt_or_pred``: on a
subset it lets one stray predicted pixel of a class absent from the ground truth add an IoU of 0 to the mean.
Such classes are listed by :func:`stray_classes`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist

MIOU_DEFINITION = "classes in the ground truth"  # what ``miou`` averages over
MIOU_GT_OR_PRED_DEFINITION = "classes in the ground truth or the prediction"  # what ``miou_gt_or_pred`` averages over
STRAY_MAX_SHARE = 1e-4  # a class predicted on fewer than 0.01% of the labelled pixels and absent from the GT: stray


@dataclass
class SegMetrics:
    """Metrics of one evaluation (fractions in [0, 1]; NaN where undefined).

    ``miou`` is the mean IoU over the classes present in the ground truth (:data:`MIOU_DEFINITION`);
    ``miou_gt_or_pred`` over the classes present in the ground truth or the prediction. ``per_class_iou`` holds 0
    for a class predicted but absent from the ground truth (counted only by ``miou_gt_or_pred``).
    """

    miou: float  # mean IoU over classes present in the ground truth (MIOU_DEFINITION)
    per_class_iou: np.ndarray  # [K], NaN for classes absent from GT and prediction
    pixel_acc: float  # correct / labelled pixels
    mean_acc: float  # mean per-class recall over classes present in GT
    confusion: np.ndarray  # [K, K] int64, rows = GT, cols = prediction
    num_images: int = 0  # images scored (set by segkit.evaluation.evaluator.evaluate; bad samples left out)
    bad_samples: list[tuple[str, str]] = field(default_factory=list)  # (id, reason) skipped by evaluate
    miou_gt_or_pred: float = math.nan  # mean IoU over classes present in the GT or the prediction

    @property
    def gt_classes(self) -> np.ndarray:
        """Indices of the classes present in the ground truth (those ``miou`` averages over)."""
        return np.flatnonzero(self.confusion.sum(axis=1) > 0)

    @property
    def pred_only_classes(self) -> np.ndarray:
        """Indices of the classes predicted but absent from the ground truth (IoU 0, only in ``miou_gt_or_pred``)."""
        return np.flatnonzero((self.confusion.sum(axis=1) == 0) & (self.confusion.sum(axis=0) > 0))


_NARROW = (torch.uint8, torch.int8, torch.int16, torch.int32)  # class indices that fit in int32


class ConfusionMatrix:
    """Accumulates a [K, K] confusion matrix; pixels labelled ``ignore_index`` are skipped.

    Args:
        num_classes: K.
        ignore_index: target value excluded from the counts.
        device: where the matrix lives; None = the device of the first :meth:`update`.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, device: torch.device | str | None = None) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mat: torch.Tensor | None = None
        if device is not None:
            self.mat = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: ``pred`` and ``target`` are integer tensors of the same shape (e.g. [N, H, W]).

        Raises:
            ValueError: shapes differ, or a target (other than ignore) or prediction is outside 0..K-1.
        """
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape.")
        if pred.is_floating_point() or target.is_floating_point():
            raise ValueError("pred and target must be integer class indices (take argmax of the logits first).")
        k = self.num_classes
        if self.mat is None:
            self.mat = torch.zeros(k, k, dtype=torch.int64, device=target.device)
        narrow = all(t.dtype in _NARROW for t in (pred, target)) and k * k < 2**31
        wide = torch.int32 if narrow else torch.int64  # int32: half the memory traffic of int64 (5x faster with it)
        target = target.to(self.mat.device).reshape(-1).to(wide)
        pred = pred.to(self.mat.device).reshape(-1).to(wide)
        if target.numel() == 0:
            return
        ignored = target == self.ignore_index
        t, p = target.masked_fill(ignored, 0), pred.masked_fill(ignored, 0)
        (t_min, t_max), (p_min, p_max) = torch.aminmax(t), torch.aminmax(p)
        if t_min >= 0 and t_max < k and p_min >= 0 and p_max < k:  # all in range: one bincount
            index = t.mul_(k).add_(p).masked_fill_(ignored, k * k)  # ignored pixels go to a spare bin
            self.mat += torch.bincount(index, minlength=k * k + 1)[: k * k].reshape(k, k)
            return
        target, pred = target.long(), pred.long()
        valid = target != self.ignore_index
        bad = valid & ((target < 0) | (target >= k) | (pred < 0) | (pred >= k))
        if bool(bad.any()):
            for name, t in (("target", target), ("pred", pred)):
                wrong = bad & ((t < 0) | (t >= k))
                if bool(wrong.any()):
                    values = torch.unique(t[wrong])[:10].tolist()
                    raise ValueError(
                        f"{name} holds values {values} outside 0..{k - 1} (ignore_index {self.ignore_index}); "
                        "check num_classes and the ignore label of the data."
                    )
        index = torch.where(valid, target * k + pred, k * k)  # ignored pixels go to a spare bin
        self.mat += torch.bincount(index, minlength=k * k + 1)[: k * k].reshape(k, k)

    def reset(self) -> None:
        """Zero the counts."""
        if self.mat is not None:
            self.mat.zero_()

    def all_reduce(self) -> None:
        """Sum the matrices of all processes (no-op without an initialised process group)."""
        if self.mat is None or not (dist.is_available() and dist.is_initialized()):
            return
        dist.all_reduce(self.mat, op=dist.ReduceOp.SUM)

    def compute(self) -> SegMetrics:
        """IoU per class, mIoU, pixel and mean accuracy from the counts so far."""
        k = self.num_classes
        cm = np.zeros((k, k), dtype=np.int64) if self.mat is None else self.mat.cpu().numpy().astype(np.int64)
        return metrics_from_confusion(cm)


def _nanmean(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else math.nan


def metrics_from_confusion(cm: np.ndarray) -> SegMetrics:
    """:class:`SegMetrics` of a [K, K] confusion matrix (rows = GT, cols = prediction)."""
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm).astype(np.float64)
    gt = cm.sum(axis=1).astype(np.float64)
    pred = cm.sum(axis=0).astype(np.float64)
    union = gt + pred - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        recall = np.where(gt > 0, tp / gt, np.nan)
    total = cm.sum()
    return SegMetrics(
        miou=_nanmean(np.where(gt > 0, iou, np.nan)),
        per_class_iou=iou,
        pixel_acc=float(tp.sum() / total) if total else math.nan,
        mean_acc=_nanmean(recall),
        confusion=cm,
        miou_gt_or_pred=_nanmean(iou),
    )


def stray_classes(metrics: SegMetrics, max_share: float = STRAY_MAX_SHARE) -> list[tuple[int, int]]:
    """``[(class index, predicted pixels)]`` of the stray classes: absent from the ground truth and predicted on
    fewer than ``max_share`` of the labelled pixels (IoU 0 from a handful of pixels; they lower only
    ``miou_gt_or_pred``)."""
    total = int(metrics.confusion.sum())
    pred = metrics.confusion.sum(axis=0)
    return [(int(c), int(pred[c])) for c in metrics.pred_only_classes if pred[c] < max_share * total]


def _pct(x: float) -> str:
    return "     -" if math.isnan(x) else f"{100 * x:6.2f}"


def _names(class_names: Sequence[str], k: int) -> list[str]:
    return [class_names[i] if i < len(class_names) else f"class_{i}" for i in range(k)]


def format_stray(metrics: SegMetrics, class_names: Sequence[str]) -> str:
    """``stray: cow (22 px), ...`` for :func:`stray_classes`, '' when there are none."""
    names = _names(class_names, len(metrics.per_class_iou))
    stray = stray_classes(metrics)
    return "stray: " + ", ".join(f"{names[c]} ({n} px)" for c, n in stray) if stray else ""


def format_metrics_table(
    metrics: SegMetrics, class_names: Sequence[str], extra_means: Sequence[tuple[str, float | None, str]] = ()
) -> str:
    """Per-class IoU table and summary lines (percentages), for the terminal or a log file.

    The header names the mIoU definition (:data:`MIOU_DEFINITION`); the mean over the classes in the ground truth
    or the prediction is printed beside it, then ``extra_means`` (``(label, value or None, what it averages)``, e.g.
    MLPerf's mIoU of ADE20K top31); classes predicted without ground truth are marked, stray ones
    (:func:`stray_classes`) flagged on a last line.
    """
    k = len(metrics.per_class_iou)
    names = _names(class_names, k)
    width = max(12, *(len(n) for n in names))
    gt_pixels = metrics.confusion.sum(axis=1)
    pred_pixels = metrics.confusion.sum(axis=0)
    stray = dict(stray_classes(metrics))
    pred_only = set(metrics.pred_only_classes.tolist())
    lines = [
        f"IoU per class; mIoU = mean over the {MIOU_DEFINITION}",
        f"{'class':<{width}}  {'IoU %':>6}  {'GT pixels':>12}",
        "-" * (width + 22),
    ]
    for i, (name, iou, n) in enumerate(zip(names, metrics.per_class_iou, gt_pixels)):
        note = "  (absent)" if math.isnan(iou) else ""
        if i in pred_only:
            note = f"  (not in ground truth: {int(pred_pixels[i])} px predicted{', stray' if i in stray else ''})"
        lines.append(f"{name:<{width}}  {_pct(float(iou))}  {int(n):>12}{note}")
    lines.append("-" * (width + 22))
    n_gt = len(metrics.gt_classes)
    n_any = int(np.sum(~np.isnan(metrics.per_class_iou)))
    lines.append(f"{'mIoU':<{width}}  {_pct(metrics.miou)}  (over the {n_gt} of {k} {MIOU_DEFINITION})")
    lines.append(
        f"{'mIoU GT|pred':<{width}}  {_pct(metrics.miou_gt_or_pred)}  "
        f"(other definition: over the {n_any} of {k} {MIOU_GT_OR_PRED_DEFINITION})"
    )
    for label, value, note in extra_means:
        lines.append(f"{label:<{width}}  {_pct(float('nan') if value is None else value)}  ({note})")
    lines.append(f"{'pixel acc':<{width}}  {_pct(metrics.pixel_acc)}")
    lines.append(f"{'mean acc':<{width}}  {_pct(metrics.mean_acc)}")
    if stray:
        lines.append(
            f"{format_stray(metrics, class_names)}: predicted on < {100 * STRAY_MAX_SHARE:g}% of the pixels, absent "
            f"from the ground truth; IoU 0 counted only by 'mIoU GT|pred'"
        )
    return "\n".join(lines)
