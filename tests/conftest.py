"""Shared test fixtures and paths. Helpers that are not fixtures live in tests/helpers/ (importable)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.helpers.threads import one_torch_thread
from tests.helpers.tiny_run import make_synth_root, save_tiny_checkpoint
from tests.helpers.tiny_run import tiny_cfg as _tiny_cfg
from tests.helpers.tiny_run import tiny_overrides as _tiny_overrides

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

__all__ = ["REPO_ROOT", "SHARED_DATA"]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real VOC images, official TFLite models); skips the test when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available: {SHARED_DATA} is absent (it sits beside the repo in CI only)")
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch intra-op thread for a whole test module (``pytestmark = pytest.mark.usefixtures("one_thread")``),
    its module-scoped fixtures included: small CPU workloads slow down 10-30x when 2 threads compete for busy cores."""
    with one_torch_thread():
        yield


# -- tiny training runs (tests/helpers/tiny_run.py; tests/engine/test_train*.py, tests/engine/test_ddp.py) --------


@pytest.fixture(scope="session")
def tiny_overrides():
    """``tiny_overrides(root, iterations=4, **{"key": value})`` -> ``--set`` items of a tiny run."""
    return _tiny_overrides


@pytest.fixture(scope="session")
def tiny_cfg():
    """``tiny_cfg(root, iterations=4, **{"key": value})`` -> the demo config of a tiny run."""
    return _tiny_cfg


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A synthetic VOC-format set: 16 train and 4 val images of 64x64 (shared read-only by the tests)."""
    return make_synth_root(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory, synth_root) -> Path:
    """A randomly initialised tiny model (``tiny_cfg(synth_root)``, seed 0, eval mode) saved as a checkpoint."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny_ckpt") / "tiny.pth", synth_root)
