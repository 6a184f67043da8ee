"""Int8 PTQ (ONNX Runtime QDQ and OpenVINO/NNCF) of a tiny model on synthetic data, through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory, synth_root, tiny_cfg) -> Path:
    import torch

    from segkit.checkpoint import save_checkpoint
    from segkit.models import build_model

    torch.manual_seed(0)
    cfg = tiny_cfg(synth_root)
    path = tmp_path_factory.mktemp("int8") / "tiny.pth"
    save_checkpoint(path, build_model(cfg).eval(), cfg)
    return path


@pytest.mark.parametrize("fmt,ext", [("onnx", ".onnx"), ("openvino", ".xml")])
def test_ptq_cli_writes_verified_int8(tiny_ckpt, synth_root, tmp_path, capsys, fmt, ext):
    from segkit.cli.quantize import main
    from segkit.export.metadata import read_metadata

    if fmt == "openvino":
        pytest.importorskip("nncf")
    out = tmp_path / f"m{ext}"
    rc = main(
        [
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
    assert out.is_file() and read_metadata(out)["precision"] == "int8"
    if fmt == "openvino":
        assert out.with_suffix(".bin").is_file()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_wrong_extension_is_one_line(tiny_ckpt, synth_root, tmp_path, capsys):
    from segkit.cli.quantize import main

    rc = main(
        [
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
