"""Confusion-matrix metrics: hand-computed cases, ignore pixels, absent classes, JSON/table output."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from segkit.evaluation.metrics import ConfusionMatrix, format_metrics_table, metrics_from_confusion
from segkit.evaluation.report import metrics_to_json

T = torch.tensor


def hand_case() -> ConfusionMatrix:
    cm = ConfusionMatrix(3)
    cm.update(T([[0, 1, 1], [1, 0, 2]]), T([[0, 0, 1], [1, 2, 255]]))  # the last pixel is ignored
    return cm


def test_hand_computed_confusion_and_iou():
    m = hand_case().compute()
    assert m.confusion.dtype == np.int64
    assert m.confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]  # rows GT, cols pred
    # IoU = tp / (gt + pred - tp): 1/(2+2-1), 2/(2+3-2), 0/(1+0-0)
    assert np.allclose(m.per_class_iou, [1 / 3, 2 / 3, 0.0])
    assert m.miou == pytest.approx(1 / 3)
    assert m.pixel_acc == pytest.approx(3 / 5)
    assert m.mean_acc == pytest.approx((1 / 2 + 1 + 0) / 3)


def test_ignore_pixels_do_not_count_even_with_any_prediction():
    cm = ConfusionMatrix(2, ignore_index=7)
    cm.update(T([0, 1, 1, 0]), T([0, 1, 7, 7]))
    assert cm.compute().confusion.tolist() == [[1, 0], [0, 1]]


def test_absent_class_is_nan_and_excluded_from_means():
    cm = ConfusionMatrix(4)
    cm.update(T([0, 0, 1, 1]), T([0, 0, 1, 0]))  # classes 2 and 3 never occur
    m = cm.compute()
    assert math.isnan(m.per_class_iou[2]) and math.isnan(m.per_class_iou[3])
    assert np.allclose(m.per_class_iou[:2], [2 / 3, 1 / 2])
    assert m.miou == pytest.approx((2 / 3 + 1 / 2) / 2)  # not divided by 4
    assert m.mean_acc == pytest.approx((2 / 3 + 1) / 2)


def test_false_positive_class_counts_only_in_miou_gt_or_pred():
    cm = ConfusionMatrix(3)
    cm.update(T([0, 2]), T([0, 0]))  # class 2 only predicted
    m = cm.compute()
    assert m.per_class_iou[2] == 0.0 and math.isnan(m.per_class_iou[1])
    assert m.miou == pytest.approx(1 / 2)  # over the classes in the ground truth
    assert m.miou_gt_or_pred == pytest.approx((1 / 2 + 0) / 2)  # the other definition
    assert m.mean_acc == pytest.approx(1 / 2)  # over classes present in the GT only


def test_accumulates_and_resets():
    one = ConfusionMatrix(3)
    one.update(T([0, 1, 2, 2]), T([0, 1, 1, 2]))
    two = ConfusionMatrix(3)
    two.update(T([0, 1]), T([0, 1]))
    two.update(T([[2, 2]]), T([[1, 2]]))
    assert np.array_equal(one.compute().confusion, two.compute().confusion)
    two.reset()
    assert two.compute().confusion.sum() == 0
    empty = ConfusionMatrix(2).compute()
    assert math.isnan(empty.miou) and math.isnan(empty.pixel_acc) and math.isnan(empty.miou_gt_or_pred)


def test_bad_inputs_raise():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match=r"target holds values \[3, 9\] outside 0\.\.2"):
        cm.update(T([0, 0, 0]), T([3, 9, 255]))
    with pytest.raises(ValueError, match=r"pred holds values \[5\]"):
        cm.update(T([5]), T([0]))
    with pytest.raises(ValueError, match="same shape"):
        cm.update(T([0, 1]), T([0]))
    with pytest.raises(ValueError, match="argmax"):
        cm.update(torch.zeros(2), T([0, 1]))


def test_matrix_stays_on_its_device():
    cm = ConfusionMatrix(2, device="cpu")
    cm.update(T([1]), T([1]))
    assert cm.mat.device.type == "cpu" and cm.mat.dtype == torch.int64
    cm.all_reduce()  # no process group: no-op
    assert cm.compute().confusion.tolist() == [[0, 0], [0, 1]]


def _reduce_worker(rank: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    cm = ConfusionMatrix(2)
    cm.update(T([rank]), T([rank]))  # rank 0 sees one class-0 pixel, rank 1 one class-1 pixel
    cm.all_reduce()
    if rank == 0:
        np.save(out, cm.compute().confusion)
    dist.destroy_process_group()


def test_all_reduce_sums_over_processes(tmp_path):
    out = tmp_path / "cm.npy"
    init = f"file://{tmp_path / 'store'}"
    mp.start_processes(_reduce_worker, args=(init, str(out)), nprocs=2, start_method="fork")
    assert np.load(out).tolist() == [[1, 0], [0, 1]]


def test_table_and_json():
    m = hand_case().compute()
    table = format_metrics_table(m, ["background", "cat", "dog"])
    assert "cat" in table and "66.67" in table and "33.33" in table and "60.00" in table
    cm = ConfusionMatrix(3)
    cm.update(T([0, 1]), T([0, 1]))
    sparse = cm.compute()
    assert "(absent)" in format_metrics_table(sparse, ["a", "b", "c"]).splitlines()[5]
    sparse.num_images = 2
    data = metrics_to_json(sparse, ["a", "b", "c"], protocol={"scales": [1.0]}, config="voc_mnv2_os16", decoder="none")
    assert set(data) == {
        "config",
        "decoder",
        "model",
        "precision",
        "runtime",
        "quantization",
        "miou",
        "miou_definition",
        "miou_gt_or_pred",
        "stray_classes",
        "pixel_acc",
        "mean_acc",
        "per_class_iou",
        "confusion",
        "num_images",
        "protocol",
        "model_file",
        "data",
    }
    assert data["model"] is None  # segkit test passes the architecture fields (REPORT_MODEL_FIELDS)
    assert data["model_file"] is None and data["data"] is None  # segkit test passes the file and the data it read
    assert data["config"] == "voc_mnv2_os16" and data["decoder"] == "none"
    assert (data["precision"], data["runtime"], data["quantization"]) == ("fp32", "pytorch", None)  # the defaults
    assert data["per_class_iou"] == {"a": 1.0, "b": 1.0, "c": None}
    assert data["miou_definition"] == "classes in the ground truth" and data["miou"] == data["miou_gt_or_pred"] == 1.0
    assert data["stray_classes"] == {}
    assert data["confusion"] == [[1, 0, 0], [0, 1, 0], [0, 0, 0]] and data["num_images"] == 2
    json.dumps(data, allow_nan=False)  # strictly valid JSON
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        metrics_to_json(sparse, ["a", "b"], "x")


def test_real_voc_sample_matches_reference(shared_data):
    """The official TF model's predictions on 8 real VOC images: same confusion and mIoU as the reference."""
    from segkit.data import VOCSegmentation

    ref = json.loads((shared_data / "reference/summary.json").read_text())["coral_deeplabv3_mnv2_pascal_quant"]
    preds = np.load(shared_data / "reference/coral_deeplabv3_mnv2_pascal_quant_preds.npz")
    ds = VOCSegmentation(shared_data / "voc_sample", "val")
    cm = ConfusionMatrix(21)
    for i in range(len(ds)):
        sample = ds[i]
        cm.update(torch.from_numpy(preds[sample["id"]].astype(np.int64)), sample["mask"])
    m = cm.compute()
    expected = np.load(shared_data / "reference/coral_deeplabv3_mnv2_pascal_quant_confusion.npy")
    assert np.array_equal(m.confusion, expected)
    assert m.miou == pytest.approx(ref["miou_present"], abs=1e-9)  # the reference's definition is segkit's
    assert m.pixel_acc == pytest.approx(ref["pixel_acc"], abs=1e-9)
    for k, v in ref["per_class"].items():
        assert m.per_class_iou[int(k)] == pytest.approx(v, abs=1e-9)
    assert metrics_from_confusion(expected).miou == pytest.approx(ref["miou_present"], abs=1e-9)


def test_confusion_matrix_counts_equal_a_reference_for_every_integer_dtype() -> None:
    """The one-bincount fast path (int32 for narrow inputs) counts what a per-pixel reference counts."""
    gen = torch.Generator().manual_seed(0)
    k = 21
    target = torch.randint(0, k, (2, 37, 41), generator=gen)
    target[:, :5] = 255  # ignored
    pred = torch.randint(0, k, (2, 37, 41), generator=gen)
    pred[:, :3] = 200  # out of range where ignored: not an error
    want = np.zeros((k, k), np.int64)
    for t, p in zip(target.reshape(-1).tolist(), pred.reshape(-1).tolist()):
        if t != 255:
            want[t, p] += 1
    for dtype in (torch.uint8, torch.int32, torch.int64):
        cm = ConfusionMatrix(k, ignore_index=255)
        cm.update(pred.to(dtype), target.to(dtype))
        cm.update(pred[:0].to(dtype), target[:0].to(dtype))  # an empty batch adds nothing
        assert np.array_equal(cm.mat.numpy(), want), dtype
    bad = pred.clone()
    bad[0, 10, 0] = k  # out of range on a scored pixel: the one-line error
    with pytest.raises(ValueError, match="pred holds values \\[21\\] outside 0..20"):
        ConfusionMatrix(k, ignore_index=255).update(bad, target)
