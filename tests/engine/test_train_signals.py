"""SIGTERM / SIGINT to the whole process group (DataLoader workers included), to torchrun, or to one rank."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from segkit.checkpoint.format import load_checkpoint
from segkit.engine.runlog import read_jsonl

pytestmark = pytest.mark.slow  # every test spawns processes (tools/train.py, torchrun, python -c)

REPO = Path(__file__).resolve().parents[2]
needs_gloo = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with the gloo backend is not available in this torch build",
)


def _train_iterations(work: Path) -> list[int]:
    jsonl = work / "metrics.jsonl"
    return [r["iter"] for r in read_jsonl(jsonl) if r["kind"] == "train"] if jsonl.exists() else []


def _start(cmd: list[str], work: Path, min_records: int = 3) -> subprocess.Popen:
    """Start a run in its own session (its process group = the run and its DataLoader workers)."""
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    deadline = time.time() + 240
    while len(_train_iterations(work)) < min_records:
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise AssertionError(f"run did not start training: {proc.communicate()[0][-3000:]}")
        time.sleep(0.2)
    return proc


def _train_cmd(work: Path, overrides: list[str], torchrun: bool = False) -> list[str]:
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        if torchrun
        else [sys.executable]
    )
    return [
        *launcher,
        "tools/train.py",
        "--config",
        "demo_mnv2_os16",
        "--work-dir",
        str(work),
        "--device",
        "cpu",
        "--no-progress",
        "--set",
        *overrides,
    ]


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX only")
def test_sigterm_to_the_process_group_with_workers_saves_and_resumes(synth_root, tmp_path, tiny_overrides) -> None:
    work = tmp_path / "w"
    overrides = tiny_overrides(synth_root, iterations=100000, **{"data.num_workers": 2})
    proc = _start(_train_cmd(work, overrides), work)
    assert _children(proc.pid), "the DataLoader workers should be running"
    os.killpg(proc.pid, signal.SIGTERM)  # what schedulers and `docker stop` do: the run and its workers
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out[-3000:]
    assert "Stopped by signal" in out and "--resume" in out and "Traceback" not in out, out[-3000:]
    reached = max(_train_iterations(work))
    assert load_checkpoint(work / "latest.pth")["iteration"] == reached  # saved at the step reached
    resumed = subprocess.run(
        _train_cmd(work, tiny_overrides(synth_root, iterations=reached + 2, **{"data.num_workers": 2}))
        + ["--resume", "--reschedule"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert load_checkpoint(work / "latest.pth")["iteration"] == reached + 2
    assert _train_iterations(work) == list(range(1, reached + 3))


@pytest.mark.parametrize("target", ["torchrun", "one rank"])
@needs_gloo
def test_sigterm_under_torchrun_saves_on_every_path_and_resumes(synth_root, tmp_path, tiny_overrides, target) -> None:
    work = tmp_path / "ddp"
    overrides = tiny_overrides(synth_root, iterations=100000, **{"data.num_workers": 1, "train.batch_size": 2})
    proc = _start(_train_cmd(work, overrides, torchrun=True), work)
    ranks = _children(proc.pid)
    assert len(ranks) == 2
    os.kill(proc.pid if target == "torchrun" else ranks[-1], signal.SIGTERM)
    out, _ = proc.communicate(timeout=180)
    assert "Stopped by signal" in out and "torchrun --nproc_per_node 2 -m segkit.cli train" in out, out[-3000:]
    assert "DataLoader worker" not in out, out[-3000:]
    assert out.count("warning: BatchNorm is trained") == 1  # once for the run, not once per rank
    reached = max(_train_iterations(work))
    assert load_checkpoint(work / "latest.pth")["iteration"] == reached
    if target == "torchrun":
        resumed = subprocess.run(
            _train_cmd(
                work, tiny_overrides(synth_root, iterations=reached + 1, **{"train.batch_size": 2}), torchrun=True
            )
            + ["--resume", "--reschedule"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        assert load_checkpoint(work / "latest.pth")["iteration"] == reached + 1


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_second_signal_exits_at_once_with_one_line(sig) -> None:
    code = (
        "import os, signal, time\n"
        "from segkit.engine.signals import StopFlag\n"
        "stop = StopFlag().install()\n"
        f"os.kill(os.getpid(), {int(sig)}); time.sleep(0.2)\n"
        "assert stop.signum is not None\n"
        f"os.kill(os.getpid(), {int(sig)}); time.sleep(5)\n"
        "print('not reached')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 128 + sig
    assert "not reached" not in proc.stdout and "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip() == f"{signal.Signals(sig).name} again: stopping at once without saving; the last "
        "checkpoint written is kept."
    )
