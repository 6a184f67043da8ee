"""benchmarks/int8_accuracy.py demo runs the user's commands (segkit quantize, segkit test --model) end to end
and reports each int8 file against the float model; the official measurement needs ../shared/data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytest.importorskip("onnxruntime", reason="the deploy extra is not installed")


@pytest.fixture(scope="module")
def float_ckpt(tmp_path_factory, synth_root, tiny_cfg) -> Path:
    """A briefly trained tiny model (ties of an untrained one would make agreement meaningless)."""
    from segkit.cli.train import main as train_main

    work = tmp_path_factory.mktemp("int8_bench")
    cfg = work / "cfg.yaml"
    cfg.write_text(tiny_cfg(synth_root, iterations=30).to_yaml())
    assert train_main(["--config", str(cfg), "--work-dir", str(work / "run"), "--no-progress", "--device", "cpu"]) == 0
    return work / "run" / "latest.pth"


@pytest.mark.slow  # trains 30 steps, then the benchmark script in a subprocess
def test_demo_measurement_reports_float_and_int8(float_ckpt, synth_root, tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "int8_accuracy.py"),
            "demo",
            "--float",
            str(float_ckpt),
            "--data-root",
            str(synth_root),
            "--formats",
            "onnx",
            "--num-calib",
            "8",
            "--work",
            str(tmp_path / "work"),
            "--json",
            str(tmp_path / "r.json"),
            "--markdown",
            str(tmp_path / "r.md"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads((tmp_path / "r.json").read_text())
    rows = {r["model"]: r for r in result["rows"]}
    float_row, int8_row = rows["float (PyTorch)"], rows["PTQ int8, onnx"]
    assert float_row["agreement_float"] == 1.0 and float_row["delta_points"] == 0.0
    assert int8_row["precision"] == "int8" and int8_row["runtime"] == "onnxruntime"
    # the int8 file's mIoU is segkit test's, and the delta is against the float model's
    report = json.loads((tmp_path / "work" / "eval_demo_PTQ_onnx" / "report.json").read_text())
    assert int8_row["miou"] == report["miou"]
    assert abs(int8_row["delta_points"] - 100 * (report["miou"] - float_row["miou"])) < 1e-9
    assert 0.5 < int8_row["agreement_float"] <= 1.0 and int8_row["size_bytes"] > 10_000
    assert "PTQ int8, onnx" in (tmp_path / "r.md").read_text()


def test_official_measurement_needs_the_shared_data(tmp_path, monkeypatch):
    from benchmarks import int8_accuracy

    monkeypatch.setattr(int8_accuracy, "OFFICIAL", tmp_path / "missing.tflite")
    with pytest.raises(SystemExit, match="shared/data"):
        int8_accuracy.main(["official", "--work", str(tmp_path / "w")])
