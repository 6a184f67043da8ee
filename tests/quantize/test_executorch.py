"""Int8 ExecuTorch programs (PT2E with the XNNPACK quantizer, lowered to XNNPACK) through ``segkit quantize``:
calibrated like the other formats, verified in ExecuTorch's runtime against the float model before the file appears.
"""

from __future__ import annotations

import sys

import pytest

from segkit.cli import main as segkit_main

pytest.importorskip(
    "executorch", reason="executorch is not installed (pip install 'segkit-deeplab[executorch]'; make setup does it)"
)
pytestmark = pytest.mark.usefixtures("one_thread")


def test_missing_executorch_is_one_line_before_any_work(tiny_ckpt, synth_root, tmp_path, monkeypatch):
    from segkit.quantize import QuantizeError, quantize_checkpoint

    monkeypatch.setitem(sys.modules, "executorch", None)  # find_spec: not importable
    with pytest.raises(QuantizeError, match=r"--format executorch needs 'executorch', not installed: pip install "):
        quantize_checkpoint(tiny_ckpt, tmp_path / "m.pte", calib_data=str(synth_root), input_size=(64, 64))
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_quantize_executorch_writes_a_verified_int8_program(tiny_ckpt, synth_root, tmp_path, capsys):
    import numpy as np
    import torch

    from segkit.runtimes import load_exported
    from segkit.runtimes.metadata import read_metadata

    out = tmp_path / "model_int8.pte"
    argv = ["quantize", "--checkpoint", str(tiny_ckpt), "--calib-data", str(synth_root), "--num-calib", "4"]
    argv += ["--out", str(out), "--input-size", "64", "64", "--verify", str(synth_root), "--no-progress"]
    rc = segkit_main(argv)
    text = capsys.readouterr().out
    assert "XNNPACK delegate: " in text and "pixel agreement" in text and "mIoU" in text
    line = next(x for x in text.splitlines() if "pixel agreement" in x)
    agreement = float(line.split("pixel agreement ", 1)[1].split("%")[0]) / 100
    if rc == 1:  # below the 99% bar: nothing written
        assert agreement < 0.99 and not out.exists() and not list(tmp_path.iterdir())
        pytest.fail(f"the int8 program of the tiny model fell below the bar: {line}")
    assert rc == 0 and agreement >= 0.99 and out.is_file()
    meta = read_metadata(out)
    assert (meta["exported_as"], meta["precision"], meta["quantization"]) == ("executorch", "int8", "ptq")
    assert meta["num_calib"] == 4 and meta["delegation"]["delegated_nodes"] > 50
    outside = meta["delegation"]["outside"]
    assert not any(op.startswith("aten.convolution") for op in outside)  # the int8 convolutions run in XNNPACK
    runner = load_exported(out)
    assert runner.runtime == "executorch" and runner.precision == "int8" and runner.input_kind == "float"
    assert runner.session.input_dtype == np.float32  # float in: quantized inside the program
    logits = runner(torch.randn(1, 3, 64, 64))["out"]
    assert logits.shape == (1, 5, 64, 64) and logits.dtype == torch.float32
