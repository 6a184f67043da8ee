"""Mixed precision and channels_last: CUDA paths (skipped without a GPU) and their CPU fallback."""

from __future__ import annotations

import math

import pytest
import torch

from segkit.checkpoint.format import load_checkpoint
from segkit.engine import train
from segkit.engine.runlog import read_jsonl

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA-only path: needs a GPU (CI has none)")


@pytest.mark.slow
def test_amp_on_cpu_trains_in_float32_and_says_so(synth_root, tmp_path, capsys, tiny_cfg) -> None:
    train(
        tiny_cfg(synth_root, iterations=1, **{"train.amp": "bf16", "train.channels_last": True}),
        work_dir=tmp_path,
        device="cpu",
        progress=False,
    )
    assert "train.amp=bf16 applies to CUDA only; training in float32 on cpu" in capsys.readouterr().out
    setup = next(r for r in read_jsonl(tmp_path / "metrics.jsonl") if r["kind"] == "setup")
    assert setup["amp"] == "none"
    assert not load_checkpoint(tmp_path / "latest.pth")["scaler"]  # GradScaler disabled: empty state


@needs_cuda
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_and_channels_last_on_cuda_train_and_resume(synth_root, tmp_path, amp, tiny_cfg) -> None:
    cfg = tiny_cfg(synth_root, iterations=3, **{"train.amp": amp, "train.channels_last": True})
    train(cfg, work_dir=tmp_path, device="cuda", progress=False)
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert next(r for r in records if r["kind"] == "setup")["amp"] == {"bf16": "bfloat16", "fp16": "float16"}[amp]
    assert all(math.isfinite(r["loss"]) for r in records if r["kind"] == "train")
    scaler = load_checkpoint(tmp_path / "latest.pth")["scaler"]
    assert bool(scaler) == (amp == "fp16")  # fp16 saves the GradScaler's scale and growth tracker
    resumed = tiny_cfg(synth_root, iterations=5, **{"train.amp": amp, "train.channels_last": True})
    result = train(resumed, work_dir=tmp_path, resume=True, reschedule=True, device="cuda", progress=False)
    assert result["iteration"] == 5
    weights = load_checkpoint(tmp_path / "latest.pth")["model"]
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
