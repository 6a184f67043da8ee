"""Quantization-aware training: train, resume bit-identically, load the fake-quant model, convert to int8 LiteRT.

One tiny QAT run (MobileNetV2 x0.35 on 64x64 synthetic images) is shared by the tests; the LiteRT conversion
(~30-50 s) runs once. Needs torchao and litert-torch (the deploy extra).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

import segkit
from segkit.checkpoint.format import load_checkpoint, save_checkpoint
from segkit.cli import main as segkit_main
from segkit.config import ConfigError
from segkit.models import build_model

pytest.importorskip(
    "torchao.quantization.pt2e.quantize_pt2e", reason="QAT needs torchao (pip install 'segkit-deeplab[deploy]')"
)
pytest.importorskip("litert_torch", reason="QAT needs litert-torch (pip install 'segkit-deeplab[deploy]')")


def _qat_set(root: Path, init: Path, iterations: int) -> list[str]:
    values = {
        "data.root": str(root),
        "data.synthetic_num_train": 16,
        "data.synthetic_num_val": 4,
        "data.synthetic_image_size": 64,
        "data.crop_size": 48,
        "data.num_workers": 0,
        "model.width_mult": 0.35,
        "model.dropout": 0.1,  # dropout: the torch RNG must resume too
        "train.init_weights": str(init),
        "train.iterations": iterations,
        "train.batch_size": 4,
        "train.optimizer": "sgd",
        "train.lr": 0.01,
        "train.log_interval": 1,
        "train.val_interval": 1000,
        "train.ckpt_interval": 1000,
        "train.deterministic": True,
        "qat.freeze_bn_iter": 4,  # the schedule acts inside the resumed half
        "qat.freeze_observer_iter": 5,
    }
    return [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in values.items()]


@pytest.fixture(scope="module")
def float_ckpt(synth_root, tmp_path_factory) -> Path:
    """A float checkpoint of the tiny architecture (random weights: QAT needs a starting point, not a good one)."""
    cfg = segkit.load_config("demo_mnv2_os16", _qat_set(synth_root, Path("unused"), 2)[:7])
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("float") / "float.pth"
    save_checkpoint(path, build_model(cfg), cfg)
    return path


@pytest.fixture(scope="module")
def qat_run(synth_root, float_ckpt, tmp_path_factory) -> Path:
    """6 QAT iterations in one go, through `segkit train`."""
    work = tmp_path_factory.mktemp("qat6")
    args = ["train", "--config", "demo_mnv2_os16_qat", "--work-dir", str(work), "--no-progress"]
    assert segkit_main([*args, "--set", *_qat_set(synth_root, float_ckpt, 6)]) == 0
    return work


@pytest.fixture(scope="module")
def qat_model(qat_run):
    """The run's best.pth through segkit.load_model (exporting and preparing the graph takes ~10 s)."""
    return segkit.load_model(qat_run / "best.pth")


def test_demo_qat_config_keeps_the_demo_architecture_and_data() -> None:
    qat, demo = segkit.load_config("demo_mnv2_os16_qat"), segkit.load_config("demo_mnv2_os16")
    assert qat.model == demo.model and qat.data == demo.data  # it fine-tunes demo's best.pth
    assert qat.train.qat and qat.train.init_weights == "work_dirs/demo_mnv2_os16/best.pth"
    voc = segkit.load_config("voc_mnv2_os16_qat")  # TF DeepLab's quantize guide
    assert (voc.train.lr, voc.train.iterations, voc.train.batch_size, voc.data.train_split) == (3e-5, 3000, 8, "train")
    assert voc.eval.scales == [1.0] and voc.qat.freeze_bn_iter is None and voc.qat.freeze_observer_iter is None


@pytest.mark.slow
def test_qat_run_writes_observers_and_resumes_bit_identically(synth_root, float_ckpt, qat_run, tmp_path) -> None:
    import segkit.engine.loop as engine

    full = load_checkpoint(qat_run / "latest.pth")
    assert full["iteration"] == 6 and full["config"]["train"]["qat"]
    observers = [k for k in full["model"] if k.startswith("activation_post_process_")]
    assert observers and "backbone.features.0.0.weight" in full["model"]
    cfg = segkit.load_config("demo_mnv2_os16_qat", _qat_set(synth_root, float_ckpt, 6))
    original = engine.train_step

    def step_then_signal(tr, batches):
        values = original(tr, batches)
        if tr.iteration == 3:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C after iteration 3
        return values

    engine.train_step = step_then_signal
    try:
        result = engine.train(cfg, work_dir=tmp_path, progress=False)
    finally:
        engine.train_step = original
    assert result["stopped_by_signal"] == signal.SIGINT and result["iteration"] == 3
    engine.train(cfg, work_dir=tmp_path, resume=True, progress=False)  # ... and --resume for the other 3
    a, b = full["model"], load_checkpoint(tmp_path / "latest.pth")["model"]
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []  # weights, BN statistics and observer ranges


@pytest.mark.slow
def test_load_model_gives_the_fake_quant_model_in_eval_mode(qat_run, qat_model) -> None:
    from segkit.models.qat import QatModel

    model = qat_model
    assert isinstance(model, QatModel) and not model.training
    assert (model.precision, model.runtime) == ("fake-int8", "pytorch")
    x = torch.randn(1, 3, 64, 80)  # any size: batch, height and width are dynamic in the graph
    with torch.no_grad():
        fake, again = model(x)["out"], model(x)["out"]
    assert torch.equal(fake, again)  # eval: observers do not move
    switches = [m for n, m in model.graph.named_children() if n.startswith("activation_post_process_")]
    bn_training = [n.args[5] for n in model.graph.graph.nodes if str(n.target) == "aten.batch_norm.default"]
    assert switches and not any(m.observer_enabled.item() for m in switches) and not any(bn_training)
    for iteration, bn, observe in ((0, True, True), (4, False, True), (5, False, False)):  # qat.freeze_*_iter 4, 5
        model.schedule(iteration)
        model.train()
        bn_training = [n.args[5] for n in model.graph.graph.nodes if str(n.target) == "aten.batch_norm.default"]
        assert set(bn_training) == {bn} and {m.observer_enabled.item() for m in switches} == {int(observe)}
    model.schedule(0)
    model.eval()
    float_model = segkit.load_model(qat_run / "best.pth", qat=False)
    assert not isinstance(float_model, QatModel) and not float_model.segkit_config.train.qat
    with torch.no_grad():
        plain = float_model(x)["out"]
    assert plain.shape == fake.shape and 0 < (plain - fake).abs().max() < 1.0  # quantization noise, same model


@pytest.mark.slow
def test_quantize_qat_checkpoint_to_tflite_without_calibration(
    qat_run, qat_model, synth_root, tmp_path, capsys
) -> None:
    from segkit.quantize import calibration_images
    from segkit.runtimes import load_exported
    from segkit.runtimes.metadata import read_metadata

    out = tmp_path / "qat.tflite"
    argv = ["quantize", "--checkpoint", str(qat_run / "best.pth"), "--format", "tflite", "--out", str(out)]
    assert segkit_main([*argv, "--input-size", "64", "64", "--no-progress"]) == 0
    assert "fake-quantized" in capsys.readouterr().out
    meta = read_metadata(out)
    assert (meta["precision"], meta["quantization"], meta["num_calib"], meta["runtime"]) == ("int8", "qat", 0, "litert")
    model = qat_model
    runner = load_exported(out)
    same = total = 0
    for item in calibration_images(model, str(synth_root), split="val", num=4, input_size=(64, 64), progress=False):
        with torch.no_grad():
            ref = model(item["image"])["out"].argmax(1)
        got = runner(item["image"])["out"].argmax(1)
        same, total = same + int((ref == got).sum()), total + ref.numel()
    assert same / total >= 0.95, same / total
    # ONNX has no PT2E path: it recalibrates the fine-tuned float weights
    from segkit.quantize.ptq import quantize_qat

    images = calibration_images(model, str(synth_root), split="train", num=4, input_size=(64, 64), progress=False)
    onnx_meta = quantize_qat(model, tmp_path / "qat.onnx", images, format="onnx", input_size=(64, 64))
    assert (onnx_meta["quantization"], onnx_meta["num_calib"]) == ("qat", 4)


@pytest.mark.slow
def test_qat_errors_are_one_line(synth_root, float_ckpt, qat_run, tmp_path, capsys) -> None:
    def quantize(argv):
        return segkit_main(["quantize", *argv])

    def train(argv):
        return segkit_main(["train", *argv])

    base = ["--config", "demo_mnv2_os16_qat", "--work-dir", str(tmp_path / "w"), "--no-progress", "--set"]
    settings = _qat_set(synth_root, float_ckpt, 2)
    assert train([*base, *settings, "train.init_weights=null"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # (the lines before it: the small-batch BN warning)
    assert err.startswith("error: ") and "set train.init_weights to a float segkit checkpoint" in err
    assert train([*base, *settings, "train.amp=bf16"]) == 2
    assert "train.amp" in capsys.readouterr().err
    ckpt = ["--checkpoint", str(qat_run / "best.pth"), "--out", str(tmp_path / "m.onnx")]
    assert quantize([*ckpt, "--format", "onnx"]) == 2  # ONNX recalibrates: it needs images
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--calib-data ROOT is required" in err and "recalibrate" in err
    assert quantize(["--checkpoint", str(float_ckpt), "--out", str(tmp_path / "f.tflite"), "--format", "tflite"]) == 2
    assert "post-training quantization calibrates" in capsys.readouterr().err


def test_missing_deploy_extra_is_a_config_error(monkeypatch) -> None:
    import sys

    from segkit.models.qat import require_deploy

    monkeypatch.setitem(sys.modules, "torchao.quantization.pt2e.quantize_pt2e", None)
    with pytest.raises(ConfigError, match=r"pip install 'segkit-deeplab\[deploy\]'"):
        require_deploy()
