"""``--fast``: a checkpoint runs in ONNX Runtime on a CPU (through the export cache) with the same labels, and says
so in one line; PyTorch's optimize_for_inference runs instead, with the reason, when ONNX Runtime cannot."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from segkit.export.fast import FastChoice, choose_fast_runtime
from segkit.export.source import ModelSource, evaluate_checkpoint
from segkit.runtimes.backends import ExportedModelError
from segkit.runtimes.runner import ExportedModel

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEGKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_fast_runs_the_checkpoint_in_onnxruntime_with_the_same_labels(
    tiny_ckpt: Path, cache: Path, monkeypatch
) -> None:
    pytest.importorskip("onnxruntime", reason="the deploy extra is not installed")
    lines: list[str] = []
    model, cfg = ModelSource(tiny_ckpt, fast=True).load("cpu", log=lines.append)
    assert isinstance(model, ExportedModel) and model.runtime == "onnxruntime"
    assert model.path.parent == cache / "exports"
    assert lines == [
        f"--fast: running {tiny_ckpt.name} in ONNX Runtime (the export cache's {model.path}; "
        "PyTorch optimize_for_inference is ~1.8x slower on CPU)"
    ]
    reference, ref_cfg = ModelSource(tiny_ckpt).load("cpu")
    assert cfg.eval == ref_cfg.eval and cfg.model.num_classes == ref_cfg.model.num_classes  # the same protocol
    x = torch.randn(1, 3, 48, 56, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(x)["out"].argmax(1), reference(x)["out"].argmax(1))
    # the second time, the cached file is used without loading the checkpoint to decide
    monkeypatch.setattr("segkit.checkpoint.load.load_eval_model", lambda *a, **k: pytest.fail("loaded to decide"))
    again, _ = ModelSource(tiny_ckpt, fast=True).load("cpu", log=lines.append)
    assert again.path == model.path and len(lines) == 2


def test_fast_report_records_onnxruntime_and_the_checkpoint(tiny_ckpt: Path, synth_root: Path, cache, capfd) -> None:
    pytest.importorskip("onnxruntime", reason="the deploy extra is not installed")
    out = cache.parent / "val.json"
    source = ModelSource(tiny_ckpt, overrides={"data.root": str(synth_root), "data.num_workers": 0}, fast=True)
    evaluate_checkpoint(source, device="cpu", json_path=out, progress=False, log=lambda *_: None)
    assert f"--fast: running {tiny_ckpt.name} in ONNX Runtime" in capfd.readouterr().err
    report = json.loads(out.read_text())
    assert report["runtime"] == "onnxruntime" and report["precision"] == "fp32"
    assert report["model_file"]["path"] == str(tiny_ckpt.resolve())


def test_without_onnxruntime_fast_says_why_and_runs_pytorch(tiny_ckpt: Path, cache, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    lines: list[str] = []
    model, _ = ModelSource(tiny_ckpt, fast=True).load("cpu", log=lines.append)
    assert isinstance(model, nn.Module) and not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert lines == [
        f"--fast: running {tiny_ckpt.name} in PyTorch (optimize_for_inference: BN folded, channels_last): "
        "onnxruntime not installed (pip install 'segkit-deeplab[deploy]' to run it ~1.8x faster there)"
    ]
    assert not cache.exists()  # nothing exported


def test_an_export_the_cache_refuses_falls_back_to_pytorch(tiny_ckpt: Path, cache, monkeypatch) -> None:
    pytest.importorskip("onnxruntime", reason="the deploy extra is not installed")

    def refuse(*_, **__):
        raise ExportedModelError("the export of tiny.pth does not compute what the PyTorch model does")

    monkeypatch.setattr("segkit.export.fast.load_for_tools", refuse)
    lines: list[str] = []
    model, _ = ModelSource(tiny_ckpt, fast=True).load("cpu", log=lines.append)
    assert isinstance(model, nn.Module) and len(lines) == 1
    assert lines[0].endswith(
        "): the export cache refused it: the export of tiny.pth does not compute what the PyTorch model does"
    )


def test_the_decision_keeps_pytorch_on_a_gpu_and_for_tf_same_padding(tiny_ckpt: Path, cache) -> None:
    assert choose_fast_runtime(tiny_ckpt, "cuda") == FastChoice(
        "pytorch", "the device is cuda, where PyTorch is the fast path"
    )
    pytest.importorskip("onnxruntime", reason="the deploy extra is not installed")
    same = {"model.tf_same_padding": True}
    choice = choose_fast_runtime(tiny_ckpt, "cpu", overrides=same)  # dynamic protocol: the dynamo exporter
    assert choice.runtime == "pytorch" and "--resize-longer N --pad-to N" in choice.reason
    fixed = {**same, "eval.resize_longer": 64, "eval.pad_to": 64}  # all passes 64x64: a static export
    assert choose_fast_runtime(tiny_ckpt, "cpu", overrides=fixed) == FastChoice("onnxruntime")


def test_an_explicit_runtime_or_model_wins_silently(tiny_ckpt: Path, cache, capfd) -> None:
    model, _ = ModelSource(tiny_ckpt, runtime="pytorch", fast=True).load("cpu")
    assert isinstance(model, nn.Module) and not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert "--fast" not in capfd.readouterr().err and not cache.exists()
