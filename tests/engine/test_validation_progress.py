"""Validation during training shows a progress bar (rank 0, removed when done) and logs the time it took."""

from __future__ import annotations

import re

import pytest

from segkit.engine import train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_validation_shows_a_bar_and_logs_its_time(synth_root, tiny_cfg, tmp_path, capsys) -> None:
    cfg = tiny_cfg(synth_root, iterations=1, **{"train.val_interval": 1})
    train(cfg, work_dir=tmp_path / "bar", progress=True)
    captured = capsys.readouterr()
    assert re.search(r"validation:\s+\d+%\|.*\| [0-4]/4 ", captured.err), captured.err[-2000:]  # 4 val images
    assert re.search(r"Validation at iteration 1 \(4 images in \d+\.\d s\):\n", captured.out), captured.out
