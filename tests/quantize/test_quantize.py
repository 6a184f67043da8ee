"""Int8 PTQ (ONNX Runtime QDQ, OpenVINO/NNCF, LiteRT PT2E) of a tiny model on synthetic data, through the CLI;
an int8 file evaluated by ``segkit test --model`` gives the file's own predictions."""

from __future__ import annotations

from pathlib import Path

import pytest

from segkit.cli import main as segkit_main

pytest.importorskip("onnxruntime")


@pytest.mark.slow
@pytest.mark.parametrize("fmt,ext", [("onnx", ".onnx"), ("openvino", ".xml"), ("tflite", ".tflite")])
def test_ptq_cli_writes_verified_int8(tiny_ckpt, synth_root, tmp_path, capsys, fmt, ext):
    from segkit.runtimes.metadata import read_metadata

    if fmt == "openvino":
        pytest.importorskip("nncf")
    if fmt == "tflite":  # one PT2E conversion (~30-50 s)
        pytest.importorskip("litert_torch", reason="the deploy extra is not installed")
    out = tmp_path / f"m{ext}"
    rc = segkit_main(
        [
            "quantize",
            "--checkpoint",
            str(tiny_ckpt),
            "--calib-data",
            str(synth_root),
            "--num-calib",
            "4",
            "--format",
            fmt,
            "--out",
            str(out),
            "--input-size",
            "65",
            "65",
            "--verify",
            str(synth_root),
            "--no-progress",
        ]
    )
    text = capsys.readouterr().out
    assert "pixel agreement" in text and "mIoU" in text
    assert rc in (0, 1)  # an untrained model's ties may disagree; the line is what matters here
    if rc == 1:  # a file that failed its verification is not written (issue 20)
        assert not out.exists() and not list(tmp_path.iterdir())
        return
    assert out.is_file() and read_metadata(out)["precision"] == "int8"
    if fmt == "openvino":
        assert out.with_suffix(".bin").is_file()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left
    if fmt == "tflite":  # full integer: the float input is int8 with quantization params, run as segkit test runs it
        import numpy as np
        import torch

        from segkit.runtimes import load_exported

        runner = load_exported(out)
        assert runner.session.input_dtype == np.int8 and runner.input_quant is not None
        assert runner.input_kind == "float" and runner.precision == "int8"
        logits = runner(torch.randn(1, 3, 65, 65))["out"]
        assert logits.shape == (1, runner.num_classes, 65, 65) and logits.dtype == torch.float32
        assert logits.abs().sum() > 0


@pytest.fixture(scope="module")
def int8_onnx(tiny_ckpt, tmp_path_factory) -> Path:
    """The tiny model's int8 ONNX file at the synthetic images' own size (64: no resizing anywhere)."""
    import segkit
    from segkit.quantize import calibration_images, quantize_model

    model = segkit.load_model(tiny_ckpt)
    root = model.segkit_config.data.root
    images = calibration_images(model, root, split="train", num=4, input_size=(64, 64), progress=False)
    path = tmp_path_factory.mktemp("int8_onnx") / "tiny_int8.onnx"
    quantize_model(model, path, images, format="onnx", input_size=(64, 64), progress=False)
    return path


@pytest.mark.slow
def test_segkit_test_on_int8_file_scores_the_files_predictions(int8_onnx, tiny_ckpt, synth_root, tmp_path):
    """``segkit test --model int8.onnx --json``: precision/runtime recorded, its confusion matrix is the one of
    the file's own predictions, and its mIoU over present classes is what ``verify_int8`` reports."""
    import json

    import numpy as np

    import segkit
    from segkit.quantize import calibration_images, verify_int8
    from segkit.quantize.check import _miou
    from segkit.runtimes import load_exported

    out = tmp_path / "r.json"
    assert segkit_main(["test", "--model", str(int8_onnx), "--data-root", str(synth_root), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["precision"] == "int8" and report["runtime"] == "onnxruntime"
    cm = np.array(report["confusion"])
    model = segkit.load_model(tiny_ckpt)
    val = calibration_images(
        model, synth_root, split="val", num=4, input_size=(64, 64), with_masks=True, progress=False
    )
    n = model.segkit_config.model.num_classes
    mine = np.zeros((n, n), np.int64)
    runner = load_exported(int8_onnx)
    for item in val:
        pred = runner(item["image"])["out"].argmax(1)[0].numpy()
        mask = item["mask"].numpy()
        valid = mask != 255
        mine += np.bincount(n * mask[valid] + pred[valid], minlength=n * n).reshape(n, n)
    assert report["num_images"] == len(val) and cm.sum() == mine.sum() > 0
    np.testing.assert_array_equal(cm, mine)
    checked = verify_int8(model, int8_onnx, val)
    assert checked.miou_int8 == pytest.approx(_miou(cm)) and checked.n_images == len(val)


def test_wrong_extension_is_one_line(tiny_ckpt, synth_root, tmp_path, capsys):
    rc = segkit_main(
        [
            "quantize",
            "--checkpoint",
            str(tiny_ckpt),
            "--calib-data",
            str(synth_root),
            "--num-calib",
            "2",
            "--format",
            "onnx",
            "--out",
            str(tmp_path / "m.tflite"),
            "--input-size",
            "65",
            "65",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and ".onnx" in err
