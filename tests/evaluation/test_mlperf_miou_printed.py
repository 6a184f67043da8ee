"""``segkit test`` prints MLPerf's mIoU (classes 1..31 of ``ade20k_top31``, the JSON's ``miou_mlperf``) beside the
mIoU in its table, and nothing of the kind for other data sets."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from segkit.cli import main as segkit_main
from segkit.evaluation.command import EvalResult
from segkit.evaluation.metrics import format_metrics_table, metrics_from_confusion

pytestmark = pytest.mark.usefixtures("one_thread")


def test_table_prints_extra_means_after_the_two_definitions():
    metrics = metrics_from_confusion(np.eye(3, dtype=np.int64))
    report = {"miou_mlperf": 0.4321, "miou_mlperf_classes": "1..31 present in the ground truth"}
    result = EvalResult(metrics, ["a", "b", "c"], "ade20k_top31", "validation", report=report)
    lines = format_metrics_table(metrics, ["a", "b", "c"], result.extra_means()).splitlines()
    i = next(n for n, line in enumerate(lines) if line.startswith("mIoU GT|pred"))
    assert lines[i + 1] == ("mIoU MLPerf    43.21  (MLPerf's: over classes 1..31 present in the ground truth)"), lines
    assert EvalResult(metrics, ["a"], "voc", "val", report={"miou": 1.0}).extra_means() == []
    assert not any("MLPerf" in line for line in format_metrics_table(metrics, ["a", "b", "c"]).splitlines())


def test_segkit_test_prints_mlperf_miou_of_top31(tmp_path, capsys):
    from segkit.checkpoint.format import save_checkpoint
    from segkit.config import load_config
    from segkit.data.synthetic_trees import generate_synthetic_ade20k
    from segkit.models import build_model

    root = tmp_path / "data"
    generate_synthetic_ade20k(root, num_train=1, num_val=2)
    overrides = [f"data.root={root}", "data.dataset=ade20k_top31", "model.num_classes=32", "model.width_mult=0.35",
                 "data.num_workers=0", "eval.resize_range=null", "eval.resize_factor=null", "eval.pad_to=null"]  # fmt: skip
    cfg = load_config("ade20k_mnv2_os16_plus", overrides)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "top31.pth", build_model(cfg).eval(), cfg)
    argv = ["test", "--checkpoint", str(tmp_path / "top31.pth"), "--json", str(tmp_path / "r.json"), "--no-progress"]
    assert segkit_main(argv) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "r.json").read_text())
    line = next(line for line in out.splitlines() if line.startswith("mIoU MLPerf"))
    printed = float(re.match(r"mIoU MLPerf\s+([\d.]+)", line).group(1))
    assert printed == pytest.approx(100 * report["miou_mlperf"], abs=0.006)
    assert "1..31" in line
