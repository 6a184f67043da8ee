"""``segkit quantize --output labels --argmax-fusion`` (issue 25, goal 2, int8): the Edge TPU's argmax fusion in an
int8 ONNX / OpenVINO file, verified against the fused float labels, its cost printed and recorded in the metadata;
refused in one line without ``--output labels`` and for the formats that do not write it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from segkit.cli import main as segkit_main
from tests.helpers.models import decisive_checkpoint

pytest.importorskip("onnxruntime", reason="the deploy extra is not installed (pip install 'segkit-deeplab[deploy]')")
pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 64  # the synthetic images' own size


@pytest.fixture(scope="module")
def decisive_ckpt(tiny_ckpt, tmp_path_factory) -> Path:
    """The tiny model with a large random classifier (tests/helpers/models.py)."""
    return decisive_checkpoint(tiny_ckpt, tmp_path_factory.mktemp("qfusion") / "decisive.pth")


def _quantize(ckpt: Path, out: Path, root: Path, *extra: str, num_calib: int = 4) -> int:
    argv = ["quantize", "--checkpoint", str(ckpt), "--calib-data", str(root), "--num-calib", str(num_calib)]
    argv += ["--num-verify", "4", "--out", str(out), "--input-size", str(SIZE), str(SIZE), "--no-progress"]
    return segkit_main([*argv, *extra])


def test_argmax_fusion_needs_output_labels(tiny_ckpt, synth_root, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    code = _quantize(tiny_ckpt, out, synth_root, "--argmax-fusion")
    err = capsys.readouterr().err
    assert code == 2 and not list(tmp_path.iterdir())
    assert "--argmax-fusion" in err and "add --output labels" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("suffix,fmt", [(".tflite", "tflite"), (".pte", "executorch")])
def test_argmax_fusion_refused_for_litert_and_executorch(tiny_ckpt, synth_root, tmp_path, capsys, suffix, fmt):
    out = tmp_path / f"m{suffix}"
    code = _quantize(tiny_ckpt, out, synth_root, "--output", "labels", "--argmax-fusion")
    err = capsys.readouterr().err
    assert code == 2 and not list(tmp_path.iterdir())
    assert f"got --format {fmt}" in err and "--format onnx or openvino" in err and len(err.strip().splitlines()) == 1


def test_quantize_model_refuses_fusion_for_tflite(tiny_ckpt, tmp_path):
    from segkit.checkpoint.load import load_model
    from segkit.quantize import quantize_model
    from segkit.quantize.formats import QuantizeError

    images = [{"image": torch.zeros(1, 3, SIZE, SIZE)}]
    with pytest.raises(QuantizeError, match="--format onnx or openvino"):
        quantize_model(load_model(tiny_ckpt), tmp_path / "m.tflite", images, format="tflite", output="labels",
                       argmax_fusion=True, progress=False)  # fmt: skip
    assert not list(tmp_path.iterdir())


def test_fused_int8_onnx_is_verified_against_the_fusion(decisive_ckpt, synth_root, tmp_path, capsys):
    from segkit.checkpoint.load import load_model
    from segkit.export.wrapper import fused_labels
    from segkit.quantize.calib import calibration_images
    from segkit.runtimes import load_exported
    from segkit.runtimes.metadata import read_metadata

    out = tmp_path / "fused_int8.onnx"
    # all 16 training images: with 4, a few low-resolution cells (16x16 pixels each once upscaled) flip
    code = _quantize(decisive_ckpt, out, synth_root, "--output", "labels", "--argmax-fusion", num_calib=16)
    printed = capsys.readouterr().out.splitlines()
    assert code == 0, printed
    meta = read_metadata(out)
    assert meta["argmax_fusion"] is True and meta["precision"] == "int8" and meta["output"] == "labels"
    verified = next(i for i, line in enumerate(printed) if "int8 vs float (both argmax-fused)" in line)
    cost = printed[verified + 1]  # the fusion's cost right after the verification line
    assert cost.startswith("argmax fusion: ") and "of pixels as the official semantics; mIoU " in cost
    assert 50 < float(cost.split("argmax fusion: ")[1].split("%")[0]) < 100  # the model is one the fusion changes

    model, runner = load_model(decisive_ckpt), load_exported(out)
    images = calibration_images(model, synth_root, split="val", num=4, input_size=(SIZE, SIZE), progress=False)
    same = total = 0
    for item in images:
        with torch.no_grad():
            want = fused_labels(model, item["image"]).long()
        got = runner(item["image"])["labels"].long()
        same, total = same + int((got == want).sum()), total + want.numel()
    assert same / total >= 0.99  # the int8 file computes the fusion, not the official argmax


def test_unfused_int8_report_has_no_fusion_line():
    from segkit.export.verify import FusionCost
    from segkit.quantize.check import Int8Report

    plain = Int8Report("m.onnx", 1, 3, 1.0)
    assert plain.fusion is None and "argmax-fused" not in plain.line()
    fused = Int8Report("m.onnx", 1, 3, 1.0, fusion=FusionCost(0.97, 3, "the images above"))
    assert "int8 vs float (both argmax-fused) on 3 images" in fused.line()
