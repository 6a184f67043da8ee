"""benchmarks/training.py end to end at a tiny size (timing is not asserted; moved from tests/models/test_fuse.py)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_training_benchmark_smoke_with_memory(tmp_path, capsys):
    """benchmarks/training.py end to end at a tiny size, peak memory measured in a fresh process per model."""
    from benchmarks import training as module

    out = tmp_path / "training.json"
    assert (
        module.main(
            [
                "--quick",
                "--size",
                "33",
                "--memory",
                "--models",
                "voc_mnv2_os16",
                "tv_lraspp_mobilenet_v3_large",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    rows = {r["model"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"voc_mnv2_os16", "tv_lraspp_mobilenet_v3_large"}
    for row in rows.values():
        assert row["step_s"] > 0 and row["peak_mem_mb"] is not None and row["peak_mem_mb"] >= 0, row
    assert rows["voc_mnv2_os16"]["ratio_to_first"] == 1.0 and rows["voc_mnv2_os16"]["params"] == 2_113_557
    assert "vs voc_mnv2_os16" in capsys.readouterr().out
