"""benchmarks/inference.py end to end at a tiny size (timing is not asserted; moved from tests/models/test_fuse.py)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_inference_benchmark_smoke(tmp_path, capsys):
    """benchmarks/inference.py --fast end to end at a tiny size (no timing assertions)."""
    from benchmarks import inference as module

    out = tmp_path / "inference.json"
    assert (
        module.main(
            [
                "--size",
                "65",
                "--passes",
                "1",
                "--warmup",
                "0",
                "--throughput-passes",
                "1",
                "--batch",
                "2",
                "--no-memory",
                "--fast",
                "--models",
                "tv_lraspp_mobilenet_v3_large",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    rows = {r["model"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"voc_mnv2_os16", "voc_mnv2_os16 (eval)", "tv_lraspp_mobilenet_v3_large"}
    assert rows["voc_mnv2_os16"]["optimized"] and rows["voc_mnv2_os16"]["ratio_to_segkit_os16"] == 1.0
    assert rows["voc_mnv2_os16"]["params"] == 2_113_557
    assert "vs segkit OS16" in capsys.readouterr().out
