"""``segkit export --format openvino``: an fp32 OpenVINO IR (.xml + .bin), verified against PyTorch before it appears,
and run by ``segkit test|infer --model model.xml``.

The tiny checkpoint is exported once (through ONNX: 10-30 s on a busy 2-core CPU), at 64x64, the synthetic images'
size, so the file's protocol (resize longer to 64, pad to 64) leaves the images as the checkpoint sees them.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from segkit.cli import main as segkit_main

pytest.importorskip("openvino", reason="openvino is not installed (pip install 'segkit-deeplab[deploy]')")
pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 64  # the synthetic images' size


@pytest.fixture(scope="module")
def exported(tiny_ckpt, tmp_path_factory):
    """``(model.xml, what `segkit export` printed, what its verification saw on disk)``: one CLI export whose
    verification is wrapped to record which files exist while it runs."""
    from segkit.export import command

    out = tmp_path_factory.mktemp("openvino") / "model.xml"
    seen: dict[str, bool] = {}
    real_verify = command.verify

    def recording_verify(model, path, images, **kwargs):
        path = Path(path)
        seen.update(
            out_xml=out.exists(),
            out_bin=out.with_suffix(".bin").exists(),
            staged_pair=path.is_file() and path.with_suffix(".bin").is_file(),
            num_images=len(images),
        )
        return real_verify(model, path, images, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(command, "verify", recording_verify)
        capture = _Capture()
        with capture:
            code = segkit_main(
                ["export", "--checkpoint", str(tiny_ckpt), "--out", str(out), "--input-size", "64", "64"]
            )
    assert code == 0, capture.text
    return out, capture, seen


class _Capture:
    """stdout and stderr of a block (capsys is function-scoped; the export is made once per module)."""

    def __enter__(self):
        import contextlib
        import io

        self.out, self.err = io.StringIO(), io.StringIO()
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(contextlib.redirect_stdout(self.out))
        self._stack.enter_context(contextlib.redirect_stderr(self.err))
        return self

    def __exit__(self, *exc):
        self._stack.close()

    @property
    def text(self) -> str:
        return self.out.getvalue() + self.err.getvalue()


@pytest.mark.slow
def test_export_writes_a_verified_ir_pair(exported, synth_root):
    out, capture, seen = exported
    stdout = capture.out.getvalue()
    agreement = float(re.search(r"pixel agreement ([\d.]+)%", stdout).group(1))
    assert agreement >= 99.9
    assert "verified in openvino on 4 image(s) from the 'val' split of" in stdout  # the checkpoint's val split
    assert (
        re.search(r"\(([\d.e+-]+) of the logit range\)", stdout)
        and float(re.search(r"\(([\d.e+-]+) of the logit range\)", stdout).group(1)) <= 1e-3
    )
    assert f"Wrote {out} (openvino, 64x64, input float nchw, output logits)" in capture.err.getvalue()
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.bin", "model.xml"]  # no stage folder left
    from segkit.runtimes.metadata import read_metadata

    meta = read_metadata(out)
    assert (meta["exported_as"], meta["input_size"], meta["config_name"]) == (
        "openvino",
        [SIZE, SIZE],
        "demo_mnv2_os16",
    )


@pytest.mark.slow
def test_pair_appears_only_after_verification(exported):
    _, _, seen = exported
    # while the verification ran, the pair existed in the stage folder only
    assert seen == {"out_xml": False, "out_bin": False, "staged_pair": True, "num_images": 4}


@pytest.mark.slow
def test_failed_verification_writes_nothing_and_keeps_the_old_pair(exported, tiny_ckpt, tmp_path, monkeypatch, capsys):
    """A file that fails its verification is not written: a new --out stays absent, an existing pair unchanged."""
    from segkit.export import command
    from segkit.export.verify import VerifyReport

    source, _, _ = exported

    def copy_export(model, path, fmt, **kwargs):  # the real IR, without converting again
        shutil.copy(source.with_suffix(".bin"), Path(path).with_suffix(".bin"))
        shutil.copy(source, path)
        return json.loads(json.dumps(_meta(source)))

    monkeypatch.setattr(command, "export_model", copy_export)
    monkeypatch.setattr(command, "verify", lambda *a, **k: VerifyReport(1.0, 0.5, 0.5, 4, "test", "openvino"))
    argv = ["export", "--checkpoint", str(tiny_ckpt), "--input-size", "64"]
    assert segkit_main([*argv, "--out", str(tmp_path / "new.xml")]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    (tmp_path / "old.xml").write_text("old graph")
    (tmp_path / "old.bin").write_text("old weights")
    assert segkit_main([*argv, "--out", str(tmp_path / "old.xml")]) == 1
    assert "pixel agreement 50.000%" in capsys.readouterr().out
    assert (tmp_path / "old.xml").read_text() == "old graph" and (tmp_path / "old.bin").read_text() == "old weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.bin", "old.xml"]


def _meta(path: Path) -> dict:
    from segkit.runtimes.metadata import read_metadata

    return read_metadata(path)


@pytest.mark.slow
def test_test_and_infer_run_the_ir(exported, tiny_ckpt, synth_root, tmp_path, capsys):
    """`segkit test --model model.xml` gives the checkpoint's mIoU (and confusion) on the synthetic set; `infer` runs."""
    out, _, _ = exported
    data = ["--data-root", str(synth_root)]
    assert segkit_main(["test", "--model", str(out), *data, "--json", str(tmp_path / "ir.json")]) == 0
    assert segkit_main(["test", "--checkpoint", str(tiny_ckpt), *data, "--json", str(tmp_path / "pt.json")]) == 0
    ir, pt = (json.loads((tmp_path / name).read_text()) for name in ("ir.json", "pt.json"))
    assert ir["runtime"] == "openvino" and pt["runtime"] == "pytorch"
    assert ir["miou"] == pytest.approx(pt["miou"], abs=1e-9)
    assert ir["confusion"] == pt["confusion"]
    images = synth_root / "VOCdevkit" / "VOC2012" / "JPEGImages"
    one = tmp_path / "in"
    one.mkdir()
    shutil.copy(next(iter(sorted(images.glob("*.jpg")))), one)
    assert segkit_main(["infer", "--model", str(out), "--input", str(one), "--output", str(tmp_path / "pred")]) == 0
    assert len(list((tmp_path / "pred").glob("*.png"))) == 1
    capsys.readouterr()


def test_refusals_before_any_work(tiny_ckpt, tmp_path, capsys):
    """--format openvino names an .xml; an IR whose .bin would replace the checkpoint is refused (exit 2, nothing
    written)."""
    assert segkit_main(["export", "--checkpoint", str(tiny_ckpt), "--format", "openvino", "--out", "m.onnx"]) == 2
    assert "--format openvino writes a .xml file, got --out m.onnx; name the output *.xml." in capsys.readouterr().err
    ckpt = tmp_path / "weights.bin"
    shutil.copy(tiny_ckpt, ckpt)
    assert segkit_main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "weights.xml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out (its .bin)" in err and "writing it would destroy that input" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.bin"]
