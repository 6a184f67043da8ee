"""The official ADE20K file and segkit's conversion of it, evaluated by ``segkit test`` with one protocol.

The 10 shared ADE20K photos have no ground truth; the interpreter's label maps (``reference/``) stand in for it,
laid out as ADE20K (``ADEChallengeData2016/{images,annotations}/validation``) and read by the ``ade20k_top31`` data
set (MLPerf's 31 classes + "other"; a mask value is the class index). The file run by LiteRT then scores 100% by
construction, and the conversion's pixel accuracy is its agreement with the interpreter.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from segkit.cli import main as segkit_main

ADE = "ade20k_mlperf/deeplabv3_mnv2_ade20k_uint8.tflite"
REFERENCE = "ade20k_mlperf/reference/deeplabv3_mnv2_ade20k_uint8_preds.npz"


@pytest.fixture(scope="module")
def ade_root(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    if not (shared_data / ADE).is_file():
        pytest.skip(f"the MLPerf ADE20K model is absent: {shared_data / ADE}")
    root = tmp_path_factory.mktemp("ade20k_ref")
    images = root / "ADEChallengeData2016/images/validation"
    masks = root / "ADEChallengeData2016/annotations/validation"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    refs = np.load(shared_data / REFERENCE)
    for path in sorted((shared_data / "ade20k_mlperf/images").glob("*.jpg")):
        shutil.copy(path, images / path.name)
        Image.fromarray(refs[path.stem].astype(np.uint8)).save(masks / f"{path.stem}.png")
    return root


def _test(source: list[str], root: Path, out: Path, capsys: pytest.CaptureFixture) -> tuple[dict, str]:
    argv = ["test", *source, "--dataset", "ade20k_top31", "--data-root", str(root), "--split", "validation"]
    argv += ["--resize-longer", "512", "--pad-to", "512"]  # the file's fixed input; a no-op on these 512x512 photos
    assert segkit_main([*argv, "--json", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr()
    return json.loads(out.read_text()), printed.out + printed.err


@pytest.mark.slow  # LiteRT and the converted model at 512x512 on 10 images, and a conversion
def test_the_file_and_its_conversion_under_one_protocol(
    ade_root: Path, shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pytest.importorskip(
        "tflite", reason="the optional 'tflite' package is absent: pip install 'segkit-deeplab[tflite]'"
    )
    pytest.importorskip("ai_edge_litert", reason="LiteRT is absent: pip install ai-edge-litert")
    tflite = shared_data / ADE
    # a foreign file carries no class count: the data set's 32 classes are set for it
    ref, printed = _test(
        ["--model", str(tflite), "--set", "model.num_classes=32"], ade_root, tmp_path / "f.json", capsys
    )
    assert "mIoU" in printed and "100.00" in printed
    assert ref["miou"] == pytest.approx(1.0) and ref["pixel_acc"] == pytest.approx(1.0)

    ckpt = tmp_path / "ade.pth"
    assert segkit_main(["convert", str(tflite), str(ckpt)]) == 0
    capsys.readouterr()
    ours, printed = _test(["--checkpoint", str(ckpt)], ade_root, tmp_path / "c.json", capsys)
    assert "mIoU" in printed
    assert ours["protocol"] == ref["protocol"]  # one protocol
    print(f"converted: mIoU {ours['miou']:.4f}, pixel accuracy {ours['pixel_acc']:.4f} against the interpreter")
    assert ours["pixel_acc"] >= 0.982  # measured 98.29%, the agreement of tests/convert/test_ade20k.py
    assert ours["miou"] >= 0.90  # measured 91.14%
