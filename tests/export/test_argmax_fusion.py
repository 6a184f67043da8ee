"""``segkit export --output labels --argmax-fusion`` (issue 25, goal 2): the Edge TPU's argmax fusion as a measured
option. The file is verified against the fused PyTorch labels, its cost against the official semantics is printed,
and its metadata records it."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch

from segkit.cli import main as segkit_main
from tests.helpers.models import decisive_checkpoint

pytest.importorskip("onnxruntime", reason="the deploy extra is not installed (pip install 'segkit-deeplab[deploy]')")
pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 64


@pytest.fixture(scope="module")
def spread_ckpt(tiny_ckpt, tmp_path_factory) -> Path:
    """The tiny model with a large random classifier (tests/helpers/models.py)."""
    return decisive_checkpoint(tiny_ckpt, tmp_path_factory.mktemp("fusion") / "spread.pth")


@pytest.fixture(scope="module")
def fused_export(spread_ckpt, tmp_path_factory):
    """(path, printed stdout) of ``segkit export ... --output labels --argmax-fusion`` to ONNX."""
    out = tmp_path_factory.mktemp("fused") / "fused.onnx"
    argv = ["export", "--checkpoint", str(spread_ckpt), "--out", str(out), "--input-size", str(SIZE)]
    argv += ["--output", "labels", "--argmax-fusion", "--exporter", "torchscript"]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = segkit_main(argv)
    assert code == 0, stdout.getvalue()
    return out, stdout.getvalue()


def test_argmax_fusion_needs_output_labels(tiny_ckpt, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    code = segkit_main(["export", "--checkpoint", str(tiny_ckpt), "--out", str(out), "--argmax-fusion"])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert "--argmax-fusion" in err and "add --output labels" in err and len(err.strip().splitlines()) == 1


def test_argmax_fusion_refused_for_a_shipped_web_model(tiny_ckpt, tmp_path, capsys):
    model_file = tmp_path / "given.onnx"
    model_file.write_bytes(b"")
    argv = ["export", "--checkpoint", str(tiny_ckpt), "--format", "web", "--out", str(tmp_path / "site")]
    code = segkit_main([*argv, "--model", str(model_file), "--output", "labels", "--argmax-fusion"])
    err = capsys.readouterr().err
    assert code == 2 and "--argmax-fusion" in err and len(err.strip().splitlines()) == 1


def test_fused_file_equals_the_fused_pytorch_labels(fused_export, spread_ckpt, synth_root):
    from segkit.checkpoint.load import load_model
    from segkit.evaluation.predict import normalize
    from segkit.export.verify import find_verification_images
    from segkit.export.wrapper import fused_labels
    from segkit.runtimes import load_exported

    path, _ = fused_export
    model = load_model(spread_ckpt)
    runner = load_exported(path)

    differs = False
    for image in find_verification_images(synth_root, limit=4).images:
        x = normalize(image, runner.mean, runner.std)[None]  # the synthetic images are 64x64: the file's size
        with torch.inference_mode():
            want = fused_labels(model, x).long()
            official = model(x)["out"].argmax(1)
        got = runner(x)["labels"].long()
        assert torch.equal(got, want)
        differs |= not torch.equal(want, official)
    assert differs  # the model is one where the fusion is not the official semantics


def test_export_prints_the_fusion_cost_and_verifies_exactly(fused_export):
    _, printed = fused_export
    verified = next(line for line in printed.splitlines() if line.startswith("verified in onnxruntime"))
    assert "pixel agreement 100.000%" in verified  # compared with the fused PyTorch labels, not the official ones
    cost = next(line for line in printed.splitlines() if line.startswith("argmax fusion: "))
    agreement = float(cost.split("argmax fusion: ")[1].split("%")[0])
    assert 50 < agreement < 100  # the cost against the official semantics, measured on the same images
    assert "of pixels as the official semantics; mIoU " in cost and " vs " in cost  # the synthetic set has masks


def test_metadata_records_argmax_fusion(fused_export, tiny_ckpt, tmp_path):
    from segkit.checkpoint.load import load_model
    from segkit.export import export_onnx
    from segkit.runtimes.metadata import read_metadata

    path, _ = fused_export
    assert read_metadata(path)["argmax_fusion"] is True
    plain = tmp_path / "plain.onnx"
    export_onnx(load_model(tiny_ckpt), plain, input_size=(SIZE, SIZE), output="labels", exporter="torchscript")
    assert read_metadata(plain)["argmax_fusion"] is False


def test_verify_reads_fusion_from_the_metadata(fused_export, spread_ckpt, synth_root):
    from segkit.checkpoint.load import load_model
    from segkit.export.verify import find_verification_images, verify

    path, _ = fused_export
    model = load_model(spread_ckpt)
    found = find_verification_images(synth_root, limit=4)
    assert found.masks is not None and len(found.masks) == len(found.images)
    report = verify(model, path, found.images, masks=found.masks, progress=False)  # fusion: from the file
    assert report.agreement == 1.0 and report.fusion is not None
    assert report.fusion.miou_fused is not None and report.fusion.miou_official is not None
    official = verify(model, path, found.images, argmax_fusion=False, progress=False)  # the wrong reference
    assert official.agreement < 1.0 and official.fusion is None
    assert official.agreement == pytest.approx(report.fusion.agreement)


def test_fusion_line_without_ground_truth():
    from segkit.export.verify import FusionCost

    line = FusionCost(0.9778, 8, "the image files under photos/").line()
    assert line == (
        "argmax fusion: 97.78% of pixels as the official semantics (no ground truth: no mIoU) on 8 image(s) from "
        "the image files under photos/"
    )
    line = FusionCost(0.9778, 8, "x", miou_fused=0.7187, miou_official=0.7478).line()
    assert "; mIoU 71.87 vs 74.78 on 8 image(s)" in line


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".tflite", ".xml"])
def test_argmax_fusion_exports_to_litert_and_openvino(spread_ckpt, tmp_path, suffix, capsys):
    pytest.importorskip("ai_edge_litert" if suffix == ".tflite" else "openvino")
    from segkit.runtimes.metadata import read_metadata

    out = tmp_path / f"fused{suffix}"
    argv = ["export", "--checkpoint", str(spread_ckpt), "--out", str(out), "--input-size", str(SIZE)]
    assert segkit_main([*argv, "--input", "uint8", "--output", "labels", "--argmax-fusion"]) == 0
    printed = capsys.readouterr().out
    assert "pixel agreement 100.000%" in printed and "argmax fusion: " in printed
    assert read_metadata(out)["argmax_fusion"] is True
    assert np.isfinite(float(printed.split("argmax fusion: ")[1].split("%")[0]))
