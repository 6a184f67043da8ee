"""ADE20K through the whole path on a synthetic tree: verify -> a few training steps -> evaluation under each
protocol (TF DeepLab's min/max resize to 513, mmseg's shorter side 512, the whole image) -> predictions in ADE20K's
colours; and MLPerf's 31 classes + "other" scored over classes 1..31."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import segkit
from segkit.config import load_config
from segkit.data.ade20k import ADE20K_PALETTE, ADE20K_TOP31_CLASSES
from segkit.data.command import verify_command
from segkit.data.synthetic_trees import generate_synthetic_ade20k
from segkit.engine import train
from segkit.evaluation.command import evaluate_model
from segkit.models import build_model

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

TINY = ["data.crop_size=48", "data.resize_range=[64,64]", "data.num_workers=0", "model.width_mult=0.35",
        "train.iterations=3", "train.batch_size=2", "train.log_interval=1", "train.val_interval=1000",
        "train.ckpt_interval=1000", "train.sync_bn=false"]  # fmt: skip


def _quiet(_: str) -> None:
    pass


def test_ade20k_end_to_end(tmp_path):
    root = tmp_path / "data"
    generate_synthetic_ade20k(root, num_train=4, num_val=2)
    assert verify_command(str(root), config="ade20k_mnv2_os16_plus", expect_counts="off", progress=False).ready
    cfg = load_config("ade20k_mnv2_os16_plus", [f"data.root={root}", *TINY])
    assert train(cfg, work_dir=tmp_path / "run", device="cpu", progress=False)["iteration"] == 3

    protocols = {
        "min/max resize to 513 (TF DeepLab), sides k*16+1 + pad to 513": [],  # the config's own
        "shorter side 512, longer <= 2048 (mmseg)": [
            "eval.resize_range=[512,2048]", "eval.resize_factor=null", "eval.pad_to=null"
        ],
        "whole image": ["eval.resize_range=null", "eval.resize_factor=null", "eval.pad_to=null"],
    }  # fmt: skip
    for i, (name, overrides) in enumerate(protocols.items()):
        proto_cfg = load_config("ade20k_mnv2_os16_plus", [f"data.root={root}", *TINY, *overrides])
        model = segkit.load_model(tmp_path / "run" / "latest.pth", overrides=overrides, device="cpu")
        report_path, pred_dir = tmp_path / f"{i}.json", tmp_path / f"pred{i}"
        evaluate_model(model, proto_cfg, device="cpu", json_path=report_path, save_pred=pred_dir, progress=False,
                       log=_quiet)  # fmt: skip
        report = json.loads(report_path.read_text())
        assert report["protocol"]["name"] == name and len(report["per_class_iou"]) == 150
        assert "miou_mlperf" not in report
        png = Image.open(pred_dir / "ADE_val_00000001.png")
        assert png.size == (101, 75)  # the mask's own size, whatever the protocol resized to
        palette = np.array(png.getpalette()[: 150 * 3], np.uint8).reshape(150, 3)
        np.testing.assert_array_equal(palette, ADE20K_PALETTE)


def test_top31_reports_mlperfs_miou_over_classes_1_to_31(tmp_path):
    root = tmp_path / "data"
    generate_synthetic_ade20k(root, num_train=1, num_val=2)
    overrides = [f"data.root={root}", "data.dataset=ade20k_top31", "model.num_classes=32", "model.width_mult=0.35",
                 "data.num_workers=0", "eval.resize_range=null", "eval.resize_factor=null", "eval.pad_to=null"]  # fmt: skip
    cfg = load_config("ade20k_mnv2_os16_plus", overrides)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    result = evaluate_model(model, cfg, device="cpu", json_path=tmp_path / "r.json", progress=False, log=_quiet)
    report = json.loads((tmp_path / "r.json").read_text())
    iou = result.metrics.per_class_iou
    present = [c for c in result.metrics.gt_classes if 1 <= c <= 31]
    assert 0 in result.metrics.gt_classes and present  # "other" occurs and is left out of MLPerf's mean
    assert report["miou_mlperf"] == pytest.approx(float(np.mean(iou[present])))
    assert report["miou_mlperf_classes"].startswith("1..31")
    assert result.class_names == list(ADE20K_TOP31_CLASSES)
