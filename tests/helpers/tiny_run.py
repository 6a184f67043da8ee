"""Tiny, deterministic training runs on segkit's synthetic set: the ``--set`` items and the config.

Used by the fixtures ``tiny_overrides``, ``tiny_cfg`` and ``tiny_ckpt`` in tests/conftest.py
(tests/engine/test_train*.py, tests/engine/test_ddp.py, tests/quantize/, tests/export/, ...).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TINY_CONFIG = "demo_mnv2_os16"

#: the synthetic set the tiny runs read (the ``synth_root`` fixture generates it once per session)
SYNTH_SET = {"num_train": 16, "num_val": 4, "image_size": 64, "seed": 0}


def tiny_values(root: Path | str, iterations: int = 4, **extra: object) -> dict[str, object]:
    """``{key: value}`` of a tiny run on the synthetic set at ``root``; ``extra`` overrides or adds keys."""
    values: dict[str, object] = {
        "data.root": str(root),
        "data.synthetic_num_train": SYNTH_SET["num_train"],
        "data.synthetic_num_val": SYNTH_SET["num_val"],
        "data.synthetic_image_size": SYNTH_SET["image_size"],
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
    return values


def as_set_items(values: dict[str, object]) -> list[str]:
    """``--set`` items (``key=value``; non-strings JSON-encoded) of ``{key: value}``."""
    return [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in values.items()]


def tiny_overrides(root: Path | str, iterations: int = 4, **extra: object) -> list[str]:
    """``--set`` items of a tiny, deterministic training run on the synthetic set at ``root``."""
    return as_set_items(tiny_values(root, iterations, **extra))


def tiny_cfg(root: Path | str, iterations: int = 4, **extra: object) -> Any:
    """The demo config (``segkit.Config``) of a tiny run on the synthetic set at ``root``."""
    import segkit

    return segkit.load_config(TINY_CONFIG, tiny_overrides(root, iterations, **extra))


def make_synth_root(root: Path) -> Path:
    """Generate the tiny runs' synthetic VOC-format set at ``root`` (16 train + 4 val images of 64x64)."""
    from segkit.data import generate_synthetic_voc

    generate_synthetic_voc(root, **SYNTH_SET)
    return root


def save_tiny_checkpoint(path: Path, root: Path | str, seed: int = 0) -> Path:
    """A randomly initialised (``torch.manual_seed(seed)``) tiny model in eval mode, saved as a checkpoint."""
    import torch

    from segkit.checkpoint.format import save_checkpoint
    from segkit.models import build_model

    torch.manual_seed(seed)
    cfg = tiny_cfg(root)
    save_checkpoint(path, build_model(cfg).eval(), cfg)
    return path
