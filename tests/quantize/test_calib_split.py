"""The calibration split: ``train`` by default, else the split the data has (a sample with only ``val``, as
../shared/data/voc_sample), said in the calibration line; a split that is not there is refused naming the ones that
are; and the quantization and its verification say what they do while they run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from segkit.cli import main as segkit_main

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def val_only_root(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("val_only") / "voc"
    shutil.copytree(synth_root, root)
    (root / "VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt").unlink()
    return root


def _argv(ckpt: Path, root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "quantize",
        "--checkpoint",
        str(ckpt),
        "--calib-data",
        str(root),
        "--num-calib",
        "2",
        "--num-verify",
        "2",
        "--out",
        str(out),
        "--input-size",
        "65",
        "65",
        *extra,
    ]


def test_a_missing_calibration_split_names_the_fix(tiny_ckpt, val_only_root, tmp_path, capsys) -> None:
    out = tmp_path / "m.onnx"
    assert segkit_main(_argv(tiny_ckpt, val_only_root, out, "--calib-split", "train")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no 'train' split (it has val); pass --calib-split val" in err, err
    assert not out.exists()


def test_without_calib_split_the_available_split_calibrates(tiny_ckpt, val_only_root, tmp_path, capsys) -> None:
    out = tmp_path / "m.onnx"
    rc = segkit_main(_argv(tiny_ckpt, val_only_root, out))
    captured = capsys.readouterr()
    assert "images of 'val' under" in captured.out and "(it has no 'train' split;" in captured.out, captured.out
    assert (
        "quantizing (ONNX Runtime QDQ)..." in captured.err and "quantizing (ONNX Runtime QDQ): done in" in captured.err
    )
    assert "verifying int8 vs float" in captured.err  # the verification's bar
    assert rc in (0, 1) and "pixel agreement" in captured.out  # an untrained model's ties may disagree
