"""benchmarks/gpu_check.py --dry-run: every stage runs on CPU at tiny sizes and writes its result file.

All marked slow: every run starts processes. The env stage imports every package in a subprocess, the CPU
stages run benchmark scripts (benchmarks/training.py, benchmarks/dataloader.py), the training stages (torchrun,
resume, throughput) start `tools/train.py` processes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks import gpu_check


def _results(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in out.glob("*.json") if "." not in p.stem}


@pytest.mark.slow  # runs benchmarks/training.py and benchmarks/dataloader.py in subprocesses
def test_dry_run_stages_write_results_and_skip_cuda_with_a_reason(tmp_path):
    out = tmp_path / "out"
    rc = gpu_check.main(
        [
            "--dry-run",
            "--out",
            str(out),
            "--data-dir",
            str(tmp_path / "data"),
            "--stage",
            "cuda_tests",
            "training",
            "dataloader",
            "compile",
        ]
    )
    results = _results(out)
    assert set(results) == {"env", "cuda_tests", "training", "dataloader", "compile"}  # env always runs first
    assert rc == 0, results
    env = results["env"]
    assert env["status"] == "ok" and env["torch"] == torch.__version__ and env["missing"] == []
    assert results["cuda_tests"]["status"] == "skipped" and "needs CUDA" in results["cuda_tests"]["reason"]
    assert "test_train_amp.py" in results["cuda_tests"]["would_run"] or "-m cuda" in results["cuda_tests"]["would_run"]
    assert results["compile"]["status"] == "skipped" and results["compile"]["reason"]
    training = results["training"]
    assert training["status"] == "ok"
    assert training["variants"]["fp32"]["rows"]["voc_mnv2_os16"]["images_per_s"] > 0
    assert training["variants"]["bf16"]["status"] == "skipped"
    assert results["dataloader"]["status"] == "ok" and results["dataloader"]["images_per_s_by_workers"]["1"] > 0
    summary = (out / "summary.md").read_text()
    for stage in ("env", "cuda_tests", "training", "dataloader", "compile"):
        assert f"**{stage}**" in summary


@pytest.mark.slow  # the env stage imports every package in a subprocess (~15 s)
def test_missing_package_message_names_the_wheels_fix(tmp_path, monkeypatch):
    monkeypatch.setitem(gpu_check.PACKAGES, "surely_not_installed_pkg", "surely-not-installed-pkg")
    gpu_check.main(["--dry-run", "--out", str(tmp_path), "--stage", "env"])
    env = json.loads((tmp_path / "env.json").read_text())
    assert env["missing"] == ["surely_not_installed_pkg"] and env["status"] == "failed"
    assert "--wheels" in env["message"] and "surely-not-installed-pkg" in env["message"]


@pytest.mark.slow
def test_dry_run_training_stages(tmp_path):
    out = tmp_path / "out"
    rc = gpu_check.main(
        [
            "--dry-run",
            "--out",
            str(out),
            "--data-dir",
            str(tmp_path / "data"),
            "--stage",
            "ddp_syncbn",
            "resume",
            "throughput",
        ]
    )
    results = _results(out)
    assert rc == 0, {k: (v["status"], v.get("reason")) for k, v in results.items()}
    assert results["data"]["status"] == "ok"
    assert results["ddp_syncbn"]["world_size"] == 1 and results["ddp_syncbn"]["sync_bn_layers"] == 0
    resume = results["resume"]
    assert resume["runs"]["stopped"]["rc"] == 128 + 15
    assert resume["max_abs_diff_resumed_vs_uninterrupted"] <= resume["max_abs_diff_two_uninterrupted"]
    assert results["throughput"]["sustained_images_per_s"] > 0 and results["throughput"]["iterations_timed"] >= 4
