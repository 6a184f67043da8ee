"""`segkit quantize` and `segkit export` refuse what cannot work in one line, before any data is read or calibrated:
a missing optional package (with the install line), ``--num-calib`` < 1, and (export) a QAT checkpoint."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import segkit.checkpoint.load
import segkit.quantize.images
from segkit.checkpoint.format import load_checkpoint
from segkit.cli import main as segkit_main
from segkit.export import cached_export, export_checkpoint
from segkit.export.errors import ExportError
from segkit.quantize import QuantizeError, quantize_checkpoint

INSTALL = "pip install 'segkit-deeplab[deploy]'"


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if the checkpoint's model is built or calibration images are read."""

    def fail(*args, **kwargs):
        raise AssertionError("the model was loaded or calibration ran before the refusal")

    monkeypatch.setattr(segkit.quantize.images, "calibration_images", fail)
    monkeypatch.setattr(segkit.checkpoint.load, "load_model", fail)


@pytest.fixture(scope="module")
def qat_ckpt(tiny_ckpt, tmp_path_factory) -> Path:
    """A checkpoint of a quantization-aware training run, as far as its config says (train.qat: true)."""
    ckpt = load_checkpoint(tiny_ckpt)
    ckpt["config"]["train"]["qat"] = True
    ckpt["config"]["train"]["init_weights"] = str(tiny_ckpt)
    path = tmp_path_factory.mktemp("qat") / "qat.pth"
    torch.save(ckpt, path)
    return path


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ----------------------------------------------------------------------------- item 7: missing packages


@pytest.mark.parametrize(
    "fmt,module,pip_name",
    [
        ("onnx", "onnxruntime", "onnxruntime"),
        ("onnx", "onnx", "onnx"),
        ("openvino", "nncf", "nncf"),
        ("openvino", "openvino", "openvino"),
        ("tflite", "torchao", "torchao"),
        ("tflite", "litert_torch", "litert-torch"),
        ("tflite", "ai_edge_litert", "ai-edge-litert"),
    ],
)
def test_missing_package_is_refused_before_calibration(
    tiny_ckpt, synth_root, tmp_path, monkeypatch, no_work, fmt, module, pip_name
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what an uninstalled package looks like to find_spec
    out = tmp_path / f"m.{ {'onnx': 'onnx', 'openvino': 'xml', 'tflite': 'tflite'}[fmt] }"
    with pytest.raises(QuantizeError) as info:
        quantize_checkpoint(tiny_ckpt, out, format=fmt, calib_data=str(synth_root), num_calib=2, progress=False)
    message = str(info.value)
    assert f"--format {fmt}" in message and repr(pip_name) in message and INSTALL in message
    assert "\n" not in message and not out.exists()


def test_missing_package_found_by_find_spec(tiny_ckpt, synth_root, tmp_path, monkeypatch, no_work) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nncf" else real(name, *a))
    with pytest.raises(QuantizeError, match=r"--format openvino needs 'nncf'.*segkit-deeplab\[deploy\]"):
        quantize_checkpoint(tiny_ckpt, tmp_path / "m.xml", format="openvino", calib_data=str(synth_root))


def test_qat_checkpoint_names_the_qat_packages(qat_ckpt, synth_root, tmp_path, monkeypatch, no_work) -> None:
    monkeypatch.setitem(sys.modules, "torchao", None)  # --format onnx needs it only to load a QAT checkpoint
    with pytest.raises(QuantizeError, match=r"quantization-aware training checkpoint needs 'torchao'"):
        quantize_checkpoint(qat_ckpt, tmp_path / "m.onnx", format="onnx", calib_data=str(synth_root))


def test_missing_package_cli_one_line(tiny_ckpt, synth_root, tmp_path, monkeypatch, no_work, capsys) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    out = tmp_path / "m.onnx"
    args = ["--checkpoint", str(tiny_ckpt), "--calib-data", str(synth_root), "--format", "onnx", "--out", str(out)]
    assert segkit_main(["quantize", *args, "--no-progress"]) == 2
    line = _one_error_line(capsys)
    assert "'onnxruntime'" in line and INSTALL in line and not out.exists()


# ----------------------------------------------------------------------------- item 10: --num-calib < 1


@pytest.mark.parametrize("num", [0, -3])
def test_num_calib_below_one_has_its_own_message(tiny_ckpt, synth_root, tmp_path, no_work, num) -> None:
    with pytest.raises(QuantizeError) as info:
        quantize_checkpoint(tiny_ckpt, tmp_path / "m.onnx", format="onnx", calib_data=str(synth_root), num_calib=num)
    message = str(info.value)
    assert "--num-calib" in message and f"got {num}" in message and "at least 1" in message
    assert "--calib-data" not in message  # it was given


def test_num_calib_zero_cli_one_line(tiny_ckpt, synth_root, tmp_path, no_work, capsys) -> None:
    args = ["--checkpoint", str(tiny_ckpt), "--calib-data", str(synth_root), "--num-calib", "0"]
    assert segkit_main(["quantize", *args, "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 2
    line = _one_error_line(capsys)
    assert "--num-calib" in line and "at least 1" in line


# ----------------------------------------------------------------------------- item 9: export of a QAT checkpoint


def test_export_refuses_a_qat_checkpoint_first(qat_ckpt, tmp_path, no_work) -> None:
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError) as info:
        export_checkpoint(qat_ckpt, out)
    message = str(info.value)
    assert "use `segkit quantize` for a QAT checkpoint" in message and "\n" not in message
    assert "\x1b[" not in message and not out.exists()


def test_export_refuses_a_qat_config_of_a_bare_state_dict(tiny_ckpt, tmp_path, no_work) -> None:
    bare = tmp_path / "bare.pth"
    torch.save(load_checkpoint(tiny_ckpt)["model"], bare)
    with pytest.raises(ExportError, match="use `segkit quantize` for a QAT checkpoint"):
        export_checkpoint(bare, tmp_path / "m.onnx", config="demo_mnv2_os16_qat")


def test_export_qat_checkpoint_cli_one_line(qat_ckpt, tmp_path, no_work, capsys) -> None:
    out = tmp_path / "m.tflite"
    assert segkit_main(["export", "--checkpoint", str(qat_ckpt), "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert "use `segkit quantize` for a QAT checkpoint" in line and not out.exists()


def test_runtime_on_a_qat_checkpoint_is_refused_before_exporting(qat_ckpt, tmp_path, monkeypatch, no_work, capsys):
    monkeypatch.setenv("SEGKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ExportError, match="--runtime onnxruntime cannot run.*use `segkit quantize` for a QAT"):
        cached_export(qat_ckpt, "onnxruntime")
    image = tmp_path / "in.png"
    Image.new("RGB", (32, 32)).save(image)
    args = ["--checkpoint", str(qat_ckpt), "--runtime", "onnxruntime", "--input", str(image)]
    assert segkit_main(["infer", *args, "--output", str(tmp_path / "out")]) == 2
    line = _one_error_line(capsys)
    assert "use `segkit quantize` for a QAT checkpoint" in line and "drop --runtime" in line
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.onnx"))
