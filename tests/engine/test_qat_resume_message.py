"""Resuming a run with train.qat switched (on <-> off) names train.qat in one line, before anything is built
or written, instead of listing the tensor names that differ between the float and the fake-quant model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from segkit.checkpoint.format import CheckpointError, load_checkpoint
from segkit.cli import main as segkit_main
from segkit.engine import train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def float_run(synth_root, tiny_cfg, tmp_path_factory) -> Path:
    """A work dir of a 1-iteration float run (latest.pth, config.yaml)."""
    work = tmp_path_factory.mktemp("float_run")
    train(tiny_cfg(synth_root, iterations=1), work_dir=work, progress=False)
    return work


def _copy(run: Path, tmp_path: Path) -> Path:
    work = tmp_path / "run"
    shutil.copytree(run, work, ignore=shutil.ignore_patterns("*.lock", ".lock*"))
    return work


def test_float_checkpoint_resumed_with_qat_on_names_train_qat(float_run, synth_root, tiny_cfg, tmp_path) -> None:
    work = _copy(float_run, tmp_path)
    written = (work / "config.yaml").read_bytes()
    # the QAT config of the float run: it fine-tunes the run's weights
    cfg = tiny_cfg(synth_root, iterations=2, **{"train.qat": True, "train.init_weights": str(work / "latest.pth")})
    with pytest.raises(CheckpointError) as info:
        train(cfg, work_dir=work, resume=True, progress=False)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400
    assert "trained with train.qat=false" in message and "the config has train.qat=true" in message
    assert "--set train.qat=false" in message and "new run" in message
    assert "activation_post_process" not in message  # no tensor names
    assert (work / "config.yaml").read_bytes() == written  # refused before the run's config was rewritten


def test_qat_checkpoint_resumed_with_qat_off_through_the_cli(
    float_run, synth_root, tiny_overrides, tmp_path, capsys
) -> None:
    work = _copy(float_run, tmp_path)
    # a QAT run's checkpoint: train.qat on in its config, the observers' buffers beside the float tensors
    ckpt = load_checkpoint(work / "latest.pth")
    ckpt["config"]["train"]["qat"] = True
    ckpt["model"]["activation_post_process_0.scale"] = torch.ones(1)
    torch.save(ckpt, work / "latest.pth")
    args = ["train", "--config", "demo_mnv2_os16", "--work-dir", str(work), "--resume", "--no-progress"]
    rc = segkit_main([*args, "--set", *tiny_overrides(synth_root, iterations=2)])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert rc == 2 and len(errors) == 1
    err = errors[0]
    assert "trained with train.qat=true" in err and "the config has train.qat=false" in err
    assert "--set train.qat=true" in err
