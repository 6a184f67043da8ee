"""benchmarks/runtimes.py --quick runs end to end and writes its JSON and markdown (timing is not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_runtimes_benchmark_quick(tmp_path):
    pytest.importorskip("litert_torch", reason="the deploy extra is not installed")
    pytest.importorskip("openvino", reason="the deploy extra is not installed")
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "runtimes.py"),
            "--quick",
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
    rows = {r["row"] for r in result["models"][0]["rows"]}
    assert {
        "PyTorch eval",
        "optimize_for_inference fp32",
        "ONNX Runtime",
        "OpenVINO",
        "LiteRT (segkit fp32 export)",
    } <= rows
    assert "vs fastest" in (tmp_path / "r.md").read_text()
