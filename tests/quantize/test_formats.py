"""``segkit quantize`` takes its format from the --out name as ``segkit export`` does (.onnx onnx, .xml openvino,
.tflite tflite); an explicit --format still works; a conflicting or unknown extension is one error line, found before
any work."""

from __future__ import annotations

import pytest

import segkit.checkpoint.load
from segkit.cli import main as segkit_main
from segkit.quantize import command
from segkit.quantize.formats import FORMATS, QuantizeError, quantize_format


@pytest.mark.parametrize("name,fmt", [("m.onnx", "onnx"), ("m.xml", "openvino"), ("M.TFLITE", "tflite")])
def test_format_from_the_extension(name: str, fmt: str) -> None:
    assert quantize_format(name) == fmt
    assert quantize_format(name, fmt) == fmt  # explicit and matching


def test_conflicting_extension_is_refused() -> None:
    with pytest.raises(QuantizeError) as info:
        quantize_format("model.onnx", "tflite")
    assert str(info.value) == "--format tflite writes a .tflite file, got --out model.onnx; name the output *.tflite."


@pytest.mark.parametrize("name", ["model.bin", "model", "model.pth"])
def test_unknown_extension_without_format_is_refused(name: str) -> None:
    with pytest.raises(QuantizeError) as info:
        quantize_format(name)
    message = str(info.value)
    assert "\n" not in message and f"--out {name}" in message
    assert "*.onnx" in message and "*.xml" in message and "*.tflite" in message and "|".join(FORMATS) in message


def test_unknown_format_is_refused() -> None:
    with pytest.raises(QuantizeError, match=f"--format must be one of {', '.join(FORMATS)}, got 'trt'"):
        quantize_format("m.onnx", "trt")


@pytest.fixture
def formats_seen(monkeypatch) -> list[str]:
    """The format quantize_checkpoint settled on, recorded where it checks the packages (before any work); the
    command stops there."""
    seen: list[str] = []

    def record(fmt: str, qat: bool = False) -> None:
        seen.append(fmt)
        raise QuantizeError("stop here")

    def fail(*args, **kwargs):
        raise AssertionError("work started before the format was settled")

    monkeypatch.setattr(command, "require_packages", record)
    monkeypatch.setattr(segkit.checkpoint.load, "load_model", fail)
    return seen


@pytest.mark.parametrize("name,fmt", [("m.onnx", "onnx"), ("m.xml", "openvino"), ("m.tflite", "tflite")])
def test_cli_infers_the_format_from_out(name, fmt, formats_seen, tiny_ckpt, synth_root, tmp_path, capsys) -> None:
    argv = ["quantize", "--checkpoint", str(tiny_ckpt), "--calib-data", str(synth_root), "--out", str(tmp_path / name)]
    assert segkit_main(argv) == 2  # stopped by the fixture after the format was chosen
    assert formats_seen == [fmt]
    assert segkit_main([*argv, "--format", fmt]) == 2
    assert formats_seen == [fmt, fmt]


@pytest.mark.parametrize(
    "out,extra,expected",
    [
        ("m.onnx", ["--format", "openvino"], "--format openvino writes a .xml file, got --out"),
        ("m.bin", [], "cannot tell the int8 format of --out"),
    ],
)
def test_cli_refuses_a_bad_out_in_one_line(out, extra, expected, formats_seen, tiny_ckpt, tmp_path, capsys) -> None:
    argv = ["quantize", "--checkpoint", str(tiny_ckpt), "--out", str(tmp_path / out), *extra]
    assert segkit_main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err, err
    assert formats_seen == [] and not (tmp_path / out).exists()
