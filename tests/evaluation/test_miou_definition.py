"""One mIoU definition everywhere (issue 21): the mean IoU over the classes in the ground truth.

A stray predicted pixel of a class absent from the ground truth (1 "cow" pixel of 2 million) must not cost
points: ``segkit test``'s table and JSON, ``segkit quantize``'s line, ``segkit tradeoff`` and the int8 benchmark
all report the same number, name the definition, keep the other one (classes in the ground truth or the
prediction) beside it, and flag the stray class.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from segkit.data.classes import VOC_CLASSES
from segkit.evaluation.metrics import (
    MIOU_DEFINITION,
    MIOU_GT_OR_PRED_DEFINITION,
    format_metrics_table,
    metrics_from_confusion,
    stray_classes,
)
from segkit.evaluation.report import format_report_json, metrics_to_json

COW, DOG, CAT = VOC_CLASSES.index("cow"), VOC_CLASSES.index("dog"), VOC_CLASSES.index("cat")
MNV2 = {"backbone": "mobilenet_v2", "width_mult": 1.0, "output_stride": 16, "aspp": False, "decoder": "none",
        "num_classes": 21}  # fmt: skip
PROTOCOL = {"scales": [1.0], "flip": False, "dataset": "voc", "split": "val"}


def stray_confusion() -> np.ndarray:
    """2 million labelled pixels: background and cat in the ground truth; 22 pixels predicted as cow and
    5000 as dog, neither in the ground truth (cow: stray, under 0.01%; dog: 0.25%, not stray)."""
    cm = np.zeros((21, 21), np.int64)
    cm[0, 0] = 1_800_000
    cm[CAT, CAT] = 180_000
    cm[CAT, 0] = 14_978
    cm[0, COW] = 22
    cm[0, DOG] = 5_000
    assert cm.sum() == 2_000_000
    return cm


def expected() -> tuple[float, float, np.ndarray]:
    cm = stray_confusion()
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    iou = tp / np.maximum(union, 1)
    gt = cm.sum(1) > 0
    any_ = (cm.sum(1) + cm.sum(0)) > 0
    return float(iou[gt].mean()), float(iou[any_].mean()), iou


def test_both_definitions_and_the_stray_class():
    m = metrics_from_confusion(stray_confusion())
    in_gt, gt_or_pred, iou = expected()
    assert m.miou == pytest.approx(in_gt)  # over background and cat
    assert m.miou_gt_or_pred == pytest.approx(gt_or_pred)  # cow and dog add an IoU of 0 each
    assert m.miou - m.miou_gt_or_pred == pytest.approx(in_gt / 2)  # 2 of 4 classes score 0
    assert m.per_class_iou[COW] == 0.0 and m.per_class_iou[DOG] == 0.0 and np.isnan(m.per_class_iou[1])
    assert m.gt_classes.tolist() == [0, CAT] and m.pred_only_classes.tolist() == sorted([COW, DOG])
    assert stray_classes(m) == [(COW, 22)]  # dog is predicted on 0.25% of the pixels: not a handful
    assert stray_classes(m, max_share=0.01) == [(COW, 22), (DOG, 5000)]


def test_table_header_names_the_definition_and_flags_the_stray_class():
    m = metrics_from_confusion(stray_confusion())
    table = format_metrics_table(m, VOC_CLASSES)
    lines = table.splitlines()
    assert lines[0] == f"IoU per class; mIoU = mean over the {MIOU_DEFINITION}"
    in_gt, gt_or_pred, _ = expected()
    miou_line = next(line for line in lines if line.startswith("mIoU "))
    assert f"{100 * in_gt:6.2f}" in miou_line and f"over the 2 of 21 {MIOU_DEFINITION}" in miou_line
    other = next(line for line in lines if line.startswith("mIoU GT|pred"))
    assert f"{100 * gt_or_pred:6.2f}" in other and f"over the 4 of 21 {MIOU_GT_OR_PRED_DEFINITION}" in other
    cow = next(line for line in lines if line.startswith("cow "))
    assert "not in ground truth: 22 px predicted, stray" in cow
    dog = next(line for line in lines if line.startswith("dog "))
    assert "not in ground truth: 5000 px predicted)" in dog and "stray" not in dog
    assert lines[-1].startswith("stray: cow (22 px): predicted on < 0.01% of the pixels")
    clean = format_metrics_table(metrics_from_confusion(np.eye(3, dtype=np.int64)), ["a", "b", "c"])
    assert "stray" not in clean and "not in ground truth" not in clean


def test_json_names_the_definition_and_carries_both_numbers():
    m = metrics_from_confusion(stray_confusion())
    m.num_images = 8
    report = metrics_to_json(m, VOC_CLASSES, PROTOCOL, "voc_mnv2_os16", decoder="none", model=MNV2)
    in_gt, gt_or_pred, _ = expected()
    assert report["miou"] == pytest.approx(in_gt)
    assert report["miou_definition"] == MIOU_DEFINITION == "classes in the ground truth"
    assert report["miou_gt_or_pred"] == pytest.approx(gt_or_pred)
    assert report["stray_classes"] == {"cow": 22}
    assert report["per_class_iou"]["cow"] == 0.0 and report["per_class_iou"]["aeroplane"] is None
    # the older keys stay
    assert {"miou", "pixel_acc", "mean_acc", "per_class_iou", "confusion", "num_images", "protocol"} <= set(report)
    assert json.loads(format_report_json(report)) == report


def _results(folder: Path, reports: dict[str, dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in reports.items():
        (folder / f"{name}.json").write_text(json.dumps(data))
    return folder


def test_tradeoff_uses_the_same_definition(tmp_path):
    from segkit.analysis.tradeoff import CONFIG_NAMES, MIOU_UNKNOWN, load_results, tradeoff_markdown

    m = metrics_from_confusion(stray_confusion())
    new = metrics_to_json(m, VOC_CLASSES, PROTOCOL, "voc_mnv2_os16", decoder="none", model=MNV2, precision="int8",
                          runtime="openvino")  # fmt: skip
    old = {k: v for k, v in new.items() if k not in ("miou_definition", "miou_gt_or_pred", "stray_classes")}
    old.update(miou=m.miou_gt_or_pred, runtime="onnxruntime")  # what segkit test wrote before: GT or prediction
    bare = {"config": "voc_mnv2_os16", "miou": 0.7}  # no definition, no confusion matrix
    found, notes = load_results(_results(tmp_path / "r", {"new": new, "old": old, "bare": bare}))
    by_runtime = {r.runtime: r for r in found}
    in_gt = 100 * m.miou
    assert by_runtime["openvino"].miou == pytest.approx(in_gt)  # the report's miou, as segkit test printed it
    assert by_runtime["onnxruntime"].miou == pytest.approx(in_gt)  # an old report: recomputed from its confusion
    assert by_runtime["openvino"].miou_definition == by_runtime["onnxruntime"].miou_definition == MIOU_DEFINITION
    assert by_runtime["pytorch"].miou == pytest.approx(70.0) and by_runtime["pytorch"].miou_definition == MIOU_UNKNOWN
    assert len(notes) == 1 and "old.json" in notes[0] and "recomputed" in notes[0]
    assert f"{100 * m.miou_gt_or_pred:.2f}" in notes[0] and f"{in_gt:.2f}" in notes[0]
    table = tradeoff_markdown({c: 5e9 for c in CONFIG_NAMES}, found, {})
    assert f"| {in_gt:.2f} |" in table and f"| {100 * m.miou_gt_or_pred:.2f} |" not in table
    assert f"mIoU segkit: mean IoU over the {MIOU_DEFINITION}" in table
    assert "mIoU definition not recorded" in table.splitlines()[-1] and "bare.json" in table.splitlines()[-1]


def test_quantize_line_names_the_definition_and_prints_both():
    from segkit.quantize.check import Int8Report, _miou

    cm = stray_confusion()
    assert _miou(cm) == pytest.approx(metrics_from_confusion(cm).miou)
    report = Int8Report("m.xml", 2_000_000, 8, 0.995, 0.75, 0.747, miou_float_gt_or_pred=0.75,
                        miou_int8_gt_or_pred=0.654, stray_int8=[("cow", 1)])  # fmt: skip
    line = report.line()
    assert f"mIoU ({MIOU_DEFINITION}) float 75.00 | int8 74.70" in line
    assert f"(over the {MIOU_GT_OR_PRED_DEFINITION}: float 75.00 | int8 65.40)" in line
    assert line.endswith("int8 stray: cow (1 px)")


def test_benchmark_uses_the_same_definition():
    from benchmarks.int8_accuracy import miou_gt_or_pred, miou_present

    m = metrics_from_confusion(stray_confusion())
    assert miou_present(stray_confusion()) == pytest.approx(m.miou)
    assert miou_gt_or_pred(stray_confusion()) == pytest.approx(m.miou_gt_or_pred)
