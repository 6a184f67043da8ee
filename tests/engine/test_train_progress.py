"""Until the first training step ends the bar has no rate to show (a step of the demo config takes ~5-15 s on a
busy 2-core CPU, the data workers' start included): the bar says what it waits for, then shows the run's figures."""

from __future__ import annotations

import pytest

from segkit.engine import train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_bar_names_the_first_step_then_drops_it(synth_root, tmp_path, tiny_cfg, capfd) -> None:
    train(tiny_cfg(synth_root, iterations=2), work_dir=tmp_path / "run", progress=True)
    err = capfd.readouterr().err
    first = "first step: starting the data workers, loading a batch, forward + backward"
    assert f"0/2 [00:00<?, ?it/s, {first}]" in err, err
    assert "2/2 [" in err and not any(first in part for part in err.split("\r") if "2/2 [" in part)
