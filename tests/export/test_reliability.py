"""Issue 20 for ``segkit export``: a file appears at --out only once it was verified (item 2), combinations that
cannot be right and options that verify nothing are refused (items 2, 10), a classifier checkpoint and a format
the file name contradicts are refused first (item 6), --opset is honoured or refused (item 10), and SIGTERM leaves
nothing behind (item 10)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from segkit.cli import main
from segkit.export import ExportError, export_checkpoint
from segkit.export.verify import VerifyReport

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 32
FAST = {"input_size": SIZE, "exporter": "torchscript"}  # the tracer: about a second for the tiny model


def _failing(runtime: str = "onnxruntime") -> VerifyReport:
    return VerifyReport(1.0, 0.5, 0.25, 1, "the test", runtime)


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_file_that_fails_verification_never_appears(tiny_ckpt: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """The file is verified where it was written, beside --out; a failure leaves --out as it was."""
    import segkit.export.command as command

    out = tmp_path / "out" / "m.onnx"
    seen = []

    def verify(model, path, images, source="", **options):
        seen.append(Path(path))
        assert Path(path).is_file() and Path(path) != out  # checked before it is renamed
        assert not out.exists() or out.read_bytes() == b"the previous, verified file"
        assert Path(path).suffix == ".onnx"  # the runtimes open it by its extension
        return _failing()

    monkeypatch.setattr(command, "verify", verify)
    lines = []
    report = export_checkpoint(tiny_ckpt, out, verify_images=1, log=lines.append, **FAST)
    assert seen and not report.passed() and not report.written and lines == []
    assert not out.exists() and _listing(out.parent) == []  # nothing, not even a hidden temporary file
    assert "it was not written to" in report.failure()
    # a file already there stays as it was; the command says so in one line and exits 1
    out.write_bytes(b"the previous, verified file")
    argv = ["export", "--checkpoint", str(tiny_ckpt), "--out", str(out), "--input-size", str(SIZE)]
    assert main([*argv, "--exporter", "torchscript", "--verify-images", "1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: verification failed") and "Wrote" not in err
    assert out.read_bytes() == b"the previous, verified file" and _listing(out.parent) == ["m.onnx"]


def test_a_verified_file_appears_with_the_mode_open_gives(tiny_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    lines = []
    report = export_checkpoint(tiny_ckpt, out, verify_images=1, log=lines.append, **FAST)
    assert report.passed() and report.written and out.is_file() and _listing(tmp_path) == ["m.onnx"]
    assert lines == [f"Wrote {out} (onnx, {SIZE}x{SIZE}, input float nchw, output logits, opset 18)"]
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_an_interrupted_verification_leaves_nothing(tiny_ckpt: Path, tmp_path: Path, monkeypatch) -> None:
    import segkit.export.command as command

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(command, "verify", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_checkpoint(tiny_ckpt, tmp_path / "m.onnx", verify_images=1, **FAST)
    assert _listing(tmp_path) == []


def test_torchscript_with_dynamic_shapes_is_refused_for_tf_same_padding(tiny_ckpt: Path, tmp_path: Path) -> None:
    """The tracer bakes Conv2dSame's pads in at the traced size: wrong at every other size (a converted official
    model); refused before anything is exported. Static shapes and the dynamo exporter stay allowed."""
    from segkit.checkpoint.load import load_model
    from segkit.export.onnx import has_tf_same_padding

    same = ["model.tf_same_padding=true"]
    assert has_tf_same_padding(load_model(tiny_ckpt, overrides=same))
    assert not has_tf_same_padding(load_model(tiny_ckpt))
    with pytest.raises(ExportError, match="--exporter torchscript with --dynamic cannot export a model with TF 'SAME'"):
        export_checkpoint(tiny_ckpt, tmp_path / "m.onnx", dynamic=True, exporter="torchscript", overrides=same)
    assert _listing(tmp_path) == []
    report = export_checkpoint(tiny_ckpt, tmp_path / "s.onnx", overrides=same, verify_images=1, **FAST)
    assert report.passed() and (tmp_path / "s.onnx").is_file()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--verify-images", "0"], "--verify-images 0 verifies nothing; pass --verify-images N with N >= 1"),
        (["--verify-images", "-3"], "--verify-images -3 verifies nothing"),
        (["--verify", "/nonexistent/segkit"], "--verify /nonexistent/segkit is not a folder"),
        (["--opset", "5"], "--opset 5 cannot be written by the dynamo exporter, which writes opsets 18..23"),
        (["--opset", "99"], "--opset 99 cannot be written by the dynamo exporter"),
        (["--opset", "17"], "--opset 17 cannot be written by the dynamo exporter"),
        (["--opset", "5", "--exporter", "torchscript"], "--opset 5 cannot be written by the torchscript exporter"),
        (["--format", "tflite"], "--format tflite writes a .tflite file, got --out"),
    ],
)
def test_options_that_cannot_be_honoured_are_refused_first(
    extra: list[str], expected: str, tiny_ckpt: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    import segkit.checkpoint.load as load

    def no_load(*args, **kwargs):
        raise AssertionError("the checkpoint was loaded before the options were checked")

    monkeypatch.setattr(load, "load_model", no_load)
    out = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(tiny_ckpt), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and expected in err, err
    assert _listing(tmp_path) == []


def test_a_verify_folder_without_images_is_refused(tiny_ckpt: Path, tmp_path: Path) -> None:
    """--verify used to fall back to synthetic images silently when the folder held none."""
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ExportError, match=r"--verify .*empty holds no images"):
        export_checkpoint(tiny_ckpt, tmp_path / "m.onnx", verify_root=empty, **FAST)
    assert _listing(tmp_path) == ["empty"]


def test_the_asked_opset_is_written(tiny_ckpt: Path, tmp_path: Path) -> None:
    import onnx

    out = tmp_path / "m13.onnx"
    report = export_checkpoint(tiny_ckpt, out, opset=13, skip_verify=True, **FAST)
    assert report.line().endswith("opset 13)")
    assert [o.version for o in onnx.load(str(out)).opset_import if o.domain in ("", "ai.onnx")] == [13]


def test_an_opset_the_exporter_did_not_write_is_refused(tiny_ckpt: Path, tmp_path: Path, monkeypatch) -> None:
    """The safety net behind the range check: an exporter that quietly writes another opset than asked (as the
    dynamo exporter did for --opset 5 and 99: it wrote 18 and the command printed the asked number)."""
    import dataclasses

    import segkit.export.onnx as onnx_export
    from segkit.checkpoint.load import load_model

    real = onnx_export._export_torchscript

    def quietly_17(graph, path):
        real(dataclasses.replace(graph, opset=17), path)

    monkeypatch.setitem(onnx_export._EXPORTER_FUNCTIONS, "torchscript", (quietly_17, onnx_export._torchscript_onnx))
    with pytest.raises(ExportError, match="the torchscript exporter wrote opset 17 although --opset 18 was asked"):
        onnx_export.export_onnx(load_model(tiny_ckpt), tmp_path / "m.onnx", input_size=SIZE, exporter="torchscript")
    assert _listing(tmp_path) == []


def test_a_classifier_checkpoint_is_refused_first(tiny_cfg, synth_root: Path, tmp_path: Path) -> None:
    from segkit.checkpoint.format import save_checkpoint
    from segkit.models import build_classifier

    cfg = tiny_cfg(synth_root)
    ckpt = tmp_path / "classifier.pth"
    save_checkpoint(ckpt, build_classifier(cfg).eval(), cfg, kind="classifier")
    with pytest.raises(ExportError, match=r"holds a 'classifier' checkpoint \(an ImageNet model\), not a segmentation"):
        export_checkpoint(ckpt, tmp_path / "m.onnx", **FAST)
    assert _listing(tmp_path) == ["classifier.pth"]


SIGTERM_SCRIPT = """
import sys, time
from pathlib import Path
import segkit.export.command as command
from segkit.cli import main

checkpoint, out, ready = sys.argv[1:4]  # segkit.cli.main sets sys.argv while the command runs

def slow_verify(model, path, images, source="", **options):
    Path(ready).write_text(str(path))
    time.sleep(120)

command.verify = slow_verify
sys.exit(main(["export", "--checkpoint", checkpoint, "--out", out, "--input-size", "32",
               "--exporter", "torchscript", "--verify-images", "1"]))
"""


@pytest.mark.slow
def test_sigterm_during_the_verification_leaves_nothing(tiny_ckpt: Path, tmp_path: Path) -> None:
    """SIGTERM used to kill the process where it stood, leaving the hidden .m.onnx.*.tmp beside --out."""
    out = tmp_path / "out" / "m.onnx"
    out.parent.mkdir()
    ready = tmp_path / "ready"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", SIGTERM_SCRIPT, str(tiny_ckpt), str(out), str(ready)], env=env)
    try:
        deadline = time.monotonic() + 240
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ready.exists(), "the export never reached its verification"
        staged = Path(ready.read_text())
        assert staged.parent.parent == out.parent and staged.name == "m.onnx"  # verified in the hidden stage
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 128 + signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()
    assert _listing(out.parent) == []
