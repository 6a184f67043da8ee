"""Shared test fixtures and paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real VOC images, official TFLite models); skips the test when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available: {SHARED_DATA} is absent (it sits beside the repo in CI only)")
    return SHARED_DATA


# -- tiny training runs (tests/test_train*.py, tests/test_ddp.py) -----------------------------------------


def _tiny_overrides(root: Path, iterations: int = 4, **extra: object) -> list[str]:
    """``--set`` items of a tiny, deterministic training run on the synthetic set at ``root``."""
    import json

    values = {
        "data.root": str(root),
        "data.synthetic_num_train": 16,
        "data.synthetic_num_val": 4,
        "data.synthetic_image_size": 64,
        "data.crop_size": 48,
        "data.num_workers": 0,
        "model.width_mult": 0.35,
        "train.iterations": iterations,
        "train.batch_size": 4,
        "train.log_interval": 1,
        "train.val_interval": 1000,
        "train.ckpt_interval": 1000,
        "train.deterministic": True,
        "train.warmup_iters": 0,
        "train.lr": 0.02,
        "train.optimizer": "sgd",
        "train.weight_decay": 4e-5,
    }
    values.update(extra)
    return [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in values.items()]


@pytest.fixture(scope="session")
def tiny_overrides():
    """``tiny_overrides(root, iterations=4, **{"key": value})`` -> ``--set`` items of a tiny run."""
    return _tiny_overrides


@pytest.fixture(scope="session")
def tiny_cfg():
    """``tiny_cfg(root, iterations=4, **{"key": value})`` -> the demo config of a tiny run."""
    import segkit

    return lambda root, iterations=4, **extra: segkit.load_config(
        "demo_mnv2_os16", _tiny_overrides(root, iterations, **extra)
    )


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A synthetic VOC-format set: 16 train and 4 val images of 64x64 (shared read-only by the tests)."""
    from segkit.data import generate_synthetic_voc

    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic_voc(root, num_train=16, num_val=4, image_size=64, seed=0)
    return root
