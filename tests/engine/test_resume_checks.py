"""Training surprises refused or made plain: ``train.warmup_iters`` above ``train.iterations``, and the best mIoU
printed as a percentage like every metrics table."""

from __future__ import annotations

from pathlib import Path

import pytest

import segkit
from segkit.config import ConfigError
from segkit.engine import train
from segkit.engine.state import format_miou

pytestmark = pytest.mark.usefixtures("one_thread")


def test_warmup_longer_than_the_run_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"train\.warmup_iters: got 50.*train\.iterations \(10\)"):
        segkit.load_config("demo_mnv2_os16", ["train.iterations=10"])
    assert segkit.load_config("demo_mnv2_os16", ["train.iterations=50"]).train.warmup_iters == 50  # equal: fine


def test_best_miou_is_printed_as_a_percentage() -> None:
    assert format_miou(0.1664) == "16.64%"
    assert format_miou(-1.0) == "none yet"


def test_done_line_prints_percent(synth_root, tiny_cfg, tmp_path, capsys) -> None:
    train(tiny_cfg(synth_root, iterations=1, **{"train.val_interval": 1}), work_dir=Path(tmp_path), progress=False)
    done = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Done:")]
    assert len(done) == 1 and "best val mIoU " in done[0] and "%" in done[0], done
