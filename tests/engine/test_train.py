"""Training loop: loss goes down, exact resume, atomic checkpoints, signals, NaN, init weights, mismatches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torchvision

import segkit
from segkit.checkpoint.format import CheckpointError, load_checkpoint
from segkit.data import generate_synthetic_voc
from segkit.data.samplers import TrainSampler
from segkit.engine import TrainingDiverged, train
from segkit.engine.runlog import read_jsonl
from segkit.engine.setup import load_initial_weights

REPO = Path(__file__).resolve().parents[2]


def test_sampler_resumes_the_same_stream() -> None:
    full = TrainSampler(10, seed=3)
    it = iter(full)
    stream = [next(it) for _ in range(25)]
    resumed = iter(TrainSampler(10, seed=3, start=13))
    assert [next(resumed) for _ in range(12)] == stream[13:]
    assert sorted(i for i, _ in stream[:10]) == list(range(10))  # each epoch is a permutation
    shards = [iter(TrainSampler(10, seed=3, rank=r, world_size=2)) for r in range(2)]
    first_epoch = [next(s)[0] for s in shards for _ in range(5)]
    assert sorted(first_epoch) == list(range(10))


@pytest.mark.slow  # 12 training steps
def test_few_iterations_reduce_the_loss(tmp_path, tiny_cfg) -> None:
    # A 4-image set, batch 4, no scaling/flip/cropping: the same batch every step, so the loss must fall clearly.
    root = tmp_path / "four"
    generate_synthetic_voc(root, num_train=4, num_val=2, image_size=64, seed=1)
    cfg = tiny_cfg(
        root,
        iterations=12,
        **{
            "data.synthetic_num_train": 4,
            "data.synthetic_num_val": 2,
            "data.crop_size": 64,
            "data.scale_min": 1.0,
            "data.scale_max": 1.0,
            "data.hflip": False,
            "train.lr": 0.05,
        },
    )
    result = train(cfg, work_dir=tmp_path / "run", progress=False)
    losses = [r["loss"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "train"]
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3, losses
    assert result["iteration"] == 12
    run = tmp_path / "run"
    for name in ("config.yaml", "latest.pth", "best.pth", "metrics.jsonl", "curves.png"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert segkit.load_config(run / "config.yaml") == cfg  # the resolved config is saved with the run
    ckpt = load_checkpoint(run / "latest.pth")
    assert ckpt["iteration"] == 12 and ckpt["class_names"][0] == "background"
    assert set(ckpt) >= {"model", "optimizer", "scheduler", "scaler", "rng", "loader", "best_miou", "config"}


@pytest.mark.slow  # 6 training steps, twice
def test_resume_gives_identical_weights(synth_root, tmp_path, tiny_cfg) -> None:
    cfg = tiny_cfg(synth_root, iterations=6, **{"model.dropout": 0.1})  # dropout: the torch RNG matters too
    train(cfg, work_dir=tmp_path / "full", progress=False)
    killed = tmp_path / "killed"
    _run_until(cfg, killed, stop_at=3)  # Ctrl-C after iteration 3 ...
    assert load_checkpoint(killed / "latest.pth")["iteration"] == 3
    train(cfg, work_dir=killed, resume=True, progress=False)  # ... and --resume for the other 3
    a = load_checkpoint(tmp_path / "full" / "latest.pth")["model"]
    b = load_checkpoint(killed / "latest.pth")["model"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]


def _run_until(cfg: segkit.Config, work_dir: Path, stop_at: int) -> None:
    """Train and deliver SIGINT to ourselves right after iteration ``stop_at`` (as a user pressing Ctrl-C)."""
    import segkit.engine.loop as engine

    original = engine.train_step

    def step_then_signal(tr, batches):
        values = original(tr, batches)
        if tr.iteration == stop_at:
            os.kill(os.getpid(), signal.SIGINT)
        return values

    engine.train_step = step_then_signal
    try:
        result = train(cfg, work_dir=work_dir, progress=False)
    finally:
        engine.train_step = original
    assert result["stopped_by_signal"] == signal.SIGINT and result["iteration"] == stop_at


def test_crash_during_checkpoint_save_keeps_previous(synth_root, tmp_path, monkeypatch, tiny_cfg) -> None:
    cfg = tiny_cfg(synth_root, iterations=2)
    train(cfg, work_dir=tmp_path, progress=False)
    before = (tmp_path / "latest.pth").read_bytes()

    def crash(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="simulated"):
        train(tiny_cfg(synth_root, iterations=3), work_dir=tmp_path, resume=True, reschedule=True, progress=False)
    monkeypatch.undo()
    assert (tmp_path / "latest.pth").read_bytes() == before
    assert load_checkpoint(tmp_path / "latest.pth")["iteration"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary left behind


@pytest.mark.slow
def test_nan_loss_stops_without_overwriting(synth_root, tmp_path, monkeypatch, tiny_cfg) -> None:
    train(tiny_cfg(synth_root, iterations=2), work_dir=tmp_path, progress=False)
    good = (tmp_path / "latest.pth").read_bytes()
    from segkit.engine.losses import SegmentationLoss

    original = SegmentationLoss.forward
    calls = {"n": 0}

    def nan_on_second(self, outputs, target):
        calls["n"] += 1
        loss, parts = original(self, outputs, target)
        return (loss * float("nan"), parts) if calls["n"] == 2 else (loss, parts)

    monkeypatch.setattr(SegmentationLoss, "forward", nan_on_second)
    with pytest.raises(TrainingDiverged, match=r"loss is nan at iteration 4.*last good checkpoint: .*latest.pth"):
        train(
            tiny_cfg(synth_root, iterations=6, **{"train.ckpt_interval": 1}),
            work_dir=tmp_path,
            resume=True,
            reschedule=True,
            progress=False,
        )
    assert load_checkpoint(tmp_path / "latest.pth")["iteration"] == 3  # iteration 3 saved, 4 never applied
    assert (tmp_path / "latest.pth").read_bytes() != good


def test_resume_into_other_architecture_is_a_clear_error(synth_root, tmp_path, tiny_cfg) -> None:
    train(tiny_cfg(synth_root, iterations=1), work_dir=tmp_path, progress=False)
    other = tiny_cfg(synth_root, iterations=1, **{"model.width_mult": 0.5})
    with pytest.raises(CheckpointError, match=r"another architecture.*model.width_mult: checkpoint 0.35 vs config 0.5"):
        train(other, work_dir=tmp_path, resume=True, progress=False)


@pytest.mark.slow
def test_init_weights_from_torchvision_and_segkit(synth_root, tmp_path, capsys, tiny_cfg) -> None:
    tv_path = tmp_path / "mnv2_imagenet.pth"
    tv = torchvision.models.mobilenet_v2(weights=None, width_mult=0.35)
    torch.save(tv.state_dict(), tv_path)
    cfg = tiny_cfg(synth_root, iterations=1, **{"train.init_weights": str(tv_path)})
    model = segkit.build_model(cfg)
    load_initial_weights(model, str(tv_path), log=print)
    assert torch.equal(model.backbone.features[3].conv[0][0].weight, tv.features[3].conv[0][0].weight)
    out = capsys.readouterr().out
    assert f"loaded {len(model.backbone.state_dict())} tensors" in out and "unexpected 0" in out
    train(cfg, work_dir=tmp_path / "a", progress=False)
    seg = tiny_cfg(synth_root, iterations=1, **{"train.init_weights": str(tmp_path / "a" / "latest.pth")})
    model2 = segkit.build_model(seg)
    load_initial_weights(model2, str(tmp_path / "a" / "latest.pth"), log=print)
    saved = load_checkpoint(tmp_path / "a" / "latest.pth")["model"]
    assert all(torch.equal(v, saved[k]) for k, v in model2.state_dict().items())
    with pytest.raises(CheckpointError, match="init_weights file not found"):
        load_initial_weights(model2, str(tmp_path / "nope.pth"))
    # Another class count: everything but the classifier loads, and the report names what did not.
    other = segkit.build_model(tiny_cfg(synth_root, **{"model.num_classes": 3}))
    load_initial_weights(other, str(tmp_path / "a" / "latest.pth"), log=print)
    out = capsys.readouterr().out
    assert "missing 2: ['head.classifier.bias', 'head.classifier.weight']" in out
    assert "unexpected 2: ['head.classifier.bias', 'head.classifier.weight']" in out
    # An ImageNet MobileNetV2 file cannot initialise another backbone: a clear error, not a silent partial load.
    r101 = segkit.build_model(segkit.load_config("voc_r101_os16_aspp"))
    with pytest.raises(CheckpointError, match="ImageNet initialisation is supported for model.backbone=mobilenet_v2"):
        load_initial_weights(r101, str(tv_path))
    narrow = segkit.build_model(tiny_cfg(synth_root, **{"model.width_mult": 1.0}))
    with pytest.raises(CheckpointError, match=r"only \d+ of the backbone's \d+ tensors fit.*model.width_mult"):
        load_initial_weights(narrow, str(tv_path))


@pytest.mark.slow  # spawns python tools/train.py
def test_voc_config_without_data_points_to_prepare_and_demo(tmp_path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "tools/train.py",
            "--config",
            "voc_mnv2_os16",
            "--data-root",
            str(tmp_path / "nowhere"),
            "--work-dir",
            str(tmp_path / "w"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "segkit prepare-data voc" in proc.stderr and "demo_mnv2_os16" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "w").exists()  # nothing written for a run that could not start


@pytest.mark.slow  # spawns python tools/train.py
def test_sigterm_saves_and_says_how_to_resume(synth_root, tmp_path, tiny_overrides) -> None:
    work = tmp_path / "w"
    cmd = [
        sys.executable,
        "tools/train.py",
        "--config",
        "demo_mnv2_os16",
        "--work-dir",
        str(work),
        "--no-progress",
        "--set",
        *tiny_overrides(synth_root, iterations=100000),
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        jsonl = work / "metrics.jsonl"
        if jsonl.exists() and sum(r["kind"] == "train" for r in read_jsonl(jsonl)) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "--resume" in out and "Stopped by signal" in out
    ckpt = load_checkpoint(work / "latest.pth")
    assert ckpt["iteration"] >= 2


def test_nan_gradients_with_a_finite_loss_stop_the_run(synth_root, tmp_path, monkeypatch, tiny_cfg) -> None:
    from segkit.engine.losses import SegmentationLoss

    original = SegmentationLoss.forward

    def nan_gradient(self, outputs, target):
        loss, parts = original(self, outputs, target)
        # sqrt(0) * 0 is 0, but its gradient is 0 * inf = NaN: the loss stays finite, the weights would not.
        return loss + torch.sqrt(outputs["out"].sum() * 0) * 0, parts

    monkeypatch.setattr(SegmentationLoss, "forward", nan_gradient)
    with pytest.raises(TrainingDiverged, match="gradients are not finite at iteration 1"):
        train(tiny_cfg(synth_root, iterations=2), work_dir=tmp_path, progress=False)
    assert not (tmp_path / "latest.pth").exists()


def test_metrics_log_is_fresh_per_run_and_trimmed_on_resume(synth_root, tmp_path, tiny_cfg) -> None:
    cfg = tiny_cfg(synth_root, iterations=4, **{"train.ckpt_interval": 2})
    train(cfg, work_dir=tmp_path, progress=False)
    train(cfg, work_dir=tmp_path, progress=False, overwrite=True)  # a fresh run replaces the log, it does not append
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["iter"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4]
    # A run killed hard after iteration 3 logged iteration 3, but its checkpoint is from iteration 2:
    # resuming drops the records after the checkpoint so every iteration appears once.
    ckpt = tmp_path / "latest.pth"
    state = load_checkpoint(ckpt)
    torch.save({**state, "iteration": 2}, ckpt)
    train(cfg, work_dir=tmp_path, resume=True, progress=False)
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["iter"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4]


def test_best_checkpoint_is_the_best_validation_miou(synth_root, tmp_path, tiny_cfg) -> None:
    train(
        tiny_cfg(synth_root, iterations=4, **{"train.val_interval": 1, "train.lr": 0.05}),
        work_dir=tmp_path,
        progress=False,
    )
    vals = [r for r in read_jsonl(tmp_path / "metrics.jsonl") if r["kind"] == "val"]
    assert [r["iter"] for r in vals] == [1, 2, 3, 4]
    best = max(vals, key=lambda r: r["miou"])
    first_best = next(r for r in vals if r["miou"] == best["miou"])
    ckpt = load_checkpoint(tmp_path / "best.pth")
    assert ckpt["iteration"] == first_best["iter"] and ckpt["best_miou"] == pytest.approx(best["miou"])


def test_gradient_accumulation_takes_one_step_over_several_batches(synth_root, tmp_path, tiny_cfg) -> None:
    from segkit.engine import build_training, train_step
    from segkit.utils.distributed import DistInfo

    cfg = tiny_cfg(synth_root, **{"train.grad_accum": 3})
    tr = build_training(cfg, tmp_path, torch.device("cpu"), DistInfo(), log=lambda m: None)
    seen = []

    def batches():
        while True:
            batch = {"image": torch.randn(2, 3, 32, 32), "mask": torch.randint(0, 5, (2, 32, 32))}
            seen.append(batch)
            yield batch

    losses = []
    criterion = tr.criterion.forward

    def recording(outputs, target):
        loss, parts = criterion(outputs, target)
        losses.append(loss.item())
        return loss, parts

    tr.criterion.forward = recording
    before = [p.detach().clone() for p in tr.net.parameters()]
    values = train_step(tr, batches())
    assert len(seen) == 3 and tr.iteration == 1 and tr.scheduler.last_epoch == 1  # 3 micro-batches, 1 step
    assert any(not torch.equal(a, b) for a, b in zip(before, tr.net.parameters()))
    assert len(losses) == 3 and float(values["loss"]) == pytest.approx(sum(losses) / 3)  # logged: the micro-batch mean


def test_small_batch_bn_warning(synth_root, tmp_path, tiny_cfg) -> None:
    from segkit.engine import build_training
    from segkit.utils.distributed import DistInfo

    with pytest.warns(UserWarning, match=r"BatchNorm is trained with 4 images per step \(< 12\)"):
        build_training(tiny_cfg(synth_root), tmp_path, torch.device("cpu"), DistInfo(), log=lambda m: None)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # norm_eval keeps BN statistics fixed: no warning
        build_training(
            tiny_cfg(synth_root, **{"model.norm_eval": True}),
            tmp_path,
            torch.device("cpu"),
            DistInfo(),
            log=lambda m: None,
        )


def test_checkpoint_with_another_class_count_is_a_clear_error(synth_root, tmp_path, tiny_cfg) -> None:
    from segkit.checkpoint.format import load_weights

    train(tiny_cfg(synth_root, iterations=1), work_dir=tmp_path, progress=False)
    cfg = tiny_cfg(synth_root, **{"model.num_classes": 3})
    with pytest.raises(
        CheckpointError,
        match=r"head.classifier.weight: checkpoint \(5, 256, 1, 1\) vs model "
        r"\(3, 256, 1, 1\).*model.num_classes: checkpoint 5 vs config 3",
    ):
        load_weights(segkit.build_model(cfg), load_checkpoint(tmp_path / "latest.pth"), cfg)
