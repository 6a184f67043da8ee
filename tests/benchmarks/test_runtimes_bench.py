"""benchmarks/runtimes.py --quick runs end to end and writes its JSON and markdown, with the int8 rows of
segkit's own PTQ (ONNX Runtime, OpenVINO) beside the fp32 ones (timing is not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # the benchmark script in a subprocess
def test_runtimes_benchmark_quick(tmp_path):
    pytest.importorskip("litert_torch", reason="the deploy extra is not installed")
    pytest.importorskip("openvino", reason="the deploy extra is not installed")
    pytest.importorskip("nncf", reason="the deploy extra is not installed")
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "runtimes.py"),
            "--quick",
            "--int8",
            "onnx,openvino",  # the LiteRT int8 conversion (~40 s) is tested in tests/test_quantize.py
            "--runtimes",
            "onnxruntime,openvino,litert",  # ExecuTorch's lowering (1-3 min) is tested in tests/export/test_executorch.py
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
    model = result["models"][0]
    assert model["int8_errors"] == {}
    rows = {r["row"]: r for r in model["rows"]}
    assert {
        "PyTorch eval",
        "optimize_for_inference fp32",
        "ONNX Runtime",
        "OpenVINO",
        "LiteRT (segkit fp32 export)",
        "ONNX Runtime int8",
        "OpenVINO int8",
    } <= set(rows)
    assert "LiteRT int8" not in rows  # --int8 chose the formats
    # the contract with segkit tradeoff: every row says its runtime and precision
    assert rows["ONNX Runtime int8"]["runtime"] == "onnxruntime" and rows["OpenVINO int8"]["runtime"] == "openvino"
    assert rows["LiteRT (segkit fp32 export)"]["runtime"] == "litert" and rows["PyTorch eval"]["runtime"] == "pytorch"
    for name, row in rows.items():
        assert row["precision"] == ("int8" if "int8" in name else "bf16" if "bf16" in name else "fp32"), name
        if row["precision"] == "int8":  # a ratio to the same runtime's fp32 row
            assert row["fp32_row"] in rows and rows[row["fp32_row"]]["runtime"] == row["runtime"]
            assert row["ratio_to_fp32"] > 0 and row["latency_ms"] > 0
        elif row["precision"] == "fp32":
            assert row["ratio_to_fp32"] is None
    goal = model["int8_goal"]
    assert goal["row"] in ("ONNX Runtime int8", "OpenVINO int8") and goal["met"] == (goal["ratio_to_fp32"] <= 0.6)
    assert set(result["int8_units"]) <= {"amx_int8", "avx512_vnni", "avx_vnni"}
    assert "--runtime ONNX Runtime int8" in model["end_to_end"]
    md = (tmp_path / "r.md").read_text()
    assert "vs fastest" in md and "vs fp32" in md and "int8 units:" in md and "Fastest int8:" in md


@pytest.mark.slow  # the benchmark script in a subprocess
def test_runtimes_benchmark_rejects_unknown_int8_format():
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "runtimes.py"), "--int8", "onnx,tensorrt"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0 and "tensorrt" in out.stderr and out.stderr.count("\n") == 1
