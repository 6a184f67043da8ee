"""Training surprises refused or made plain: ``train.warmup_iters`` above ``train.iterations``, the best mIoU
printed as a percentage like every metrics table, and a resume that changes ``train.iterations`` (refused unless
``--reschedule``, then on the new total's poly schedule)."""

from __future__ import annotations

from pathlib import Path

import pytest

import segkit
from segkit.checkpoint.format import CheckpointError, load_checkpoint
from segkit.cli import main as segkit_main
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


def _lrs_of_steps(monkeypatch) -> list[float]:
    """The base LR each training step runs with (recorded before the step), in order."""
    import segkit.engine.loop as loop

    seen: list[float] = []
    original = loop.train_step

    def recording(tr, batches):
        group = tr.optimizer.param_groups[0]
        seen.append(group["lr"] / group.get("lr_mult", 1.0))
        return original(tr, batches)

    monkeypatch.setattr(loop, "train_step", recording)
    return seen


def test_resume_with_other_iterations_is_refused_in_one_line(
    synth_root, tiny_cfg, tiny_overrides, tmp_path, capsys
) -> None:
    train(tiny_cfg(synth_root, iterations=2), work_dir=tmp_path, progress=False)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.suffix in (".pth", ".yaml")}
    with pytest.raises(CheckpointError) as info:
        train(tiny_cfg(synth_root, iterations=4), work_dir=tmp_path, resume=True, progress=False)
    message = str(info.value)
    assert "\n" not in message and "train.iterations=2, the config has 4" in message
    assert "--reschedule" in message and "--set train.iterations=2" in message
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.suffix in (".pth", ".yaml")} == before
    # the command line: exit 2 and that one line, no traceback
    capsys.readouterr()
    argv = ["train", "--config", "demo_mnv2_os16", "--work-dir", str(tmp_path), "--resume", "--no-progress"]
    assert segkit_main([*argv, "--set", *tiny_overrides(synth_root, iterations=4)]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "add --reschedule" in errors[0] and "Traceback" not in err
    # below the iteration reached: refused even with --reschedule
    with pytest.raises(CheckpointError, match="is at iteration 2, above train.iterations=1"):
        train(tiny_cfg(synth_root, iterations=1), work_dir=tmp_path, resume=True, reschedule=True, progress=False)


def test_reschedule_without_resume_is_a_usage_error(tmp_path) -> None:
    from segkit.engine.command import train_command
    from segkit.engine.workdir import WorkDirError

    with pytest.raises(WorkDirError, match="--reschedule .* pass it with --resume"):
        train_command("demo_mnv2_os16", reschedule=True, work_dir=tmp_path / "w")


def test_reschedule_follows_the_new_totals_poly_schedule(synth_root, tiny_cfg, tmp_path, monkeypatch, capsys) -> None:
    from segkit.engine.optim import poly_lr_factor

    cfg = tiny_cfg(synth_root, iterations=2)
    train(cfg, work_dir=tmp_path, progress=False)
    lrs = _lrs_of_steps(monkeypatch)
    longer = tiny_cfg(synth_root, iterations=4)
    result = train(longer, work_dir=tmp_path, resume=True, reschedule=True, progress=False)
    assert result["iteration"] == 4 and load_checkpoint(tmp_path / "latest.pth")["config"]["train"]["iterations"] == 4
    t = longer.train
    # the steps after the resume (iterations 2 and 3, 0-based) run with the new total's poly LR, the first one too
    expected = [t.lr * poly_lr_factor(i, 4, power=t.poly_power) for i in (2, 3)]
    assert lrs == pytest.approx(expected, rel=1e-6) and lrs[0] > 0
    out = capsys.readouterr().out
    assert "Rescheduled: train.iterations 2 -> 4" in out and "decays to 0 at 4" in out
    # and resumed again with the same total: no flag needed
    train(tiny_cfg(synth_root, iterations=4), work_dir=tmp_path, resume=True, progress=False)
