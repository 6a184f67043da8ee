"""Work dirs (lock, no silent overwrite, unwritable), batch 1 with BN, bad validation samples, host syncs."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from segkit.checkpoint.format import load_checkpoint
from segkit.config import ConfigError
from segkit.data import generate_synthetic_voc
from segkit.engine import CheckpointWriteError, WorkDirError, build_training, check_finite, train, train_step
from segkit.engine.runlog import read_jsonl
from segkit.engine.workdir import WorkDirLock
from segkit.utils.distributed import DistInfo

REPO = Path(__file__).resolve().parents[2]


def _cli(args: list[str], cwd: Path = REPO, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "tools" / "train.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )


def _wait_for_train_records(jsonl: Path, count: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if jsonl.exists() and sum(r["kind"] == "train" for r in read_jsonl(jsonl)) >= count:
            return
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.2)
    raise AssertionError(f"no {count} train records in {jsonl} after {timeout}s")


# ----------------------------------------------------------------------------- work dir


@pytest.mark.slow
def test_second_fresh_run_into_a_work_dir_is_refused_unless_overwrite(synth_root, tmp_path, tiny_cfg) -> None:
    cfg = tiny_cfg(synth_root, iterations=2, **{"train.val_interval": 2})
    train(cfg, work_dir=tmp_path, progress=False)
    best = (tmp_path / "best.pth").read_bytes()
    miou = load_checkpoint(tmp_path / "best.pth")["best_miou"]
    with pytest.raises(WorkDirError) as info:
        train(tiny_cfg(synth_root, iterations=1, **{"train.seed": 2}), work_dir=tmp_path, progress=False)
    message = str(info.value)
    assert f"latest.pth at iteration 2, best mIoU {miou:.4f}" in message
    assert "--resume" in message and "--overwrite" in message and "--work-dir" in message
    assert (tmp_path / "best.pth").read_bytes() == best  # nothing of the existing run was touched
    # --resume from a checkpoint of another run into this work dir would overwrite it too
    other = tmp_path.parent / f"{tmp_path.name}_other"
    train(cfg, work_dir=other, progress=False)
    with pytest.raises(WorkDirError, match="resumed from"):
        train(tiny_cfg(synth_root, iterations=2), work_dir=tmp_path, resume=other / "latest.pth", progress=False)
    # the user's choice: --overwrite replaces it, --resume continues it
    train(tiny_cfg(synth_root, iterations=1, **{"train.seed": 2}), work_dir=tmp_path, progress=False, overwrite=True)
    assert load_checkpoint(tmp_path / "latest.pth")["iteration"] == 1
    assert not (tmp_path / "best.pth").exists() or (tmp_path / "best.pth").read_bytes() != best
    resumed = train(tiny_cfg(synth_root, iterations=2), work_dir=tmp_path, resume=True, reschedule=True, progress=False)
    assert resumed["iteration"] == 2


@pytest.mark.slow  # spawns python tools/train.py
def test_cli_refusal_is_one_line_and_repeated_overwrite_runs_succeed(synth_root, tmp_path, tiny_overrides) -> None:
    args = [
        "--config",
        "demo_mnv2_os16",
        "--work-dir",
        str(tmp_path / "w"),
        "--no-progress",
        "--set",
        *tiny_overrides(synth_root, iterations=1),
    ]
    assert _cli(args).returncode == 0
    refused = _cli(args)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    errors = [line for line in refused.stderr.splitlines() if not line.startswith("warning: ")]
    assert len(errors) == 1 and errors[0].startswith("error: work dir"), refused.stderr
    for _ in range(2):  # `make demo` twice in a row: --overwrite
        again = _cli([*args, "--overwrite"])
        assert again.returncode == 0, again.stderr


@pytest.mark.slow  # spawns python tools/train.py
def test_concurrent_run_is_refused_naming_the_holder(synth_root, tmp_path, tiny_overrides) -> None:
    work = tmp_path / "w"
    first = subprocess.Popen(
        [
            sys.executable,
            "tools/train.py",
            "--config",
            "demo_mnv2_os16",
            "--work-dir",
            str(work),
            "--no-progress",
            "--seed",
            "1",
            "--set",
            *tiny_overrides(synth_root, iterations=100000),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for_train_records(work / "metrics.jsonl", 1, first)
        second = _cli(
            [
                "--config",
                "demo_mnv2_os16",
                "--work-dir",
                str(work),
                "--no-progress",
                "--seed",
                "2",
                "--overwrite",
                "--set",
                *tiny_overrides(synth_root, iterations=2),
            ]
        )
        assert second.returncode == 2 and "Traceback" not in second.stderr
        assert f"in use by another run (pid {first.pid}" in second.stderr
        assert "seed: 1" in (work / "config.yaml").read_text()  # the first run's config stays
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    assert first.returncode == 128 + signal.SIGTERM


@pytest.mark.slow  # spawns a process
def test_lock_of_a_killed_run_is_taken_over(tmp_path) -> None:
    code = (
        f"import time; from pathlib import Path; from segkit.engine.workdir import WorkDirLock; "
        f"lock = WorkDirLock(Path({str(tmp_path)!r})); lock.acquire(); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(WorkDirError, match=rf"in use by another run \(pid {holder.pid} on "):
        WorkDirLock(tmp_path).acquire()
    holder.kill()  # SIGKILL: no chance to release
    holder.wait()
    lock = WorkDirLock(tmp_path)
    note = lock.acquire()
    assert "ended without releasing it" in note and f"pid {holder.pid}" in note
    lock.release()
    assert WorkDirLock(tmp_path).acquire() is None  # released normally: nothing to take over


@pytest.mark.slow  # spawns python tools/train.py
def test_unwritable_work_dir_is_refused_before_training(
    synth_root, tmp_path, tiny_cfg, tiny_overrides, monkeypatch
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    proc = _cli(
        [
            "--config",
            "demo_mnv2_os16",
            "--work-dir",
            str(blocker / "w"),
            "--no-progress",
            "--set",
            *tiny_overrides(synth_root, iterations=1),
        ]
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"error: work dir {blocker / 'w'} cannot be written" in proc.stderr
    # a folder without write permission (chmod does not stop root, so the probe write is made to fail)
    import tempfile

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "ro"))

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", denied)
    with pytest.raises(WorkDirError, match=r"cannot be written \(Permission denied: .*ro\)"):
        train(tiny_cfg(synth_root, iterations=1), work_dir=tmp_path / "ro", progress=False)


def test_unwritable_checkpoint_names_the_last_good_one(synth_root, tmp_path, tiny_cfg, monkeypatch) -> None:
    calls = {"n": 0}
    original = torch.save

    def full_after_first(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(28, "No space left on device")
        return original(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_after_first)
    with pytest.raises(CheckpointWriteError) as info:
        train(tiny_cfg(synth_root, iterations=4, **{"train.ckpt_interval": 2}), work_dir=tmp_path, progress=False)
    assert f"could not write {tmp_path / 'best.pth'} at iteration 4 (OSError: [Errno 28]" in str(info.value)
    assert f"the last good checkpoint is {tmp_path / 'latest.pth'} (iteration 2)" in str(info.value)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "latest.pth")["iteration"] == 2


# ----------------------------------------------------------------------------- batch norm, bad samples, logs


def test_batch_size_one_with_training_bn_is_refused_in_one_line(synth_root, tmp_path, tiny_cfg) -> None:
    for extra in ({"train.batch_size": 1}, {"train.batch_size": 1, "train.grad_accum": 4}):
        with pytest.raises(ConfigError, match=r"train.batch_size=1: BatchNorm .* model.norm_eval=true"):
            train(tiny_cfg(synth_root, iterations=1, **extra), work_dir=tmp_path / "a", progress=False)
    assert not (tmp_path / "a").exists()
    # with BN statistics fixed, batch 1 trains
    result = train(
        tiny_cfg(synth_root, iterations=2, **{"train.batch_size": 1, "model.norm_eval": True}),
        work_dir=tmp_path / "b",
        progress=False,
    )
    assert result["iteration"] == 2


@pytest.mark.slow  # spawns python tools/train.py
def test_bn_warning_is_one_line_without_source(synth_root, tmp_path, tiny_overrides) -> None:
    proc = _cli(
        [
            "--config",
            "demo_mnv2_os16",
            "--work-dir",
            str(tmp_path),
            "--no-progress",
            "--set",
            *tiny_overrides(synth_root, iterations=1),
        ]
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    warned = [i for i, line in enumerate(lines) if "BatchNorm is trained with 4 images" in line]
    assert len(warned) == 1 and lines[warned[0]].startswith("warning: "), proc.stderr
    assert not any("warnings.warn" in line or "UserWarning" in line for line in lines), proc.stderr


def test_bad_first_validation_image_is_skipped_in_the_pictures(tmp_path, tiny_cfg) -> None:
    root = tmp_path / "data"
    generate_synthetic_voc(root, num_train=16, num_val=4, image_size=64, seed=0)
    image = root / "VOCdevkit" / "VOC2012" / "JPEGImages" / "val_00000.jpg"
    image.write_bytes(image.read_bytes()[:200])  # truncated JPEG
    cfg = tiny_cfg(
        root,
        iterations=2,
        **{"data.skip_bad_samples": True, "data.train_split": "val", "train.batch_size": 2, "train.val_interval": 1},
    )
    with pytest.warns(UserWarning):
        result = train(cfg, work_dir=tmp_path / "w", progress=False)
    assert result["iteration"] == 2 and (tmp_path / "w" / "best.pth").is_file()


def test_resume_before_any_validation_says_none_yet(synth_root, tmp_path, tiny_cfg, capsys) -> None:
    train(tiny_cfg(synth_root, iterations=1), work_dir=tmp_path, progress=False)
    ckpt = load_checkpoint(tmp_path / "latest.pth")
    torch.save({**ckpt, "best_miou": -1.0}, tmp_path / "latest.pth")
    train(tiny_cfg(synth_root, iterations=2), work_dir=tmp_path, resume=True, reschedule=True, progress=False)
    out = capsys.readouterr().out
    assert "best mIoU so far none yet" in out and "-1.0000" not in out


@pytest.mark.slow  # spawns python tools/train.py
def test_relative_data_root_is_resolved_and_reported(synth_root, tmp_path, tiny_overrides) -> None:
    link = tmp_path / "synthetic"
    link.symlink_to(synth_root)
    proc = _cli(
        [
            "--config",
            "demo_mnv2_os16",
            "--work-dir",
            "w",
            "--no-progress",
            "--set",
            *tiny_overrides(Path("synthetic"), iterations=1),
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"data from {link.resolve()} (data.root 'synthetic' is relative: read from the current folder" in proc.stdout
    saved = load_checkpoint(tmp_path / "w" / "latest.pth")["config"]["data"]["root"]
    assert saved == str(link.resolve())  # another folder's tools find the same data


# ----------------------------------------------------------------------------- host synchronisations


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_train_step_makes_no_host_synchronisation_and_skips_non_finite_steps(
    synth_root, tmp_path, tiny_cfg, monkeypatch, optimizer
) -> None:
    cfg = tiny_cfg(synth_root, **{"train.grad_accum": 2, "train.optimizer": optimizer})
    tr = build_training(cfg, tmp_path, torch.device("cpu"), DistInfo(), log=lambda m: None)

    def batches():
        while True:
            yield {"image": torch.randn(2, 3, 32, 32), "mask": torch.randint(0, 5, (2, 32, 32))}

    stream = batches()
    calls: list[str] = []
    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "numpy", "cpu"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(
            torch.Tensor, name, lambda self, *a, _o=original, _n=name, **k: (calls.append(_n), _o(self, *a, **k))[1]
        )
    for _ in range(3):
        train_step(tr, stream)
    assert calls == [], calls  # nothing in the hot loop waits for the device
    monkeypatch.undo()
    check_finite(tr)  # healthy so far
    # A non-finite loss: the step (and every later one) leaves the weights as they were; check_finite raises.
    before = [p.detach().clone() for p in tr.net.parameters()]
    original_forward = tr.criterion.forward
    tr.criterion.forward = lambda outputs, target: (lambda lp: (lp[0] * float("nan"), lp[1]))(
        original_forward(outputs, target)
    )
    train_step(tr, stream)
    tr.criterion.forward = original_forward
    train_step(tr, stream)
    assert all(torch.equal(a, b) for a, b in zip(before, tr.net.parameters()))
    with pytest.raises(Exception, match="loss is nan at iteration 4"):
        check_finite(tr)
