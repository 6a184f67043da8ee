"""DDP on CPU: torchrun with 2 gloo processes trains, syncs BN, and counts every val pixel exactly once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import segkit
from segkit.data import build_dataset, build_eval_transform, generate_synthetic_voc
from segkit.engine.runlog import read_jsonl
from segkit.evaluation.evaluator import evaluate

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with the gloo backend is not available in this torch build",
)
@pytest.mark.slow  # spawns torchrun
def test_torchrun_two_processes_matches_single_process_bookkeeping(tmp_path, tiny_overrides) -> None:
    root = tmp_path / "synthetic"
    generate_synthetic_voc(root, num_train=16, num_val=5, image_size=64, seed=0)  # 5 val images: uneven shards
    work = tmp_path / "ddp"
    overrides = tiny_overrides(
        root, iterations=3, **{"data.synthetic_num_val": 5, "train.sync_bn": True, "train.batch_size": 2}
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
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
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = read_jsonl(work / "metrics.jsonl")
    setup = next(r for r in records if r["kind"] == "setup")
    assert setup["world_size"] == 2
    assert setup["sync_bn_layers"] == 0 and "SyncBatchNorm runs on CUDA only" in proc.stdout + proc.stderr
    assert sum(r["kind"] == "train" for r in records) == 3  # only rank 0 writes
    from segkit.checkpoint.format import load_checkpoint

    rng = load_checkpoint(work / "latest.pth")["rng"]
    assert len(rng) == 2 and not torch.equal(rng[0]["torch"], rng[1]["torch"])  # every rank's own RNG state
    ddp_miou = [r for r in records if r["kind"] == "val"][-1]["miou"]

    # The saved weights, evaluated by one process over the whole val split, give the same mIoU.
    model = segkit.load_model(work / "latest.pth")
    cfg = model.segkit_config
    val = build_dataset(
        cfg.data,
        cfg.data.val_split,
        build_eval_transform(cfg.model.input_mean, cfg.model.input_std),
        num_classes=cfg.model.num_classes,
    )
    loader = torch.utils.data.DataLoader(val, batch_size=1)
    single = evaluate(model, loader, cfg.model.num_classes, protocol=cfg.eval, progress=False)
    assert single.confusion.sum() == sum((val[i]["mask"] != 255).sum().item() for i in range(len(val)))
    assert ddp_miou == pytest.approx(float(single.miou), abs=1e-9)


def test_sync_bn_conversion_keeps_the_state_dict() -> None:
    from segkit.engine.setup import convert_sync_bn

    model = segkit.build_model(segkit.load_config("voc_mnv2_os16", ["model.width_mult=0.35"]))
    keys = list(model.state_dict())
    messages: list[str] = []
    assert convert_sync_bn(model, "cpu", messages.append) is model and messages
    synced = convert_sync_bn(model, "cuda", messages.append)
    bns = [m for m in synced.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns and all(isinstance(m, torch.nn.SyncBatchNorm) for m in bns)
    assert list(synced.state_dict()) == keys  # checkpoints stay loadable by a plain model
    assert bns[0].eps == 1e-3 and bns[0].momentum == 0.003
