"""Sizes are checked by arithmetic before anything is allocated (issue 20, item 8, and ``--slide`` from item 10).

``--resize-longer 100000`` and ``--pad-to 100000`` died in the allocator, ``--max-pixels -1`` meant "no limit" (so
``--resize-longer 30000`` ran into the OOM killer), ``export``/``quantize --input-size 100000`` and ``-64 64`` gave
tracebacks, and ``--slide 32 0`` silently turned sliding off. Each is now refused in one line; the protocol's extents
are computed before any resize, pad or forward pass (here a resize or pad would fail the test).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import segkit.evaluation.predict as predict_module
from segkit.evaluation.predict import MAX_PIXELS, InferenceError, predict

pytestmark = pytest.mark.usefixtures("one_thread")


class Boom(AssertionError):
    pass


@pytest.fixture
def no_allocation(monkeypatch):
    """Fail on any resize, pad or forward pass: what is refused must be refused before them."""

    def boom(*args, **kwargs):
        raise Boom("a tensor was resized or padded before the size was checked")

    monkeypatch.setattr(predict_module.F, "interpolate", boom)
    monkeypatch.setattr(predict_module.F, "pad", boom)
    monkeypatch.setattr(predict_module, "_forward", boom)


def net() -> nn.Module:
    return nn.Conv2d(3, 4, 1).eval()


IMAGE = torch.zeros(1, 3, 64, 48)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"resize_longer": 100000}, r"resizes 1 x 64x48 to 1 x 100000x75000 = 7,500,000,000 pixels, over the budget"),
        ({"resize_longer": 30000}, r"to 1 x 30000x22500 .* use a smaller --resize-longer"),
        ({"resize_longer": 30000, "slide": (513, 341)}, r"to 1 x 30000x22500"),  # windows fit; the image does not
        ({"pad_to": 100000}, r"a forward pass of 1 x 100000x100000 = 10,000,000,000 pixels exceeds the budget"),
        ({"pad_to": 100000, "slide": (64, 32)}, r"a forward pass of 1 x 100000x100000"),  # each window padded
        ({"resize_longer": 4096, "scales": (0.5,)}, r"resizes 1 x 64x48 to 1 x 4096x3072"),  # the base, not the pass
        ({"max_pixels": -1}, r"max_pixels must be None \(no limit\) or a positive number of pixels, got -1"),
        ({"max_pixels": 0}, r"max_pixels must be None"),
        ({"slide": (32, 0)}, r"slide must be \(crop, stride\) with 1 <= stride <= crop, got \(32, 0\)"),
        ({"slide": (32, 64)}, r"1 <= stride <= crop, got \(32, 64\)"),
    ],
)
def test_oversized_protocols_are_refused_before_allocating(no_allocation, options, message):
    with pytest.raises(InferenceError, match=message) as exc:
        predict(net(), IMAGE, **options)
    assert "\n" not in str(exc.value)


def test_the_budget_still_admits_what_fits():
    from segkit.evaluation.predict import check_budget

    model = net()
    assert predict(model, IMAGE, resize_longer=512, pad_to=512).shape == (1, 64, 48)
    assert predict(model, IMAGE, resize_longer=1024).shape == (1, 64, 48)  # enlarged, within the budget
    assert predict(model, IMAGE, resize_longer=96, slide=(48, 32), scales=(0.75, 1.0), flip=True).shape == (1, 64, 48)
    check_budget(1, (64, 48), pad_to=100000, max_pixels=None)  # None: no limit, the caller's choice
    big = torch.zeros(1, 3, 3000, 2000)  # larger than the budget itself: may be shrunk, windowed
    check_budget(1, big.shape[-2:], resize_longer=2048, slide=(513, 341))
    check_budget(1, big.shape[-2:], slide=(513, 341))
    with pytest.raises(InferenceError, match="a forward pass of 1 x 3000x2000"):
        check_budget(1, big.shape[-2:])


def test_static_input_sizes_are_checked():
    from segkit.evaluation.predict import check_input_size

    assert check_input_size(513) == (513, 513) and check_input_size([65, 97]) == (65, 97)
    assert check_input_size((2048, 2048)) == (2048, 2048)
    for bad in (100000, (-64, 64), (8, 8), (4096, 4096), (2048, 4096)):
        with pytest.raises(InferenceError, match=r"--input-size .* is out of range: each side must be 16\.\.8192"):
            check_input_size(bad)
    with pytest.raises(InferenceError, match="--input-size takes H W or one N, got 1 2 3"):
        check_input_size([1, 2, 3])


def _parse_error(capsys, argv: list[str]) -> str:
    from segkit.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--max-pixels", "-1"],
            "argument --max-pixels: expected 0 (no limit) or a positive number of pixels, got '-1'",
        ),
        (["--slide", "32", "0"], "argument --slide: expected CROP STRIDE with 16 <= STRIDE <= CROP"),
        (["--slide", "0", "32"], "or 0 0 for off; got 0 32"),
        (["--slide", "32", "64"], "got 32 64"),
    ],
)
def test_the_parser_refuses_bad_protocol_flags(capsys, tiny_ckpt, tmp_path, argv, message):
    for command in (["test", "--checkpoint", str(tiny_ckpt)], ["infer", "--checkpoint", str(tiny_ckpt)]):
        extra = ["--input", str(tmp_path), "--output", str(tmp_path / "out")] if command[0] == "infer" else []
        line = _parse_error(capsys, [*command, *extra, *argv])
        assert line.startswith(f"segkit {command[0]}: error: ") and message in line, line


def test_the_parser_keeps_valid_protocol_flags():
    from segkit.cli import common
    from segkit.cli.test import build_parser

    args = build_parser().parse_args(["--checkpoint", "c.pth", "--slide", "0", "0", "--max-pixels", "0"])
    assert common.protocol_overrides(args)["eval.slide"] is None and common.max_pixels(args) is None
    args = build_parser().parse_args(["--checkpoint", "c.pth", "--slide", "64", "32"])
    assert common.protocol_overrides(args)["eval.slide"] == [64, 32] and common.max_pixels(args) == MAX_PIXELS


@pytest.mark.parametrize(
    "argv",
    [
        ["export", "--out", "x.onnx", "--input-size", "100000"],
        ["export", "--out", "x.onnx", "--input-size", "-64", "64"],
        ["quantize", "--format", "onnx", "--out", "x.onnx", "--input-size", "100000", "513"],
        ["quantize", "--format", "onnx", "--out", "x.onnx", "--input-size", "-64", "64"],
    ],
)
def test_export_and_quantize_parsers_refuse_bad_input_sizes(capsys, tiny_ckpt, argv):
    line = _parse_error(capsys, [*argv[:1], "--checkpoint", str(tiny_ckpt), *argv[1:]])
    assert "argument --input-size: expected a side of 16..8192 pixels" in line, line


def test_export_and_quantize_libraries_refuse_bad_input_sizes(tiny_ckpt, tmp_path, synth_root):
    from segkit.export import ExportError, export_checkpoint
    from segkit.quantize import quantize_checkpoint
    from segkit.quantize.ptq import QuantizeError

    with pytest.raises(ExportError, match=r"--input-size 100000 is out of range"):
        export_checkpoint(tiny_ckpt, tmp_path / "x.onnx", input_size=100000, skip_verify=True)
    with pytest.raises(QuantizeError, match=r"--input-size -64 64 is out of range"):
        quantize_checkpoint(
            tiny_ckpt, tmp_path / "q.onnx", format="onnx", calib_data=str(synth_root), input_size=(-64, 64)
        )
    assert not list(tmp_path.iterdir())


def test_infer_and_test_refuse_an_oversized_protocol_in_one_line(
    no_allocation, tiny_ckpt, synth_root, tmp_path, capsys
):
    from segkit.cli import main

    Image.fromarray(np.zeros((64, 48, 3), np.uint8)).save(tmp_path / "img.png")
    argv = ["infer", "--checkpoint", str(tiny_ckpt), "--input", str(tmp_path / "img.png"), "--device", "cpu"]
    code = main([*argv, "--output", str(tmp_path / "out"), "--resize-longer", "100000", "--no-progress"])
    lines = capsys.readouterr().err.strip().splitlines()  # the protocol line, the image skipped in one line, the count
    assert code == 1 and len(lines) == 3 and "48x64 px: the protocol resizes 1 x 64x48" in lines[1], lines
    assert lines[2].startswith("error: skipped 1 of 1 image(s)") and not (tmp_path / "out").exists()
    argv = ["test", "--checkpoint", str(tiny_ckpt), "--data-root", str(synth_root), "--device", "cpu"]
    code = main([*argv, "--pad-to", "100000", "--no-progress"])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and line.startswith("error: a forward pass of 1 x 100000x100000"), line
