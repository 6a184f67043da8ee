"""Cityscapes through the whole path on a synthetic tree: prepare-data -> verify -> a few training steps ->
evaluation under each protocol (whole image, sliding window, OS8 multi-scale + flip) -> predictions in its colours."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import segkit
from segkit.checkpoint.load import load_eval_model
from segkit.config import load_config
from segkit.data.cityscapes import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE
from segkit.data.command import cityscapes_command, verify_command
from segkit.data.synthetic_trees import generate_synthetic_cityscapes
from segkit.engine import train
from segkit.evaluation.command import evaluate_model, segment_images

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

TINY = ["data.crop_size=48", "data.num_workers=0", "model.width_mult=0.35", "train.iterations=3",
        "train.batch_size=2", "train.log_interval=1", "train.val_interval=1000", "train.ckpt_interval=1000",
        "train.sync_bn=false"]  # fmt: skip


def test_cityscapes_end_to_end(tmp_path):
    root = tmp_path / "cityscapes"
    generate_synthetic_cityscapes(root, num_train=4, num_val=2)
    prepared = cityscapes_command(root, expect_counts="off", progress=False)  # writes *_labelTrainIds.png
    assert prepared.ready and "wrote 6 " in prepared.text
    assert verify_command(str(root), config="cityscapes_mnv2_os16", expect_counts="off", progress=False).ready

    cfg = load_config("cityscapes_mnv2_os16", [f"data.root={root}", *TINY])
    out = train(cfg, work_dir=tmp_path / "run", device="cpu", progress=False)
    assert out["iteration"] == 3
    model, ckpt_cfg = load_eval_model(tmp_path / "run" / "latest.pth", device="cpu")
    assert model.class_names == list(CITYSCAPES_CLASSES)

    protocols = {
        "whole image": [],
        "slide 48/32": ["eval.slide=[48,32]"],
        "scales [0.75, 1, 1.25] + flip": ["model.output_stride=8", "eval.scales=[0.75,1.0,1.25]", "eval.flip=true"],
    }
    for name, overrides in protocols.items():
        proto_cfg = load_config("cityscapes_mnv2_os16", [f"data.root={root}", *TINY, *overrides])
        model = segkit.load_model(tmp_path / "run" / "latest.pth", overrides=overrides, device="cpu")
        report_path, pred_dir = tmp_path / f"{len(name)}.json", tmp_path / f"pred_{len(name)}"
        result = evaluate_model(model, proto_cfg, device="cpu", json_path=report_path, save_pred=pred_dir,
                                progress=False, log=lambda _: None)  # fmt: skip
        report = json.loads(report_path.read_text())
        assert report["protocol"]["name"] == name and report["protocol"]["dataset"] == "cityscapes"
        assert len(report["per_class_iou"]) == 19 and result.metrics.num_images == 2
        png = Image.open(pred_dir / "frankfurt_frankfurt_000000_000019.png")
        assert png.size == (129, 65) and png.mode == "P"
        palette = np.array(png.getpalette()[: 19 * 3], np.uint8).reshape(19, 3)
        np.testing.assert_array_equal(palette, CITYSCAPES_PALETTE)  # predictions drawn in Cityscapes' colours
        assert (pred_dir / "frankfurt_frankfurt_000000_000019_overlay.jpg").is_file()
    assert ckpt_cfg.data.dataset == "cityscapes"
    np.testing.assert_array_equal(np.asarray(model.palette, np.uint8), CITYSCAPES_PALETTE)  # kept by the checkpoint
    image = root / "leftImg8bit" / "val" / "frankfurt" / "frankfurt_000000_000019_leftImg8bit.png"
    done = segment_images(model, ckpt_cfg, [image], tmp_path / "infer", device="cpu", progress=False, log=print)
    assert done.done == 1  # segkit infer: the label map in Cityscapes' colours, and the overlay with its legend
    png = Image.open(tmp_path / "infer" / "frankfurt_000000_000019_leftImg8bit.png")
    np.testing.assert_array_equal(np.array(png.getpalette()[: 19 * 3], np.uint8).reshape(19, 3), CITYSCAPES_PALETTE)
    assert (tmp_path / "infer" / "frankfurt_000000_000019_leftImg8bit_overlay.jpg").is_file()
