"""Issue 20 for ``segkit quantize``: an int8 file appears at --out only once it was verified (item 2), --num-verify 0
and outputs that are inputs or cannot be written are refused before the calibration (items 1, 2, 5), and SIGTERM
leaves neither a hidden file beside --out nor a /tmp/segkit-int8-* folder (item 10).

The quantization itself is replaced by a stub writing a few bytes where it is asked to: what is tested is where the
file is written, verified and moved, not the int8 arithmetic (tests/quantize/test_quantize.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from segkit.cli import main
from segkit.quantize import QuantizeError, quantize_checkpoint
from segkit.quantize.check import Int8Report

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"calib_data": None, "num_calib": 2, "input_size": (32, 32), "num_verify": 1, "progress": False}


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def stubbed(monkeypatch):
    """The quantization writes b"int8" (and an OpenVINO .bin) at the path it is given; the verification records the
    path it checks and reports ``stubbed.agreement``."""
    import segkit.quantize.command as command

    class Stub:
        agreement = 1.0
        verified: list[Path] = []

    def quantize(model, path, images, **options):
        path = Path(path)
        path.write_bytes(b"int8")
        if path.suffix == ".xml":
            path.with_suffix(".bin").write_bytes(b"weights")
        return {}

    def verify(model, path, images, **options):
        Stub.verified.append(Path(path))
        return Int8Report(str(path), 4, len(images), Stub.agreement)

    monkeypatch.setattr(command, "quantize_model", quantize)
    monkeypatch.setattr(command, "verify_int8", verify)
    return Stub


def test_an_int8_file_is_verified_before_it_appears(tiny_ckpt: Path, synth_root: Path, tmp_path: Path, stubbed):
    out = tmp_path / "out" / "m.onnx"
    report = quantize_checkpoint(tiny_ckpt, out, format="onnx", **{**SMALL, "calib_data": str(synth_root)})
    staged = stubbed.verified[-1]
    assert staged != out and staged.name == "m.onnx" and staged.parent.parent == out.parent  # beside --out, hidden
    assert report.passed() and report.written and report.path == str(out)
    assert out.read_bytes() == b"int8" and _listing(out.parent) == ["m.onnx"]


def test_a_failed_verification_leaves_out_as_it_was(tiny_ckpt, synth_root: Path, tmp_path: Path, stubbed, capsys):
    stubbed.agreement = 0.5
    out = tmp_path / "m.onnx"
    report = quantize_checkpoint(tiny_ckpt, out, format="onnx", **{**SMALL, "calib_data": str(synth_root)})
    assert not report.passed() and not report.written and _listing(tmp_path) == []
    out.write_bytes(b"previous")
    argv = ["quantize", "--checkpoint", str(tiny_ckpt), "--format", "onnx", "--out", str(out), "--calib-data",
            str(synth_root), "--num-calib", "2", "--input-size", "32", "32", "--num-verify", "1", "--no-progress"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and err.startswith("error: verification failed: the int8 file agrees")
        and ("50.00%" in err and "not written to" in err)
    )
    assert out.read_bytes() == b"previous" and _listing(tmp_path) == ["m.onnx"]


def test_an_openvino_pair_moves_together(tiny_ckpt: Path, synth_root: Path, tmp_path: Path, stubbed) -> None:
    out = tmp_path / "m.xml"
    quantize_checkpoint(tiny_ckpt, out, format="openvino", **{**SMALL, "calib_data": str(synth_root)})
    assert _listing(tmp_path) == ["m.bin", "m.xml"]
    stubbed.agreement = 0.0
    out.unlink(), (tmp_path / "m.bin").unlink()
    quantize_checkpoint(tiny_ckpt, out, format="openvino", **{**SMALL, "calib_data": str(synth_root)})
    assert _listing(tmp_path) == []


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--num-verify", "0"], "--num-verify 0 verifies nothing; pass --num-verify N with N >= 1"),
        (["--out", "{ckpt}"], "--format onnx writes a .onnx file, got --out"),
        (["--out", "{data}/m.onnx"], "lies inside --calib-data"),
        (["--out", "{tmp}/m.tflite"], "--format onnx writes a .onnx file"),
        (["--out", "{tmp}"], "--format onnx writes a .onnx file"),
        (["--out", "{tmp}/x.onnx"], "is an existing folder; name a file"),
        (["--out", "{tmp}/file/m.onnx"], "file is a file, not a folder"),
    ],
)
def test_refused_before_the_calibration(extra, expected, tiny_ckpt, synth_root, tmp_path, capsys, monkeypatch) -> None:
    import segkit.quantize.command as command
    import segkit.quantize.images as images

    def no_calibration(*args, **kwargs):
        raise AssertionError("calibrated before the options were checked")

    monkeypatch.setattr(images, "calibration_images", no_calibration)
    monkeypatch.setattr(command, "is_qat_checkpoint", no_calibration)  # nor was the checkpoint read
    (tmp_path / "x.onnx").mkdir()
    (tmp_path / "file").write_text("x")
    values = {"ckpt": tiny_ckpt, "data": synth_root, "tmp": tmp_path}
    extra = [item.format(**values) for item in extra]
    out = [] if "--out" in extra else ["--out", str(tmp_path / "m.onnx")]
    argv = ["quantize", "--checkpoint", str(tiny_ckpt), "--format", "onnx", "--calib-data", str(synth_root), *out]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and expected in err, err
    assert _listing(tmp_path) == ["file", "x.onnx"]


def test_the_checkpoint_is_never_the_output(tiny_ckpt: Path, synth_root: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "ck.onnx"  # named like the output, so that the format check does not answer first
    ckpt.write_bytes(tiny_ckpt.read_bytes())
    with pytest.raises(Exception, match="is the --checkpoint .* this command reads") as info:
        quantize_checkpoint(ckpt, ckpt, format="onnx", **{**SMALL, "calib_data": str(synth_root)})
    assert not isinstance(info.value, AssertionError)
    assert ckpt.read_bytes() == tiny_ckpt.read_bytes()
    with pytest.raises(QuantizeError, match="--num-verify -1 verifies nothing"):
        quantize_checkpoint(tiny_ckpt, tmp_path / "m.onnx", format="onnx", **{**SMALL, "num_verify": -1})


SIGTERM_SCRIPT = """
import sys, time
from pathlib import Path
import segkit.export
import segkit.quantize.ptq as ptq
from segkit.cli import main

checkpoint, data, out, ready = sys.argv[1:5]  # segkit.cli.main sets sys.argv while the command runs

def fp32(model, path, **kwargs):  # the float export inside the /tmp/segkit-int8-* folder, stubbed
    Path(path).write_bytes(b"fp32")
    return {}

def slow_onnx(fp32, path, feeds, meta, tmp):
    Path(ready).write_text(str(tmp))
    time.sleep(120)

segkit.export.export_onnx = fp32
ptq._onnx = slow_onnx
sys.exit(main(["quantize", "--checkpoint", checkpoint, "--format", "onnx", "--out", out, "--calib-data", data,
               "--num-calib", "2", "--input-size", "32", "32", "--num-verify", "1", "--no-progress"]))
"""


@pytest.mark.slow
def test_sigterm_during_the_quantization_leaves_nothing(tiny_ckpt: Path, synth_root: Path, tmp_path: Path) -> None:
    """SIGTERM used to leave the hidden .m.onnx.*.tmp beside --out and the /tmp/segkit-int8-* folder."""
    pytest.importorskip("onnxruntime")
    out = tmp_path / "out" / "m.onnx"
    out.parent.mkdir()
    temp = tmp_path / "tmp"
    temp.mkdir()
    ready = tmp_path / "ready"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(temp)}
    argv = [sys.executable, "-c", SIGTERM_SCRIPT, str(tiny_ckpt), str(synth_root), str(out), str(ready)]
    proc = subprocess.Popen(argv, env=env)
    try:
        deadline = time.monotonic() + 240
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ready.exists(), "the quantization never started"
        assert Path(ready.read_text()).parent == temp and Path(ready.read_text()).name.startswith("segkit-int8-")
        assert len(_listing(out.parent)) == 1  # the hidden stage folder
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 128 + signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()
    assert _listing(out.parent) == [] and _listing(temp) == []
